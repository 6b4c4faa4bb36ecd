"""Senders: deliver one batch to one destination, or raise `DeliveryError`.

A batch counts as delivered only when the destination acknowledged all of it: an HTTP 2xx,
or a JetStream PubAck for every message. Anything else (a timeout, a refused connection, a
3xx/4xx/5xx) is a failed attempt that the deliverer retries; nothing here retries itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from trailkeeper import __version__
from trailkeeper.model import Event
from trailkeeper.streams import payloads
from trailkeeper.streams.model import Stream

REQUEST_TIMEOUT_SECONDS = 10.0
USER_AGENT = f"trailkeeper/{__version__} (streams)"


class DeliveryError(Exception):
    """A failed attempt, with the reason shown in the stream's `last_error`."""


class Sender(Protocol):
    async def send(self, stream: Stream, events: Sequence[Event], now: datetime) -> int:
        """Deliver `events` (non-empty, log order); the number the destination already
        had (JetStream de-duplication; 0 for HTTP, which cannot tell)."""

    async def close(self) -> None: ...


class HttpSender:
    """Webhook, Splunk HEC and Datadog: one POST per batch over a shared connection pool."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT_SECONDS,
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
        )

    async def send(self, stream: Stream, events: Sequence[Event], now: datetime) -> int:
        url, headers, body = request_for(stream, events, now)
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if not 200 <= response.status_code < 300:
            text = response.text[:300].strip()
            raise DeliveryError(f"HTTP {response.status_code}" + (f": {text}" if text else ""))
        return 0

    async def close(self) -> None:
        await self._client.aclose()


def request_for(
    stream: Stream, events: Sequence[Event], now: datetime
) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of one batch's POST, by destination type."""
    config = stream.config
    kind = stream.destination
    if kind == "webhook":
        body = payloads.webhook_body(stream.id, stream.tenant, events, now)
        msg_id = payloads.webhook_id(stream.id, events)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": payloads.webhook_signatures(config, msg_id, timestamp, body),
        }
        return config["url"], headers, body
    if kind == "splunk_hec":
        headers = {
            "content-type": "application/json",
            "authorization": f"Splunk {config['token']}",
        }
        url = config["url"].rstrip("/") + payloads.SPLUNK_PATH
        return url, headers, payloads.splunk_body(config, events)
    if kind == "datadog":
        headers = {"content-type": "application/json", "dd-api-key": config["api_key"]}
        url = config["url"].rstrip("/") + payloads.DATADOG_PATH
        return url, headers, payloads.datadog_body(config, events)
    raise ValueError(f"not an HTTP destination: {kind}")


class NatsSender:
    """JetStream: one message per event, published in log order, then every PubAck awaited.
    One connection per server URL and credential, kept open between batches."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str | None], tuple[NatsClient, JetStreamContext]] = {}

    async def send(self, stream: Stream, events: Sequence[Event], now: datetime) -> int:
        config = stream.config
        try:
            js = await self._jetstream(config)
            pending = []
            for event in events:
                payload, headers = payloads.nats_message(event)
                pending.append(await js.publish_async(config["subject"], payload, headers=headers))
            acks = await asyncio.wait_for(asyncio.gather(*pending), REQUEST_TIMEOUT_SECONDS)
        except TimeoutError:
            raise DeliveryError(
                f"NATS: no PubAck in time (is a JetStream stream capturing {config['subject']!r}?)"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            await self._forget(config)
            raise DeliveryError(f"NATS: {type(exc).__name__}: {exc}") from None
        return sum(1 for ack in acks if ack.duplicate)

    async def _jetstream(self, config: dict[str, Any]) -> JetStreamContext:
        key = (config["url"], config.get("token"))
        found = self._connections.get(key)
        if found is not None and found[0].is_connected:
            return found[1]
        if found is not None:
            await _close_quietly(found[0])
        client = await nats.connect(
            config["url"],
            token=config.get("token"),
            connect_timeout=REQUEST_TIMEOUT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
        js = client.jetstream(timeout=REQUEST_TIMEOUT_SECONDS)
        self._connections[key] = (client, js)
        return js

    async def _forget(self, config: dict[str, Any]) -> None:
        found = self._connections.pop((config["url"], config.get("token")), None)
        if found is not None:
            await _close_quietly(found[0])

    async def close(self) -> None:
        for client, _ in self._connections.values():
            await _close_quietly(client)
        self._connections.clear()


async def _close_quietly(client: NatsClient) -> None:
    try:
        await client.close()
    except Exception:  # noqa: BLE001 (closing a broken connection; nothing to do)
        return


class Senders:
    """The sender for each destination type (one HTTP pool, one NATS connection set)."""

    def __init__(self) -> None:
        self.http = HttpSender()
        self.nats = NatsSender()

    def for_stream(self, stream: Stream) -> Sender:
        return self.nats if stream.destination == "nats" else self.http

    async def close(self) -> None:
        await self.http.close()
        await self.nats.close()
