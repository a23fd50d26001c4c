"""The Store: the one object the rest of tradercoin uses to reach the database.

Every method hops to a worker thread (:class:`~tradercoin.store.db.Database`) and returns plain
frozen dataclasses; order changes and fills go through the :class:`WriteBatcher`. Timestamps
come from the injected :class:`~tradercoin.clock.WallClock`, read on the trio thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

import sqlalchemy as sa
import trio

from tradercoin.clock import WallClock
from tradercoin.config import PollPolicy
from tradercoin.exchange.protocol import Credentials
from tradercoin.orders import Fill, Order, OrderChange, OrderEvent, OrderFill, OrderStatus, Side
from tradercoin.store import events as event_sql
from tradercoin.store import orders as order_sql
from tradercoin.store import users as user_sql
from tradercoin.store.batcher import WriteBatcher, WriteFence, _Job
from tradercoin.store.db import Database, RunSync
from tradercoin.store.errors import CredentialsError, DuplicateUser, StoreError, UnknownUser
from tradercoin.store.files import protect_sqlite_files
from tradercoin.store.migrate import upgrade
from tradercoin.store.models import CredentialInfo, OrderPage, Role, StoreStatistics, User
from tradercoin.store.secrets import SecretBox

__all__ = ["EVENT_RETENTION_S", "MAX_PAGE_SIZE", "Store", "open_store"]

log = logging.getLogger(__name__)
MAX_PAGE_SIZE = 1000
EVENT_RETENTION_S = 7 * 24 * 3600.0


@asynccontextmanager
async def open_store(
    url: str,
    *,
    secrets: SecretBox,
    clock: WallClock,
    migrate: bool = True,
    run_sync: RunSync | None = None,
    batch_jobs: int = 512,
) -> AsyncIterator[Store]:
    """Open the database at ``url``, migrate it (unless ``migrate=False``), start the write
    batcher, and yield the :class:`Store`.

    ``run_sync`` replaces the thread hop (tests under MockClock); ``batch_jobs`` caps how many
    callers' jobs share one transaction (1 turns group commit off, for comparison).

    Resource handling: owns the engine and the batcher's task. On exit the batcher commits
    every queued write, then the engine is disposed (even when cancelled).

    Raises:
        StoreError: a bad URL, an unreachable database or a failed migration (one line).
    """
    protect_sqlite_files(url)
    db = Database(url, run_sync=run_sync)
    try:
        await db.check()
        if migrate:
            await db.write(upgrade)
        store = Store(db, secrets, clock, batch_jobs=batch_jobs)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.batcher.run)
            try:
                yield store
            finally:
                store.batcher.close()
    except BaseExceptionGroup as group:
        raise _only(group) from None
    finally:
        with trio.CancelScope(shield=True):
            await db.dispose()


def _only(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The body's one exception, unwrapped from the batcher nursery's group (the batcher never
    raises, so a group holds only what the body raised)."""
    if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
        return group.exceptions[0]
    return group


class Store:
    """Repositories over one :class:`Database`; build it with :func:`open_store`."""

    def __init__(
        self, db: Database, secrets: SecretBox, clock: WallClock, *, batch_jobs: int = 512
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.clock = clock
        self.batcher = WriteBatcher(db, clock, max_jobs=batch_jobs)

    @property
    def notify_events(self) -> bool:
        """Whether each commit of order events announces them to the other instances
        (``pg_notify('tradercoin_events', '<user_id>:<seq>')``; a cluster's relays listen)."""
        return self.batcher.notify

    @notify_events.setter
    def notify_events(self, on: bool) -> None:
        if on and self.dialect != "postgresql":
            raise ValueError("only PostgreSQL announces events (LISTEN/NOTIFY)")
        self.batcher.notify = on

    @property
    def ownership_check(self) -> WriteFence | None:
        """The write fence of order writes (a cluster's ownership check; None: every write
        goes through). See :class:`~tradercoin.store.batcher.WriteBatcher`."""
        return self.batcher.fence

    @ownership_check.setter
    def ownership_check(self, fence: WriteFence | None) -> None:
        self.batcher.fence = fence

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.db.dialect

    # --- users -------------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str, role: Role = Role.USER) -> User:
        """Raises: DuplicateUser when the name is taken."""
        try:
            return await self.db.write(
                user_sql.insert_user, username, password_hash, role, self.clock.now_ms()
            )
        except sa.exc.IntegrityError:
            raise DuplicateUser(f"user {username!r} already exists; pick another name") from None

    async def get_user(self, user_id: int) -> User | None:
        return await self.db.read(user_sql.get_user, user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        return await self.db.read(user_sql.get_user_by_name, username)

    async def list_users(self) -> list[User]:
        return await self.db.read(user_sql.list_users)

    # --- credentials -------------------------------------------------------------------------

    async def set_credentials(
        self, user_id: int, creds: Credentials, *, testnet: bool = False
    ) -> None:
        """Encrypt and store (replacing any earlier keys). Raises: UnknownUser."""
        kid, blob = self.secrets.seal_credentials(user_id, creds)
        last4 = creds.api_key[-4:]
        now = self.clock.now_ms()
        try:
            await self.db.write(
                user_sql.upsert_credentials, user_id, kid, blob, last4, testnet, now
            )
        except sa.exc.IntegrityError:
            raise UnknownUser(f"user {user_id} does not exist; create it first") from None

    async def get_credentials(self, user_id: int) -> Credentials | None:
        """The decrypted keys, or ``None``. Raises: CredentialsError (this user's only)."""
        sealed = await self.db.read(user_sql.get_sealed, user_id)
        if sealed is None:
            return None
        return self.secrets.open_credentials(user_id, sealed.key_id, sealed.ciphertext)

    async def credential_info(self, user_id: int) -> CredentialInfo | None:
        return await self.db.read(user_sql.credential_info, user_id)

    async def delete_credentials(self, user_id: int) -> bool:
        return await self.db.write(user_sql.delete_credentials, user_id)

    async def users_with_credentials(self) -> list[int]:
        return await self.db.read(user_sql.users_with_credentials)

    async def rotate_credentials(self) -> int:
        """Re-encrypt every row not under the current master key; returns how many were.

        Rows that cannot be decrypted are logged (by user id) and left as they are. A row
        changed meanwhile (keys set again) is not overwritten.
        """
        sealed = await self.db.read(user_sql.all_sealed)
        rows = []
        for row in sealed:
            if row.key_id == self.secrets.current_kid:
                continue
            try:
                plain = self.secrets.decrypt(row.user_id, row.key_id, row.ciphertext)
            except CredentialsError as error:
                log.warning("rotation skipped: %s", error)
                continue
            kid, blob = self.secrets.encrypt(row.user_id, plain)
            rows.append((row, kid, blob))
        if not rows:
            return 0
        return await self.db.write(user_sql.replace_sealed, rows, self.clock.now_ms())

    # --- poll policies -----------------------------------------------------------------------

    async def get_poll_policy(self, user_id: int) -> PollPolicy | None:
        return await self.db.read(user_sql.get_poll_policy, user_id)

    async def set_poll_policy(
        self, user_id: int, policy: PollPolicy, *, updated_by: int | None
    ) -> None:
        """Raises: UnknownUser when ``user_id`` or ``updated_by`` does not exist."""
        now = self.clock.now_ms()
        try:
            await self.db.write(user_sql.set_poll_policy, user_id, policy, updated_by, now)
        except sa.exc.IntegrityError:
            raise UnknownUser(f"user {user_id} or {updated_by} does not exist") from None

    # --- orders ------------------------------------------------------------------------------

    async def list_orders(
        self,
        user_id: int,
        *,
        status: OrderStatus | None = None,
        symbol: str | None = None,
        q: str | None = None,
        page: int = 1,
        page_size: int = 20,
        side: Side | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> OrderPage:
        """A page of the user's orders, newest first; ``total`` counts all matches.

        ``q`` matches symbol, client order id or note (case-insensitive substring) and the
        exchange order id; ``since``/``until`` bound the creation time (epoch ms, ``since``
        included, ``until`` not). Raises: ValueError for page < 1 or page_size outside 1..1000.
        """
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page must be >= 1 and page_size 1..{MAX_PAGE_SIZE}")
        items, total = await self.db.read(
            functools.partial(order_sql.page_orders, side=side, since=since, until=until),
            user_id,
            status,
            symbol,
            q,
            page,
            page_size,
        )
        return OrderPage(items=items, total=total, page=page, page_size=page_size)

    async def get_order(self, user_id: int, order_id: int) -> Order | None:
        """The order if it is this user's, else ``None``."""
        return await self.db.read(order_sql.get_order, user_id, order_id)

    async def find_order_by_client_id(self, user_id: int, client_order_id: str) -> Order | None:
        return await self.db.read(order_sql.find_by_client_id, user_id, client_order_id)

    async def users_with_pending_orders(self) -> set[int]:
        """Users who have an order in a non-terminal status (one query)."""
        return await self.db.read(order_sql.users_with_pending_orders)

    async def pending_orders(self, user_id: int) -> list[Order]:
        """The user's orders in a non-terminal status, oldest first."""
        return await self.db.read(order_sql.pending_orders, user_id)

    async def apply(
        self, changes: Sequence[OrderChange], fills: Sequence[OrderFill] = ()
    ) -> list[OrderEvent]:
        """Store ``changes`` and their events, and ``fills`` (each once), group-committed
        with other callers' writes.

        Waits for: the commit of the batch holding them. Returns one event per change, in
        order, each with the user's next seq and the stored order (with its id).

        Raises:
            OrderConflict: this call's changes cannot be stored (nothing of them is).
            StoreClosed, StoreError: the store is closed or the database failed.
            NotOwner: the write fence (:attr:`ownership_check`) refused this user's write.
        """
        if not changes:
            await self.record_fills(fills)
            return []
        result = await self.batcher.submit(_Job(changes=tuple(changes), fills=tuple(fills)))
        assert isinstance(result, list)
        return result

    async def record_fills(self, fills: Sequence[OrderFill]) -> int:
        """Store fills not seen before (by order and trade id); returns how many were new."""
        if not fills:
            return 0
        result = await self.batcher.submit(_Job(fills=tuple(fills)))
        assert isinstance(result, int)
        return result

    async def order_fills(self, user_id: int, order_id: int) -> list[Fill]:
        """The fills of the user's order ``order_id``, oldest first (none for another
        user's order)."""
        return await self.db.read(order_sql.order_fills, user_id, order_id)

    async def filled_by_order(
        self, user_id: int, order_ids: Sequence[int]
    ) -> dict[int, dict[int, Decimal]]:
        """The stored trades of each of the user's ``order_ids``: ``{order: {trade: qty}}``."""
        return await self.db.read(order_sql.filled_by_order, user_id, list(order_ids))

    # --- events ------------------------------------------------------------------------------

    async def events_since(self, user_id: int, seq: int, limit: int = 1000) -> list[OrderEvent]:
        """The user's events with seq > ``seq``, oldest first, at most ``limit``.

        After pruning the first one may be later than ``seq + 1``: the caller resyncs.
        """
        return await self.db.read(event_sql.events_since, user_id, seq, limit)

    async def events_since_many(
        self, since: dict[int, int], limit: int = 1000
    ) -> dict[int, list[OrderEvent]]:
        """For each user of ``since``, their events with seq > ``since[user]``, oldest first,
        at most ``limit`` each, in one query (PostgreSQL only: a cluster's relay)."""
        return await self.db.read(event_sql.events_since_many, since, limit)

    async def latest_seq(self, user_id: int) -> int:
        """The user's newest seq (kept after pruning); 0 when there was none."""
        return await self.db.read(event_sql.latest_seq, user_id)

    async def prune_events(self, older_than_ms: int) -> int:
        """Delete events created before ``older_than_ms`` (epoch ms); returns how many."""
        return await self.db.write(event_sql.prune_events, older_than_ms)

    async def run_retention(
        self,
        *,
        keep: float = EVENT_RETENTION_S,
        every: float = 3600.0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The retention rule: every ``every`` seconds (trio's clock), delete events older
        than ``keep`` seconds (by the WallClock). A session resuming from before that gets a
        resync.

        Returns: runs until cancelled. A failed prune is logged and tried at the next round.
        """
        task_status.started()
        while True:
            cutoff = self.clock.now_ms() - int(keep * 1000)
            try:
                pruned = await self.prune_events(cutoff)
            except StoreError as error:
                log.warning("event retention: %s", error)
            else:
                log.debug("event retention: pruned %d events before %d", pruned, cutoff)
            await trio.sleep(every)

    def statistics(self) -> StoreStatistics:
        b = self.batcher
        return StoreStatistics(
            batches=b.batches,
            changes_committed=b.changes_committed,
            jobs_committed=b.jobs_committed,
            jobs_failed=b.jobs_failed,
            mean_batch_size=b.changes_committed / b.batches if b.batches else 0.0,
            max_batch_size=b.max_batch_size,
            retries=self.db.retries,
            fallbacks=b.fallbacks,
            jobs_waiting=b.jobs_waiting,
        )
