"""kill -9 at random moments loses nothing acknowledged and never half-stores a batch."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.e2e.test_serve import free_port
from trailkeeper import verifier
from trailkeeper.formats import export_chunks
from trailkeeper.model import EventFilter
from trailkeeper.service import AuditService

ROUNDS = int(os.environ.get("TRAILKEEPER_CRASH_ROUNDS", "5"))
BATCH = 25


def start_server(database_url: str, port: int, cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    env["TRAILKEEPER_RATE_LIMIT_PER_SECOND"] = "0"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trailkeeper",
            "--database-url",
            database_url,
            "serve",
            "--port",
            str(port),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


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
    _, token = service.create_key("acme", "crash test")
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(20261123)
    acknowledged: set[int] = set()
    in_doubt: set[int] = set()
    number = 0
    kills = 0
    for _ in range(ROUNDS):
        port = free_port()
        server = start_server(database_url, port, tmp_path)
        killer = threading.Timer(rng.uniform(0.3, 1.2), server.send_signal, [signal.SIGKILL])
        killer.start()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
        ) as client:
            while True:
                number += 1
                try:
                    response = client.post("/v1/events/batch", json=batch(number))
                except httpx.TransportError:
                    in_doubt.add(number)  # the server died during this request
                    break
                assert response.status_code == 201, response.text
                acknowledged.add(number)
        killer.join()
        server.wait(timeout=10)
        assert server.returncode == -signal.SIGKILL
        kills += 1

    events = list(service.export("acme", EventFilter()))
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
    lines = [line for chunk in export_chunks(iter(events), "jsonl") for line in chunk.splitlines()]
    report = verifier.verify_export(lines, checkpoint)
    assert report.ok, report.message
