"""A user's account as the page shows it: the key check, the snapshot, the live updates.

- :func:`check_keys`: one signed ``GET /fapi/v3/account`` with keys that are not stored yet,
  answered as a plain sentence (can read and trade, or why not).
- :func:`snapshot`: balances, totals and positions read from the exchange by the user's actor
  (``/fapi/v3/account``, ``/fapi/v3/balance``, ``/fapi/v3/positionRisk``), as wire JSON.
- :func:`update_message`: an ``ACCOUNT_UPDATE`` from the user stream as the ``/ws`` message
  ``{"type": "account", ...}`` the actor pushes to the user's sessions.

Nothing here holds state or keys beyond one call; money goes out as decimal strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import trio

from tradercoin.exchange import account_data as acct
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    IPBanned,
    RateLimited,
    Unavailable,
)
from tradercoin.exchange.protocol import AccountView, Credentials

__all__ = [
    "ACCOUNT_MESSAGE",
    "LEVERAGE_WEIGHT",
    "SNAPSHOT_WEIGHT",
    "KeyCheck",
    "KeyChecker",
    "change_leverage",
    "check_keys",
    "leverage_to_wire",
    "snapshot",
    "update_message",
]

ACCOUNT_MESSAGE = "account"
CHECK_WEIGHT = 5
SNAPSHOT_WEIGHT = 15  # account 5 + balance 5 + positionRisk 5
LEVERAGE_WEIGHT = 1  # POST /fapi/v1/leverage
CHECK_TIMEOUT = 15.0
_REQUEST_IP = re.compile(r"request ip: ([0-9a-fA-F.:]+)")


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What the exchange said of a key pair. ``checked`` is ``False`` when it could not be
    asked (down, rate-limited): the keys may still be fine."""

    checked: bool
    can_read: bool
    can_trade: bool
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "can_read": self.can_read,
            "can_trade": self.can_trade,
            "message": self.message,
        }


class KeyChecker(Protocol):
    """What :func:`check_keys` needs: the process-wide client that makes account views."""

    def for_account(self, creds: Credentials) -> Any: ...


def _refused(error: InvalidCredentials) -> str:
    if error.code == -1022:
        return "The exchange refused the keys: the secret does not belong to this API key."
    if error.code == -2014:
        return "The exchange refused the keys: the API key is not in a valid format."
    where = _REQUEST_IP.search(error.msg or "")
    ip = f" ({where.group(1)})" if where else ""
    return (
        "The exchange refused the keys: the API key is wrong, this server's IP address"
        f"{ip} is not on the key's allow list, or the key has no futures permission."
    )


def _not_checked(error: ExchangeError) -> KeyCheck:
    if isinstance(error, RateLimited | IPBanned):
        why = "the exchange's rate limit is in force"
    elif isinstance(error, Unavailable):
        why = "the exchange did not answer"
    else:
        why = "the exchange answered something unexpected"
    return KeyCheck(False, False, False, f"The keys were not checked: {why}. Try again later.")


async def check_keys(exchange: KeyChecker, creds: Credentials) -> KeyCheck:
    """Ask the exchange whether ``creds`` can read the futures account and trade.

    Waits for: one signed ``GET /fapi/v3/account`` (bounded by 15 s). Never raises for
    what the exchange says; every outcome is a :class:`KeyCheck` with a sentence.
    """
    try:
        view: AccountView = exchange.for_account(creds)
        with trio.fail_after(CHECK_TIMEOUT):
            summary = await view.account()
    except InvalidCredentials as error:
        return KeyCheck(True, False, False, _refused(error))
    except ExchangeError as error:
        return _not_checked(error)
    except trio.TooSlowError:
        return KeyCheck(False, False, False, "The keys were not checked: no answer in 15 s.")
    if summary.can_trade is False:
        return KeyCheck(
            True, True, False, "The keys can read the futures account but may not trade."
        )
    return KeyCheck(True, True, True, "The keys work: they can read the account and trade.")


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def balance_to_wire(row: acct.Balance) -> dict[str, Any]:
    return {
        "asset": row.asset,
        "wallet_balance": _s(row.wallet_balance),
        "cross_wallet_balance": _s(row.cross_wallet_balance),
        "available_balance": _s(row.available_balance),
        "unrealized_pnl": _s(row.unrealized_pnl),
    }


async def change_leverage(view: AccountView, symbol: str, leverage: int) -> dict[str, Any]:
    """Set ``symbol``'s leverage; the exchange's answer as :func:`leverage_to_wire` makes it.

    Waits for: one signed call (weight :data:`LEVERAGE_WEIGHT`; the caller pays it).
    Raises: whatever the client raises (InvalidRequest for the exchange's refusal).
    """
    return leverage_to_wire(await view.change_leverage(symbol, leverage))


def leverage_to_wire(change: acct.LeverageChange) -> dict[str, Any]:
    """The exchange's answer to a leverage change, for HTTP clients (money as text)."""
    return {
        "symbol": change.symbol,
        "leverage": change.leverage,
        "max_notional_value": _s(change.max_notional_value),
    }


def position_to_wire(row: acct.Position) -> dict[str, Any]:
    leverage = row.leverage
    return {
        "symbol": row.symbol,
        "position_side": row.position_side,
        "amount": _s(row.amount),
        "entry_price": _s(row.entry_price),
        "break_even_price": _s(row.break_even_price),
        "mark_price": _s(row.mark_price),
        "unrealized_pnl": _s(row.unrealized_pnl),
        "liquidation_price": _s(row.liquidation_price),
        "notional": _s(row.notional),
        "leverage": None if leverage is None else int(leverage),
        "margin_type": row.margin_type,
    }


async def snapshot(view: AccountView, now_ms: int) -> dict[str, Any]:
    """The account as the page shows it, read from the exchange now.

    Waits for: three signed reads (weight :data:`SNAPSHOT_WEIGHT`; the caller pays it).
    Raises: ExchangeError from any of them.
    """
    summary = await view.account()
    rows = await view.balances()
    held = [p for p in await view.position_risk() if p.amount != 0]
    return {
        "totals": {
            "wallet_balance": _s(summary.total_wallet_balance),
            "unrealized_pnl": _s(summary.total_unrealized_pnl),
            "margin_balance": _s(summary.total_margin_balance),
            "available_balance": _s(summary.available_balance),
        },
        "balances": [
            balance_to_wire(b) for b in rows if b.wallet_balance or b.cross_wallet_balance
        ],
        "positions": [position_to_wire(p) for p in held],
        "time": now_ms,
    }


def update_message(update: acct.AccountUpdate) -> dict[str, Any]:
    """The ``/ws`` message for one ``ACCOUNT_UPDATE``: what changed, the page merges it."""
    return {
        "type": ACCOUNT_MESSAGE,
        "reason": update.reason,
        "time": update.event_time,
        "balances": [balance_to_wire(b) for b in update.balances],
        "positions": [position_to_wire(p) for p in update.positions],
    }
