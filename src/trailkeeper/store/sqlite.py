"""SQLite engine: one writer, many readers, WAL.

Writes go through a single connection under a lock with `BEGIN IMMEDIATE`, so a batch takes the
database write lock up front and either commits whole or not at all (batches that queue for the
lock share a transaction, each in its own savepoint: group_commit.py); reads use a pool of
read-only connections that WAL lets run beside the writer. (Pattern from datasette's
`database.py`.) With `synchronous=FULL`, a commit is on disk before the API answers.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, count
from pathlib import Path
from typing import Any

from trailkeeper.errors import Conflict, Unavailable
from trailkeeper.model import (
    Event,
    NewEvent,
    Tenant,
    from_ms,
    to_ms,
)
from trailkeeper.query import Query
from trailkeeper.store import ledger_state, sql
from trailkeeper.store.base import SqlReads
from trailkeeper.store.group_commit import GroupCommit
from trailkeeper.store.idempotency import StoredEvent, assemble_results, plan_insert
from trailkeeper.store.migrate import apply_migrations

MAX_ROWS_PER_INSERT = 512
_DUPLICATE_ID = "UNIQUE constraint failed: events.tenant, events.id"
MAX_READERS = 8  # read connections kept open; more concurrent readers wait for one
WRITER_CACHE_KIB = 32768  # page cache of the single writer
READER_CACHE_KIB = 4096  # page cache of each reader
CACHE_BOUND_MIB = (WRITER_CACHE_KIB + MAX_READERS * READER_CACHE_KIB) // 1024  # 64 MiB in all


def chunk_sizes(count: int, largest: int) -> list[int]:
    """`count` rows as chunks of powers of two up to `largest` (itself a power of two), so that
    a handful of statements, each prepared once and cached, serve any batch size."""
    sizes = []
    size = largest
    while count:
        while size > count:
            size //= 2
        sizes.append(size)
        count -= size
    return sizes


def rows_per_insert(max_variables: int) -> int:
    """The largest power of two, up to MAX_ROWS_PER_INSERT, whose rows' parameters fit within
    the build's limit."""
    rows = MAX_ROWS_PER_INSERT
    while rows > 1 and rows * len(sql.INSERT_COLUMNS) > max_variables:
        rows //= 2
    return rows


def _identity(value: int) -> int:
    return value


class SQLiteStore(SqlReads):
    engine = "sqlite"
    ph = "?"
    to_db = staticmethod(to_ms)
    from_db = staticmethod(from_ms)
    position_ts = staticmethod(_identity)

    def __init__(
        self, path: str, *, synchronous: str = "FULL", timeout: float = 5.0, ledger: bool = True
    ) -> None:
        self.path = path
        self.ledger = ledger
        self._frontiers = ledger_state.FrontierCache()
        self._synchronous = synchronous.upper()
        self._timeout = timeout
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = self._connect()  # creates the file and switches it to WAL before migrating
        with self._translate():
            apply_migrations(f"sqlite:///{path}", "sqlite")
        self._write_conn = writer
        # Parameters one statement may take: 32,766 since SQLite 3.32, 999 before.
        self._max_variables = writer.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._max_rows = rows_per_insert(self._max_variables)
        self._write_lock = threading.Lock()
        self._group = GroupCommit(self._write_lock, self._transaction, _savepoint, timeout)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_slots = threading.BoundedSemaphore(MAX_READERS)
        self._closed = False

    # ---- connections ---------------------------------------------------------------------

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        uri = f"file:{self.path}{'?mode=ro' if readonly else ''}"
        with self._translate():
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                conn.execute("PRAGMA foreign_keys = ON")
                # Deleted and rewritten content is overwritten with zeros, so an erased
                # value or a purged event cannot be read back from the file's free space.
                conn.execute("PRAGMA secure_delete = ON")
                # Inside a savepoint (each batch of a group commit has one), SQLite first copies
                # every page it changes into a sub-journal: on disk by default, a temp file per
                # batch. In memory it is a copy of the pages one batch changes (+3 MB peak RSS
                # importing 200k events) and ingest ran 3-7% faster.
                conn.execute("PRAGMA temp_store = MEMORY")
            cache = READER_CACHE_KIB if readonly else WRITER_CACHE_KIB
            conn.execute(f"PRAGMA cache_size = -{cache}")
        return conn

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc):
                raise
            raise Unavailable(f"{self.path} is not an SQLite database ({exc})") from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if not self._reader_slots.acquire(timeout=self._timeout):
            raise Unavailable("database is busy: timed out waiting for a read connection")
        try:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                conn = self._connect(readonly=True)
            try:
                with self._translate():
                    yield conn
            finally:
                if self._closed:
                    conn.close()
                else:
                    self._readers.put(conn)
        finally:
            self._reader_slots.release()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if not self._write_lock.acquire(timeout=self._timeout):
            raise Unavailable("database is busy: timed out waiting for the write lock")
        try:
            with self._transaction() as conn:
                yield conn
        finally:
            self._write_lock.release()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction on the write connection; the caller holds the write lock."""
        conn = self._write_conn
        with self._translate():
            conn.execute("BEGIN IMMEDIATE")
        try:
            with self._translate():
                yield conn
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def stats(self) -> dict[str, int]:
        return {"writer_queue": self._group.waiting()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._write_conn.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    def ping(self) -> None:
        self._fetch("SELECT 1", ())

    def analyze(self) -> None:
        with self._write() as conn:
            conn.execute("PRAGMA optimize")

    def _after_erasure(self) -> None:
        """Erased values are gone from the rows, and secure_delete zeroed the space they held;
        copy the WAL (which still holds the
        pages as they were before) into the database and truncate it. Readers holding an old
        snapshot can delay that: a few tries, then the next checkpoint does it."""
        with self._write_lock, self._translate():
            for _ in range(20):
                busy, _, _ = self._write_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return
                time.sleep(0.05)

    def _fetch(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        with self._read() as conn:
            return conn.execute(query, params).fetchall()

    @contextmanager
    def _writer(self) -> Iterator[ledger_state.Runner]:
        with self._write() as conn:
            yield _SQLiteRunner(conn)

    # ---- settings, tenants, keys ---------------------------------------------------------

    def create_tenant(self, tenant: Tenant) -> None:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
                    (tenant.id, tenant.name, to_ms(tenant.created_at)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"tenant {tenant.id!r} already exists") from None

    def iter_event_json(self, tenant: str, filters: Query, chunk: int = 1000) -> Iterator[bytes]:
        """Rendered by SQLite's JSON functions (see sql.SQLITE_EVENT_JSON)."""
        for rows in self._rendered_chunks(
            tenant, filters, chunk, sql.SQLITE_EXPORT_COLUMNS, sql.SQLITE_RANGE_AS_ONE_ROW
        ):
            for row in rows:
                yield from sql.sqlite_json_lines(row)

    # ---- events --------------------------------------------------------------------------

    def insert_events(self, tenant: str, items: Sequence[NewEvent]) -> list[tuple[Event, bool]]:
        """Batches that arrive while another is being written share the next transaction
        (group_commit.py): one fsync for several requests."""
        return self._group.run(lambda conn: self._insert_batch(conn, tenant, items))

    def _insert_batch(
        self, conn: sqlite3.Connection, tenant: str, items: Sequence[NewEvent]
    ) -> list[tuple[Event, bool]]:
        # Optimistic first, as on PostgreSQL: the unique index checks ids as rows go in, and
        # only a batch holding a stored id (a retry) or one id twice runs again with the lookup.
        with self._translate():
            first = _next_seq(conn)
            try:
                new = self._insert_new(conn, tenant, items, first)
                return [(event, True) for event in new]
            except sqlite3.IntegrityError as exc:
                # Undone by hand, not by a savepoint: with one open, SQLite copies every page
                # the batch changes into a sub-journal first. The attempt's rows are those from
                # `first` on: INSERT OR FAIL keeps the rows before the failing one, and the
                # ledger writes nothing before all rows are in.
                conn.execute("DELETE FROM events WHERE seq >= ?", (first,))
                if _DUPLICATE_ID not in str(exc):
                    raise
            client_ids = list({i.event.id for i in items if i.client_id})
            stored = self._stored_by_id(conn, tenant, client_ids)
            to_insert, outcome = plan_insert(items, stored)
            events = self._insert_new(conn, tenant, to_insert, first) if to_insert else []
        return assemble_results(outcome, events, stored)

    def _insert_new(
        self, conn: sqlite3.Connection, tenant: str, items: Sequence[NewEvent], first: int
    ) -> list[Event]:
        """Insert these events, appending them to the tenant's log."""
        log = (
            ledger_state.LogAppend(_SQLiteRunner(conn), tenant, self._frontiers)
            if self.ledger
            else None
        )
        stamped = list(ledger_state.stamp(items, count(first), log))
        self._insert_rows(
            conn, [sql.event_row(event, item.occurred_given, to_ms) for item, event in stamped]
        )
        if log is not None:
            log.finish()
        return [event for _, event in stamped]

    def _insert_rows(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert with one multi-row statement per chunk instead of `executemany`, which gives
        up the GIL for every row's step and must take it back before binding the next, while
        the write lock is held. Chunks are powers of two, so that a handful of statement texts
        serve any batch size from sqlite3's statement cache."""
        start = 0
        for size in chunk_sizes(len(rows), self._max_rows):
            chunk = rows[start : start + size]
            conn.execute(
                sql.insert_sql("?", size, verb="INSERT OR FAIL"), list(chain.from_iterable(chunk))
            )
            start += size

    def _stored_by_id(
        self, conn: sqlite3.Connection, tenant: str, ids: list[str]
    ) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        per_query = self._max_variables - 1  # and the tenant
        for start in range(0, len(ids), per_query):
            chunk = ids[start : start + per_query]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT occurred_at_given, {sql.SELECT_EVENT} FROM events "
                f"WHERE tenant = ? AND id IN ({marks})",
                (tenant, *chunk),
            ).fetchall()
            for row in rows:
                event = sql.row_to_event(row[1:], from_ms)
                found[event.id] = StoredEvent(bool(row[0]), event)
        return found


def _next_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0])


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Part of a transaction that an exception undoes alone (names may nest)."""
    conn.execute("SAVEPOINT batch")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite rolls the whole transaction back on some errors
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
        raise
    conn.execute("RELEASE batch")


class _SQLiteRunner:
    ph = "?"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self._conn.execute(query, params).fetchall()

    def lock_tenant(self, tenant: str) -> None:
        """Nothing to do: the transaction already holds SQLite's database write lock."""

    def update_rows(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(query, rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """One multi-row statement (per chunk of the build's variable limit): `executemany`
        would let go of the GIL and wait to take it back for every row (see
        `SQLiteStore._insert_rows`), ~125 times for the Merkle nodes of 1000 events."""
        row = f"({', '.join('?' * len(columns))})"
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        most = max(1, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns))
        for start in range(0, len(rows), most):
            chunk = rows[start : start + most]
            self._conn.execute(
                head + ", ".join([row] * len(chunk)), list(chain.from_iterable(chunk))
            )
