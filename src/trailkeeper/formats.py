"""The event's public document and the export file formats, derived from `model.FIELDS`.

The document is what the native API returns (`leaf_hash` aside), what `trailkeeper export`
and `/v1/export` write, one per line, and what `trailkeeper import` reads back, so an export
can be re-imported into another instance (ids are kept, which makes a repeated import
harmless). Its RFC 8785 encoding, without `leaf_hash`, is the event's Merkle leaf.
"""

from __future__ import annotations

import binascii
import csv
import io
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from trailkeeper.model import FIELDS, LAYOUT, Event, EventIn, Field, field_values, format_ts

EXPORT_FORMATS = ("jsonl", "csv")
CSV_COLUMNS = tuple(field.column for field in FIELDS)
_json = msgspec.json.Encoder()


def encode_leaf(leaf: bytes) -> str:
    return binascii.b2a_base64(leaf, newline=False).decode("ascii")


def public_value(field: Field, value: Any) -> Any:
    """A stored value as the document holds it: timestamps as RFC 3339, the leaf in base64."""
    if value is None:
        return None
    if field.kind == "time":
        return format_ts(value)
    if field.kind == "bytes":
        return encode_leaf(value)
    return value


# Nested objects hold text and booleans only, which the document holds as they are.
assert all(f.kind in ("text", "bool") for _, nested in LAYOUT for f in nested or ())
DOCUMENT_KEYS = tuple(name for name, _ in LAYOUT)
_LAYOUT_VALUES = operator.attrgetter(*DOCUMENT_KEYS)
_KINDS = {field.path: field.kind for field in FIELDS if "." not in field.path}
_PUBLIC: dict[str, Callable[[Any], Any]] = {"time": format_ts, "bytes": encode_leaf}
# (position in DOCUMENT_KEYS, how the value becomes public) of each value that needs it.
_TO_PUBLIC = [
    (at, _PUBLIC[_KINDS[name]])
    for at, name in enumerate(DOCUMENT_KEYS)
    if _KINDS.get(name) in _PUBLIC
]
_NESTED_AT = [at for at, (_, nested) in enumerate(LAYOUT) if nested is not None]
[_LEAF_AT] = [at for at, name in enumerate(DOCUMENT_KEYS) if _KINDS.get(name) == "bytes"]
assert len(DOCUMENT_KEYS) - 1 == _LEAF_AT, "the leaf hash is the document's last key"


def document_values(event: Event) -> list[Any]:
    """The values of the event's public document, one per `DOCUMENT_KEYS`: timestamps as
    RFC 3339, the leaf in base64, nested objects still as their structs (which encode as the
    same JSON objects)."""
    values: list[Any] = list(_LAYOUT_VALUES(event))
    for at, public in _TO_PUBLIC:
        if values[at] is not None:
            values[at] = public(values[at])
    return values


def event_document(event: Event, *, leaf: bool = True) -> dict[str, Any]:
    """The event's public document (docs/events.md), keys in `FIELDS` order; `leaf=False`
    leaves out `leaf_hash`: the object whose RFC 8785 encoding is the leaf. A nested object
    the event does not have is null."""
    values = document_values(event)
    for at in _NESTED_AT:
        if values[at] is not None:
            values[at] = msgspec.structs.asdict(values[at])
    document = dict(zip(DOCUMENT_KEYS, values, strict=True))
    if not leaf:
        del document[DOCUMENT_KEYS[_LEAF_AT]]
    return document


# ---- export -----------------------------------------------------------------------------


def jsonl_chunks(documents: Iterable[bytes], batch: int = 500) -> Iterator[bytes]:
    """Events' JSON documents as JSON lines, a few hundred per chunk."""
    buffer = bytearray()
    for n, document in enumerate(documents, 1):
        buffer += document
        buffer += b"\n"
        if n % batch == 0:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# What makes a spreadsheet read a cell as a formula when it starts one (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as its CSV cell: text a spreadsheet would run as a formula (`=HYPERLINK(...)`)
    gets a leading `'`, which spreadsheets read as "this is text", as OWASP recommends.
    Anyone with `events.write` chooses these strings; whoever opens the export must not run
    them. Numbers and booleans are the server's own and stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(event: Event) -> list[Any]:
    """The event's CSV cells, one per `CSV_COLUMNS` (metadata as JSON)."""
    cells = []
    for field, value in zip(FIELDS, field_values(event), strict=True):
        cell = public_value(field, value)
        if field.kind == "json":
            cell = _json.encode(cell).decode("utf-8")
        cells.append(csv_cell(cell))
    return cells


def csv_chunks(events: Iterable[Event], batch: int = 500) -> Iterator[bytes]:
    """Events as CSV (RFC 4180) with a header row, a few hundred per chunk; every cell through
    `csv_cell`. Rows end in CRLF, as RFC 4180 has them: Python's writer quotes a field holding
    CR only when CR ends its rows, and an unquoted CR in a value splits the row for readers
    and spreadsheets alike."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for n, event in enumerate(events, 1):
        writer.writerow(csv_row(event))
        if n % batch == 0:
            yield text.getvalue().encode("utf-8")
            text.seek(0)
            text.truncate()
    yield text.getvalue().encode("utf-8")


# ---- import -----------------------------------------------------------------------------

_SERVER_FIELDS = tuple(field.path for field in FIELDS if field.server)
_line_decoder = msgspec.json.Decoder(dict[str, Any])


def parse_event_line(line: bytes) -> EventIn:
    """One JSONL line -> EventIn. Accepts trailkeeper's own export (server fields dropped).

    Raises ValueError with a readable message for anything that is not a valid event.
    """
    try:
        raw = _line_decoder.decode(line)
        for field in _SERVER_FIELDS:
            raw.pop(field, None)
        return msgspec.convert(raw, EventIn)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(str(exc)) from None
    except (UnicodeDecodeError, RecursionError):
        raise ValueError("not valid UTF-8 JSON, or nested too deeply") from None
