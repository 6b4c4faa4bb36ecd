"""Client and AsyncClient: record in the background, read back with paging done for you."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, Unpack, cast
from urllib.parse import quote

import httpx

from trailkeeper_client._recording import Recorder
from trailkeeper_client._retry import RetryPolicy
from trailkeeper_client._transport import AsyncTransport, Transport, query
from trailkeeper_client.admin import AsyncKeys, AsyncTenants, Keys, Tenants
from trailkeeper_client.errors import DeliveryError
from trailkeeper_client.models import Overflow, Page, StoredEvent


class Filters(TypedDict, total=False):
    """The filters of `GET /v1/events` and `GET /v1/export` (exact match; AND)."""

    actor_id: str
    action: str
    type: str
    target_type: str
    target_id: str
    source: str
    since: datetime | str
    until: datetime | str


class Settings(TypedDict, total=False):
    """Keyword arguments both clients take; see docs/client.md for what each does."""

    source: str | None
    batch_size: int
    flush_interval: float
    max_buffer: int
    overflow: Overflow
    on_error: Callable[[DeliveryError], None] | None
    close_timeout: float
    senders: int
    request_id_key: str | None
    timeout: float
    retry: RetryPolicy


def _split(settings: Settings) -> tuple[float, RetryPolicy, dict[str, Any]]:
    recorder: dict[str, Any] = {
        "source": None,
        "batch_size": 500,
        "flush_interval": 1.0,
        "max_buffer": 100_000,
        "overflow": "block",
        "on_error": None,
        "close_timeout": 10.0,
        "senders": 2,
        "request_id_key": "request_id",
    }
    recorder.update({k: v for k, v in settings.items() if k not in ("timeout", "retry")})
    return settings.get("timeout", 10.0), settings.get("retry", RetryPolicy()), recorder


def _event_path(event_id: str) -> str:
    return f"/v1/events/{quote(event_id, safe='')}"


class Client(Recorder):
    """A synchronous client. `record` never waits for the network; reads do.

    Use it as a context manager, or call `close()`: both deliver what is still queued.
    Events still queued at interpreter exit are delivered then too.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        **settings: Unpack[Settings],
    ) -> None:
        timeout, retry, recorder = _split(settings)
        self._http = Transport(base_url, api_key, timeout=timeout, retry=retry, transport=transport)
        self._sender = Transport(
            base_url, api_key, timeout=timeout, retry=retry, transport=transport
        )
        super().__init__(self._sender, **recorder)
        self.tenants = Tenants(self._http)
        """The admin API's tenants (needs an admin key; see docs/admin.md)."""
        self.keys = Keys(self._http)
        """The admin API's keys (needs an admin key)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (within `timeout`, default `close_timeout`), then release the
        connections. Events it could not deliver in time go to `on_error` as undelivered."""
        self._close_batcher(timeout)
        self._sender.close()
        self._http.close()

    def page(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: Unpack[Filters]
    ) -> Page:
        """One page of events, newest first (follow `next_cursor` with the same filters)."""
        params = query({**filters, "limit": limit, "cursor": cursor})
        request = self._http.http.build_request("GET", "/v1/events", params=params)
        return cast(Page, self._http.send(request).json())

    def list(self, *, page_size: int = 100, **filters: Unpack[Filters]) -> Iterator[StoredEvent]:
        """Every matching event, newest first, fetching page after page as you iterate."""
        cursor: str | None = None
        while True:
            page = self.page(limit=page_size, cursor=cursor, **filters)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def get(self, event_id: str) -> StoredEvent:
        """One event; ApiError with status 404 when this tenant has no such id."""
        request = self._http.http.build_request("GET", _event_path(event_id))
        return cast(StoredEvent, self._http.send(request).json())

    def export(self, **filters: Unpack[Filters]) -> Iterator[StoredEvent]:
        """Every matching event, oldest first, streamed (constant memory)."""
        for line in self._export("jsonl", filters):
            if line:
                yield cast(StoredEvent, json.loads(line))

    def export_csv(self, **filters: Unpack[Filters]) -> Iterator[str]:
        """The CSV export, line by line (the first line is the header)."""
        yield from self._export("csv", filters)

    def _export(self, format: Literal["jsonl", "csv"], filters: Filters) -> Iterator[str]:
        params = query({**filters, "format": format})
        request = self._http.http.build_request("GET", "/v1/export", params=params)
        response = self._http.send(request, stream=True)
        try:
            yield from response.iter_lines()
        finally:
            response.close()


class AsyncClient(Recorder):
    """The asyncio client: `record` is the same non-blocking call (a sender thread delivers,
    so delivery goes on even while the event loop is busy); reads and `flush` are awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sender_transport: httpx.BaseTransport | None = None,
        **settings: Unpack[Settings],
    ) -> None:
        timeout, retry, recorder = _split(settings)
        self._http = AsyncTransport(
            base_url, api_key, timeout=timeout, retry=retry, transport=transport
        )
        self._sender = Transport(
            base_url, api_key, timeout=timeout, retry=retry, transport=sender_transport
        )
        super().__init__(self._sender, **recorder)
        self.tenants = AsyncTenants(self._http)
        self.keys = AsyncKeys(self._http)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aflush(self, timeout: float | None = None) -> bool:
        """`flush` without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """Deliver what is queued (see Client.close), then release the connections."""
        import asyncio

        await asyncio.to_thread(self._close_batcher, timeout)
        self._sender.close()
        await self._http.close()

    async def page(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: Unpack[Filters]
    ) -> Page:
        params = query({**filters, "limit": limit, "cursor": cursor})
        request = self._http.http.build_request("GET", "/v1/events", params=params)
        return cast(Page, (await self._http.send(request)).json())

    async def list(
        self, *, page_size: int = 100, **filters: Unpack[Filters]
    ) -> AsyncIterator[StoredEvent]:
        cursor: str | None = None
        while True:
            page = await self.page(limit=page_size, cursor=cursor, **filters)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def get(self, event_id: str) -> StoredEvent:
        request = self._http.http.build_request("GET", _event_path(event_id))
        return cast(StoredEvent, (await self._http.send(request)).json())

    async def export(self, **filters: Unpack[Filters]) -> AsyncIterator[StoredEvent]:
        params = query({**filters, "format": "jsonl"})
        request = self._http.http.build_request("GET", "/v1/export", params=params)
        response = await self._http.send(request, stream=True)
        try:
            async for line in response.aiter_lines():
                if line:
                    yield cast(StoredEvent, json.loads(line))
        finally:
            await response.aclose()
