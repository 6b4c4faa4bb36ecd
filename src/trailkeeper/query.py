"""The search query language: `action:user.* -outcome:failure after:2026-01-01 invoice`.

`parse_query` turns the text into a `Query`, a conjunction (AND) of clauses; the store turns a
`Query` into SQL. Pure: no I/O, no store. docs/search.md is the user's reference; the rules it
states are decided here:

- A term is `[-]qualifier:value[,value...]` (values of one qualifier are ORed) or free text
  (`[-]word` or `[-]"a phrase"`). Terms are separated by whitespace and ANDed.
- `"` quotes a value; `\\` escapes the next character anywhere (`\\"`, `\\\\`, `\\*`, `\\:`).
- `*` ending a value is a prefix wildcard; a literal star is `\\*`.
- Times resolve to half-open bounds in milliseconds (events are stored with millisecond
  precision): `after:X` is occurred_at >= X, `before:X` is occurred_at < X. A date is the whole
  UTC day, so `occurred:>D` starts the next day and `occurred:<=D` includes all of D. A time
  finer than a millisecond is truncated to it, as the `since`/`until` parameters are.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from trailkeeper.errors import InvalidInput
from trailkeeper.model import EPOCH, Event, EventFilter, format_ms, to_ms

# ---- limits (documented in docs/search.md): they bound the size of the SQL a query becomes ---
MAX_QUERY_CHARS = 1024
MAX_CLAUSES = 32
MAX_VALUES = 64  # over all clauses; each qualifier value, word or time bound counts one
MAX_VALUE_CHARS = 256
MAX_EMAIL_CHARS = 320
MAX_METADATA_PATH = 4
_MAX_TOKEN_SHOWN = 40

# Qualifier spellings -> the field they match. `actor.id` is an alias of `actor`.
FIELDS: dict[str, str] = {
    "actor": "actor",
    "actor.id": "actor",
    "actor.email": "actor.email",
    "action": "action",
    "type": "type",
    "target.type": "target.type",
    "target.id": "target.id",
    "source": "source",
    "outcome": "outcome",
}
OUTCOMES = ("success", "failure")
_NO_PREFIX = frozenset({"outcome"})
# Time qualifiers -> the operator they imply (`occurred` takes one, or a date alone).
_TIME_QUALIFIERS: dict[str, str | None] = {
    "after": ">=",
    "since": ">=",
    "before": "<",
    "until": "<",
    "occurred": None,
}
_OPERATORS = (">=", "<=", ">", "<")  # longest first
_BOOLEAN_WORDS = frozenset({"AND", "OR", "NOT"})
_KNOWN = ", ".join([*dict.fromkeys(FIELDS), "metadata.<key>", *_TIME_QUALIFIERS])

_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
# Rendered bare (unquoted); anything else is quoted.
_BARE = re.compile(r"[A-Za-z0-9_.@+/~#=-]+")

_DAY_MS = 86_400_000
# Bounds are clamped to [0, _LIMIT_MS]: no event is older than 1970 (validation refuses it)
# nor later than datetime's last millisecond, so a clamped bound selects the same events.
_LIMIT_MS = to_ms(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)) + 1
LIMIT_MS = _LIMIT_MS  # bounds at it select everything (before) or nothing (after)
_EPOCH_ORDINAL = EPOCH.date().toordinal()


class Match(enum.Enum):
    EXACT = "exact"
    PREFIX = "prefix"  # written `value*`


@dataclass(frozen=True, slots=True)
class Value:
    """One value of a qualifier: exact text, or a prefix (`user.*` is Value("user.", PREFIX))."""

    text: str
    match: Match = Match.EXACT


@dataclass(frozen=True, slots=True)
class Term:
    """`field:v1,v2` matches when the field equals (or starts with) any value; negated: none."""

    field: str  # a value of FIELDS
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class MetadataTerm:
    """`metadata.a.b:v1,v2`: the metadata value at the key path equals any value (exact)."""

    path: tuple[str, ...]
    values: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class TimeBound:
    """`after`: occurred_at >= ms; `before`: occurred_at < ms (milliseconds since 1970)."""

    bound: Literal["after", "before"]
    ms: int


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: a word or quoted phrase matched against actor name/email, target name,
    action and type; `prefix` for `word*`; negated: events that do not match it."""

    text: str
    match: Match = Match.EXACT
    negated: bool = False


Clause = Term | MetadataTerm | TimeBound | Text


@dataclass(frozen=True, slots=True)
class Query:
    """All clauses must match (AND). The empty query matches every event."""

    clauses: tuple[Clause, ...] = ()

    def and_(self, other: Query) -> Query:
        """Both queries must match: how a pinned query narrows a user's own. The result may
        hold up to twice the parse limits (each part was within them)."""
        return Query(self.clauses + other.clauses)

    @classmethod
    def from_filters(cls, filters: EventFilter) -> Query:
        """The list filters as qualifiers: `actor_id=x` is `actor:x`, `since`/`until` are
        `after:`/`before:`. Filter values are literal (a `*` in them is not a wildcard)."""
        clauses: list[Clause] = []
        for name, field in _FILTER_FIELDS:
            value = getattr(filters, name)
            if value is not None:
                _check_filter_text(name, value)
                clauses.append(Term(field, (Value(value),)))
        bounds: tuple[tuple[str, Literal["after", "before"]], ...] = (
            ("since", "after"),
            ("until", "before"),
        )
        for name, bound in bounds:
            instant = getattr(filters, name)
            if instant is not None:
                clauses.append(TimeBound(bound, _filter_ms(name, instant)))
        return cls(tuple(clauses))

    def time_bounds(self) -> tuple[int | None, int | None]:
        """The latest `after` and earliest `before` (ms), the only time bounds that matter."""
        afters = [c.ms for c in self.clauses if isinstance(c, TimeBound) and c.bound == "after"]
        befores = [c.ms for c in self.clauses if isinstance(c, TimeBound) and c.bound == "before"]
        return (max(afters) if afters else None, min(befores) if befores else None)

    def canonical(self) -> bytes:
        """A stable encoding of what the query matches, for binding cursors: clause order,
        value order, repeated clauses or values, aliases and spellings of the same time do
        not change it."""
        items = {
            _json(item): item
            for item in (_canonical_item(c) for c in self.clauses if not isinstance(c, TimeBound))
        }
        after, before = self.time_bounds()
        doc = {
            "v": 1,
            "and": [items[key] for key in sorted(items)],
            "after": after,
            "before": before,
        }
        return _json(doc).encode()

    def render(self) -> str:
        """The query as text in its normal spelling; `parse_query` reads it back equal."""
        return " ".join(_render(c) for c in self.clauses)


_FILTER_FIELDS = (
    ("actor_id", "actor"),
    ("action", "action"),
    ("outcome", "outcome"),
    ("type", "type"),
    ("target_type", "target.type"),
    ("target_id", "target.id"),
    ("source", "source"),
)


def _check_filter_text(name: str, value: str) -> None:
    if "\x00" in value or not 1 <= len(value) <= MAX_VALUE_CHARS:
        raise InvalidInput(
            f"{name} must be 1-{MAX_VALUE_CHARS} characters without NUL",
            details=[{"field": name, "message": f"1-{MAX_VALUE_CHARS} characters, no NUL"}],
        )


def _filter_ms(name: str, instant: datetime) -> int:
    if instant.tzinfo is None:
        raise InvalidInput(
            f"{name} needs a timezone offset, e.g. 2024-05-01T10:00:00Z",
            details=[{"field": name, "message": "timezone offset required"}],
        )
    return _clamp(to_ms(instant))


def _clamp(ms: int) -> int:
    return min(max(ms, 0), _LIMIT_MS)


# ---- canonical form and rendering -----------------------------------------------------------


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _canonical_item(clause: Clause) -> list[object]:
    if isinstance(clause, Term):
        values = sorted({(v.text, v.match.value) for v in clause.values})
        return ["term", clause.field, clause.negated, [list(v) for v in values]]
    if isinstance(clause, MetadataTerm):
        return ["metadata", list(clause.path), clause.negated, sorted(set(clause.values))]
    assert isinstance(clause, Text)
    return ["text", clause.text, clause.match.value, clause.negated]


def _render(clause: Clause) -> str:
    if isinstance(clause, TimeBound):
        return _render_time(clause)
    if isinstance(clause, Text):
        sign = "-" if clause.negated else ""
        return sign + _render_text(clause.text, clause.match, free=True)
    sign = "-" if clause.negated else ""
    if isinstance(clause, Term):
        values = ",".join(_render_text(v.text, v.match) for v in clause.values)
        return f"{sign}{clause.field}:{values}"
    values = ",".join(_render_text(v, Match.EXACT) for v in clause.values)
    return f"{sign}metadata.{'.'.join(clause.path)}:{values}"


def _render_text(text: str, match: Match, *, free: bool = False) -> str:
    star = "*" if match is Match.PREFIX else ""
    bare = _BARE.fullmatch(text) is not None
    if free and (text.startswith("-") or text in _BOOLEAN_WORDS):
        bare = False
    if bare:
        return text + star
    escaped = re.sub(r'(["\\*])', r"\\\1", text)
    return f'"{escaped}{star}"'


def _render_time(clause: TimeBound) -> str:
    if clause.ms == _LIMIT_MS:  # past the last representable millisecond
        op = ">" if clause.bound == "after" else "<="
        return f"occurred:{op}{format_ms(clause.ms - 1)}"
    text = format_ms(clause.ms)
    if clause.ms % _DAY_MS == 0:
        text = text[:10]
    return f"{clause.bound}:{text}"


# ---- parsing --------------------------------------------------------------------------------


def _fail(position: int, token: str, reason: str, hint: str = "") -> InvalidInput:
    """The error for a problem at 0-based `position`; reported 1-based, with the token."""
    shown = token if len(token) <= _MAX_TOKEN_SHOWN else token[:_MAX_TOKEN_SHOWN] + "..."
    message = f"{reason} '{shown}' at position {position + 1}" + (f"; {hint}" if hint else "")
    return InvalidInput(
        message,
        details=[{"field": "q", "position": position + 1, "token": shown, "message": message}],
    )


def _after_quote(position: int, char: str) -> InvalidInput:
    return _fail(position, char, "unexpected character", "a closing quote ends a value or phrase")


@dataclass(frozen=True, slots=True)
class _Piece:
    """One value or word as written: its unescaped text, where it starts, and its spelling."""

    text: str
    start: int
    raw: str
    quoted: bool
    prefix: bool  # ended in an unescaped `*`


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def at_gap(self) -> bool:
        """At the end of a term: whitespace or the end of the text."""
        return self.i >= len(self.text) or self.text[self.i].isspace()

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def piece(self, stops: str) -> _Piece:
        """A quoted or bare piece; a bare one ends at whitespace or a character of `stops`."""
        if self.peek() == '"':
            return self.quoted(stops)
        start, chars, stars = self.i, [], []
        while not self.at_gap() and self.peek() not in stops:
            char = self.text[self.i]
            if char == '"':
                raise _fail(
                    start,
                    self.text[start : self.i + 1],
                    "quote inside a value",
                    'quote the whole value, or write \\" for a literal quote',
                )
            if char == "\\":
                chars.append(self.escaped())
                continue
            if char == "*":
                stars.append(len(chars))
            chars.append(char)
            self.i += 1
        return self._piece(start, chars, stars, quoted=False)

    def quoted(self, stops: str) -> _Piece:
        start = self.i
        self.i += 1
        chars: list[str] = []
        stars: list[int] = []
        while True:
            if self.i >= len(self.text):
                raise _fail(start, self.text[start:], "unterminated quote")
            char = self.text[self.i]
            if char == '"':
                self.i += 1
                break
            if char == "\\":
                chars.append(self.escaped())
                continue
            if char == "*":
                stars.append(len(chars))
            chars.append(char)
            self.i += 1
        if not self.at_gap() and self.peek() not in stops:
            raise _after_quote(self.i, self.peek())
        return self._piece(start, chars, stars, quoted=True)

    def escaped(self) -> str:
        if self.i + 1 >= len(self.text):
            raise _fail(self.i, "\\", "nothing to escape", "write \\\\ for a backslash")
        self.i += 2
        return self.text[self.i - 1]

    def _piece(self, start: int, chars: list[str], stars: list[int], *, quoted: bool) -> _Piece:
        raw = self.text[start : self.i]
        prefix = bool(stars) and stars[-1] == len(chars) - 1
        if (prefix and len(stars) > 1) or (stars and not prefix):
            raise _fail(start, raw, "a wildcard may only end a value", "write \\* for a star")
        if prefix:
            chars.pop()
        return _Piece("".join(chars), start, raw, quoted, prefix)


def parse_query(text: str) -> Query:
    """Parse the query language; any problem is an InvalidInput naming position and token."""
    if len(text) > MAX_QUERY_CHARS:
        raise _fail(
            MAX_QUERY_CHARS,
            text[MAX_QUERY_CHARS:],
            f"query longer than {MAX_QUERY_CHARS} characters from",
        )
    if "\x00" in text:
        raise _fail(text.index("\x00"), "\\x00", "NUL character")
    clauses: list[Clause] = []
    values = 0
    for start, found in _terms(text):
        for clause in found:
            values += len(clause.values) if isinstance(clause, Term | MetadataTerm) else 1
            clauses.append(clause)
        if len(clauses) > MAX_CLAUSES or values > MAX_VALUES:
            raise _fail(
                start,
                text[start:].split()[0],
                "too many terms from",
                f"a query holds at most {MAX_CLAUSES} terms and {MAX_VALUES} values",
            )
    return Query(tuple(clauses))


def _terms(text: str) -> Iterator[tuple[int, list[Clause]]]:
    """Each term's start and the clauses it stands for (a bare date in `occurred:` is two)."""
    scan = _Scanner(text)
    while True:
        scan.skip_space()
        if scan.i >= len(text):
            return
        start = scan.i
        negated = scan.peek() == "-"
        if negated:
            scan.i += 1
            if scan.at_gap() or scan.peek() == "-":
                raise _fail(start, text[start : scan.i + 1].strip(), "nothing to negate in")
        head = scan.piece(":")
        if head.quoted and not scan.at_gap():
            raise _after_quote(scan.i, scan.peek())
        if scan.peek() == ":":
            if not head.raw:
                raise _fail(scan.i, text[scan.i :].split()[0], "missing qualifier before")
            scan.i += 1
            yield start, _qualifier(scan, head, negated, start)
        else:
            yield start, [_free_text(head, negated)]


def _free_text(word: _Piece, negated: bool) -> Text:
    if not word.quoted and word.text in _BOOLEAN_WORDS and word.raw == word.text:
        raise _fail(
            word.start,
            word.raw,
            "unsupported operator",
            "terms are ANDed; write action:a,b for OR and -term for NOT",
        )
    if not word.text:
        reason = "a wildcard needs a prefix:" if word.prefix else "empty text"
        raise _fail(word.start, word.raw, reason)
    if not words(word.text):
        raise _fail(
            word.start, word.raw, "nothing to search for in", "free text needs a letter or digit"
        )
    _check_length(word, MAX_VALUE_CHARS)
    return Text(word.text, Match.PREFIX if word.prefix else Match.EXACT, negated)


def _qualifier(scan: _Scanner, head: _Piece, negated: bool, start: int) -> list[Clause]:
    name = head.text.lower()
    if name in _TIME_QUALIFIERS:
        if negated:
            raise _fail(
                start,
                scan.text[start : scan.i],
                "a time cannot be negated:",
                "use after: or before:",
            )
        return _time(scan, name, start)
    if name.startswith("metadata."):
        path = _metadata_path(head)
        pieces = _values(scan, start)
        for piece in pieces:
            _no_wildcard(piece, "metadata")
            _check_length(piece, MAX_VALUE_CHARS)
        return [MetadataTerm(path, tuple(p.text for p in pieces), negated)]
    field = FIELDS.get(name)
    if field is None or head.prefix:
        raise _fail(head.start, head.raw, "unknown qualifier", f"qualifiers are {_KNOWN}")
    return [Term(field, tuple(_value(field, p) for p in _values(scan, start)), negated)]


def _metadata_path(head: _Piece) -> tuple[str, ...]:
    path = tuple(head.text[len("metadata.") :].split("."))
    if head.prefix or not all(_METADATA_KEY.fullmatch(key) for key in path):
        raise _fail(
            head.start,
            head.raw,
            "bad metadata key in",
            "keys are 1-64 letters, digits, _ or -, joined by dots",
        )
    if len(path) > MAX_METADATA_PATH:
        raise _fail(
            head.start,
            head.raw,
            "metadata key path too deep in",
            f"at most {MAX_METADATA_PATH} keys",
        )
    return path


def _values(scan: _Scanner, start: int) -> list[_Piece]:
    """The comma-separated values after a qualifier's colon: at least one, none empty."""
    pieces = []
    while True:
        if scan.at_gap() or scan.peek() == ",":
            end = scan.i + (0 if scan.at_gap() else 1)
            raise _fail(start, scan.text[start:end], "empty value in")
        piece = scan.piece(",")
        if not piece.text and not piece.prefix:
            raise _fail(piece.start, piece.raw, "empty value")
        pieces.append(piece)
        if scan.peek() != ",":
            return pieces
        scan.i += 1


def _value(field: str, piece: _Piece) -> Value:
    if field in _NO_PREFIX:
        _no_wildcard(piece, field)
    if piece.prefix and not piece.text:
        raise _fail(piece.start, piece.raw, "a wildcard needs a prefix:")
    if field == "outcome":
        if piece.text.lower() not in OUTCOMES:
            raise _fail(
                piece.start, piece.raw, "unknown outcome", f"outcomes are {' and '.join(OUTCOMES)}"
            )
        return Value(piece.text.lower())
    _check_length(piece, MAX_EMAIL_CHARS if field == "actor.email" else MAX_VALUE_CHARS)
    return Value(piece.text, Match.PREFIX if piece.prefix else Match.EXACT)


def _no_wildcard(piece: _Piece, field: str) -> None:
    if piece.prefix:
        raise _fail(
            piece.start, piece.raw, f"{field} takes no wildcard:", "write \\* for a literal star"
        )


def _check_length(piece: _Piece, limit: int) -> None:
    if len(piece.text) > limit:
        raise _fail(piece.start, piece.raw, f"longer than {limit} characters:")


# ---- time -----------------------------------------------------------------------------------


def _time(scan: _Scanner, name: str, start: int) -> list[Clause]:
    op = _TIME_QUALIFIERS[name]
    if op is None:
        op = next((o for o in _OPERATORS if scan.text.startswith(o, scan.i)), "")
        scan.i += len(op)
    pieces = _values(scan, start)
    if len(pieces) > 1:
        raise _fail(pieces[1].start, pieces[1].raw, "one time per time qualifier; got")
    piece = pieces[0]
    _no_wildcard(piece, name)
    first, after, is_date = _span(piece)
    if op == ">=":
        return [TimeBound("after", _clamp(first))]
    if op == ">":
        return [TimeBound("after", _clamp(after))]
    if op == "<":
        return [TimeBound("before", _clamp(first))]
    if op == "<=":
        return [TimeBound("before", _clamp(after))]
    if not is_date:
        raise _fail(
            piece.start, piece.raw, "occurred: needs an operator (>=, >, <=, <) before a time:"
        )
    return [TimeBound("after", _clamp(first)), TimeBound("before", _clamp(after))]


def _span(piece: _Piece) -> tuple[int, int, bool]:
    """(first, after, is_date): the first millisecond at or after the written value's start,
    the first millisecond after all of it, and whether it was a date. A date is its UTC day;
    a time is one instant, which may fall between two milliseconds (then first == after)."""
    text = piece.text
    if _DATE.fullmatch(text):
        day = _days(piece, text) * _DAY_MS
        return day, day + _DAY_MS, True
    found = _TIME.fullmatch(text)
    if found is None:
        raise _fail(
            piece.start,
            piece.raw,
            "bad time",
            "write a date (2026-01-31) or an RFC 3339 time (2026-01-31T10:00Z)",
        )
    hour, minute, second, fraction, zone = (found.group(n) for n in range(4, 9))
    if zone is None:
        raise _fail(piece.start, piece.raw, "a time needs an offset (Z or +hh:mm):")
    h, m, s = int(hour), int(minute), int(second or 0)
    if h > 23 or m > 59 or s > 59:
        raise _fail(piece.start, piece.raw, "bad time")
    offset = 0 if zone in ("Z", "z") else _offset_minutes(piece, zone)
    digits = (fraction or "").ljust(3, "0")
    ms = (
        _days(piece, text[:10]) * _DAY_MS
        + ((h * 60 + m - offset) * 60 + s) * 1000
        + int(digits[:3])
    )
    return ms, ms + 1, False


def _days(piece: _Piece, text: str) -> int:
    """Days since 1970-01-01 of a `YYYY-MM-DD`, which must be a real date."""
    try:
        day = date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        raise _fail(piece.start, piece.raw, "bad date") from None
    return day.toordinal() - _EPOCH_ORDINAL


def _offset_minutes(piece: _Piece, zone: str) -> int:
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 23 or minutes > 59:
        raise _fail(piece.start, piece.raw, "bad offset in")
    return (hours * 60 + minutes) * (-1 if zone[0] == "-" else 1)


# ---- free-text words and matching one event ---------------------------------------------------
# The stores compile a Query to SQL (store/search.py); `matches` states the same rules for one
# event in Python: the viewer applies a pin to a single event with it, and the contract tests
# hold both engines' SQL to it.

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Free text as the full-text indexes see it: lowercased runs of letters and digits
    (everything else separates words), so `user.login` is the words `user`, `login`."""
    return _WORD.findall(text.lower())


def searchable_text(event: Event) -> str:
    """What free text searches, as one text in this order (both indexes store it so)."""
    actor, target = event.actor, event.target
    parts = (actor.name, actor.email, target.name if target else None, event.action, event.type)
    return " ".join(part or "" for part in parts)


def metadata_text(metadata: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """The metadata value at `path` as `metadata.<key>:` compares it: a string as itself, a
    number as its digits, a boolean as `true`/`false`; None for null, objects, arrays and
    missing keys (which a negated term keeps)."""
    value: Any = metadata
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def field_value(event: Event, field: str) -> str | None:
    """The value a qualifier field (a value of FIELDS) reads on the event."""
    target = event.target
    values: dict[str, str | None] = {
        "actor": event.actor.id,
        "actor.email": event.actor.email,
        "action": event.action,
        "type": event.type,
        "target.type": target.type if target else None,
        "target.id": target.id if target else None,
        "source": event.source,
        "outcome": event.outcome,
    }
    return values[field]


def matches(query: Query, event: Event) -> bool:
    """Whether the event is one the query selects."""
    return all(_clause_matches(clause, event) for clause in query.clauses)


def _clause_matches(clause: Clause, event: Event) -> bool:
    if isinstance(clause, TimeBound):
        ms = to_ms(event.occurred_at)
        return ms >= clause.ms if clause.bound == "after" else ms < clause.ms
    if isinstance(clause, Text):
        found = _contains(words(searchable_text(event)), words(clause.text), clause.match)
        return found != clause.negated
    if isinstance(clause, Term):
        value = field_value(event, clause.field)
        hit = value is not None and any(
            value == v.text if v.match is Match.EXACT else value.startswith(v.text)
            for v in clause.values
        )
    else:
        value = metadata_text(event.metadata, clause.path)
        hit = value is not None and value in clause.values
    if clause.negated:
        return value is None or not hit
    return hit


def _contains(haystack: list[str], phrase: list[str], match: Match) -> bool:
    """Whether the words of `phrase` occur in a row in `haystack` (the last as a prefix)."""
    size = len(phrase)
    for start in range(len(haystack) - size + 1):
        window = haystack[start : start + size]
        if window[:-1] == phrase[:-1] and (
            window[-1] == phrase[-1] if match is Match.EXACT else window[-1].startswith(phrase[-1])
        ):
            return True
    return False
