"""The pieces of auth that hold no request: session tokens, password hashing, login throttling.

Tokens are stateless and signed (HMAC-SHA256 with a key derived from the master key), so they
survive a restart; logout revokes a token in memory until it would have expired anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections import deque
from dataclasses import dataclass

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tradercoin.clock import WallClock

__all__ = ["LoginThrottle", "Passwords", "SessionToken", "TokenSigner"]

_PAYLOAD = struct.Struct(">QQ8s")
TOKEN_LIFETIME_MS = 7 * 24 * 3600 * 1000
MAX_VERIFIED = 100_000


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A verified token: who, until when (epoch ms), and its nonce (for revocation)."""

    user_id: int
    expires: int
    nonce: bytes

    def __repr__(self) -> str:
        return f"SessionToken(user_id={self.user_id}, expires={self.expires})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies session tokens ``v1.<payload>.<mac>``.

    Sync-coloured: nothing blocks. Revoked nonces are kept until their token expires.
    """

    def __init__(self, key: bytes, *, clock: WallClock, lifetime_ms: int = TOKEN_LIFETIME_MS):
        self._key = hashlib.sha256(b"tradercoin session tokens v1\0" + key).digest()
        self._clock = clock
        self.lifetime_ms = lifetime_ms
        self._revoked: dict[bytes, int] = {}
        self._verified: dict[str, SessionToken] = {}

    def __repr__(self) -> str:
        return "TokenSigner(...)"

    def issue(self, user_id: int) -> str:
        """A fresh token for ``user_id``."""
        expires = self._clock.now_ms() + self.lifetime_ms
        payload = _PAYLOAD.pack(user_id, expires, secrets.token_bytes(8))
        return f"v1.{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> SessionToken | None:
        """The token's content, or ``None`` when it is malformed, forged, expired or revoked.

        Tokens that verified are remembered (bounded), so a repeat costs a dict lookup.
        """
        known = self._verified.get(token)
        if known is not None:
            if known.expires > self._clock.now_ms() and known.nonce not in self._revoked:
                return known
            del self._verified[token]
            return None
        session = self._verify(token)
        if session is not None:
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[token] = session
        return session

    def _verify(self, token: str) -> SessionToken | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1" or len(token) > 200:
            return None
        try:
            payload, mac = _unb64(parts[1]), _unb64(parts[2])
        except ValueError:
            return None
        if len(payload) != _PAYLOAD.size or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        user_id, expires, nonce = _PAYLOAD.unpack(payload)
        if expires <= self._clock.now_ms() or nonce in self._revoked:
            return None
        return SessionToken(user_id, expires, nonce)

    def revoke(self, token: SessionToken) -> None:
        """Refuse ``token`` from now on (until it expires; in this process)."""
        now = self._clock.now_ms()
        if len(self._revoked) > 10_000:
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        self._revoked[token.nonce] = token.expires

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def statistics(self) -> dict[str, int]:
        return {"revoked": len(self._revoked), "verified_cached": len(self._verified)}


class Passwords:
    """argon2id hashing in worker threads (it is slow on purpose), at most two at a time."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._limiter = trio.CapacityLimiter(2)
        self._dummy = self._hasher.hash(secrets.token_hex(8))

    @classmethod
    def fast_for_tests(cls) -> Passwords:
        """Cheap parameters: for tests and benchmarks only."""
        return cls(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash, spends the same time and says no."""
        return await trio.to_thread.run_sync(
            self._verify_sync, password_hash, password, limiter=self._limiter
        )

    def _verify_sync(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None


class LoginThrottle:
    """Counts failed logins per account and per client address in a sliding window on
    trio's clock; past the limit, further attempts wait until the oldest failure ages out.

    Memory is bounded: each key keeps at most its limit of timestamps, and at most
    ``max_keys`` keys are tracked (the oldest are forgotten first).
    """

    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 20,
        window: float = 300.0,
        max_keys: int = 50_000,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self.refused = 0

    def wait_time(self, username: str, address: str) -> float:
        """Seconds until a login for this account from this address may be tried (0: now)."""
        return max(
            self._wait(f"u:{username.lower()}", self.per_account),
            self._wait(f"a:{address}", self.per_address),
        )

    def failed(self, username: str, address: str) -> None:
        self._add(f"u:{username.lower()}", self.per_account)
        self._add(f"a:{address}", self.per_address)

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"u:{username.lower()}", None)

    def _wait(self, key: str, limit: int) -> float:
        times = self._failures.get(key)
        if times is None or len(times) < limit:
            return 0.0
        return max(0.0, times[0] + self.window - trio.current_time())

    def _add(self, key: str, limit: int) -> None:
        times = self._failures.pop(key, None) or deque(maxlen=limit)
        times.append(trio.current_time())
        self._failures[key] = times  # re-inserted: dict order is recency
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def statistics(self) -> dict[str, int]:
        return {"tracked_keys": len(self._failures), "refused": self.refused}
