"""SQL shared by both engines: column lists, row mapping, filter and keyset clauses.

The engines differ only in placeholders (`?` vs `%s`) and in how timestamps are stored
(integer ms in SQLite, timestamptz in PostgreSQL); both are passed in, so the query shape is
written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import msgspec

from trailkeeper.formats import EventView, encode_leaf
from trailkeeper.model import (
    NO_CONTEXT,
    NO_TARGET,
    Actor,
    Context,
    Direction,
    Event,
    EventFilter,
    NewEvent,
    Position,
    Target,
    bound_ms,
    format_ms,
    format_shared_ms,
    to_ms,
)

EVENT_COLUMNS = (
    "seq",
    "tenant",
    "id",
    "occurred_at",
    "received_at",
    "action",
    "type",
    "actor_id",
    "actor_name",
    "actor_email",
    "actor_type",
    "actor_staff",
    "actor_status",
    "target_type",
    "target_id",
    "target_name",
    "target_email",
    "source",
    "ip",
    "user_agent",
    "metadata",
    "log_index",
    "leaf_hash",
)
# request_hash: the SHA-256 fingerprint of rows stored before schema 0005 (SQLite 0004); empty
# since, as replays are compared by content (store/idempotency.py).
INSERT_COLUMNS = (*EVENT_COLUMNS, "request_hash", "occurred_at_given")
SELECT_EVENT = ", ".join(EVENT_COLUMNS)

# Equality filters: model field -> column. Each has an index (tenant, column, occurred_at).
_EQUALITY_FILTERS = (
    ("actor_id", "actor_id"),
    ("action", "action"),
    ("type", "type"),
    ("target_type", "target_type"),
    ("target_id", "target_id"),
    ("source", "source"),
)

_metadata_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()

TsToDb = Callable[[datetime], Any]
TsFromDb = Callable[[Any], datetime]
MsFromDb = Callable[[Any], int]
Listed = tuple[Position, EventView]


def event_row(
    item: NewEvent,
    seq: int,
    to_db: TsToDb,
    e: Event | None = None,
    received_to_db: TsToDb | None = None,
) -> tuple[Any, ...]:
    """The INSERT parameters for one event (`e`, default `item.event`), in column order;
    `received_to_db` (default `to_db`) for received_at, which a whole batch shares."""
    e = e or item.event
    actor, target, context = e.actor, e.target or NO_TARGET, e.context or NO_CONTEXT
    return (
        seq,
        e.tenant,
        e.id,
        to_db(e.occurred_at),
        (received_to_db or to_db)(e.received_at),
        e.action,
        e.type,
        actor.id,
        actor.name,
        actor.email,
        actor.type,
        actor.staff,
        actor.status,
        target.type,
        target.id,
        target.name,
        target.email,
        e.source,
        context.ip,
        context.user_agent,
        item.metadata_json
        if item.metadata_json is not None and e.metadata is item.event.metadata
        else _encoder.encode(e.metadata).decode("utf-8"),
        e.log_index,
        e.leaf_hash,
        b"",
        item.occurred_given,
    )


_SEQ, _OCCURRED, _RECEIVED, _LEAF = (
    EVENT_COLUMNS.index(column) for column in ("seq", "occurred_at", "received_at", "leaf_hash")
)


def event_position(ms_from_db: MsFromDb) -> Callable[[Sequence[Any]], Position]:
    """The keyset position of a row selected with `SELECT_EVENT`."""
    return lambda row: Position(ms_from_db(row[_OCCURRED]), row[_SEQ])


def row_to_event(row: Sequence[Any], from_db: TsFromDb) -> Event:
    """Build the model `Event` (datetimes, raw leaf) from a row selected with `SELECT_EVENT`.

    For single reads, the idempotency check and the ledger backfill; it reuses the view's
    mapping, so the two cannot drift apart.
    """
    _, view = row_to_listed(row, lambda value: to_ms(from_db(value)))
    leaf = row[_LEAF]
    return Event(
        id=view.id,
        tenant=view.tenant,
        occurred_at=from_db(row[_OCCURRED]),
        received_at=from_db(row[_RECEIVED]),
        action=view.action,
        actor=view.actor,
        type=view.type,
        target=view.target,
        source=view.source,
        context=view.context,
        metadata=view.metadata,
        log_index=view.log_index,
        leaf_hash=None if leaf is None else bytes(leaf),
        seq=row[_SEQ],
    )


def row_to_listed(row: Sequence[Any], ms_from_db: MsFromDb) -> Listed:
    """A row selected with `SELECT_EVENT` straight to its public view and keyset position.

    Pages and exports take this path instead of `row_to_event` + `to_view`: no datetimes,
    positional structs and table-driven timestamps make it about four times cheaper, and it
    runs for every event read.
    """
    (
        seq,
        tenant,
        event_id,
        occurred_at,
        received_at,
        action,
        type_,
        actor_id,
        actor_name,
        actor_email,
        actor_type,
        actor_staff,
        actor_status,
        target_type,
        target_id,
        target_name,
        target_email,
        source,
        ip,
        user_agent,
        metadata,
        log_index,
        leaf,
    ) = row
    occurred_ms = ms_from_db(occurred_at)
    view = EventView(
        event_id,
        tenant,
        format_ms(occurred_ms),
        format_shared_ms(ms_from_db(received_at)),
        action,
        type_,
        Actor(
            actor_id,
            actor_name,
            actor_email,
            actor_type,
            None if actor_staff is None else bool(actor_staff),
            actor_status,
        ),
        None
        if target_type is None
        and target_id is None
        and target_name is None
        and target_email is None
        else Target(target_type, target_id, target_name, target_email),
        source,
        None if ip is None and user_agent is None else Context(ip, user_agent),
        _metadata_decoder.decode(metadata),
        log_index,
        None if leaf is None else encode_leaf(leaf),
    )
    return Position(occurred_ms, seq), view


def filter_clause(
    tenant: str, filters: EventFilter, ph: str, to_db: TsToDb
) -> tuple[list[str], list[Any]]:
    """WHERE terms (ANDed) and their parameters; always leads with the tenant."""
    terms = [f"tenant = {ph}"]
    params: list[Any] = [tenant]
    for field, column in _EQUALITY_FILTERS:
        value = getattr(filters, field)
        if value is not None:
            terms.append(f"{column} = {ph}")
            params.append(value)
    if filters.since is not None:
        terms.append(f"occurred_at >= {ph}")
        params.append(to_db(bound_ms(filters.since)))
    if filters.until is not None:
        terms.append(f"occurred_at < {ph}")
        params.append(to_db(bound_ms(filters.until)))
    return terms, params


def _keyset_where(
    tenant: str,
    filters: EventFilter,
    ph: str,
    to_db: TsToDb,
    position_ts: Callable[[int], Any],
    *bounds: tuple[str, Position | None],
) -> tuple[list[str], list[Any]]:
    """`filter_clause` plus keyset bounds: (op, position) keeps rows whose (occurred_at, seq)
    compares `op` to the position (a None position bounds nothing).

    Each bound also bounds occurred_at alone, which changes no result: PostgreSQL estimates a
    row-value comparison at a third of the table whatever its values, so an export range of
    1000 rows out of 1M was planned as a parallel scan of the whole table (~35 ms a range
    instead of ~6); a plain range on occurred_at it estimates from the column's histogram.
    """
    terms, params = filter_clause(tenant, filters, ph, to_db)
    for op, position in bounds:
        if position is not None:
            ts = position_ts(position.occurred_ms)
            terms.append(f"(occurred_at, seq) {op} ({ph}, {ph})")
            terms.append(f"occurred_at {op[0]}= {ph}")
            params.extend((ts, position.seq, ts))
    return terms, params


def page_query(
    tenant: str,
    filters: EventFilter,
    position: Position | None,
    direction: Direction,
    limit: int,
    ph: str,
    to_db: TsToDb,
    position_ts: Callable[[int], Any],
    columns: str = SELECT_EVENT,
) -> tuple[str, list[Any]]:
    """Keyset query: rows strictly past `position` in `direction`, nearest first.

    OLDER walks the newest-first order (DESC); NEWER walks back towards the newest (ASC) and the
    caller reverses the rows. Row-value comparison lets both engines use the index range.
    """
    op, order = ("<", "DESC") if direction is Direction.OLDER else (">", "ASC")
    terms, params = _keyset_where(tenant, filters, ph, to_db, position_ts, (op, position))
    sql = (
        f"SELECT {columns} FROM events WHERE {' AND '.join(terms)} "
        f"ORDER BY occurred_at {order}, seq {order} LIMIT {ph}"
    )
    params.append(limit)
    return sql, params


def boundary_query(
    tenant: str,
    filters: EventFilter,
    after: Position | None,
    count: int,
    ph: str,
    to_db: TsToDb,
    position_ts: Callable[[int], Any],
) -> tuple[str, list[Any]]:
    """The position of the `count`-th match past `after` (oldest first), from the index alone:
    where an export range of `count` events ends."""
    terms, params = _keyset_where(tenant, filters, ph, to_db, position_ts, (">", after))
    query = (
        f"SELECT occurred_at, seq FROM events WHERE {' AND '.join(terms)} "
        f"ORDER BY occurred_at, seq LIMIT 1 OFFSET {int(count) - 1}"
    )
    return query, params


def range_query(
    tenant: str,
    filters: EventFilter,
    after: Position | None,
    upto: Position | None,
    ph: str,
    to_db: TsToDb,
    position_ts: Callable[[int], Any],
    columns: str,
) -> tuple[str, list[Any]]:
    """Matches with a position in (after, upto], oldest first (open ends when None)."""
    terms, params = _keyset_where(
        tenant, filters, ph, to_db, position_ts, (">", after), ("<=", upto)
    )
    query = f"SELECT {columns} FROM events WHERE {' AND '.join(terms)} ORDER BY occurred_at, seq"
    return query, params


def insert_sql(ph: str, rows: int = 1, verb: str = "INSERT") -> str:
    """INSERT of `rows` events in one statement."""
    row = f"({', '.join([ph] * len(INSERT_COLUMNS))})"
    return f"{verb} INTO events ({', '.join(INSERT_COLUMNS)}) VALUES {', '.join([row] * rows)}"


# ---- exports rendered by the database ------------------------------------------------------
# Bulk export is bound by turning rows into objects and back into JSON. Both engines render
# each line themselves instead (SQLite's JSON functions, PostgreSQL's row_to_json): no Python
# objects per field, and on PostgreSQL two server processes render two ranges at once
# (SqlReads._rendered_chunks). Each expression renders the same object that `EventView`
# encodes to; a contract test holds both stores to that. SQLite has no base64 function, so
# the leaf hash is selected as hex and spliced in by `sqlite_json_lines`.

# Timestamps are integer milliseconds in SQLite; %f is seconds with three decimals.
_SQLITE_TS = "strftime('%Y-%m-%dT%H:%M:%fZ', {} / 1000.0, 'unixepoch')"
_SQLITE_TARGET = (
    "json_object('type', target_type, 'id', target_id, 'name', target_name, 'email', target_email)"
)
SQLITE_EVENT_JSON = (
    "json_object("
    "'id', id, 'tenant', tenant, "
    f"'occurred_at', {_SQLITE_TS.format('occurred_at')}, "
    f"'received_at', {_SQLITE_TS.format('received_at')}, "
    "'action', action, 'type', type, "
    "'actor', json_object('id', actor_id, 'name', actor_name, 'email', actor_email, "
    "'type', actor_type, "
    "'staff', CASE actor_staff WHEN 1 THEN json('true') WHEN 0 THEN json('false') END, "
    "'status', actor_status), "
    "'target', CASE WHEN target_type IS NULL AND target_id IS NULL AND target_name IS NULL "
    f"AND target_email IS NULL THEN NULL ELSE {_SQLITE_TARGET} END, "
    "'source', source, "
    "'context', CASE WHEN ip IS NULL AND user_agent IS NULL THEN NULL "
    "ELSE json_object('ip', ip, 'user_agent', user_agent) END, "
    "'metadata', json(metadata), 'log_index', log_index)"
)
SQLITE_EXPORT_COLUMNS = f"{SQLITE_EVENT_JSON} AS line, leaf_hash AS leaf"
# A whole range as one row: its lines joined by newlines (JSON text never holds a raw one) and
# its leaf hashes in hex, comma-separated ('' for none), aligned as both aggregate each row in
# the same pass. One sqlite3 step then renders the whole range with the GIL released, so the
# thread writing out the previous range really runs beside it; with a step per row the two
# took turns for the GIL (in process: ~110-120k -> ~190k events/s). SQLite feeds an aggregate
# the rows of an ordered subquery in order (such a subquery is never flattened into an
# aggregate query); the contract tests check the order in any chunking.
SQLITE_RANGE_AS_ONE_ROW = (
    "SELECT group_concat(line, char(10)), group_concat(coalesce(hex(leaf), ''), ',') FROM ({})"
)


def sqlite_json_lines(row: Sequence[Any]) -> Iterator[bytes]:
    """The documents of a range selected with `SQLITE_RANGE_AS_ONE_ROW`, leaf hashes spliced
    in (the leaf is the view's last field)."""
    documents: str | None = row[0]
    if documents is None:  # an empty range
        return
    lines, leaves = documents.split("\n"), row[1].split(",")
    if len(lines) != len(leaves):
        raise ValueError(f"export range of {len(lines)} documents but {len(leaves)} leaf hashes")
    for document, leaf in zip(lines, leaves, strict=True):
        ending = '"' + encode_leaf(bytes.fromhex(leaf)) + '"}' if leaf else "null}"
        yield (document[:-1] + ',"leaf_hash":' + ending).encode("utf-8")


# PostgreSQL renders export lines with row_to_json over row types named like the view's fields
# (migration 0004), which is compact and keeps the view's key order: ~7 us of server CPU a row,
# against ~5 us of server and ~5 us of Python for fetching the columns and encoding a view.
_PG_TS = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
PG_EVENT_JSON = (
    "row_to_json(ROW(id, tenant, "
    f"{_PG_TS.format('occurred_at')}, {_PG_TS.format('received_at')}, action, type, "
    "ROW(actor_id, actor_name, actor_email, actor_type, actor_staff, actor_status)"
    "::tk_export_actor, "
    "CASE WHEN target_type IS NULL AND target_id IS NULL AND target_name IS NULL "
    "AND target_email IS NULL THEN NULL "
    "ELSE ROW(target_type, target_id, target_name, target_email)::tk_export_target END, "
    "source, "
    "CASE WHEN ip IS NULL AND user_agent IS NULL THEN NULL "
    "ELSE ROW(ip, user_agent)::tk_export_context END, "
    "metadata::json, log_index, encode(leaf_hash, 'base64'))::tk_export_event)"
)
PG_EXPORT_COLUMNS = f"convert_to({PG_EVENT_JSON}::text, 'UTF8')"
