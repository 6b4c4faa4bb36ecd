"""Every rule an event must meet before it is stored, checked for every event and filter on
the way in, whichever way it came (HTTP, `import`, the Python API).

Pure functions over the model; the service applies them before it calls the store.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import uuid_utils

from trailkeeper.errors import InvalidInput
from trailkeeper.model import (
    EPOCH,
    EVENT_ID_RULE,
    FILTER_FIELDS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    NO_CONTEXT,
    NO_TARGET,
    OUTCOMES,
    Event,
    EventFilter,
    EventIn,
    NewEvent,
    is_event_id,
)

MAX_FUTURE_SKEW = timedelta(days=1)
MAX_SAFE_INTEGER = 2**53 - 1
_LONG_NUMBER = re.compile(rb"[0-9]{16}")
_NOT_DIGITS = bytes(byte for byte in range(256) if not ord("0") <= byte <= ord("9"))
_encoder = msgspec.json.Encoder()

__all__ = ["check_filters", "is_email", "is_event_id", "is_ip", "normalize_event", "validate"]


def check_filters(filters: EventFilter) -> None:
    for field in (f.column for f in FILTER_FIELDS):
        value = getattr(filters, field)
        if value is not None and ("\x00" in value or not 1 <= len(value) <= 256):
            raise InvalidInput(
                f"{field} must be 1-256 characters without NUL",
                details=[{"field": field, "message": "1-256 characters, no NUL"}],
            )
    if filters.outcome is not None and filters.outcome not in OUTCOMES:
        raise InvalidInput(
            f"outcome must be one of {', '.join(OUTCOMES)}",
            details=[{"field": "outcome", "message": "unknown outcome"}],
        )
    for field in ("since", "until"):
        value = getattr(filters, field)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(
                f"{field} needs a timezone offset, e.g. 2024-05-01T10:00:00Z",
                details=[{"field": field, "message": "timezone offset required"}],
            )
    if filters.since and filters.until and filters.since >= filters.until:
        raise InvalidInput(
            "since must be earlier than until",
            details=[{"field": "since", "message": "must be earlier than until", "in": "query"}],
        )


def event_place(n: int, count: int) -> str:
    """How errors name the n-th of `count` events: `events[n]`, or nothing for one event."""
    return f"events[{n}]" if count > 1 else ""


def validate(tenant: str, events: Sequence[EventIn], received: datetime) -> list[NewEvent]:
    """Every event checked and normalized, or InvalidInput naming the first that is not."""
    checked = []
    for n, given in enumerate(events):
        place = event_place(n, len(events))
        try:
            checked.append(normalize_event(tenant, given, received, f"{place}." if place else ""))
        except InvalidInput as exc:
            exc.event_index = n
            raise
    return checked


# ---- the constraints of EventIn's types, for events built in Python --------------------------
# msgspec checks them as it decodes JSON, never when a struct is built in Python; read from
# the types, they are checked once more here for every event, whichever way it came.


def _scalar(kind: Any) -> Any:
    """The constraint type of a field: its metadata unwrapped, `X | None` as X."""
    if isinstance(kind, msgspec.inspect.UnionType):
        [kind] = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
    return kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind


def _rules(struct: type[msgspec.Struct], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(attribute path, field name for errors, constraint) of every text and choice field."""
    rules: list[tuple[str, str, Any]] = []
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        kind = _scalar(field.type)
        if isinstance(kind, msgspec.inspect.StructType):
            rules += _rules(kind.cls, f"{prefix}{field.name}.")
        elif isinstance(kind, msgspec.inspect.StrType | msgspec.inspect.LiteralType):
            rules.append((field.name, f"{prefix}{field.name}", kind))
    return rules


def _field_rules() -> list[tuple[str | None, list[tuple[str, str, Any]]]]:
    """The rules grouped by the nested object they are on (None: the event itself)."""
    groups: dict[str | None, list[tuple[str, str, Any]]] = {}
    for name, path, kind in _rules(EventIn):
        head, _, rest = path.rpartition(".")
        groups.setdefault(head or None, []).append((rest or name, path, kind))
    return list(groups.items())


_FIELD_RULES = _field_rules()
# The fields an event takes from its input unchanged.
_AS_GIVEN = tuple(
    name
    for name in EventIn.__struct_fields__
    if name in Event.__struct_fields__ and name not in ("id", "occurred_at", "target", "context")
)


def _check_fields(given: EventIn, where: str) -> None:
    """Types, lengths, choices and no NUL, for every text field."""
    for group, rules in _FIELD_RULES:
        obj = given if group is None else getattr(given, group)
        if obj is None:
            continue
        for name, path, kind in rules:
            value = getattr(obj, name)
            if value is None:
                continue
            if isinstance(kind, msgspec.inspect.LiteralType):
                if value not in kind.values:
                    choices = ", ".join(map(str, kind.values))
                    raise _field_error(f"{where}{path}", f"must be one of {choices}")
                continue
            if not isinstance(value, str):
                raise _field_error(f"{where}{path}", "must be a string")
            if "\x00" in value:
                raise _field_error(f"{where}{path}", "must not contain NUL characters")
            low, high = kind.min_length or 0, kind.max_length
            if len(value) < low or (high is not None and len(value) > high):
                raise _field_error(f"{where}{path}", f"must be {low}-{high} characters long")


def normalize_event(tenant: str, given: EventIn, received: datetime, where: str = "") -> NewEvent:
    """Apply the rules msgspec types cannot express."""
    occurred = _occurred_at(given.occurred_at, received, where)
    _check_fields(given, where)
    _check_metadata(given.metadata, where)
    if given.context is not None and given.context.ip is not None and not is_ip(given.context.ip):
        raise _field_error(f"{where}context.ip", "not an IPv4 or IPv6 address")
    if given.id is not None and not is_event_id(given.id):
        raise _field_error(f"{where}id", EVENT_ID_RULE)
    bad_email = _field_with_bad_email(given)
    if bad_email is not None:
        raise _field_error(f"{where}{bad_email}", "not an email address (name@domain, no NUL)")
    client_id = given.id is not None
    event_id = given.id if given.id is not None else str(uuid_utils.uuid7())
    event = Event(
        id=event_id,
        tenant=tenant,
        occurred_at=occurred,
        received_at=received,
        # All-empty objects are stored as none (their columns all NULL), so they are none
        # from here on: in the leaf, the answer and every read alike.
        target=None if given.target == NO_TARGET else given.target,
        context=None if given.context == NO_CONTEXT else given.context,
        **{name: getattr(given, name) for name in _AS_GIVEN},
    )
    return NewEvent(event=event, client_id=client_id, occurred_given=given.occurred_at is not None)


def is_email(text: str) -> bool:
    """Whether all of `text` matches `model.EMAIL_PATTERN`: one @, with text on either side,
    and no NUL (property-tested against it)."""
    return text.count("@") == 1 and text[0] != "@" and text[-1] != "@" and "\x00" not in text


def _field_with_bad_email(given: EventIn) -> str | None:
    if given.actor.email is not None and not is_email(given.actor.email):
        return "actor.email"
    target = given.target
    if target is not None and target.email is not None and not is_email(target.email):
        return "target.email"
    return None


def is_ip(text: str) -> bool:
    """An IPv4 (dotted quad) or IPv6 address, as `ipaddress.ip_address` accepts it without a
    scope id (property-tested against ipaddress)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except (OSError, ValueError):  # ValueError: a NUL in the text
            continue
        return True
    return False


def _occurred_at(value: datetime | None, received: datetime, where: str) -> datetime:
    if value is None:
        return received
    if value.tzinfo is None:
        raise _field_error(
            f"{where}occurred_at", "needs a timezone offset, e.g. 2024-05-01T10:00:00.000Z"
        )
    # The range is checked before the value is moved to UTC: comparing instants never
    # overflows, but 0001-01-01T00:00:00+00:01 or 9999-12-31T23:59:59-01:00 have no UTC
    # datetime (OverflowError), and neither is in range anyway.
    if value < EPOCH:
        raise _field_error(f"{where}occurred_at", "must not be before 1970-01-01")
    if value > received + MAX_FUTURE_SKEW:
        raise _field_error(f"{where}occurred_at", "must not be more than 1 day in the future")
    if value.tzinfo is not UTC:  # msgspec gives UTC itself for "Z" and "+00:00"
        value = value.astimezone(UTC)
    if value.microsecond % 1000:
        value = value.replace(microsecond=value.microsecond - value.microsecond % 1000)
    return value


def _check_metadata(metadata: dict[str, Any], where: str) -> None:
    """Raise for metadata breaking a rule."""
    if not isinstance(metadata, dict):
        raise _field_error(f"{where}metadata", "must be an object")
    try:
        encoded = _encoder.encode(metadata)
    except (TypeError, msgspec.EncodeError):
        raise _field_error(f"{where}metadata", "must hold JSON values only") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise _field_error(
            f"{where}metadata",
            f"is {len(encoded)} bytes as JSON; at most {MAX_METADATA_BYTES} allowed",
        )
    # Fast path: without an escaped NUL, few brackets (even counting those inside strings), no
    # run of 16 digits and no null (what msgspec writes for NaN and infinity, which only
    # callers of the Python API can pass), no rule can be broken, so the walk is skipped.
    brackets = encoded.count(b"{") + encoded.count(b"[")
    digits = len(encoded.translate(None, _NOT_DIGITS))
    if (
        b"\\u0000" in encoded
        or b"null" in encoded
        or brackets > MAX_METADATA_DEPTH
        or (digits >= 16 and _LONG_NUMBER.search(encoded) is not None)
    ):
        problem = _metadata_problem(metadata, 1)
        if problem:
            raise _field_error(f"{where}metadata", problem)


def _metadata_problem(value: Any, depth: int) -> str | None:
    if depth > MAX_METADATA_DEPTH:
        return f"nests deeper than {MAX_METADATA_DEPTH} levels"
    if isinstance(value, str):
        return "strings must not contain NUL characters" if "\x00" in value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        # I-JSON (RFC 7493): larger integers do not survive JavaScript or RFC 8785 intact.
        return None if abs(value) <= MAX_SAFE_INTEGER else "integers must be within +-(2**53-1)"
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return "keys must not contain NUL characters"
            problem = _metadata_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _metadata_problem(item, depth + 1)
            if problem:
                return problem
    return None


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field} {message}", details=[{"field": field, "message": message}])
