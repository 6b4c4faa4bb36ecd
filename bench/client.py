"""The Python client against raw HTTP batch ingest of the same server, in the same run.

(a) events/s one Python process hands to `trailkeeper_client.Client` and has acknowledged
    (first `record` to the end of `flush`), against httpx posting the same events (dicts,
    encoded with json.dumps as they are sent) in 500-event batches from as many threads as the
    client has senders (2), with `Prefer: return=minimal` as the client sends: target >= 80%.
    The sides run in turns (phases of PHASE events), each into its own tenant of one server.
(b) the time `record()` takes on the caller's thread while the sender is delivering: p99 < 20 us.

    python -m bench.client [--engines sqlite,postgres] [--events 40000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from tests.e2e.server import start_serve

from bench.data import payload
from trailkeeper.service import AuditService
from trailkeeper.store import open_store
from trailkeeper_client import Client

PG_ADMIN = os.environ.get(
    "TRAILKEEPER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PHASE = 10_000
BATCH = 500
SENDERS = 2


def _database(engine: str, tmp: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp / 'client-bench.db'}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "tk_bench_client" WITH (FORCE)')
        conn.execute('CREATE DATABASE "tk_bench_client"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/tk_bench_client"


def _events(count: int, offset: int) -> list[dict[str, Any]]:
    """bench/data.py's events, without ids: the client makes its own (the raw side sends these
    ids; both sides send the same bytes otherwise)."""
    rng = random.Random(offset)
    events = [payload(offset + n, rng) for n in range(count)]
    for event in events:
        del event["id"]
    return events


def _raw_phase(http: httpx.Client, events: list[dict[str, Any]], offset: int) -> float:
    """Seconds SENDERS threads sharing one httpx client take to post `events` in 500-event
    batches, each encoded with json.dumps in the timed region as an application's own code
    would (the client's concurrency: its default of 2 sender threads)."""
    bodies = [
        [
            {"id": f"raw-{offset + first + n}", **event}
            for n, event in enumerate(events[first : first + BATCH])
        ]
        for first in range(0, len(events), BATCH)
    ]
    queue = list(reversed(bodies))
    lock = threading.Lock()

    def post() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            response = http.post("/v1/events/batch", content=json.dumps({"events": body}))
            assert response.status_code == 201, response.text

    threads = [threading.Thread(target=post) for _ in range(SENDERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _client_phase(client: Client, events: list[dict[str, Any]], samples: list[int]) -> float:
    """Seconds from the first `record` to the end of `flush`; each call's time in `samples`."""
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for event in events:
        before = clock()
        client.record(event)  # type: ignore[arg-type]
        samples.append(clock() - before)
    assert client.flush(timeout=300)
    return time.perf_counter() - start


def measure(engine: str, tmp: Path, events: int) -> tuple[float, float, float, float]:
    """(raw events/s, client events/s, record() median us, record() p99 us)."""
    url = _database(engine, tmp)
    service = AuditService(open_store(url))
    tokens = {}
    for tenant in ("raw", "client"):
        service.create_tenant(tenant)
        tokens[tenant] = service.create_key(tenant, "bench")[1]
    service.close()
    server, base = start_serve(tmp, database_url=url, rate_limit_per_second="0")
    seconds = {"raw": 0.0, "client": 0.0}
    samples: list[int] = []
    errors: list[object] = []
    headers = {
        "Authorization": f"Bearer {tokens['raw']}",
        "Content-Type": "application/json",
        "Prefer": "return=minimal",
    }
    try:
        with (
            httpx.Client(base_url=base, headers=headers, timeout=60) as http,
            Client(base, tokens["client"], batch_size=BATCH, on_error=errors.append) as client,
        ):
            for n, first in enumerate(range(0, events, PHASE)):
                phase = _events(min(PHASE, events - first), first)
                order = ("raw", "client") if n % 2 == 0 else ("client", "raw")
                for side in order:
                    if side == "raw":
                        seconds[side] += _raw_phase(http, phase, first)
                    else:
                        seconds[side] += _client_phase(client, phase, samples)
            assert not errors, errors[:3]
            assert client.stats.delivered == events
    finally:
        server.terminate()
        server.wait(30)
    samples.sort()
    median, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    return events / seconds["raw"], events / seconds["client"], median / 1000, p99 / 1000


def report(engine: str, tmp: Path, say: Callable[[str], None], events: int = 40_000) -> None:
    raw, client, median, p99 = measure(engine, tmp, events)
    say(
        f"{engine:8} {events:>9,} Python client        {client:>10,.0f} events/s = "
        f"{client / raw:.0%} of raw HTTP batches ({raw:,.0f}/s, {SENDERS} senders each) "
        f"(>= 80%: {'met' if client >= 0.8 * raw else 'MISSED'})"
    )
    say(
        f"{engine:8} {events:>9,}   record() on the caller's thread: median {median:.1f} us, "
        f"p99 {p99:.1f} us (< 20 us: {'met' if p99 < 20 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=40_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            report(engine, Path(tmp), lambda line: print(line, flush=True), args.events)


if __name__ == "__main__":
    main()
