"""The security log: one line per security event on the ``tradercoin.security`` logger.

Each line reads on its own in the text format (``login_failed: user 'alice' from 127.0.0.1``)
and carries the same facts as structured fields for the JSON format: ``event``, ``address``,
``user_id`` and ``username`` when known, plus the event's own fields. Never a secret: no
password, token, key or invitation code is ever passed here.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["security_event"]

log = logging.getLogger("tradercoin.security")

_WARNINGS = frozenset(
    {
        "login_failed",
        "login_throttled",
        "registration_refused",
        "csrf_refused",
        "origin_refused",
        "host_refused",
        "metrics_refused",
        "ws_refused",
        "forbidden",
    }
)


def security_event(
    event: str,
    *,
    address: str | None = None,
    user_id: int | None = None,
    username: str | None = None,
    **fields: Any,
) -> None:
    """Log ``event`` (warnings for refusals, info for the rest) with its structured fields."""
    who = []
    if username is not None:
        who.append(f"user {username!r}")
    if user_id is not None:
        who.append(f"id {user_id}")
    text = event + ": " + (" ".join(who) or "anonymous")
    if address is not None:
        text += f" from {address}"
    if fields:
        text += " (" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"
    extra = {"event": event, "address": address, "user_id": user_id, "username": username}
    extra.update(fields)
    level = logging.WARNING if event in _WARNINGS else logging.INFO
    log.log(level, "%s", text, extra={k: v for k, v in extra.items() if v is not None})
