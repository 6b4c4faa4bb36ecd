"""PostgreSQL engine over psycopg 3 with a connection pool.

Each write transaction first takes a transaction-scoped advisory lock on the tenant: writers of
one tenant commit one after another (so idempotency answers cannot race, log indexes are
gap-free, and sequence order within a tenant is commit order), while different tenants write in
parallel. Batches of one tenant that queue in this process share a transaction, each in its own
savepoint (group_commit.py). Rows go in with COPY, streamed as they are validated and hashed
(see EVENT_COPY).
Connection failures surface as `Unavailable` (503); a dropped connection is replaced after its
first failure, so service resumes by itself when the server returns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from trailkeeper.errors import Conflict, InvalidInput, Unavailable
from trailkeeper.model import (
    Event,
    NewEvent,
    Tenant,
    format_ts,
    from_ms,
)
from trailkeeper.query import Query
from trailkeeper.store import ledger_state, sql
from trailkeeper.store.base import SqlReads
from trailkeeper.store.group_commit import GroupCommit, GroupCommitByKey
from trailkeeper.store.idempotency import StoredEvent, assemble_results, plan_insert
from trailkeeper.store.migrate import apply_migrations

# Events hashed into the log per step of a batch's COPY (see _insert_new): about one block of
# psycopg's COPY buffer (32 KiB, ~70 text rows), so the server has rows to index while Python
# hashes the next ones.
LEAF_CHUNK = 64

# Event rows go in with text COPY, deliberately not binary: PostgreSQL buffers COPY rows and
# inserts them (heap, indexes) when its buffer is full, and it measures a binary row as zero
# bytes, so a batch of binary rows is only inserted once the client ends the COPY, while the
# client waits. Text rows fill the buffer every ~150 rows, so the server indexes those while
# Python hashes the next ones (docs/decisions.md). Timestamps are sent as RFC 3339 text.
EVENT_COPY = f"COPY events ({', '.join(sql.INSERT_COLUMNS)}) FROM STDIN"

# Binary COPY suits the ledger's node table, written after the events.
_NODE_TYPES = {"tenant": "text", "level": "int2", "idx": "int8", "hash": "bytea"}


def _savepoint(conn: psycopg.Connection[Any]) -> AbstractContextManager[psycopg.Transaction]:
    """A transaction block inside the open transaction is a savepoint in psycopg."""
    return conn.transaction()


def _same(value: datetime) -> datetime:
    return value


class PostgresStore(SqlReads):
    engine = "postgres"
    ph = "%s"
    to_db = staticmethod(_same)
    from_db = staticmethod(_same)
    position_ts = staticmethod(from_ms)
    # Rendering export lines is the server's work: two backends use both cores of the
    # machines measured (docs/decisions.md). SQLite measured no gain from a second reader.
    export_readers = 2

    def __init__(
        self, url: str, *, pool_size: int = 10, timeout: float = 5.0, ledger: bool = True
    ) -> None:
        self.url = url
        self.ledger = ledger
        self._frontiers = ledger_state.FrontierCache()
        self._timeout = timeout
        self._groups: GroupCommitByKey[str, psycopg.Connection[Any]] = GroupCommitByKey(
            lambda tenant: GroupCommit(
                threading.Lock(), lambda: self._tenant_writer(tenant), _savepoint, timeout
            )
        )
        rest = url.split("://", 1)[1]
        with self._translate():
            try:
                apply_migrations(f"postgresql+psycopg://{rest}", "postgres")
            except psycopg.ProgrammingError as exc:  # e.g. an unknown URL parameter
                raise InvalidInput(f"database URL: {_first_line(exc)}") from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            open=False,
            # Autocommit: a read is one round trip (no BEGIN/COMMIT around it); writes open
            # their transactions explicitly. No check on every checkout either (another round
            # trip): a dropped connection is found by its first failure instead, see _conn.
            kwargs={"connect_timeout": max(1, int(timeout)), "autocommit": True},
            name="trailkeeper",
        )
        with self._translate():
            self._pool.open(wait=True, timeout=timeout)

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise Unavailable(f"database unavailable: {_first_line(exc)}") from exc
        except psycopg.DataError as exc:
            # Values the service should already have refused (e.g. NUL in text): still a 400.
            raise InvalidInput(f"value not storable: {_first_line(exc)}") from exc

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._translate():
            try:
                with self._pool.connection() as conn:
                    yield conn
            except psycopg.OperationalError:
                # The server dropped connections (restart, failover): the pool discards this
                # one on return; check the idle ones now so that one failure is not followed
                # by one more per pooled connection.
                self._pool.check()
                raise

    def close(self) -> None:
        self._pool.close()

    def stats(self) -> dict[str, int]:
        return self._pool.get_stats()

    def ping(self) -> None:
        self._fetch("SELECT 1", ())

    def analyze(self) -> None:
        with self._conn() as conn:
            conn.execute("ANALYZE events")
            conn.execute("ANALYZE ledger_nodes")

    def _fetch(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        try:
            return self._fetch_once(query, params)
        except Unavailable as exc:
            cause = exc.__cause__
            if not isinstance(cause, psycopg.OperationalError) or isinstance(
                cause, psycopg.errors.QueryCanceled
            ):
                raise  # no connection to be had, or the query timed out: do not wait twice
            return self._fetch_once(query, params)  # a read is safe to try once more

    def _fetch_once(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        # Binary results: the same Python values, cheaper to parse (bytea, timestamps).
        with self._conn() as conn, conn.cursor(binary=True) as cursor:
            return cursor.execute(query, params).fetchall()

    @contextmanager
    def _writer(self) -> Iterator[ledger_state.Runner]:
        with self._conn() as conn, conn.transaction():
            yield _PgRunner(conn)

    # ---- settings, tenants, keys ---------------------------------------------------------

    def create_tenant(self, tenant: Tenant) -> None:
        try:
            with self._conn() as conn:
                conn.execute(
                    "INSERT INTO tenants (id, name, created_at) VALUES (%s, %s, %s)",
                    (tenant.id, tenant.name, tenant.created_at),
                )
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"tenant {tenant.id!r} already exists") from None

    # ---- events --------------------------------------------------------------------------

    def insert_events(self, tenant: str, items: Sequence[NewEvent]) -> list[tuple[Event, bool]]:
        """Batches for one tenant that arrive while another is being written share the next
        transaction (group_commit.py): one commit for several requests."""
        return self._groups.run(tenant, lambda conn: self._insert_batch(conn, tenant, items))

    def _insert_batch(
        self, conn: psycopg.Connection[Any], tenant: str, items: Sequence[NewEvent]
    ) -> list[tuple[Event, bool]]:
        # Optimistic first: nearly every batch holds only new ids, and the unique index checks
        # them as the rows go in anyway, so the batch goes straight in without a lookup. A
        # batch that holds an existing id (a retry) or one id twice is rolled back to its
        # savepoint and runs again with the lookup that sorts out replays and conflicts.
        with self._translate():
            try:
                with conn.transaction():
                    new = self._insert_new(conn, tenant, items)
                return [(event, True) for event in new]
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != "events_by_id":
                    raise
            client_ids = list({i.event.id for i in items if i.client_id})
            stored = self._stored_by_id(conn, tenant, client_ids)
            to_insert, outcome = plan_insert(items, stored)
            events = self._insert_new(conn, tenant, to_insert) if to_insert else []
        return assemble_results(outcome, events, stored)

    def _after_erasure(self) -> None:
        """An UPDATE leaves the old row versions in the table's pages until VACUUM reclaims
        them; run it now (outside a transaction) so they are not kept for autovacuum's next
        turn. Their bytes can stay in free space and in WAL segments (docs/retention.md)."""
        with self._conn() as conn:
            conn.execute("VACUUM events")

    def iter_event_json(self, tenant: str, filters: Query, chunk: int = 1000) -> Iterator[bytes]:
        """Rendered by PostgreSQL (see sql.PG_EVENT_JSON), two ranges at a time."""
        for rows in self._rendered_chunks(tenant, filters, chunk, sql.PG_EXPORT_COLUMNS):
            for row in rows:
                yield row[0]

    @contextmanager
    def _tenant_writer(self, tenant: str) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding the tenant's write lock."""
        with self._conn() as conn, conn.transaction():
            _PgRunner(conn).lock_tenant(tenant)
            yield conn

    def _insert_new(
        self, conn: psycopg.Connection[Any], tenant: str, items: Sequence[NewEvent]
    ) -> list[Event]:
        """Insert these events, appending them to the tenant's log."""
        seqs = conn.execute(
            f"SELECT nextval('events_seq') FROM generate_series(1, {len(items):d})"
        ).fetchall()
        log = (
            ledger_state.LogAppend(_PgRunner(conn), tenant, self._frontiers)
            if self.ledger
            else None
        )
        events: list[Event] = []
        # Rows are hashed into the log a chunk at a time just before they are sent: the server
        # indexes the rows already streamed while Python works on the next ones.
        with conn.cursor() as cur, cur.copy(EVENT_COPY) as copy:
            stamped = ledger_state.stamp(items, (seq for (seq,) in seqs), log, LEAF_CHUNK)
            for item, event in stamped:
                copy.write_row(sql.event_row(event, item.occurred_given, format_ts))
                events.append(event)
        if log is not None:
            log.finish()
        return events

    def _stored_by_id(
        self, conn: psycopg.Connection[Any], tenant: str, ids: list[str]
    ) -> dict[str, StoredEvent]:
        if not ids:
            return {}
        rows = conn.execute(
            f"SELECT occurred_at_given, {sql.SELECT_EVENT} FROM events "
            "WHERE tenant = %s AND id = ANY(%s)",
            (tenant, ids),
        ).fetchall()
        found: dict[str, StoredEvent] = {}
        for row in rows:
            event = sql.row_to_event(row[1:], _same)
            found[event.id] = StoredEvent(bool(row[0]), event)
        return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _PgRunner:
    ph = "%s"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def rows(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self._conn.execute(query, params).fetchall()

    def lock_tenant(self, tenant: str) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (tenant,))

    def update_rows(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(query, rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        query = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with self._conn.cursor() as cur, cur.copy(query) as copy:
            copy.set_types([_NODE_TYPES[column] for column in columns])
            for row in rows:
                copy.write_row(row)
