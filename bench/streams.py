"""Streams: delivery throughput to a local webhook against ingest throughput in the same run,
ingest with and without a stream delivering beside it, and end-to-end lag at 1,000 events/s.

    python -m bench.streams [--engines sqlite,postgres] [--events 30000] [--lag-seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
from tests.e2e.server import start_serve
from tests.streams.helpers import Receiver, receiver

from bench.observability import fresh
from trailkeeper.service import AuditService
from trailkeeper.store import open_store
from trailkeeper.streams.manage import StreamAdmin
from trailkeeper.streams.model import StreamIn

CLIENTS = 4
BATCH = 500


def _ingest(url: str, token: str, first: int, count: int) -> float:
    """Events/s of `count` events sent by CLIENTS clients in batches of BATCH."""
    per_client = count // CLIENTS

    def send(client_no: int) -> None:
        start = first + client_no * per_client
        with httpx.Client(
            base_url=url, timeout=60, headers={"authorization": f"Bearer {token}"}
        ) as client:
            for at in range(start, start + per_client, BATCH):
                batch = [
                    {"id": f"e{n}", "action": "a", "actor": {"id": "u"}}
                    for n in range(at, min(at + BATCH, start + per_client))
                ]
                client.post("/v1/events/batch", json={"events": batch}).raise_for_status()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_client * CLIENTS / (time.perf_counter() - started)


def _wait(condition: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("stream did not catch up")
        time.sleep(0.05)


def report(
    engine: str, say: Callable[..., None], events: int = 30_000, lag_seconds: float = 20.0
) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = fresh(engine, tmp, "streams")
        store = open_store(url)
        service = AuditService(store)
        service.create_tenant("acme")
        token = service.create_key("acme", "bench")[1]
        admin = StreamAdmin(store)
        with receiver(tmp) as rx:
            server, base = start_serve(
                tmp, database_url=url, rate_limit_per_second="0", checkpoint_interval_seconds="0"
            )
            try:
                alone = _ingest(base, token, 0, events)
                data = {
                    "name": "b",
                    "destination": {"type": "webhook", "url": rx.url},
                    "start": "end",
                    "batch_size": 1000,
                    "batch_wait_ms": 100,
                }
                stream, _ = admin.create("acme", msgspec.convert(data, StreamIn))
                beside = _ingest(base, token, events, events)
                _wait(lambda: admin.get("acme", stream.id).position == 2 * events - 1)
                admin.replay("acme", stream.id, log_index=0)
                started = time.perf_counter()
                _wait(lambda: admin.get("acme", stream.id).position == 2 * events - 1)
                delivery = 2 * events / (time.perf_counter() - started)
                say(
                    f"{engine:<9} streams: ingest {alone:,.0f} events/s alone, {beside:,.0f} with "
                    f"a stream delivering ({beside / alone:.0%}; >= 90%: "
                    f"{'ok' if beside >= 0.9 * alone else 'MISSED'})"
                )
                say(
                    f"{engine:<9} streams: webhook delivery {delivery:,.0f} events/s = "
                    f"{delivery / alone:.0%} of ingest (>= 50%: "
                    f"{'ok' if delivery >= 0.5 * alone else 'MISSED'})"
                )
                say(f"{engine:<9} streams: {_lag_p99(base, token, admin, rx, lag_seconds)}")
            finally:
                server.terminate()
                server.wait(timeout=30)
        store.close()


def _delivered(admin: StreamAdmin, stream_id: str) -> bool:
    return admin.get("acme", stream_id).last_success_at is not None


def _ingest_one(base: str, token: str) -> bool:
    """One event, so a new stream has something to deliver (it is then running)."""
    event = {"action": "warm-up", "actor": {"id": "u"}}
    httpx.post(f"{base}/v1/events", json=event, headers={"authorization": f"Bearer {token}"})
    time.sleep(0.5)
    return False


def _lag_p99(base: str, token: str, admin: StreamAdmin, rx: Receiver, seconds: float) -> str:
    """Steady 1,000 events/s (100-event batches every 0.1 s) to a fresh stream; lag per event
    is its arrival at the receiver minus its received_at."""
    data = {
        "name": "lag",
        "destination": {"type": "webhook", "url": rx.url},
        "start": "end",
        "batch_size": 1000,
        "batch_wait_ms": 200,
    }
    stream, _ = admin.create("acme", msgspec.convert(data, StreamIn))
    _wait(
        lambda: admin.get("acme", stream.id).last_success_at is not None or _ingest_one(base, token)
    )
    before = len(rx.records())
    sent = 0
    with httpx.Client(
        base_url=base, timeout=30, headers={"authorization": f"Bearer {token}"}
    ) as client:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            tick = time.monotonic()
            batch = [
                {"id": f"lag{sent + n}", "action": "a", "actor": {"id": "u"}} for n in range(100)
            ]
            client.post("/v1/events/batch", json={"events": batch}).raise_for_status()
            sent += 100
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    time.sleep(3)
    lags = []
    for record in rx.records()[before:]:
        body = msgspec.json.decode(record["body"])
        if body["data"]["stream"] == stream.id:
            for event in body["data"]["events"]:
                if event["id"].startswith("lag"):
                    received = datetime.fromisoformat(event["received_at"]).timestamp()
                    lags.append(record["at"] - received)
    lags.sort()
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else float("nan")
    return (
        f"end-to-end lag at 1,000 events/s: p50 {statistics.median(lags):.2f} s, "
        f"p99 {p99:.2f} s over {len(lags):,} events (< 2 s: {'ok' if p99 < 2 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    args = parser.parse_args()
    for engine in args.engines.split(","):
        report(engine, print, args.events, args.lag_seconds)


if __name__ == "__main__":
    main()
