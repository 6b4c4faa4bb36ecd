"""The rules msgspec types cannot express, checked for every event and filter on the way in.

Pure functions over the model; the service applies them (and hands stores an `EventBatch`).
"""

from __future__ import annotations

import math
import re
import socket
import string
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import msgspec
import uuid_utils

from trailkeeper.errors import InvalidInput
from trailkeeper.model import (
    EPOCH,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    NO_CONTEXT,
    NO_TARGET,
    Event,
    EventFilter,
    EventIn,
    NewEvent,
)

MAX_FUTURE_SKEW = timedelta(days=1)
MAX_SAFE_INTEGER = 2**53 - 1
_LONG_NUMBER = re.compile(rb"[0-9]{16}")
_NOT_DIGITS = bytes(byte for byte in range(256) if not ord("0") <= byte <= ord("9"))
_TEXT_FILTERS = ("actor_id", "action", "type", "target_type", "target_id", "source")
_encoder = msgspec.json.Encoder()


def check_filters(filters: EventFilter) -> None:
    for field in _TEXT_FILTERS:
        value = getattr(filters, field)
        if value is not None and ("\x00" in value or not 1 <= len(value) <= 256):
            raise InvalidInput(
                f"{field} must be 1-256 characters without NUL",
                details=[{"field": field, "message": "1-256 characters, no NUL"}],
            )
    for field in ("since", "until"):
        value = getattr(filters, field)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(
                f"{field} needs a timezone offset, e.g. 2024-05-01T10:00:00Z",
                details=[{"field": field, "message": "timezone offset required"}],
            )
    if filters.since and filters.until and filters.since >= filters.until:
        raise InvalidInput("since must be earlier than until")


def event_place(n: int, count: int) -> str:
    """How errors name the n-th of `count` events: `events[n]`, or nothing for one event."""
    return f"events[{n}]" if count > 1 else ""


class EventBatch(Sequence[NewEvent]):
    """A batch's events, each checked and normalized when first read.

    PostgreSQL reads them as it writes, so this work overlaps the server's work on the rows
    already sent instead of preceding it; an invalid event still fails the whole batch, as its
    error is raised inside the write transaction, which then stores nothing. SQLite reads them
    all before it queues for the write lock (the work then overlaps other batches' writes).
    """

    def __init__(self, tenant: str, events: Sequence[EventIn], received: datetime) -> None:
        self._tenant, self._events, self._received = tenant, events, received
        self._normalized: list[NewEvent] = []

    def __len__(self) -> int:
        return len(self._events)

    def _item(self, n: int) -> NewEvent:
        done = self._normalized
        while len(done) <= n:
            at = len(done)
            place = event_place(at, len(self._events))
            where = f"{place}." if place else ""
            try:
                event = normalize_event(self._tenant, self._events[at], self._received, where)
            except InvalidInput as exc:
                exc.event_index = at
                raise
            done.append(event)
        return done[n]

    @overload
    def __getitem__(self, index: int) -> NewEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[NewEvent]: ...
    def __getitem__(self, index: int | slice) -> NewEvent | list[NewEvent]:
        if isinstance(index, slice):
            return [self._item(n) for n in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._item(index % len(self))

    def __iter__(self) -> Iterator[NewEvent]:
        for n in range(len(self._events)):
            yield self._item(n)


def checked_events(events: Sequence[EventIn]) -> list[EventIn]:
    """Events built in Python, checked as decoding checks a request's JSON (types, lengths).

    msgspec checks a struct's constraints only when it decodes or converts, never when the
    struct is built, so callers of the Python API could otherwise store an `action` of 5 or
    of 10,000 characters. ~3.7 us an event; HTTP and `import` decode, and skip it.
    """
    checked = []
    for n, given in enumerate(events):
        try:
            checked.append(msgspec.convert(msgspec.to_builtins(given), EventIn))
        except (msgspec.ValidationError, TypeError) as exc:
            refused = InvalidInput.from_msgspec(
                str(exc), event_place(n, len(events)), whole="event"
            )
            refused.event_index = n
            raise refused from None
    return checked


def normalize_event(tenant: str, given: EventIn, received: datetime, where: str = "") -> NewEvent:
    """Apply the rules msgspec types cannot express."""
    occurred = _occurred_at(given.occurred_at, received, where)
    nul_field = _field_with_nul(given)
    if nul_field is not None:
        raise _field_error(f"{where}{nul_field}", "must not contain NUL characters")
    metadata_json = _check_metadata(given.metadata, where)
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
        action=given.action,
        actor=given.actor,
        type=given.type,
        # All-empty objects are stored as none (their columns all NULL), so they are none
        # from here on: in the leaf, the answer and every read alike.
        target=None if given.target == NO_TARGET else given.target,
        source=given.source,
        context=None if given.context == NO_CONTEXT else given.context,
        metadata=given.metadata,
    )
    return NewEvent(
        event=event,
        client_id=client_id,
        occurred_given=given.occurred_at is not None,
        metadata_json=metadata_json,
    )


def _field_with_nul(given: EventIn) -> str | None:
    """The first text field holding a NUL character, if any (metadata is checked apart)."""
    actor, target = given.actor, given.target or NO_TARGET
    context = given.context or NO_CONTEXT
    # One search over all of them first (None formats as "None"): ~0.3 us, against ~1 us for
    # the loop below, which then runs only to name the field.
    if "\x00" not in (
        f"{given.action}{given.type}{given.source}{actor.id}{actor.name}{actor.type}"
        f"{actor.status}{target.type}{target.id}{target.name}{context.user_agent}"
    ):
        return None
    for field, value in (
        ("action", given.action),
        ("type", given.type),
        ("source", given.source),
        ("actor.id", actor.id),
        ("actor.name", actor.name),
        ("actor.type", actor.type),
        ("actor.status", actor.status),
        ("target.type", target.type),
        ("target.id", target.id),
        ("target.name", target.name),
        ("context.user_agent", context.user_agent),
    ):
        if value is not None and "\x00" in value:
            return field
    return None


EVENT_ID_RULE = "must be letters, digits and . _ : ~ - starting with a letter or digit"
_EVENT_ID_CHARS = string.ascii_letters + string.digits + "._:~-"


def is_event_id(text: str) -> bool:
    """Whether all of `text` matches `model.EVENT_ID_PATTERN` (property-tested against it):
    ~0.2 us in C string methods, against ~0.56 us for msgspec's pattern check."""
    return text.isascii() and text[:1].isalnum() and not text.strip(_EVENT_ID_CHARS)


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
    scope id; through the C library, 20x faster (property-tested against ipaddress)."""
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


def _check_metadata(metadata: dict[str, Any], where: str) -> str:
    """Raise for metadata breaking a rule; returns it as JSON."""
    encoded = _encoder.encode(metadata)
    if len(encoded) > MAX_METADATA_BYTES:
        raise _field_error(
            f"{where}metadata",
            f"is {len(encoded)} bytes as JSON; at most {MAX_METADATA_BYTES} allowed",
        )
    # Fast path: without an escaped NUL, few brackets (even counting those inside strings), no
    # run of 16 digits and no null (what msgspec writes for NaN and infinity, which only
    # callers of the Python API can pass), no rule can be broken, so the walk is skipped.
    brackets = encoded.count(b"{") + encoded.count(b"[")
    # Regexes cost ~1 us each here; counting digits first (in C) mostly spares them.
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
    return encoded.decode("utf-8")


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
