"""Splunk HEC, Datadog and NATS JetStream: the requests field by field against the vendors'
documented formats, delivered through the real deliverer (both engines).

The docs' examples below are quoted from memory of the vendors' public documentation (this
machine has no internet access): Splunk's "Format events for HTTP Event Collector" and
"HTTP Event Collector REST API endpoints" pages, and Datadog's "Logs API: Send logs" (v2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.streams.helpers import NATS_URL, ensure_nats, ingest, receiver, wait_for
from tests.streams.test_delivery import FAST, first_arrivals_in_order
from trailkeeper.service import AuditService
from trailkeeper.store import Store
from trailkeeper.streams.delivery import StreamDeliverer
from trailkeeper.streams.manage import StreamAdmin
from trailkeeper.streams.model import StreamIn

# Splunk, "Format events for HTTP Event Collector" (batch of events, concatenated objects):
#   curl https://localhost:8088/services/collector/event -H "Authorization: Splunk <token>"
#     -d '{"time": 1426279439, "host": "localhost", "source": "random-data-generator",
#          "sourcetype": "my_sample_data", "index": "main",
#          "event": {"message": "Something happened", "severity": "INFO"}}'
# and "You can batch events ... {"event": "Pony 1 has left the barn"}{"event": "Pony 2 has
# left the barn"}". Keys: time (epoch seconds, decimals allowed), host, source, sourcetype,
# index, event.
SPLUNK_KEYS = {"time", "host", "source", "sourcetype", "index", "event"}
# Datadog, "Send logs" (POST https://http-intake.logs.datadoghq.com/api/v2/logs,
# header DD-API-KEY):
#   [{"ddsource": "nginx", "ddtags": "env:staging,version:5.1", "hostname": "i-012345678",
#     "message": "2019-11-19T14:37:58,995 INFO [process.name][20081] Hello World",
#     "service": "payment"}]
DATADOG_KEYS = {"ddsource", "ddtags", "hostname", "message", "service"}


def _create(store: Store, destination: dict[str, Any], **extra: Any) -> str:
    data = {"name": "s", "destination": destination, "batch_wait_ms": 0, **extra}
    stream, _ = StreamAdmin(store).create("acme", msgspec.convert(data, StreamIn))
    return stream.id


def _split_concatenated(body: str) -> list[dict[str, Any]]:
    decoder, items, at = json.JSONDecoder(), [], 0
    while at < len(body):
        item, at = decoder.raw_decode(body, at)
        items.append(item)
    return items


def test_splunk_hec_requests_follow_the_hec_event_format(
    service: AuditService, store: Store, tmp_path: Path
) -> None:
    with receiver(tmp_path) as rx:
        base = rx.url.removesuffix("/hook")
        _create(
            store,
            {
                "type": "splunk_hec",
                "url": base,
                "token": "tok-123",
                "index": "audit",
                "host": "tk-1",
            },
            batch_size=3,
        )
        ingest(service, "acme", 3)
        running = StreamDeliverer(store, FAST)
        running.start()
        try:
            wait_for(lambda: len(rx.records()) == 1)
        finally:
            running.stop()
        record = rx.records()[0]
    assert record["path"] == "/services/collector/event"
    assert record["headers"]["authorization"] == "Splunk tok-123"
    items = _split_concatenated(record["body"])
    assert len(items) == 3
    stored = store.events_after("acme", -1, 3)
    for item, event in zip(items, stored, strict=True):
        assert set(item) == SPLUNK_KEYS
        assert isinstance(item["time"], float | int)
        assert item["time"] == pytest.approx(event.occurred_at.timestamp(), abs=0.001)
        assert item["host"] == "tk-1"
        assert item["source"] == "trailkeeper:acme"
        assert item["sourcetype"] == "trailkeeper:audit"
        assert item["index"] == "audit"
        assert item["event"]["id"] == event.id
        assert item["event"]["log_index"] == event.log_index
        assert item["event"]["actor"]["id"] == event.actor.id


def test_datadog_requests_follow_the_logs_intake_format(
    service: AuditService, store: Store, tmp_path: Path
) -> None:
    with receiver(tmp_path, "--status", "202") as rx:
        base = rx.url.removesuffix("/hook")
        _create(
            store,
            {
                "type": "datadog",
                "url": base,
                "api_key": "dd-key",
                "service": "audit",
                "hostname": "tk-1",
                "tags": "env:test",
            },
            batch_size=2,
        )
        ingest(service, "acme", 2)
        running = StreamDeliverer(store, FAST)
        running.start()
        try:
            wait_for(lambda: len(rx.records()) == 1)
        finally:
            running.stop()
        record = rx.records()[0]
    assert record["path"] == "/api/v2/logs"
    assert record["headers"]["dd-api-key"] == "dd-key"
    assert record["headers"]["content-type"] == "application/json"
    logs = json.loads(record["body"])
    assert isinstance(logs, list)
    assert len(logs) == 2
    for log, n in zip(logs, range(2), strict=True):
        assert set(log) == DATADOG_KEYS
        assert log["ddsource"] == "trailkeeper"
        assert log["service"] == "audit"
        assert log["hostname"] == "tk-1"
        assert log["ddtags"] == "env:test,tenant:acme,action:user.login"
        assert isinstance(log["message"], str)
        assert json.loads(log["message"])["id"] == f"evt-{n:06d}"


async def _jetstream_count(stream_name: str, subject: str, *, create: bool) -> int:
    import nats

    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        if create:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream_name)
            await js.add_stream(name=stream_name, subjects=[subject])
        info = await js.stream_info(stream_name)
        return int(info.state.messages)
    finally:
        await client.close()


async def _jetstream_log_indexes(stream_name: str, count: int) -> list[int]:
    import nats

    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        indexes = []
        for seq in range(1, count + 1):
            message = await js.get_msg(stream_name, seq)
            assert message.headers is not None
            assert message.headers["Nats-Msg-Id"].startswith("acme/evt-")
            assert message.data is not None
            indexes.append(json.loads(message.data)["log_index"])
        return indexes
    finally:
        await client.close()


def test_nats_jetstream_gets_each_event_once_across_restarts_and_replays(
    service: AuditService, store: Store, database_url: str
) -> None:
    ensure_nats()
    engine = database_url.split(":")[0]
    name, subject = f"TK_TEST_{engine.upper()}", f"tk.test.{engine}"
    asyncio.run(_jetstream_count(name, subject, create=True))
    stream_id = _create(
        store, {"type": "nats", "url": NATS_URL, "subject": subject}, batch_size=200
    )
    admin = StreamAdmin(store)
    total = 0
    for round_ in range(4):  # a deliverer stopped mid-stream, then a replay: resent events
        ingest(service, "acme", 1000, start=total)
        total += 1000
        running = StreamDeliverer(store, FAST)
        running.start()
        wait_for(lambda n=total: admin.get("acme", stream_id).position >= n - 500)
        running.stop()
        if round_ == 2:
            admin.replay("acme", stream_id, log_index=0)
    running = StreamDeliverer(store, FAST)
    running.start()
    try:
        wait_for(lambda: admin.get("acme", stream_id).position == total - 1)
    finally:
        running.stop()
    # JetStream de-duplicated every resent message (Nats-Msg-Id): one message per event.
    assert asyncio.run(_jetstream_count(name, subject, create=False)) == total
    indexes = asyncio.run(_jetstream_log_indexes(name, total))
    assert first_arrivals_in_order(indexes) == 0
    assert admin.get("acme", stream_id).delivered_events >= total
