"""Turning `record(...)` arguments into an event: the part shared by Client and AsyncClient."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from trailkeeper_client._batcher import Batcher, Item, Stats, log_error
from trailkeeper_client._transport import Transport
from trailkeeper_client._uuid7 import uuid7
from trailkeeper_client.context import current
from trailkeeper_client.errors import DeliveryError
from trailkeeper_client.models import Actor, Context, Event, Overflow, Target


class Recorder:
    """Background recording: `record` queues, a sender thread delivers (see _batcher)."""

    def __init__(
        self,
        transport: Transport,
        *,
        source: str | None,
        batch_size: int,
        flush_interval: float,
        max_buffer: int,
        overflow: Overflow,
        on_error: Callable[[DeliveryError], None] | None,
        close_timeout: float,
        senders: int,
        request_id_key: str | None,
    ) -> None:
        self._source, self._request_id_key = source, request_id_key
        self._batcher = Batcher(
            transport,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_buffer=max_buffer,
            overflow=overflow,
            on_error=on_error or log_error,
            close_timeout=close_timeout,
            senders=senders,
        )

    @property
    def stats(self) -> Stats:
        return self._batcher.stats

    def record(
        self,
        event: Event | str,
        /,
        *,
        actor: Actor | None = None,
        target: Target | None = None,
        type: str | None = None,
        source: str | None = None,
        context: Context | None = None,
        metadata: dict[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        id: str | None = None,
    ) -> str:
        """Queue one event and return its id at once; it is sent in the background.

        `event` is a whole event or just its action; keyword arguments fill in (or override)
        fields. Inside a request the middleware saw, the actor, IP, user agent and request id
        come from it unless given. Raises ValueError when no actor can be found, RuntimeError
        after close.
        """
        built: dict[str, Any] = {"action": event} if isinstance(event, str) else dict(event)
        given = {
            "actor": actor,
            "target": target,
            "type": type,
            "source": source,
            "context": context,
            "metadata": metadata,
            "id": id,
        }
        built.update({name: value for name, value in given.items() if value is not None})
        if occurred_at is not None:
            built["occurred_at"] = _rfc3339(occurred_at)
        self._fill(built)
        self._batcher.put([Item(cast(Event, built), time.time())])
        return cast(str, built["id"])

    def record_many(self, events: Iterable[Event]) -> list[str]:
        """Queue several events (each as `record(event)` would); returns their ids."""
        now, items = time.time(), []
        for event in events:
            built: dict[str, Any] = dict(event)
            self._fill(built)
            items.append(Item(cast(Event, built), now))
        self._batcher.put(items)
        return [item.event["id"] for item in items]

    def _fill(self, built: dict[str, Any]) -> None:
        """Add what the request context, the client's settings and the id rule supply."""
        request = current()
        if request is not None:
            if "actor" not in built and (found := request.resolve_actor()) is not None:
                built["actor"] = found
            if "context" not in built and (request.ip or request.user_agent):
                built["context"] = {
                    name: value
                    for name, value in (("ip", request.ip), ("user_agent", request.user_agent))
                    if value
                }
            if request.request_id and self._request_id_key:
                metadata = dict(built.get("metadata") or {})
                metadata.setdefault(self._request_id_key, request.request_id)
                built["metadata"] = metadata
        if "source" not in built and self._source:
            built["source"] = self._source
        if "actor" not in built:
            raise ValueError(
                "an event needs an actor: pass actor=..., or record inside a request whose "
                "middleware can resolve one"
            )
        if "action" not in built:
            raise ValueError("an event needs an action")
        if "id" not in built:
            built["id"] = uuid7()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything recorded so far is stored or given up (reported to
        `on_error`); False if `timeout` passed first."""
        return self._batcher.flush(timeout)

    def _close_batcher(self, timeout: float | None) -> None:
        self._batcher.close(self._batcher.close_timeout if timeout is None else timeout)


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("occurred_at needs a timezone (the API requires an offset)")
    return value.isoformat(timespec="milliseconds")
