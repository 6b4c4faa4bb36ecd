"""SQLite engine: one writer, many readers, WAL.

Writes go through a single connection under a lock with `BEGIN IMMEDIATE`, so a batch takes the
database write lock up front and either commits whole or not at all (batches that queue for the
lock share a transaction, each in its own savepoint: group_commit.py); reads use a pool of
read-only connections that WAL lets run beside the writer. (Pattern from datasette's
`database.py`.) With `synchronous=FULL`, a commit is on disk before the API answers.
"""

from __future__ import annotations

import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from datetime import datetime
from itertools import chain, count
from pathlib import Path
from typing import Any

from trailkeeper.errors import Conflict, Unavailable
from trailkeeper.model import (
    Event,
    EventFilter,
    NewEvent,
    Tenant,
    from_ms,
    to_ms,
)
from trailkeeper.store import ledger_state, sql
from trailkeeper.store.base import SqlReads
from trailkeeper.store.group_commit import GroupCommit
from trailkeeper.store.idempotency import StoredEvent, assemble_results, plan_insert
from trailkeeper.store.migrate import apply_migrations

MAX_ROWS_PER_INSERT = 512
# Events per INSERT of a batch with the ledger on (see _insert_hashing_ahead): the helper hashes
# 256 leaves in ~1-1.6 ms, within the ~2 ms SQLite's step of 256 rows holds no GIL. 128 measured
# the same; 384, or a batch in two halves, more (the first chunk's leaves are hashed in turn).
LEAF_CHUNK = 256
_DUPLICATE_ID = "UNIQUE constraint failed: events.tenant, events.id"
MAX_READERS = 8  # read connections kept open; more concurrent readers wait for one
WRITER_CACHE_KIB = 32768  # page cache of the single writer
READER_CACHE_KIB = 4096  # page cache of each reader
CACHE_BOUND_MIB = (WRITER_CACHE_KIB + MAX_READERS * READER_CACHE_KIB) // 1024  # 64 MiB in all


# Batch sizes that get an INSERT statement of their own (the first sizes to come twice), so
# that batches of these sizes go in one statement; others go in power-of-two chunks. Bounded:
# SQLite keeps each prepared, ~3.6 MB for 1000 rows.
OWN_STATEMENT_SIZES = 4


@functools.lru_cache(maxsize=OWN_STATEMENT_SIZES + 16)
def _insert_statement(rows: int) -> str:
    return sql.insert_sql("?", rows, verb="INSERT OR FAIL")  # see _insert_batch


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
        self._leaf_hasher = futures.ThreadPoolExecutor(1, thread_name_prefix="trailkeeper-leaves")
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
        self._most_rows = self._max_variables // len(sql.INSERT_COLUMNS)
        self._sizes_seen: set[int] = set()
        self._own_statement_sizes: set[int] = set()
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
        self._leaf_hasher.shutdown()
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

    def iter_event_json(
        self, tenant: str, filters: EventFilter, chunk: int = 1000
    ) -> Iterator[bytes]:
        """Rendered by SQLite's JSON functions (see sql.SQLITE_EVENT_JSON)."""
        for rows in self._rendered_chunks(
            tenant, filters, chunk, sql.SQLITE_EXPORT_COLUMNS, sql.SQLITE_RANGE_AS_ONE_ROW
        ):
            for row in rows:
                yield from sql.sqlite_json_lines(row)

    # ---- events --------------------------------------------------------------------------

    def insert_events(
        self, tenant: str, items: Sequence[NewEvent], *, keep_canonical: bool = False
    ) -> list[tuple[Event, bool]]:
        """Batches that arrive while another is being written share the next transaction
        (group_commit.py): one fsync for several requests."""
        # Checked and normalized before queueing (see validation.EventBatch): here that work
        # overlaps the SQLite steps and the fsync of the batches written before it, which hold
        # no GIL.
        items = list(items)
        return self._group.run(lambda conn: self._insert_batch(conn, tenant, items, keep_canonical))

    def _insert_batch(
        self, conn: sqlite3.Connection, tenant: str, items: Sequence[NewEvent], keep: bool
    ) -> list[tuple[Event, bool]]:
        # Optimistic first, as on PostgreSQL: the unique index checks ids as rows go in, and
        # only a batch holding a stored id (a retry) or one id twice runs again with the lookup.
        with self._translate():
            first = _next_seq(conn)
            try:
                new = self._insert_new(conn, tenant, items, first, keep)
                return [(event, True) for event in new]
            except sqlite3.IntegrityError as exc:
                # Undone by hand, not by a savepoint: with one open, SQLite copies every page
                # the batch changes into a sub-journal first (~5% of ingest). The attempt's rows
                # are those from `first` on: INSERT OR FAIL keeps the rows before the failing
                # one, and the ledger writes nothing before all rows are in.
                conn.execute("DELETE FROM events WHERE seq >= ?", (first,))
                if _DUPLICATE_ID not in str(exc):
                    raise
            client_ids = list({i.event.id for i in items if i.client_id})
            stored = self._stored_by_id(conn, tenant, client_ids)
            to_insert, outcome = plan_insert(items, stored)
            events = self._insert_new(conn, tenant, to_insert, first, keep) if to_insert else []
        return assemble_results(outcome, events, stored)

    def _insert_new(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        items: Sequence[NewEvent],
        first: int,
        keep: bool,
    ) -> list[Event]:
        log = (
            ledger_state.LogAppend(
                _SQLiteRunner(conn), tenant, self._frontiers, keep_canonical=keep
            )
            if self.ledger
            else None
        )
        received_to_db = _shared_ms(items[0].event.received_at) if items else to_ms
        seqs = count(first)
        if log is None or len(items) <= LEAF_CHUNK:
            events = self._insert_stamped(
                conn, ledger_state.stamp(items, seqs, log), received_to_db
            )
        else:
            events = self._insert_hashing_ahead(conn, items, seqs, log, received_to_db)
        if log is not None:
            log.finish()
        return events

    def _insert_stamped(
        self,
        conn: sqlite3.Connection,
        stamped: Iterable[tuple[NewEvent, Event]],
        received_to_db: Callable[[datetime], int],
    ) -> list[Event]:
        """Insert these events; returns them.

        Every row is made first, in one tight loop, and then handed to SQLite: making each row
        as SQLite asked for it interleaved Python with SQLite's B-tree work, and each evicted
        the other's caches (~5-12% slower ingest, the leaf hash ~3x its cost in isolation)."""
        events: list[Event] = []
        rows: list[tuple[Any, ...]] = []
        for item, event in stamped:
            events.append(event)
            rows.append(sql.event_row(item, event.seq, to_ms, event, received_to_db))
        self._insert_rows(conn, rows)
        return events

    def _insert_hashing_ahead(
        self,
        conn: sqlite3.Connection,
        items: Sequence[NewEvent],
        seqs: Iterator[int],
        log: ledger_state.LogAppend,
        received_to_db: Callable[[datetime], int],
    ) -> list[Event]:
        """Insert `LEAF_CHUNK` events at a time while a helper thread hashes the next chunk's
        leaves: SQLite's step of an INSERT holds no GIL, so only the first chunk's leaves cost
        the writer any time (docs/performance-log.md, "Built on 2026-12-04, later")."""
        chunks = [items[start : start + LEAF_CHUNK] for start in range(0, len(items), LEAF_CHUNK)]
        events: list[Event] = []
        appended = log.add_items(chunks[0])
        pending: futures.Future[ledger_state.Appended] | None = None
        try:
            for n, chunk in enumerate(chunks):
                if pending is not None:
                    appended = pending.result()
                    pending = None
                if n + 1 < len(chunks):  # the log takes chunks in order: one at a time
                    pending = self._leaf_hasher.submit(log.add_items, chunks[n + 1])
                stamped = ledger_state.with_leaves(chunk, seqs, appended)
                events += self._insert_stamped(conn, stamped, received_to_db)
        finally:
            if pending is not None:  # a failed insert: let the helper finish before the retry
                futures.wait([pending])
        return events

    def _insert_rows(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert with one multi-row statement per chunk instead of `executemany`.

        `executemany` gives up the GIL for every row's step and must take it back before
        binding the next row; in the server, where other threads parse, validate and answer
        requests, the writer then waits for the GIL once per row while holding the write lock
        (4 clients posting 500-event batches: 7% more events/s this way). Alone, both run
        alike (59k and 61k rows/s).

        A run of rows of a size that repeats (a client's usual batch size; with the ledger,
        `LEAF_CHUNK` and what a usual size leaves after its chunks, e.g. 232 of `import`'s
        1000) goes in one statement: fewer GIL round trips, each a wait of up to 5 ms when
        another thread is busy (1000 rows in power-of-two chunks take 6), and ~10% less time
        alone. Preparing a statement for a new size costs about as much as the insert (~13 ms
        for 1000 rows), so that is paid only for a size that came before, and for a few sizes
        (`OWN_STATEMENT_SIZES`).
        """
        count = len(rows)
        if count <= self._most_rows and self._has_own_statement(count):
            conn.execute(_insert_statement(count), list(chain.from_iterable(rows)))
            return
        start = 0
        for size in chunk_sizes(count, self._max_rows):
            chunk = rows[start : start + size]
            conn.execute(_insert_statement(size), list(chain.from_iterable(chunk)))
            start += size

    def _has_own_statement(self, count: int) -> bool:
        """Whether `count` rows get a statement of their own size (called by the writer only).
        A power of two up to `_max_rows` is one of `chunk_sizes`' statements already, and
        takes no place: every batch over `LEAF_CHUNK` would otherwise spend one on it."""
        if count & (count - 1) == 0 and count <= self._max_rows:
            return False
        if count in self._own_statement_sizes:
            return True
        if count in self._sizes_seen and len(self._own_statement_sizes) < OWN_STATEMENT_SIZES:
            self._own_statement_sizes.add(count)
            return True
        self._sizes_seen.add(count)
        return False

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


def _shared_ms(shared: datetime) -> Callable[[datetime], int]:
    """`to_ms`, worked out once for the receive time that a batch's events share."""
    shared_ms = to_ms(shared)
    return lambda value: shared_ms if value is shared else to_ms(value)


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
