"""Group commit: batches that queue for the same write lock share one transaction.

A commit's cost is mostly its fsync (~6 ms on the bench machine, a quarter of a 500-event
batch's time on SQLite), and a batch that waits for the lock has nothing else to do. So
whoever takes the lock writes every batch queued by then, each inside its own savepoint, and
commits once. Each batch still stands or falls alone: one that fails rolls back to its
savepoint and gets its own error, and nobody is answered before the commit that holds their
rows has returned (a failed commit fails every batch in it).

Engine-free: the engine gives the lock, how to open its transaction and how to make a
savepoint. SQLite has one group for the database (one writer at a time anyway); PostgreSQL one
per tenant (`GroupCommitByKey`), whose writers its advisory lock serialises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from trailkeeper.errors import Unavailable

Conn = TypeVar("Conn")
Result = TypeVar("Result")

MAX_GROUP = 16  # batches per transaction: bounds how long the first of them waits


class _Job(Generic[Conn, Result]):
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Conn], Result]) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: Result | None = None
        self.error: BaseException | None = None

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set when error is None


class GroupCommit(Generic[Conn]):
    """Runs `work(conn)` calls in shared transactions (see the module docstring).

    `lock` serialises every writer of the database (others may take it directly for single
    writes); `transaction()` opens a transaction on the write connection and commits it on
    exit, or rolls it back on an exception; `savepoint(conn)` does the same for one batch.
    """

    def __init__(
        self,
        lock: threading.Lock,
        transaction: Callable[[], AbstractContextManager[Conn]],
        savepoint: Callable[[Conn], AbstractContextManager[object]],
        timeout: float,
    ) -> None:
        self._lock, self._transaction, self._savepoint = lock, transaction, savepoint
        self._timeout = timeout
        self._queue: list[_Job[Conn, object]] = []
        self._queue_lock = threading.Lock()

    def run(self, work: Callable[[Conn], Result]) -> Result:
        """`work`'s result once the transaction holding its writes has committed."""
        job: _Job[Conn, Result] = _Job(work)
        with self._queue_lock:
            self._queue.append(job)  # type: ignore[arg-type]  # results are only passed on
        deadline = time.monotonic() + self._timeout
        while not job.done.is_set():
            if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                self._give_up(job)
                break
            try:
                if not job.done.is_set():
                    self._write_group()
            finally:
                self._lock.release()
        return job.outcome()

    def waiting(self) -> int:
        """Batches queued for the next transaction (for metrics)."""
        with self._queue_lock:
            return len(self._queue)

    def _give_up(self, job: _Job[Conn, Result]) -> None:
        """Timed out waiting for the lock: withdraw the job, unless a writer already took it,
        in which case it is answered as soon as that writer's commit returns."""
        with self._queue_lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)  # type: ignore[arg-type]
        if queued:
            job.error = Unavailable("database is busy: timed out waiting for the write lock")
            job.done.set()
        else:
            job.done.wait()

    def _write_group(self) -> None:
        with self._queue_lock:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            with self._transaction() as conn:
                if len(group) == 1:  # alone, its transaction does what a savepoint would
                    group[0].result = group[0].work(conn)
                else:
                    self._write_each(conn, group)
        except BaseException as exc:  # the transaction failed: nothing in it was stored
            for job in group:
                job.result, job.error = None, job.error or exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for job in group:
                job.done.set()

    def _write_each(self, conn: Conn, group: list[_Job[Conn, object]]) -> None:
        for job in group:
            try:
                with self._savepoint(conn):
                    job.result = job.work(conn)
            except Exception as exc:  # noqa: BLE001 - raised again in the batch's own thread
                job.error = exc  # this batch's own failure: its savepoint is undone


Key = TypeVar("Key", bound=Hashable)


class _Lane(Generic[Conn]):
    __slots__ = ("group", "users")

    def __init__(self, group: GroupCommit[Conn]) -> None:
        self.group, self.users = group, 0


class GroupCommitByKey(Generic[Key, Conn]):
    """One `GroupCommit` per key (PostgreSQL: per tenant, whose writers are serialised
    anyway), made on first use and dropped when no batch is using it."""

    def __init__(self, make: Callable[[Key], GroupCommit[Conn]]) -> None:
        self._make = make
        self._lanes: dict[Key, _Lane[Conn]] = {}
        self._lanes_lock = threading.Lock()

    def run(self, key: Key, work: Callable[[Conn], Result]) -> Result:
        with self._lanes_lock:
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(self._make(key))
            lane.users += 1
        try:
            return lane.group.run(work)
        finally:
            with self._lanes_lock:
                lane.users -= 1
                if lane.users == 0:
                    del self._lanes[key]

    def __len__(self) -> int:
        """Keys in use now (for tests: an idle store keeps none)."""
        with self._lanes_lock:
            return len(self._lanes)
