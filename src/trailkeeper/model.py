"""The one event model that flows through every layer, plus the small value types around it.

Input structs (`EventIn` and its parts) carry the type and length rules as msgspec constraints,
checked as HTTP ingestion and `trailkeeper import` decode them; msgspec does not check a struct
built in Python, so the service converts those (`validation.checked_events`). Rules that need
the clock, a walk over free-form data, or a pattern live in `validation.normalize_event`, which
every ingested event goes through.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

# ---- limits (documented in docs/events.md) -------------------------------------------------
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 16
MAX_BATCH = 1000
MAX_PAGE = 100
DEFAULT_PAGE = 20

# Text may not contain NUL (PostgreSQL cannot store it), and ids, emails and IP addresses have a
# shape. Those rules are checked in `validation.normalize_event`, not as msgspec patterns here:
# msgspec runs a pattern through Python's `re` for every string it decodes, ~0.56 us each
# (three per typical event, half the cost of decoding a batch), where the checks in Python cost
# ~0.1-0.3 us, and they also hold for events built in Python, which msgspec does not check.
# The patterns are still published in the OpenAPI schema (`extra` is how Litestar reads them).
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:~-]*$"
EMAIL_PATTERN = r"^[^\x00@]+@[^\x00@]+$"
IP_PATTERN = r"^[0-9A-Fa-f:.]+$"


def _documented(pattern: str, description: str | None = None) -> dict[str, Any]:
    """Meta.extra_json_schema for a pattern the schema states but decoding does not check."""
    schema: dict[str, Any] = {"extra": {"pattern": pattern}}
    if description is not None:
        schema["description"] = description
    return schema


ShortText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=256, description="1-256 characters, no NUL.")
]
Email = Annotated[
    str, msgspec.Meta(min_length=3, max_length=320, extra_json_schema=_documented(EMAIL_PATTERN))
]
UserAgent = Annotated[str, msgspec.Meta(max_length=1024, description="No NUL characters.")]
IpText = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=45,
        extra_json_schema=_documented(IP_PATTERN, "An IPv4 or IPv6 address."),
    ),
]
EventId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        extra_json_schema=_documented(
            EVENT_ID_PATTERN,
            "Letters, digits and . _ : ~ - (starting with a letter or digit).",
        ),
    ),
]
TenantId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
]


# The event structs are created by the hundred per request and can never form reference cycles
# (JSON cannot express one), so they opt out of garbage-collector tracking (gc=False): less
# time in the collector per request, as msgspec's performance notes suggest.


class Actor(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """Who did it: a user, a service account, an API key."""

    id: ShortText
    name: ShortText | None = None
    email: Email | None = None
    type: ShortText | None = None
    staff: bool | None = None
    status: ShortText | None = None


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """What it was done to (Gr4vy calls this the resource)."""

    type: ShortText | None = None
    id: ShortText | None = None
    name: ShortText | None = None
    email: Email | None = None


class Context(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """Where the request came from."""

    ip: IpText | None = None
    user_agent: UserAgent | None = None


# All fields empty: what code reads when an event has no target or no context. Stored, such
# an object is all NULLs, so it reads back as none (store/idempotency.py counts them the same).
NO_TARGET = Target()
NO_CONTEXT = Context()


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """An event as a client submits it. Only `action` and `actor` are required."""

    action: ShortText
    actor: Actor
    id: EventId | None = None
    occurred_at: datetime | None = None
    type: ShortText | None = None
    target: Target | None = None
    source: ShortText | None = None
    context: Context | None = None
    metadata: dict[str, Any] = {}


class EventBatchIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A batch is stored all-or-nothing."""

    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class Event(msgspec.Struct, frozen=True, gc=False):
    """A stored event.

    `log_index` is its gap-free position in the tenant's Merkle log and `leaf_hash` the leaf
    recorded there (see ledger.py); `seq` is the store's insertion order, used for paging.
    `canonical` is set only on an event just appended to the log, and only where it is also
    msgspec's sorted encoding: the RFC 8785 bytes of its document that the leaf hashed, which
    its ingest response reuses (`formats.ingest_view`). Never stored; None when read back.
    """

    id: str
    tenant: str
    occurred_at: datetime
    received_at: datetime
    action: str
    actor: Actor
    type: str | None = None
    target: Target | None = None
    source: str | None = None
    context: Context | None = None
    metadata: dict[str, Any] = {}
    log_index: int | None = None
    leaf_hash: bytes | None = None
    seq: int = 0
    canonical: bytes | None = None


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """A validated event ready to store."""

    event: Event
    client_id: bool
    # Whether the client gave occurred_at: a replay that omits it again is the same event,
    # although its receive time (the stand-in for occurred_at) differs (store/idempotency.py).
    occurred_given: bool
    # Metadata as JSON (validation encodes it to check its size): stored as it is.
    metadata_json: str | None = None


class EventFilter(msgspec.Struct, frozen=True):
    """Filters for listing and export. All given filters must match (AND). `until` is exclusive."""

    actor_id: str | None = None
    action: str | None = None
    type: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def canonical(self) -> bytes:
        """A stable encoding, so a cursor can be bound to exactly these filters."""
        return msgspec.json.encode(self)


class Direction(enum.Enum):
    OLDER = "older"  # next page: events older than the position
    NEWER = "newer"  # previous page: events newer than the position


class Position(msgspec.Struct, frozen=True, array_like=True):
    """A keyset position in the newest-first order: (occurred_at in ms, seq)."""

    occurred_ms: int
    seq: int


class LegalHold(msgspec.Struct, frozen=True):
    """Blocks purge and erasure of a tenant (subject None) or of one subject (docs/retention.md).
    `subject` is the keyed hash of the identifier, never the identifier itself."""

    id: str
    tenant: str
    subject: str | None
    reason: str
    created_at: datetime


class Tenant(msgspec.Struct, frozen=True):
    """A customer account. Deactivated: its credentials get 401, its data stays."""

    id: str
    name: str
    created_at: datetime
    deactivated_at: datetime | None = None
    # Retention (docs/retention.md): days an event is kept after it was received (None: for
    # ever), and the metadata keys an erasure redacts.
    retention_days: int | None = None
    personal_metadata_keys: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.deactivated_at is None


class ApiKey(msgspec.Struct, frozen=True):
    """An API key as stored: never the secret, only its hash."""

    id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: bytes
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    # Written at most once per `service.LAST_USED_INTERVAL` (see `UsageRecorder`).
    last_used_at: datetime | None = None
    # Read with the key (one query): a deactivated tenant's keys authenticate no one.
    tenant_active: bool = True


# ---- time helpers: one representation (UTC, millisecond precision) everywhere ----------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch (exact integer arithmetic): the stored and cursor form."""
    delta = value - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


_FIRST_MS = to_ms(datetime.min.replace(tzinfo=UTC))
_LAST_MS = to_ms(datetime.max.replace(tzinfo=UTC))


def bound_ms(value: datetime) -> datetime:
    """A `since`/`until` bound as the stores compare it: truncated to the millisecond, as
    occurred_at is when stored, and in UTC. So both engines, which keep milliseconds, agree
    on bounds finer than that (docs/api.md). A bound whose UTC instant falls outside the
    years 1-9999 (9999-12-31T23:59:59-01:00) has no datetime; it becomes the nearest one,
    which changes no result: stored events lie between 1970 and tomorrow."""
    return from_ms(min(max(to_ms(value), _FIRST_MS), _LAST_MS))


def format_shared_ms(ms: int) -> str:
    """`format_shared_ts` for milliseconds since the epoch (the stored form)."""
    global _last_ms
    last = _last_ms
    if ms == last[0]:
        return last[1]
    text = format_ms(ms)
    _last_ms = (ms, text)
    return text


# format_ms runs twice per event on every read, export and ingest (the leaf covers both
# timestamps), so it assembles the text from small tables instead of going through datetime:
# 0.75 us instead of 3.6 us for from_ms + isoformat. Property-tested against isoformat.
_last_ms: tuple[int, str] = (0, "1970-01-01T00:00:00.000Z")
_EPOCH_DATE = EPOCH.date()
_DAYS: dict[int, str] = {}
_MAX_CACHED_DAYS = 4096
_HOURS = tuple(f"T{h:02d}:" for h in range(24))
_MINUTE_SECONDS = tuple(f"{m:02d}:{s:02d}." for m in range(60) for s in range(60))
_MILLIS = tuple(f"{f:03d}Z" for f in range(1000))


def format_ms(ms: int) -> str:
    """`format_ts` for milliseconds since the epoch (the stored form)."""
    days, rest = divmod(ms, 86_400_000)
    day = _DAYS.get(days)
    if day is None:
        if len(_DAYS) >= _MAX_CACHED_DAYS:
            _DAYS.clear()
        day = _DAYS[days] = (_EPOCH_DATE + timedelta(days=days)).isoformat()
    hour, rest = divmod(rest, 3_600_000)
    second, milli = divmod(rest, 1000)
    return day + _HOURS[hour] + _MINUTE_SECONDS[second] + _MILLIS[milli]


_EPOCH_ORDINAL = _EPOCH_DATE.toordinal()


def _format_datetime(value: datetime) -> str:
    """`format_ms(to_ms(value))` from a UTC datetime's own fields, once `format_ms` has cached
    its day: 0.47 us instead of 0.81 (ingest formats every event's occurred_at for its leaf)."""
    day = _DAYS.get(value.toordinal() - _EPOCH_ORDINAL) if value.tzinfo is UTC else None
    if day is None:  # another zone, or a day not seen yet
        return format_ms(to_ms(value))
    return (
        day
        + _HOURS[value.hour]
        + _MINUTE_SECONDS[value.minute * 60 + value.second]
        + _MILLIS[value.microsecond // 1000]
    )


def _keeping_last(doc: str) -> Callable[[datetime], str]:
    """`format_ms(to_ms(value))` with a one-entry cache by identity, for a value that comes
    again right away. Each use gets its own: two kinds of value alternating in one cache would
    replace the entry every time."""
    last: tuple[datetime, str] = (EPOCH, format_ms(0))

    def formatted(value: datetime) -> str:
        nonlocal last
        if value is last[0]:
            return last[1]
        text = _format_datetime(value)
        last = (value, text)
        return text

    formatted.__doc__ = doc
    return formatted


format_ts = _keeping_last(
    """RFC 3339 in UTC with milliseconds, e.g. `2022-07-05T22:30:24.662Z`. Ingest formats
    each occurred_at twice in a row (its leaf, then its row); received_at goes through
    `format_shared_ts`."""
)
format_shared_ts = _keeping_last(
    """`format_ts` for a value that runs of neighbouring events share: a batch's received_at,
    formatted once per batch."""
)


def utc_now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


class KeyPair(msgspec.Struct, frozen=True):
    """A registered public key for Gr4vy-style signed JWTs; `id` is its JWK thumbprint."""

    id: str
    tenant: str
    name: str
    public_key: str  # PEM
    created_at: datetime
    revoked_at: datetime | None = None
    tenant_active: bool = True


class Checkpoint(msgspec.Struct, frozen=True):
    """A signed tree head of one tenant's log, as stored and served."""

    tenant: str
    size: int
    root: bytes
    created_at: datetime
    note: str
