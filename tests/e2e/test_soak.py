"""A bounded soak: mixed ingest and reads against a real server on 127.0.0.1.

No errors, server memory stays within a bound, and every acknowledged event is readable
afterwards. TRAILKEEPER_SOAK_SECONDS sets the duration (default 30 s in the suite; the
documented longer run uses 600).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import start_serve
from trailkeeper.query import Query
from trailkeeper.service import AuditService
from trailkeeper.store.sqlite import CACHE_BOUND_MIB

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("TRAILKEEPER_SOAK_SECONDS", "30"))
# Growth allowed after warm-up: SQLite's page caches may fill up to their bound; anything
# beyond that bound plus a margin would be a leak.
RSS_GROWTH_LIMIT_MB = CACHE_BOUND_MIB + 25


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(SECONDS + 120)
def test_soak_mixed_load(service: AuditService, database_url: str, tmp_path: Path) -> None:
    _, token = service.create_key("acme", "soak")
    headers = {"Authorization": f"Bearer {token}"}
    server, base = start_serve(
        tmp_path,
        database_url=database_url,
        rate_limit_per_second="0",
        checkpoint_interval_seconds="2",
    )
    errors: list[str] = []
    written: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:

        def writer(worker: int) -> None:
            n = 0
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                while not stop.is_set():
                    n += 1
                    ids = [f"w{worker}-{n}-{i}" for i in range(50)]
                    events = [
                        {
                            "id": i,
                            "action": random.choice(["created", "updated"]),
                            "actor": {"id": f"u{random.randint(1, 20)}"},
                            "metadata": {"n": n},
                        }
                        for i in ids
                    ]
                    response = client.post("/v1/events/batch", json={"events": events})
                    if response.status_code != 201:
                        errors.append(f"write {response.status_code} {response.text[:200]}")
                        continue
                    with lock:
                        written.extend(ids)

        def reader() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                while not stop.is_set():
                    path = random.choice(
                        [
                            "/v1/events?limit=100",
                            "/v1/events?actor_id=u3&limit=50",
                            "/v1/events?action=created&limit=20",
                            "/audit-events",
                            "/v1/ledger/checkpoint",
                        ]
                    )
                    response = client.get(path)
                    if response.status_code != 200:
                        errors.append(f"read {path} {response.status_code}")
                        continue
                    cursor = response.json().get("next_cursor")
                    if cursor and path.startswith("/v1/events"):
                        follow = client.get(f"{path}&cursor={cursor}")  # same filters
                        if follow.status_code != 200:
                            errors.append(f"follow {path} {follow.status_code}")

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(min(5.0, SECONDS / 4))
        warm = rss_mb(server.pid)
        time.sleep(max(0.0, SECONDS - min(5.0, SECONDS / 4)))
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        final = rss_mb(server.pid)
    finally:
        stop.set()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert errors == [], errors[:5]
    assert len(written) > 1000, "the soak wrote a meaningful amount"
    assert final - warm < RSS_GROWTH_LIMIT_MB, f"RSS grew from {warm:.0f} to {final:.0f} MB"
    stored = {e.id for e in service.store.iter_events("acme", Query())}
    assert set(written) <= stored, "every acknowledged event is readable"
    print(f"soak: {SECONDS:.0f}s, {len(written)} events, RSS {warm:.0f} -> {final:.0f} MB")
