"""SQL shared by both engines: columns, row mapping, filters, keyset clauses and the export
rendered by the database, all derived from the field table (`model.FIELDS`).

The engines differ only in placeholders (`?` vs `%s`) and in how timestamps are stored
(integer ms in SQLite, timestamptz in PostgreSQL); both are passed in, so the query shape is
written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import msgspec

from trailkeeper.formats import encode_leaf
from trailkeeper.model import (
    FIELDS,
    LAYOUT,
    NESTED_TYPES,
    Direction,
    Event,
    Field,
    Position,
    field_values,
)
from trailkeeper.query import Query
from trailkeeper.store import search

EVENT_COLUMNS = ("seq", *(field.column for field in FIELDS))
# occurred_at_given: whether the client gave occurred_at, which tells a replay (idempotency.py).
INSERT_COLUMNS = (*EVENT_COLUMNS, "occurred_at_given")
SELECT_EVENT = ", ".join(EVENT_COLUMNS)
# Nested objects (actor, target, context) and the columns of their fields.
GROUPS: dict[str, list[Field]] = {}
for _field in FIELDS:
    if "." in _field.path:
        GROUPS.setdefault(_field.path.split(".")[0], []).append(_field)

_metadata_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()

TsToDb = Callable[[datetime], Any]
TsFromDb = Callable[[Any], datetime]


_TIME_COLUMNS = [n for n, field in enumerate(FIELDS, 1) if field.kind == "time"]
_JSON_COLUMNS = [n for n, field in enumerate(FIELDS, 1) if field.kind == "json"]


def event_row(event: Event, occurred_given: bool, to_db: TsToDb) -> list[Any]:
    """The INSERT parameters for one event, in `INSERT_COLUMNS` order."""
    row = [event.seq, *field_values(event), occurred_given]
    for n in _TIME_COLUMNS:
        row[n] = to_db(row[n])
    for n in _JSON_COLUMNS:
        row[n] = _encoder.encode(row[n]).decode("utf-8")
    return row


# Where the columns of `SELECT_EVENT` go, after seq: (attribute, column) of each value of the
# event's own; (attribute, struct, first column, last column + 1) of each nested object.
_OWN: list[tuple[str, int]] = []
_NESTED: list[tuple[str, Any, int, int]] = []
_at = 1
for _name, _nested in LAYOUT:
    if _nested is None:
        _OWN.append((_name, _at))
        _at += 1
    else:
        _NESTED.append((_name, NESTED_TYPES[_name], _at, _at + len(_nested)))
        _at += len(_nested)


@cache
def _readers(from_db: TsFromDb) -> list[Callable[[Any], Any] | None]:
    """How a stored value of each column becomes the Event's, None where it is the same."""
    kinds: dict[str, Callable[[Any], Any]] = {
        "time": from_db,
        "json": _metadata_decoder.decode,
        "bool": bool,
        "bytes": bytes,
    }
    return [None, *(kinds.get(field.kind) for field in FIELDS)]


def row_to_event(row: Sequence[Any], from_db: TsFromDb) -> Event:
    """The `Event` of a row selected with `SELECT_EVENT`; a nested object whose columns are
    all NULL is none."""
    values = [
        value if read is None or value is None else read(value)
        for read, value in zip(_readers(from_db), row, strict=True)
    ]
    fields = {name: values[at] for name, at in _OWN}
    for name, struct, start, end in _NESTED:
        nested = values[start:end]
        fields[name] = struct(*nested) if nested.count(None) < len(nested) else None
    return Event(seq=values[0], **fields)


def filter_clause(
    tenant: str, query: Query, ph: str, position_ts: Callable[[int], Any]
) -> tuple[list[str], list[Any]]:
    """WHERE terms (ANDed) and their parameters; always leads with the tenant, then what the
    search query selects (store/search.py)."""
    terms, params = search.where(query, ph, position_ts)
    return [f"tenant = {ph}", *terms], [tenant, *params]


def _keyset_where(
    tenant: str,
    filters: Query,
    ph: str,
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
    terms, params = filter_clause(tenant, filters, ph, position_ts)
    for op, position in bounds:
        if position is not None:
            ts = position_ts(position.occurred_ms)
            terms.append(f"(occurred_at, seq) {op} ({ph}, {ph})")
            terms.append(f"occurred_at {op[0]}= {ph}")
            params.extend((ts, position.seq, ts))
    return terms, params


def page_query(
    tenant: str,
    filters: Query,
    position: Position | None,
    direction: Direction,
    limit: int,
    ph: str,
    position_ts: Callable[[int], Any],
    columns: str = SELECT_EVENT,
) -> tuple[str, list[Any]]:
    """Keyset query: rows strictly past `position` in `direction`, nearest first.

    OLDER walks the newest-first order (DESC); NEWER walks back towards the newest (ASC) and the
    caller reverses the rows. Row-value comparison lets both engines use the index range.
    """
    op, order = ("<", "DESC") if direction is Direction.OLDER else (">", "ASC")
    terms, params = _keyset_where(tenant, filters, ph, position_ts, (op, position))
    sql = (
        f"SELECT {columns} FROM events WHERE {' AND '.join(terms)} "
        f"ORDER BY occurred_at {order}, seq {order} LIMIT {ph}"
    )
    params.append(limit)
    return sql, params


def boundary_query(
    tenant: str,
    filters: Query,
    after: Position | None,
    count: int,
    ph: str,
    position_ts: Callable[[int], Any],
) -> tuple[str, list[Any]]:
    """The position of the `count`-th match past `after` (oldest first), from the index alone:
    where an export range of `count` events ends."""
    terms, params = _keyset_where(tenant, filters, ph, position_ts, (">", after))
    query = (
        f"SELECT occurred_at, seq FROM events WHERE {' AND '.join(terms)} "
        f"ORDER BY occurred_at, seq LIMIT 1 OFFSET {int(count) - 1}"
    )
    return query, params


def range_query(
    tenant: str,
    filters: Query,
    after: Position | None,
    upto: Position | None,
    ph: str,
    position_ts: Callable[[int], Any],
    columns: str,
) -> tuple[str, list[Any]]:
    """Matches with a position in (after, upto], oldest first (open ends when None)."""
    terms, params = _keyset_where(tenant, filters, ph, position_ts, (">", after), ("<=", upto))
    query = f"SELECT {columns} FROM events WHERE {' AND '.join(terms)} ORDER BY occurred_at, seq"
    return query, params


def insert_sql(ph: str, rows: int = 1, verb: str = "INSERT") -> str:
    """INSERT of `rows` events in one statement."""
    row = f"({', '.join([ph] * len(INSERT_COLUMNS))})"
    return f"{verb} INTO events ({', '.join(INSERT_COLUMNS)}) VALUES {', '.join([row] * rows)}"


# ---- exports rendered by the database ------------------------------------------------------
# Bulk export is bound by turning rows into objects and back into JSON. Both engines render
# each event's document themselves instead, from expressions derived from `FIELDS` here: no
# Python objects per field, and on PostgreSQL two server processes render two ranges at once
# (SqlReads._rendered_chunks). A contract test holds both to `formats.event_document`.


def _document(
    value: Callable[[Field], str],
    group: Callable[[list[tuple[str, str]]], str],
    fields: Sequence[Field] = FIELDS,
) -> str:
    """The document as one expression: `value` renders a field's column, `group` an object
    from (key, expression) pairs; a nested object whose columns are all NULL is null."""
    members: list[tuple[str, str]] = []
    for field in fields:
        head, _, rest = field.path.partition(".")
        if not rest:
            members.append((head, value(field)))
        elif head not in dict(members):
            fields = GROUPS[head]
            empty = " AND ".join(f"{f.column} IS NULL" for f in fields)
            inner = group([(f.path.partition(".")[2], value(f)) for f in fields])
            members.append((head, f"CASE WHEN {empty} THEN NULL ELSE {inner} END"))
    return group(members)


def _sqlite_value(field: Field) -> str:
    column = field.column
    if field.kind == "time":  # integer ms; %f is seconds with three decimals
        return f"strftime('%Y-%m-%dT%H:%M:%fZ', {column} / 1000.0, 'unixepoch')"
    if field.kind == "bool":
        return f"CASE {column} WHEN 1 THEN json('true') WHEN 0 THEN json('false') END"
    if field.kind == "json":
        return f"json({column})"
    return column


def _sqlite_object(members: list[tuple[str, str]]) -> str:
    pairs = ", ".join(f"'{key}', {value}" for key, value in members)
    return f"json_object({pairs})"


# SQLite has no base64 function: the leaf hash (the last field) is selected as hex and
# spliced in by `sqlite_json_lines`.
[_LEAF] = [field for field in FIELDS if field.kind == "bytes"]
assert FIELDS[-1] is _LEAF, "sqlite_json_lines appends the leaf hash last"
SQLITE_EVENT_JSON = _document(_sqlite_value, _sqlite_object, FIELDS[:-1])
SQLITE_EXPORT_COLUMNS = f"{SQLITE_EVENT_JSON} AS line, {_LEAF.column} AS leaf"
# A whole range as one row: its documents joined by newlines (JSON text never holds a raw
# one) and its leaf hashes in hex, comma-separated ('' for none), aligned as both aggregate
# each row in the same pass. One sqlite3 step then renders the whole range with the GIL
# released, so the thread writing out the previous range really runs beside it. SQLite feeds
# an aggregate the rows of an ordered subquery in order (such a subquery is never flattened
# into an aggregate query); the contract tests check the order in any chunking.
SQLITE_RANGE_AS_ONE_ROW = (
    "SELECT group_concat(line, char(10)), group_concat(coalesce(hex(leaf), ''), ',') FROM ({})"
)


def sqlite_json_lines(row: Sequence[Any]) -> Iterator[bytes]:
    """The documents of a range selected with `SQLITE_RANGE_AS_ONE_ROW`, leaf hashes spliced
    in as the last key."""
    documents: str | None = row[0]
    if documents is None:  # an empty range
        return
    lines, leaves = documents.split("\n"), row[1].split(",")
    if len(lines) != len(leaves):
        raise ValueError(f"export range of {len(lines)} documents but {len(leaves)} leaf hashes")
    key = f',"{_LEAF.path}":'
    for document, leaf in zip(lines, leaves, strict=True):
        ending = '"' + encode_leaf(bytes.fromhex(leaf)) + '"}' if leaf else "null}"
        yield (document[:-1] + key + ending).encode("utf-8")


def _pg_value(field: Field) -> str:
    column = field.column
    if field.kind == "time":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    if field.kind == "json":
        return f"{column}::json"
    if field.kind == "bytes":
        return f"encode({column}, 'base64')"
    return column


def _pg_object(members: list[tuple[str, str]]) -> str:
    """A record whose field names are the keys: row_to_json renders it compactly, in order."""
    columns = ", ".join(f'{value} AS "{key}"' for key, value in members)
    return f"(SELECT r FROM (SELECT {columns}) r)"


PG_EVENT_JSON = f"row_to_json({_document(_pg_value, _pg_object)})"
PG_EXPORT_COLUMNS = f"convert_to({PG_EVENT_JSON}::text, 'UTF8')"
