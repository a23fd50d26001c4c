"""PUT /api/leverage (issue 12): a user's own leverage change, through the app and the user's
actor to the simulator, whose account record is the oracle; refusals are sentences."""

from __future__ import annotations

import trio

from tradercoin.testing import open_test_system


async def test_leverage_is_changed_at_the_exchange_by_the_user(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        bob = await system.add_user("bob")
        before = dict(system.sim.account(bob.api_key).leverage)
        answer = await system.http.put(
            "/api/leverage", json={"symbol": "btcusdt", "leverage": 7}, headers=alice.headers
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert (data["symbol"], data["leverage"]) == ("BTCUSDT", 7)
        assert float(data["max_notional_value"]) > 0
        assert system.sim.account(alice.api_key).leverage["BTCUSDT"] == 7
        assert dict(system.sim.account(bob.api_key).leverage) == before  # only hers
        [sent] = alice.requests("/fapi/v1/leverage")
        assert sent.method == "POST" and sent.status == 200


async def test_bad_leverage_is_a_sentence_and_changes_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        cases = [
            ({"symbol": "BTCUSDT", "leverage": 0}, "Leverage must be at least 1."),
            ({"symbol": "BTCUSDT", "leverage": "5"}, "Leverage must be a whole number."),
            ({"symbol": "NOPEUSDT", "leverage": 5}, "NOPEUSDT is not a symbol you can trade."),
            ({"symbol": "BTCUSDT"}, "Leverage is required."),
        ]
        for body, sentence in cases:
            answer = await system.http.put("/api/leverage", json=body, headers=alice.headers)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["message"] == sentence
        assert alice.requests("/fapi/v1/leverage") == []
        before = dict(system.sim.account(alice.api_key).leverage)
        too_high = {"symbol": "SOLUSDT", "leverage": 100}  # the alts' brackets stop at 75x
        answer = await system.http.put("/api/leverage", json=too_high, headers=alice.headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"] == (
            "The exchange refused the leverage: Leverage 100 is not valid"
        )
        assert dict(system.sim.account(alice.api_key).leverage) == before
