"""What the HTTP layer is given by the service: one object per app, no globals.

Routes reach it through :func:`context`; tests build one around a real store (and, where they
need them, a real supervisor and simulator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio
from quart import current_app

from tradercoin.clock import WallClock
from tradercoin.config import PollPolicy, Settings
from tradercoin.exchange.protocol import Credentials, SymbolInfo
from tradercoin.http.metrics import HttpMetrics
from tradercoin.http.security import LoginThrottle, Passwords, RegistrationLimit, TokenSigner
from tradercoin.store import Store, User
from tradercoin.store.security import SecurityRecords

if TYPE_CHECKING:
    from tradercoin.actors.account import KeyCheck
    from tradercoin.actors.messages import ActorStatus
    from tradercoin.actors.prices import PriceFeed
    from tradercoin.http.cache import OrdersCache
    from tradercoin.http.ws import WsSessions

__all__ = ["HttpContext", "SupervisorView", "UserCache", "context"]


class SupervisorView(Protocol):
    """What the HTTP layer uses of the supervisor."""

    def actor(self, user_id: int) -> Any: ...

    async def credentials_changed(self, user_id: int) -> None: ...

    async def set_poll_policy(
        self, user_id: int, policy: PollPolicy, *, updated_by: int
    ) -> Any: ...

    def statuses(self) -> list[ActorStatus]: ...

    def statistics(self) -> Any: ...


class UserCache:
    """Users by id, read from the store once and kept in memory (bounded).

    Users change only by registering here (roles change through the CLI; a restart or
    :meth:`forget` picks that up).
    """

    def __init__(self, store: Store, *, max_users: int = 200_000) -> None:
        self._store = store
        self._users: dict[int, User] = {}
        self._max = max_users

    async def get(self, user_id: int) -> User | None:
        user = self._users.get(user_id)
        if user is None:
            user = await self._store.get_user(user_id)
            if user is not None:
                self.put(user)
        return user

    def peek(self, user_id: int) -> User | None:
        """The user if already in memory. Sync-coloured."""
        return self._users.get(user_id)

    def put(self, user: User) -> None:
        if len(self._users) >= self._max:
            del self._users[next(iter(self._users))]
        self._users[user.id] = user

    def forget(self, user_id: int) -> None:
        self._users.pop(user_id, None)


@dataclass(eq=False)
class HttpContext:
    """Everything the routes need, built by the service (or a test)."""

    settings: Settings
    store: Store
    clock: WallClock
    tokens: TokenSigner
    supervisor: SupervisorView | None = None
    governor: Any = None
    hub: Any = None  # the process's StreamHub (None: no stream, or one connection per user)
    symbols: Mapping[str, SymbolInfo] = field(default_factory=dict)
    provision_keys: Callable[[int], Awaitable[None]] | None = None
    check_keys: Callable[[Credentials], Awaitable[KeyCheck]] | None = None
    prices: PriceFeed | None = None
    passwords: Passwords = field(default_factory=Passwords)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    metrics: HttpMetrics = field(default_factory=HttpMetrics)
    max_ws_sessions_per_user: int = 20
    ready: Callable[[], bool] = field(default=lambda: True)
    metrics_port: int | None = None  # set once --metrics-address is bound
    users: UserCache = field(init=False)
    records: SecurityRecords = field(init=False)
    registrations: RegistrationLimit = field(init=False)
    sessions: WsSessions = field(init=False)
    orders_cache: OrdersCache = field(init=False)

    def __post_init__(self) -> None:
        from tradercoin.http.cache import OrdersCache
        from tradercoin.http.ws import WsSessions

        self.users = UserCache(self.store)
        self.records = SecurityRecords(self.store.db, self.store.clock)
        self.registrations = RegistrationLimit(
            per_address=self.settings.registrations_per_address,
            overall=self.settings.registrations_per_hour,
        )
        self.sessions = WsSessions(self)
        self.orders_cache = OrdersCache(self.store)
        self.metrics.add_parts(
            {"ws": self.sessions.statistics, "orders_cache": self.orders_cache.statistics}
        )

    async def load_security(self) -> None:
        """Load what the store remembers (revoked tokens, recent failed logins) into memory,
        after forgetting what has expired. Waits for: three store calls."""
        window_ms = int(self.throttle.window * 1000)
        await self.records.prune(window_ms)
        self.tokens.load_revoked(await self.records.revoked_tokens())
        now_ms, now = self.clock.now_ms(), trio.current_time()
        for failure in await self.records.login_failures(window_ms):
            at = now - max(0, now_ms - failure.at) / 1000
            self.throttle.failed(failure.username, failure.address, at)


def context() -> HttpContext:
    """The context of the app serving the current request or WebSocket."""
    ctx: HttpContext = current_app.extensions["tradercoin"]
    return ctx
