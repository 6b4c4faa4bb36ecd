"""The one event model that flows through every layer, plus the small value types around it.

`FIELDS` is the event's shape, written once: the store's columns and row mapping, the public
document (whose RFC 8785 encoding is the Merkle leaf), the CSV columns and the export rendered
by the database are all derived from it. Adding a field means: a line in `FIELDS`, the field on
the structs below, a migration per engine.

Input structs (`EventIn` and its parts) carry the type and length rules as msgspec constraints,
checked as HTTP ingestion and `trailkeeper import` decode them; `validation.normalize_event`,
which every ingested event goes through, checks the rest (and the lengths again, for events
built in Python, which msgspec does not check).
"""

from __future__ import annotations

import enum
import operator
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

# ---- limits (documented in docs/events.md) -------------------------------------------------
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 16
MAX_BATCH = 1000
MAX_PAGE = 100
DEFAULT_PAGE = 20

# Text may not contain NUL (PostgreSQL cannot store it), and ids, emails and IP addresses have a
# shape. Those rules are checked in `validation.normalize_event`, not as msgspec patterns here,
# so that they also hold for events built in Python (which msgspec does not check) and cost
# decoding nothing (docs/decisions.md). The patterns are still published in the OpenAPI schema
# (`extra` is how Litestar reads them).
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:~-]*$"
EVENT_ID_MAX = 128
EVENT_ID_RULE = "must be letters, digits and . _ : ~ - starting with a letter or digit"
EMAIL_PATTERN = r"^[^\x00@]+@[^\x00@]+$"
IP_PATTERN = r"^[0-9A-Fa-f:.]+$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


def is_event_id(text: str) -> bool:
    """The one event-id rule: what `EVENT_ID_PATTERN` matches, at most `EVENT_ID_MAX` long."""
    return len(text) <= EVENT_ID_MAX and _EVENT_ID.fullmatch(text) is not None


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
        max_length=EVENT_ID_MAX,
        extra_json_schema=_documented(
            EVENT_ID_PATTERN,
            "Letters, digits and . _ : ~ - (starting with a letter or digit).",
        ),
    ),
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


# Whether the action succeeded: "failed logins" are `action:user.login outcome:failure`.
Outcome = Literal["success", "failure"]
OUTCOMES: tuple[Outcome, ...] = ("success", "failure")

# All fields empty: what code reads when an event has no target or no context. Stored, such
# an object is all NULLs, so it reads back as none (store/idempotency.py counts them the same).
NO_TARGET = Target()
NO_CONTEXT = Context()


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """An event as a client submits it. Only `action` and `actor` are required."""

    action: ShortText
    actor: Actor
    outcome: Outcome = "success"
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
    """An event as stored.

    `log_index` is its gap-free position in the tenant's Merkle log and `leaf_hash` the leaf
    recorded there (see ledger.py); `seq` is the store's insertion order, used for paging.
    """

    id: str
    tenant: str
    occurred_at: datetime
    received_at: datetime
    action: str
    actor: Actor
    outcome: Outcome = "success"
    type: str | None = None
    target: Target | None = None
    source: str | None = None
    context: Context | None = None
    metadata: dict[str, Any] = {}
    log_index: int | None = None
    leaf_hash: bytes | None = None
    seq: int = 0


class Field(NamedTuple):
    """One value of the event's public document (see `FIELDS`)."""

    path: str  # where it sits in the document and on `Event`: "actor.id" is event.actor.id
    column: str  # its column in both engines and in CSV exports
    kind: str  # text | bool | int | time | json | bytes: how stores and formats convert it
    filter: bool = False  # an equality filter of listing and export (indexed with occurred_at)
    server: bool = False  # set by the server, not the client (not part of a replay's content)


# The event's shape, in document order. A nested object (actor, target, context) whose values
# are all null is stored as all-NULL columns and reads back as none.
FIELDS: tuple[Field, ...] = (
    Field("id", "id", "text"),
    Field("tenant", "tenant", "text", server=True),
    Field("occurred_at", "occurred_at", "time"),
    Field("received_at", "received_at", "time", server=True),
    Field("action", "action", "text", filter=True),
    Field("outcome", "outcome", "text", filter=True),
    Field("type", "type", "text", filter=True),
    Field("actor.id", "actor_id", "text", filter=True),
    Field("actor.name", "actor_name", "text"),
    Field("actor.email", "actor_email", "text"),
    Field("actor.type", "actor_type", "text"),
    Field("actor.staff", "actor_staff", "bool"),
    Field("actor.status", "actor_status", "text"),
    Field("target.type", "target_type", "text", filter=True),
    Field("target.id", "target_id", "text", filter=True),
    Field("target.name", "target_name", "text"),
    Field("target.email", "target_email", "text"),
    Field("source", "source", "text", filter=True),
    Field("context.ip", "ip", "text"),
    Field("context.user_agent", "user_agent", "text"),
    Field("metadata", "metadata", "json"),
    Field("log_index", "log_index", "int", server=True),
    Field("leaf_hash", "leaf_hash", "bytes", server=True),
)
FILTER_FIELDS = tuple(field for field in FIELDS if field.filter)


def _layout() -> list[tuple[str, tuple[Field, ...] | None]]:
    """`FIELDS` as the Event holds them: (attribute, None) for a value of its own, (attribute,
    its fields) for a nested object, whose struct must have exactly those fields, in order."""
    layout: list[tuple[str, tuple[Field, ...] | None]] = []
    for field in FIELDS:
        head, _, rest = field.path.partition(".")
        if not rest:
            layout.append((head, None))
        elif not layout or layout[-1][0] != head:
            layout.append((head, (field,)))
        else:
            layout[-1] = (head, (*(layout[-1][1] or ()), field))
    return layout


def _nested_types() -> dict[str, Any]:
    """The struct of each nested object, from the Event's own annotations."""
    info = msgspec.inspect.type_info(Event)
    assert isinstance(info, msgspec.inspect.StructType)
    return {
        field.name: kind.cls
        for field in info.fields
        for kind in (getattr(field.type, "types", None) or (field.type,))
        if isinstance(kind, msgspec.inspect.StructType)
    }


LAYOUT = _layout()
NESTED_TYPES = _nested_types()
for _name, _nested in LAYOUT:  # the table and the structs agree, field for field
    if _nested is not None:
        _names = tuple(field.path.split(".")[1] for field in _nested)
        assert NESTED_TYPES[_name].__struct_fields__ == _names, _name


# The event's own values and nested objects in `LAYOUT` order, in one call; where each nested
# object sits in that tuple, and how many `FIELDS` it spreads over.
_LAYOUT_VALUES = operator.attrgetter(*(name for name, _ in LAYOUT))
_SPREAD = [(at, len(nested)) for at, (_, nested) in enumerate(LAYOUT) if nested is not None]


def field_values(event: Event) -> list[Any]:
    """The event's value for each of `FIELDS`, in order (None inside an absent object)."""
    values: list[Any] = list(_LAYOUT_VALUES(event))
    for at, width in reversed(_SPREAD):  # from the right, so the positions before stay put
        value = values[at]
        values[at : at + 1] = [None] * width if value is None else msgspec.structs.astuple(value)
    return values


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """A validated event ready to store."""

    event: Event
    client_id: bool
    # Whether the client gave occurred_at: a replay that omits it again is the same event,
    # although its receive time (the stand-in for occurred_at) differs (store/idempotency.py).
    occurred_given: bool


class EventFilter(msgspec.Struct, frozen=True):
    """Filters for listing and export. All given filters must match (AND). `until` is exclusive.
    Every other attribute is named after a `FIELDS` column with `filter=True`."""

    actor_id: str | None = None
    action: str | None = None
    outcome: str | None = None  # one of OUTCOMES (validation.check_filters)
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

    @classmethod
    def of(cls, event: Event) -> Position:
        return cls(to_ms(event.occurred_at), event.seq)


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


def format_ms(ms: int) -> str:
    """`format_ts` for milliseconds since the epoch (the stored form)."""
    return format_ts(from_ms(ms))


def format_ts(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. `2022-07-05T22:30:24.662Z`."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    v = value
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (faster here; docs/decisions.md)
        v.year,
        v.month,
        v.day,
        v.hour,
        v.minute,
        v.second,
        v.microsecond // 1000,
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
