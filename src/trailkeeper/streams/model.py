"""What a stream is: its destination's settings, its filters and its position in the log.

Plain data and the checks on it, shared by the HTTP API, the CLI, the service and the store.
A stream's position is the log index of the last event its destination acknowledged (-1:
none yet); delivery resumes after it, so a crash repeats at most the batch in flight.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from trailkeeper.errors import InvalidInput
from trailkeeper.model import Event

DESTINATIONS = ("webhook", "splunk_hec", "datadog", "nats")
# The list filters a stream may have: each must equal the event's value.
FILTERS = ("actor_id", "action", "outcome", "type", "target_type", "target_id", "source")
# Config keys never shown back (the webhook secret is shown once, when made).
SECRET_KEYS = frozenset({"secret", "previous_secret", "token", "api_key", "password"})
MAX_BATCH = 1000
DEFAULT_BATCH = 100
DEFAULT_BATCH_WAIT_MS = 200
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MAX_OVERLAP_SECONDS = 7 * 24 * 3600

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
FilterValue = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class WebhookIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="webhook"):
    """HTTPS POST of a JSON batch, signed per Standard Webhooks with a secret made here."""

    url: Url


class SplunkIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="splunk_hec"):
    """Splunk HTTP Event Collector: `url` is the collector's base (https://splunk:8088)."""

    url: Url
    token: Text
    index: Text | None = None
    host: Text | None = None
    source: Text | None = None
    sourcetype: Text = "trailkeeper:audit"


class DatadogIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="datadog"):
    """Datadog logs intake (v2); `url` is the site's intake host."""

    api_key: Text
    url: Url = "https://http-intake.logs.datadoghq.com"
    service: Text = "trailkeeper"
    hostname: Text | None = None
    tags: Text | None = None


class NatsIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="nats"):
    """A NATS JetStream subject; the JetStream stream that captures it is made by you."""

    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\s*>]+$")]
    url: Url = "nats://127.0.0.1:4222"
    token: Text | None = None


Destination = WebhookIn | SplunkIn | DatadogIn | NatsIn


class Filters(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Only events equal to every given value are sent (the list filters of GET /v1/events)."""

    actor_id: FilterValue | None = None
    action: FilterValue | None = None
    outcome: Literal["success", "failure"] | None = None
    type: FilterValue | None = None
    target_type: FilterValue | None = None
    target_id: FilterValue | None = None
    source: FilterValue | None = None

    def matches(self, event: Event) -> bool:
        target = event.target
        values = {
            "actor_id": event.actor.id,
            "action": event.action,
            "outcome": event.outcome,
            "type": event.type,
            "target_type": None if target is None else target.type,
            "target_id": None if target is None else target.id,
            "source": event.source,
        }
        return all(
            getattr(self, name) is None or getattr(self, name) == values[name] for name in FILTERS
        )


class StreamIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new stream. `start`: `beginning` delivers the tenant's whole log, `end` only events
    stored from now on."""

    name: Name
    destination: Destination
    filters: Filters | None = None
    start: Literal["beginning", "end"] = "beginning"
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = DEFAULT_BATCH
    batch_wait_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = DEFAULT_BATCH_WAIT_MS


class Stream(msgspec.Struct, frozen=True):
    """A stream as stored. `config` is the destination's settings (secrets included);
    `failing` is set once a batch failed past the retry budget, cleared by the next success."""

    id: str
    tenant: str
    name: str
    destination: str
    config: dict[str, Any]
    filters: Filters
    position: int
    created_at: datetime
    batch_size: int = DEFAULT_BATCH
    batch_wait_ms: int = DEFAULT_BATCH_WAIT_MS
    paused: bool = False
    failing: bool = False
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    deliveries: int = 0
    delivered_events: int = 0
    failures: int = 0
    purged: int = 0

    @property
    def state(self) -> str:
        return "paused" if self.paused else "failing" if self.failing else "active"

    def public_config(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.items() if k not in SECRET_KEYS and v is not None}


def new_stream_id() -> str:
    return "str_" + secrets.token_hex(8)


def new_webhook_secret() -> str:
    """`whsec_` and 24 random bytes in base64, the Standard Webhooks form of a secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def destination_config(destination: Destination) -> dict[str, Any]:
    """The stored settings of a checked destination (a webhook gets its first secret)."""
    check_destination(destination)
    config: dict[str, Any] = msgspec.to_builtins(destination)
    config.pop("type", None)
    if isinstance(destination, WebhookIn):
        config["secret"] = new_webhook_secret()
    return config


def check_destination(destination: Destination) -> None:
    if isinstance(destination, NatsIn):
        check_url(destination.url, "destination.url", schemes=("nats", "tls"))
    else:
        check_url(destination.url, "destination.url", schemes=("https",))


def check_url(url: str, field: str, *, schemes: tuple[str, ...]) -> None:
    """`schemes` only; plain http only to this machine's loopback (for local receivers and
    tests), never across a network, where the events and credentials would travel in clear."""
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises for a port that is not a number in range
        host_ok = bool(parts.hostname)
    except ValueError:
        host_ok = False
    if not host_ok:
        raise _invalid(field, "must be an absolute URL with a host")
    if parts.scheme in schemes or (parts.scheme == "http" and _loopback(parts.hostname or "")):
        return
    allowed = " or ".join(f"{s}://" for s in schemes)
    raise _invalid(field, f"must start with {allowed} (http:// only to 127.0.0.1 or ::1)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field} {message}", details=[{"field": field, "message": message}])
