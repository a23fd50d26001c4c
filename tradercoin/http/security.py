"""The pieces of auth that hold no request: session tokens, password hashing, login throttling
and registration limits.

Tokens are signed (HMAC-SHA256 with a key derived from the master key), so they survive a
restart. Logout revokes a token durably: the route writes its nonce to the store
(``revoked_tokens``) and then to the signer's in-memory set, which the service loads from the
store at start; checking a token never waits for the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tradercoin.clock import WallClock

__all__ = [
    "Busy",
    "LoginThrottle",
    "Passwords",
    "RegistrationLimit",
    "SessionToken",
    "SlidingCounts",
    "TokenSigner",
    "password_hasher",
]

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
        """Refuse ``token`` from now on, in this process (the caller stores it first)."""
        self.load_revoked({token.nonce: token.expires})

    def load_revoked(self, revoked: dict[bytes, int]) -> None:
        """Add revoked nonces (with their expiry, epoch ms), e.g. the store's at start."""
        now = self._clock.now_ms()
        if len(self._revoked) > 10_000:
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        self._revoked.update(revoked)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def statistics(self) -> dict[str, int]:
        return {"revoked": len(self._revoked), "verified_cached": len(self._verified)}


class Busy(Exception):
    """Too much work is already queued: answer 503 at once instead of queueing more."""


def password_hasher() -> PasswordHasher:
    """argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane): about 7x
    less CPU per hash than argon2-cffi's defaults (64 MiB, 3 passes, 4 lanes), so under a
    flood of guesses the two hashing slots serve 7x more people. Hashes made with other
    parameters still verify (they carry their own)."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class Passwords:
    """argon2id hashing in worker threads (it is slow on purpose), at most two at a time.

    The queue is fair to people logging in from a clean address: new accounts' hashes
    (:meth:`hash`) and logins from addresses that failed recently (``verify(suspect=True)``)
    each take at most one of the two slots, so neither a flood of registrations nor one of
    guesses can make a clean login wait for more than one hash ahead of it; at most
    :attr:`max_waiting` of each class wait at once (more raise :class:`Busy`).
    """

    def __init__(self, hasher: PasswordHasher | None = None, *, max_waiting: int = 32) -> None:
        self._hasher = hasher or password_hasher()
        self._limiter = trio.CapacityLimiter(2)
        self._new_accounts = trio.CapacityLimiter(1)
        self._suspects = trio.CapacityLimiter(1)
        self.max_waiting = max_waiting
        self._dummy = self._hasher.hash(secrets.token_hex(8))

    @classmethod
    def fast_for_tests(cls) -> Passwords:
        """Cheap parameters: for tests and benchmarks only."""
        return cls(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))

    async def hash(self, password: str) -> str:
        """Hash a new password. Raises: Busy when :attr:`max_waiting` hashes already wait."""
        async with self._class_slot(self._new_accounts):
            return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(
        self, password_hash: str | None, password: str, *, suspect: bool = False
    ) -> bool:
        """Whether ``password`` matches; with no hash, spends the same time and says no.

        Raises: Busy when ``suspect`` and :attr:`max_waiting` suspect logins already wait.
        """
        if not suspect:
            return await trio.to_thread.run_sync(
                self._verify_sync, password_hash, password, limiter=self._limiter
            )
        async with self._class_slot(self._suspects):
            return await trio.to_thread.run_sync(
                self._verify_sync, password_hash, password, limiter=self._limiter
            )

    def _class_slot(self, limiter: trio.CapacityLimiter) -> trio.CapacityLimiter:
        if limiter.statistics().tasks_waiting >= self.max_waiting:
            raise Busy("too many requests of this kind are waiting")
        return limiter

    def _verify_sync(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None


class SlidingCounts:
    """Event times per key in a sliding window on a monotonic clock (trio's by default).

    Memory is bounded: each key keeps at most ``keep`` times and at most ``max_keys`` keys are
    tracked (the least recently touched are forgotten first). Sync-coloured.
    """

    def __init__(
        self,
        window: float,
        keep: int,
        *,
        max_keys: int = 50_000,
        now: Callable[[], float] = trio.current_time,
    ) -> None:
        self.window = window
        self.keep = keep
        self.max_keys = max_keys
        self.now = now
        self._times: dict[Hashable, deque[float]] = {}

    def add(self, key: Hashable, at: float | None = None) -> None:
        times = self._times.pop(key, None) or deque(maxlen=self.keep)
        times.append(self.now() if at is None else at)
        self._times[key] = times  # re-inserted: dict order is recency
        while len(self._times) > self.max_keys:
            del self._times[next(iter(self._times))]

    def count(self, key: Hashable) -> int:
        """Events of ``key`` inside the window (at most ``keep``)."""
        times = self._times.get(key)
        if not times:
            return 0
        oldest = self.now() - self.window
        return sum(1 for t in times if t > oldest)

    def wait(self, key: Hashable, limit: int) -> float:
        """Seconds until ``key`` has fewer than ``limit`` events in the window (0: now)."""
        times = self._times.get(key)
        if times is None or len(times) < limit:
            return 0.0
        return max(0.0, times[-limit] + self.window - self.now())

    def clear(self, key: Hashable) -> None:
        self._times.pop(key, None)

    def __len__(self) -> int:
        return len(self._times)


class LoginThrottle:
    """Failed logins counted per (account, address), per address, per account and overall.

    The rules, in a sliding window (15 min by default):

    - an address that failed ``per_account`` times on one account waits before trying it again;
    - an address that failed ``per_address`` times (any accounts) waits before any login;
    - an account with ``account_alarm`` failures (from anywhere) is under attack: addresses
      that have failed in the window wait before trying it; clean addresses still may;
    - the service is being sprayed when ``spray_alarm`` failures happened overall: every
      address that has failed in the window waits.

    An address that has not failed is never refused, so nobody can lock a person out of
    their account from elsewhere. Sync-coloured; the route persists failures in the store and
    the service replays them at start (:meth:`failed` with ``at``).
    """

    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 10,
        account_alarm: int = 10,
        spray_alarm: int = 50,
        window: float = 900.0,
        max_keys: int = 50_000,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.account_alarm = account_alarm
        self.spray_alarm = spray_alarm
        keep = max(per_account, per_address, account_alarm, spray_alarm)
        self._counts = SlidingCounts(window, keep, max_keys=max_keys)
        self.refused = 0

    @property
    def window(self) -> float:
        return self._counts.window

    def wait_time(self, username: str, address: str) -> float:
        """Seconds until a login for this account from this address may be tried (0: now)."""
        c = self._counts
        waits = [
            c.wait(("pair", username, address), self.per_account),
            c.wait(("address", address), self.per_address),
        ]
        if c.count(("address", address)):  # this address has failed: the alarms apply to it
            alarms = (("account", username), self.account_alarm), (("all",), self.spray_alarm)
            for key, limit in alarms:
                if c.count(key) >= limit:
                    waits.append(c.wait(("address", address), 1))
        return max(waits)

    def suspect(self, address: str) -> bool:
        """Whether ``address`` failed a login inside the window."""
        return self._counts.count(("address", address)) > 0

    def failed(self, username: str, address: str, at: float | None = None) -> None:
        """Count a failure (now, or at trio time ``at`` when replaying stored ones)."""
        for key in (("pair", username, address), ("address", address), ("account", username)):
            self._counts.add(key, at)
        self._counts.add(("all",), at)

    def succeeded(self, username: str, address: str) -> None:
        self._counts.clear(("pair", username, address))

    def statistics(self) -> dict[str, int]:
        return {"tracked_keys": len(self._counts), "refused": self.refused}


class RegistrationLimit:
    """New accounts per address and overall, each in a sliding hour. Sync-coloured."""

    def __init__(self, *, per_address: int = 10, overall: int = 600, window: float = 3600.0):
        self.per_address = per_address
        self.overall = overall
        self._counts = SlidingCounts(window, max(per_address, overall))
        self.refused = 0

    def wait_time(self, address: str) -> float:
        """Seconds until ``address`` may create an account (0: now)."""
        return max(
            self._counts.wait(("address", address), self.per_address),
            self._counts.wait(("all",), self.overall),
        )

    def created(self, address: str) -> None:
        self._counts.add(("address", address))
        self._counts.add(("all",))

    def statistics(self) -> dict[str, int]:
        return {"refused": self.refused}
