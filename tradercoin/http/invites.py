"""Single-use invitation codes for ``--registration invite``.

A code is 24 random URL-safe characters, shown once (``tradercoin users invite``); only its
SHA-256 is stored, and registering with it marks it used in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets

from tradercoin.store import Store
from tradercoin.store.security import SecurityRecords

__all__ = ["hash_code", "new_invite"]


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


async def new_invite(store: Store, lifetime_ms: int) -> tuple[str, int]:
    """A new code and its expiry (epoch ms)."""
    code = secrets.token_urlsafe(18)
    expires = await SecurityRecords(store.db, store.clock).create_invite(
        hash_code(code), lifetime_ms
    )
    return code, expires
