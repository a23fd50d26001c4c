"""The signature of internal calls: bound to the key, the path, the body and the time."""

from __future__ import annotations

import trio

from tradercoin.clock import FixedEpochClock
from tradercoin.cluster.internal import InternalAuth

PATH = "/internal/users/7/place"


async def test_a_signature_holds_for_its_path_body_and_key_only(autojump_clock: object) -> None:
    clock = FixedEpochClock(1_767_225_600_000)
    auth, other = InternalAuth(b"key one", clock), InternalAuth(b"key two", clock)
    header = auth.sign(PATH, b'{"a":1}')
    assert auth.verify(header, PATH, b'{"a":1}')
    assert not auth.verify(header, PATH, b'{"a":2}')
    assert not auth.verify(header, "/internal/users/8/place", b'{"a":1}')
    assert not other.verify(header, PATH, b'{"a":1}')
    assert not auth.verify(None, PATH, b"")
    assert not auth.verify("not.a.signature", PATH, b"")
    assert "key one" not in repr(auth)


async def test_a_signature_expires_after_a_minute(autojump_clock: object) -> None:
    clock = FixedEpochClock(1_767_225_600_000)
    auth = InternalAuth(b"key", clock)
    header = auth.sign(PATH, b"")
    await trio.sleep(60)
    assert auth.verify(header, PATH, b"")
    await trio.sleep(1)
    assert not auth.verify(header, PATH, b"")
