"""HTTP with retries: one request, sent until it succeeds, fails for good, or is abandoned."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from trailkeeper_client._retry import RetryPolicy, api_error, retry_after, retryable, unsent

USER_AGENT = "trailkeeper-client-python"


class Abandoned(Exception):
    """Retrying stopped because the client is closing and its deadline has passed."""


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


class Transport:
    """A synchronous httpx client plus the retry loop."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )
        self.retry = retry

    def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        idempotent: bool = True,
        forever: bool = False,
        deadline: Callable[[], float | None] = lambda: None,
        stop: threading.Event | None = None,
    ) -> httpx.Response:
        """The response to `request`, retried on connection errors, 5xx and 429 (`forever`, or
        up to the policy's attempts); raises ApiError for any other 4xx (or when attempts run
        out), Abandoned past `deadline()`. A request that is not `idempotent` is retried only
        when the server cannot have acted on it (see _retry.unsent)."""
        attempt = 0
        limit = None if forever else self.retry.max_attempts
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as error:
                if (limit is not None and attempt >= limit) or not unsent(error, idempotent):
                    raise
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                if not retryable(response.status_code, idempotent) or (
                    limit is not None and attempt >= limit
                ):
                    raise api_error(response)
                wait = retry_after(response)
            _sleep(self.retry.delay(attempt, wait), deadline(), stop)

    def close(self) -> None:
        self.http.close()


def _sleep(seconds: float, deadline: float | None, stop: threading.Event | None) -> None:
    """Wait `seconds`, but never past `deadline` (monotonic): then give up."""
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Abandoned
        seconds = min(seconds, left)
    if stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)


class AsyncTransport:
    """The asynchronous twin of Transport, for AsyncClient's reads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )
        self.retry = retry

    async def send(
        self, request: httpx.Request, *, stream: bool = False, idempotent: bool = True
    ) -> httpx.Response:
        attempt, limit = 0, self.retry.max_attempts
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = await self.http.send(request, stream=stream)
            except httpx.TransportError as error:
                if (limit is not None and attempt >= limit) or not unsent(error, idempotent):
                    raise
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    await response.aread()
                if not retryable(response.status_code, idempotent) or (
                    limit is not None and attempt >= limit
                ):
                    raise api_error(response)
                wait = retry_after(response)
            await asyncio.sleep(self.retry.delay(attempt, wait))

    async def close(self) -> None:
        await self.http.aclose()


def query(filters: dict[str, Any]) -> dict[str, str]:
    """Filters as query parameters: None left out, datetimes in RFC 3339."""
    params: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if hasattr(value, "isoformat"):
            if getattr(value, "tzinfo", None) is None:
                raise ValueError(f"{name} needs a timezone (the API requires an offset)")
            value = value.isoformat()
        params[name] = str(value)
    return params
