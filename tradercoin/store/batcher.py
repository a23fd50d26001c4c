"""The write batcher: group commit of order changes and fills from many callers.

Callers put a job on a bounded channel and wait for its own commit. :meth:`WriteBatcher.run`
takes every job waiting (up to ``max_jobs``), writes them all in ONE transaction in a worker
thread, and wakes each caller with its own result. While a transaction runs, new jobs queue up,
so the batch grows with the load. A lock is retried by :class:`~tradercoin.store.db.Database`;
if a batch fails otherwise, each job is retried in its own transaction, so a bad change fails
only its caller. With :attr:`WriteBatcher.notify` (a cluster on PostgreSQL) each transaction
also announces its events (:func:`~tradercoin.store.events.notify_events`).

A write fence (:attr:`WriteBatcher.fence`, set in a cluster by
:class:`tradercoin.cluster.ownership.Ownership`) is asked inside each transaction, before
anything is written, which of its users this instance may no longer write for: their jobs fail
with the fence's error and write nothing, while the other users' jobs of the batch commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
import trio

from tradercoin.clock import WallClock
from tradercoin.metrics import observe_batch_commit
from tradercoin.orders import OrderChange, OrderEvent, OrderFill
from tradercoin.store import events as event_sql
from tradercoin.store import orders as order_sql
from tradercoin.store.db import Database, one_line
from tradercoin.store.errors import OrderConflict, StoreClosed, StoreError

__all__ = ["WriteBatcher", "WriteFence"]

log = logging.getLogger(__name__)

#: ``fence(conn, user_ids)`` inside the write transaction (user ids sorted): the users whose
#: writes must be refused now, each with the error its job fails with
WriteFence = Callable[[sa.Connection, list[int]], dict[int, Exception]]


@dataclass(eq=False)
class _Job:
    """One caller's writes: order changes (answered with their events) and fills (a job of
    fills alone is answered with how many were new)."""

    changes: Sequence[OrderChange] = ()
    fills: Sequence[OrderFill] = ()
    done: trio.Event = field(default_factory=trio.Event)
    result: list[OrderEvent] | int | None = None
    error: Exception | None = None

    @property
    def size(self) -> int:
        return len(self.changes) + len(self.fills)

    def users(self) -> set[int]:
        return {c.user_id for c in self.changes} | {f.user_id for f in self.fills}

    def finish(self, result: list[OrderEvent] | int | None, error: Exception | None) -> None:
        self.result, self.error = result, error
        self.done.set()


_Result = list[OrderEvent] | int | Exception


def _write_jobs(
    conn: sa.Connection,
    jobs: Sequence[_Job],
    now: int,
    notify: bool = False,
    fence: WriteFence | None = None,
) -> list[_Result]:
    """Thread body: every job's writes, then the events, in the caller's transaction. A job
    the fence refuses writes nothing; its result is the fence's error."""
    changes: list[OrderChange] = []
    results: list[_Result] = []
    slices: list[tuple[int, int, int]] = []
    refused = fence(conn, sorted(set().union(*(job.users() for job in jobs)))) if fence else {}
    for job in jobs:
        errors = [refused[user] for user in job.users() if user in refused]
        if errors:
            results.append(errors[0])
            continue
        new_fills = order_sql.insert_fills(conn, job.fills) if job.fills else 0
        if job.changes:
            slices.append((len(results), len(changes), len(changes) + len(job.changes)))
            changes.extend(job.changes)
            results.append([])
        else:
            results.append(new_fills)
    stored = order_sql.write_changes(conn, changes) if changes else []
    events = event_sql.append_events(conn, stored, now) if stored else []
    if notify and events:
        event_sql.notify_events(conn, events)
    for index, first, last in slices:
        results[index] = events[first:last]
    return results


def _database_failed(error: Exception) -> bool:
    """The database itself failed (not one change): retrying job by job would not help."""
    return isinstance(error, StoreError) and not isinstance(error, OrderConflict)


def _caller_error(error: Exception) -> Exception:
    """What the caller of a failed job sees: a one-line store error."""
    if isinstance(error, StoreError):
        return type(error)(*error.args)  # each caller raises its own instance
    if isinstance(error, sa.exc.IntegrityError):
        return OrderConflict(f"change rejected by the database: {one_line(error)}")
    return StoreError(f"change could not be stored: {type(error).__name__}: {error}")


class WriteBatcher:
    """Group commit. ``run`` is the only task that writes orders, fills and events.

    Resource handling: owns the job channel; :meth:`close` lets ``run`` drain what is queued
    and return.
    """

    def __init__(
        self, db: Database, clock: WallClock, *, max_jobs: int = 512, queue_size: int = 1024
    ) -> None:
        self._db = db
        self._clock = clock
        self._max_jobs = max_jobs
        self.notify = False  # announce each commit's events (PostgreSQL: pg_notify)
        self.fence: WriteFence | None = None
        self._send, self._receive = trio.open_memory_channel[_Job](queue_size)
        self.batches = 0
        self.changes_committed = 0
        self.jobs_committed = 0
        self.jobs_failed = 0
        self.max_batch_size = 0
        self.fallbacks = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until :meth:`close` is called and the queue is drained.

        Returns: after close, once every queued job is finished. Never raises for a job's
        failure (that goes to the job's caller).
        """
        task_status.started()
        try:
            async for first in self._receive:
                jobs = [first]
                while len(jobs) < self._max_jobs:
                    try:
                        jobs.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._commit_guarded(jobs)
        finally:
            self._abandon_queued()

    def _abandon_queued(self) -> None:
        """After a cancel: wake every caller still queued with StoreClosed, and refuse more."""
        while True:
            try:
                job = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            job.finish(None, StoreClosed("the store closed before this write committed"))
        self._receive.close()

    def close(self) -> None:
        """No new jobs; ``run`` finishes the queued ones and returns. Idempotent."""
        self._send.close()

    async def submit(self, job: _Job) -> list[OrderEvent] | int | None:
        """Queue ``job`` and wait for its commit.

        Waits for: room in the queue, then the commit of the batch holding the job. If the
        caller is cancelled after queueing, the job is still committed.

        Raises:
            StoreClosed: the store is shut down.
            OrderConflict, StoreError: this job's own failure.
        """
        try:
            await self._send.send(job)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("the store is closed; open it again with open_store") from None
        await job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    async def _commit_guarded(self, jobs: list[_Job]) -> None:
        try:
            await self._commit(jobs)
        finally:
            for job in jobs:
                if not job.done.is_set():
                    job.finish(None, StoreClosed("the store closed before this write committed"))

    async def _commit(self, jobs: list[_Job]) -> None:
        now = self._clock.now_ms()
        started = trio.current_time()
        try:
            results = await self._db.write(_write_jobs, jobs, now, self.notify, self.fence)
            observe_batch_commit(trio.current_time() - started)
        except Exception as error:
            if len(jobs) == 1 or _database_failed(error):
                for job in jobs:
                    self._fail(job, error)
                return
            log.warning(
                "batch of %d jobs failed (%s); retrying one by one", len(jobs), one_line(error)
            )
            self.fallbacks += 1
            for job in jobs:
                await self._commit([job])
            return
        self._record(
            [
                job
                for job, result in zip(jobs, results, strict=True)
                if isinstance(result, list | int)
            ]
        )
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, Exception):
                job.finish(None, result)
            else:
                job.finish(result, None)

    def _fail(self, job: _Job, error: Exception) -> None:
        self.jobs_failed += 1
        job.finish(None, _caller_error(error))

    def _record(self, jobs: list[_Job]) -> None:
        size = sum(job.size for job in jobs)
        self.batches += 1
        self.jobs_committed += len(jobs)
        self.changes_committed += size
        self.max_batch_size = max(self.max_batch_size, size)

    @property
    def jobs_waiting(self) -> int:
        return self._receive.statistics().current_buffer_used
