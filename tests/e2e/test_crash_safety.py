"""kill -9 at random moments loses nothing acknowledged and never half-stores a batch."""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import start_serve
from trailkeeper import verifier
from trailkeeper.model import EventFilter
from trailkeeper.query import Query
from trailkeeper.service import AuditService

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("TRAILKEEPER_CRASH_ROUNDS", "5"))
BATCH = 25


def batch(number: int) -> dict[str, object]:
    return {
        "events": [
            {
                "id": f"b{number:05d}-{i:02d}",
                "action": "created",
                "actor": {"id": f"u{i % 3}"},
                "metadata": {"batch": number, "i": i},
            }
            for i in range(BATCH)
        ]
    }


def test_sigkill_rounds_lose_nothing(
    service: AuditService, database_url: str, tmp_path: Path
) -> None:
    """Three clients post at once, so batches also share transactions (group commit) when
    the server dies."""
    _, token = service.create_key("acme", "crash test")
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(20261123)
    acknowledged: set[int] = set()
    in_doubt: set[int] = set()
    numbers = itertools.count(1)
    lock = threading.Lock()
    failures: list[str] = []
    kills = 0

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            while True:
                with lock:
                    number = next(numbers)
                try:
                    response = client.post("/v1/events/batch", json=batch(number))
                except httpx.TransportError:
                    with lock:
                        in_doubt.add(number)  # the server died during this request
                    return
                with lock:
                    if response.status_code == 201:
                        acknowledged.add(number)
                    else:
                        failures.append(response.text)

    for _ in range(ROUNDS):
        server, url = start_serve(tmp_path, database_url=database_url, rate_limit_per_second="0")
        killer = threading.Timer(rng.uniform(0.3, 1.2), server.send_signal, [signal.SIGKILL])
        killer.start()
        clients = [threading.Thread(target=client_loop, args=(url,)) for _ in range(3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        killer.join()
        server.wait(timeout=10)
        assert server.returncode == -signal.SIGKILL
        kills += 1
    assert failures == []

    events = list(service.store.iter_events("acme", Query()))
    per_batch = Counter(int(e.id[1:6]) for e in events)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "no event is stored twice"
    for number in acknowledged:
        assert per_batch[number] == BATCH, f"acknowledged batch {number} lost events"
    for number in in_doubt:
        assert per_batch[number] in (0, BATCH), f"batch {number} was half-stored"
    assert set(per_batch) <= acknowledged | in_doubt
    assert kills == ROUNDS
    assert len(acknowledged) >= ROUNDS, "each round stored something before the kill"

    # The ledger survived every crash: gap-free and verifiable against a fresh checkpoint.
    assert sorted(e.log_index for e in events) == list(range(len(events)))
    checkpoint = verifier.parse_checkpoint(service.checkpoint("acme").note, service.signer.vkey)
    lines = [line for chunk in service.export("acme", EventFilter()) for line in chunk.splitlines()]
    report = verifier.verify_export(lines, checkpoint)
    assert report.ok, report.message
