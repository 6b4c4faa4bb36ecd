"""Stream use cases for the HTTP API and the CLI: create, list, show, pause, resume, delete,
replay, rotate a webhook secret; and each stream's status (lag) for them and for /metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from trailkeeper.errors import InvalidInput, NotFound
from trailkeeper.model import format_ts, utc_now_ms
from trailkeeper.store import Store
from trailkeeper.streams.model import (
    MAX_OVERLAP_SECONDS,
    Filters,
    Stream,
    StreamIn,
    destination_config,
    new_stream_id,
    new_webhook_secret,
)

DEFAULT_OVERLAP_SECONDS = 24 * 3600


class StreamStatus(msgspec.Struct, frozen=True):
    """How far behind a stream is. `lag_events` counts every event after the position
    (filtered-out ones too); `lag_seconds` is the age of the oldest undelivered one."""

    state: str
    lag_events: int
    lag_seconds: float
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None
    deliveries: int
    delivered_events: int
    failures: int
    purged: int


class StreamView(msgspec.Struct, frozen=True):
    """A stream as the API and CLI show it; `secret` only in the answer that made it."""

    id: str
    tenant: str
    name: str
    destination: dict[str, Any]
    filters: Filters
    position: int
    batch_size: int
    batch_wait_ms: int
    created_at: str
    status: StreamStatus
    secret: str | None = None


class StreamAdmin:
    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now_ms) -> None:
        self.store = store
        self._clock = clock

    def create(self, tenant: str, data: StreamIn) -> tuple[Stream, str | None]:
        """The new stream and, for a webhook, its signing secret (shown this once)."""
        if self.store.get_tenant(tenant) is None:
            raise NotFound(f"no tenant {tenant!r}")
        config = destination_config(data.destination)
        head = self._head(tenant)
        stream = Stream(
            id=new_stream_id(),
            tenant=tenant,
            name=data.name,
            destination=type(data.destination).__struct_config__.tag,  # type: ignore[arg-type]
            config=config,
            filters=data.filters or Filters(),
            position=-1 if data.start == "beginning" else head - 1,
            created_at=self._clock(),
            batch_size=data.batch_size,
            batch_wait_ms=data.batch_wait_ms,
        )
        self.store.create_stream(stream)
        return stream, config.get("secret")

    def list(self, tenant: str | None) -> list[Stream]:
        return self.store.list_streams(tenant)

    def get(self, tenant: str, stream_id: str) -> Stream:
        stream = self.store.get_stream(tenant, stream_id)
        if stream is None:
            raise NotFound(f"no stream {stream_id!r}")
        return stream

    def set_paused(self, tenant: str, stream_id: str, paused: bool) -> Stream:
        if not self.store.update_stream_settings(tenant, stream_id, paused=paused):
            raise NotFound(f"no stream {stream_id!r}")
        return self.get(tenant, stream_id)

    def delete(self, tenant: str, stream_id: str) -> None:
        if not self.store.delete_stream(tenant, stream_id):
            raise NotFound(f"no stream {stream_id!r}")

    def replay(
        self,
        tenant: str,
        stream_id: str,
        *,
        log_index: int | None = None,
        since: datetime | None = None,
    ) -> Stream:
        """Deliver again from `log_index` (inclusive) or from the first event received at or
        after `since`. Only backwards: moving forward would skip events."""
        if (log_index is None) == (since is None):
            raise InvalidInput("give exactly one of log_index or since")
        stream = self.get(tenant, stream_id)
        if since is not None:
            first = self.store.first_log_index_since(tenant, since)
            log_index = self._head(tenant) if first is None else first
        assert log_index is not None
        position = log_index - 1
        if position > stream.position:
            raise InvalidInput(
                f"replay moves a stream back only: it has delivered up to log index "
                f"{stream.position}, and {log_index} is past the next one",
                details=[{"field": "log_index", "message": "past the stream's position"}],
            )
        self.store.move_stream(tenant, stream_id, position)
        return self.get(tenant, stream_id)

    def rotate_secret(
        self, tenant: str, stream_id: str, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
    ) -> tuple[Stream, str]:
        """A new webhook secret; the old one keeps signing beside it for `overlap_seconds`,
        so receivers can switch without dropping a request."""
        if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
            raise InvalidInput(f"overlap_seconds must be 0 to {MAX_OVERLAP_SECONDS}")
        stream = self.get(tenant, stream_id)
        if stream.destination != "webhook":
            raise InvalidInput("only webhook streams have a signing secret")
        secret = new_webhook_secret()
        until = self._clock() + timedelta(seconds=overlap_seconds)
        config = {
            **stream.config,
            "secret": secret,
            "previous_secret": stream.config["secret"],
            "previous_until": int(until.timestamp()),
        }
        self.store.update_stream_settings(tenant, stream_id, config=config)
        return self.get(tenant, stream_id), secret

    def status(self, stream: Stream) -> StreamStatus:
        head = self._head(stream.tenant)
        lag_events = max(0, head - 1 - stream.position)
        lag_seconds = 0.0
        if lag_events:
            oldest = self.store.events_after(stream.tenant, stream.position, 1)
            if oldest:
                age = (self._clock() - oldest[0].received_at).total_seconds()
                lag_seconds = round(max(0.0, age), 3)
        return StreamStatus(
            state=stream.state,
            lag_events=lag_events,
            lag_seconds=lag_seconds,
            last_success_at=_ts(stream.last_success_at),
            last_error=stream.last_error,
            last_error_at=_ts(stream.last_error_at),
            deliveries=stream.deliveries,
            delivered_events=stream.delivered_events,
            failures=stream.failures,
            purged=stream.purged,
        )

    def view(self, stream: Stream, secret: str | None = None) -> StreamView:
        return StreamView(
            id=stream.id,
            tenant=stream.tenant,
            name=stream.name,
            destination={"type": stream.destination, **stream.public_config()},
            filters=stream.filters,
            position=stream.position,
            batch_size=stream.batch_size,
            batch_wait_ms=stream.batch_wait_ms,
            created_at=format_ts(stream.created_at),
            status=self.status(stream),
            secret=secret,
        )

    def _head(self, tenant: str) -> int:
        """The tenant's log size (the next log index)."""
        head = self.store.ledger_head(tenant)
        return 0 if head is None else head[0]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)
