"""Delivery against real receiver processes, on both engines: order, signatures, retries,
`failing`, replay, filters, purged prefixes, one deliverer per stream, secret rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from standardwebhooks.webhooks import Webhook

from tests.helpers import tamper
from tests.streams.helpers import ingest, receiver, wait_for
from trailkeeper.service import AuditService
from trailkeeper.store import Store
from trailkeeper.streams.delivery import DeliveryOptions, StreamDeliverer
from trailkeeper.streams.manage import StreamAdmin
from trailkeeper.streams.model import Stream, StreamIn

FAST = DeliveryOptions(
    poll_seconds=0.05,
    lease_seconds=2,
    retry_budget=3,
    first_backoff_seconds=0.05,
    max_backoff_seconds=0.2,
)


@pytest.fixture
def deliverer(store: Store) -> Iterator[StreamDeliverer]:
    running = StreamDeliverer(store, FAST)
    running.start()
    yield running
    running.stop()


def make_stream(store: Store, url: str, **extra: Any) -> tuple[Stream, str | None]:
    data = {"name": "s", "destination": {"type": "webhook", "url": url}, "batch_wait_ms": 0}
    data.update(extra)
    return StreamAdmin(store).create("acme", msgspec.convert(data, StreamIn))


def first_arrivals_in_order(log_indexes: list[int]) -> int:
    """Check at-least-once, in order: each index seen for the first time is the one after the
    highest seen before (no gap, nothing early). Returns the duplicates."""
    highest, seen, duplicates = -1, set(), 0
    for index in log_indexes:
        if index in seen:
            duplicates += 1
            continue
        assert index == highest + 1, f"{index} arrived before {highest + 1}"
        seen.add(index)
        highest = index
    return duplicates


def test_webhook_gets_every_event_in_order_signed_despite_failures(
    service: AuditService, store: Store, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    with receiver(
        tmp_path, "--fail-rate", "0.3", "--max-delay", "0.02", "--secret-file", str(secret_file)
    ) as rx:
        stream, secret = make_stream(store, rx.url, batch_size=50)
        assert secret is not None
        assert secret.startswith("whsec_")
        secret_file.write_text(secret)
        ingest(service, "acme", 1000)
        running = StreamDeliverer(store, FAST)
        running.start()
        try:
            wait_for(lambda: len({e["log_index"] for e in rx.webhook_events()}) == 1000)
        finally:
            running.stop()
        received = rx.webhook_events()
        assert first_arrivals_in_order([e["log_index"] for e in received]) == 0
        assert [e["id"] for e in received] == [f"evt-{n:06d}" for n in range(1000)]
        record = rx.records()[0]
        assert record["headers"]["webhook-id"].startswith(stream.id)
        assert record["headers"]["content-type"] == "application/json"
    shown = StreamAdmin(store).get("acme", stream.id)
    assert shown.position == 999
    assert shown.failures > 0  # the receiver refused about 30%
    assert shown.delivered_events == 1000
    assert not shown.failing


def test_filters_send_only_matches_and_the_position_passes_the_rest(
    service: AuditService, store: Store, tmp_path: Path, deliverer: StreamDeliverer
) -> None:
    with receiver(tmp_path) as rx:
        stream, _ = make_stream(store, rx.url, filters={"actor_id": "u7"})
        ingest(service, "acme", 20)
        wait_for(lambda: StreamAdmin(store).get("acme", stream.id).position == 19)
        assert [e["id"] for e in rx.webhook_events()] == ["evt-000007"]


def test_a_failing_destination_keeps_the_position_then_catches_up(
    service: AuditService, store: Store, tmp_path: Path, deliverer: StreamDeliverer
) -> None:
    admin = StreamAdmin(store)
    with receiver(tmp_path, "--fail-rate", "1") as down:
        stream, _ = make_stream(store, down.url)
        ingest(service, "acme", 30)
        wait_for(lambda: admin.get("acme", stream.id).failing)
        failing = admin.get("acme", stream.id)
        assert failing.position == -1  # never skips
        assert failing.failures >= FAST.retry_budget
        assert failing.last_error is not None
        assert "HTTP 503" in failing.last_error
        status = admin.status(failing)
        assert status.state == "failing"
        assert status.lag_events == 30
        assert status.lag_seconds >= 0
        port = down.port
    # The destination comes back on the same address: the stream catches up, in order.
    with receiver(tmp_path, port=port) as up:
        wait_for(lambda: admin.get("acme", stream.id).position == 29, timeout=30)
        assert [e["log_index"] for e in up.webhook_events()] == list(range(30))
        assert not admin.get("acme", stream.id).failing


def test_replay_delivers_again_from_a_log_index(
    service: AuditService, store: Store, tmp_path: Path, deliverer: StreamDeliverer
) -> None:
    admin = StreamAdmin(store)
    with receiver(tmp_path) as rx:
        stream, _ = make_stream(store, rx.url)
        ingest(service, "acme", 10)
        wait_for(lambda: admin.get("acme", stream.id).position == 9)
        admin.replay("acme", stream.id, log_index=6)
        wait_for(lambda: len(rx.webhook_events()) == 14)
        assert [e["log_index"] for e in rx.webhook_events()][10:] == [6, 7, 8, 9]


def test_a_purged_prefix_is_skipped_and_counted(
    service: AuditService,
    store: Store,
    database_url: str,
    tmp_path: Path,
    deliverer: StreamDeliverer,
) -> None:
    ingest(service, "acme", 20)
    # What retention leaves behind: the log's first events are gone.
    tamper(database_url, "DELETE FROM events WHERE tenant = 'acme' AND log_index < 5")
    admin = StreamAdmin(store)
    with receiver(tmp_path) as rx:
        stream, _ = make_stream(store, rx.url)
        wait_for(lambda: admin.get("acme", stream.id).position == 19)
        assert [e["log_index"] for e in rx.webhook_events()] == list(range(5, 20))
        assert admin.get("acme", stream.id).purged == 5


def test_two_deliverers_never_deliver_one_stream_at_once(
    service: AuditService, store: Store, tmp_path: Path
) -> None:
    """Without the lease, both would send every batch: the receiver would see each twice."""
    others = [StreamDeliverer(store, FAST) for _ in range(3)]
    with receiver(tmp_path) as rx:
        make_stream(store, rx.url, batch_size=10)
        for running in others:
            running.start()
        try:
            for round_ in range(5):
                ingest(service, "acme", 40, start=round_ * 40)
                wait_for(lambda n=round_: len(rx.webhook_events()) >= 40 * (n + 1))
        finally:
            for running in others:
                running.stop()
        assert first_arrivals_in_order([e["log_index"] for e in rx.webhook_events()]) == 0


def test_rotation_signs_with_both_secrets_during_the_overlap(
    service: AuditService, store: Store, tmp_path: Path, deliverer: StreamDeliverer
) -> None:
    admin = StreamAdmin(store)
    with receiver(tmp_path) as rx:
        stream, old = make_stream(store, rx.url)
        _, new = admin.rotate_secret("acme", stream.id, overlap_seconds=600)
        ingest(service, "acme", 1)
        wait_for(lambda: len(rx.records()) == 1)
        record = rx.records()[0]
        assert len(record["headers"]["webhook-signature"].split(" ")) == 2
        body = record["body"].encode()
        for secret in (old, new):  # a receiver with either secret accepts the request
            Webhook(secret).verify(body, record["headers"])
        stream, newest = admin.rotate_secret("acme", stream.id, overlap_seconds=0)
        ingest(service, "acme", 1, start=1)
        wait_for(lambda: len(rx.records()) == 2)
        signature = rx.records()[1]["headers"]["webhook-signature"]
        assert len(signature.split(" ")) == 1
        Webhook(newest).verify(rx.records()[1]["body"].encode(), rx.records()[1]["headers"])
