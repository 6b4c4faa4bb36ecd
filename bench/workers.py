"""`serve --workers 2` against `--workers 1`: HTTP batch ingest (8 clients) and 100-event
pages (8 clients), each server on a fresh database, measured in turns.

    python -m bench.workers [--engines sqlite,postgres] [--phases 4]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.server import clean_env, free_port, wait_healthy

from bench.data import json_batches
from bench.observability import fresh
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

WORKERS = (1, 2)
CLIENTS = 8
BATCHES_PER_PHASE = 40  # of 500 events
PAGES_PER_PHASE = 800


def start(engine: str, tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], str, str]:
    url = fresh(engine, tmp, f"workers{workers}")
    service = AuditService(open_store(url))
    service.create_tenant("acme")
    token = service.create_key("acme", "bench")[1]
    service.close()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trailkeeper",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=clean_env(database_url=url, rate_limit_per_second="0", log_level="warning"),
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    return proc, base, token


def in_parallel(base: str, token: str, jobs: list[Any], one: Any) -> float:
    """Seconds for CLIENTS threads to work through `jobs`, `one(client, job)` each."""
    queue, lock = list(jobs), threading.Lock()

    def client_loop() -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    job = queue.pop()
                one(client, job)

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def post(client: httpx.Client, body: bytes) -> None:
    assert client.post("/v1/events/batch", content=body).status_code == 201


def page(client: httpx.Client, _: int) -> None:
    assert client.get("/v1/events", params={"limit": 100}).status_code == 200


def measure(engine: str, phases: int = 4) -> dict[tuple[int, str], float]:
    """Events/s and pages/s per worker count."""
    seconds: dict[tuple[int, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        servers = {n: start(engine, Path(tmp_dir), n) for n in WORKERS}
        try:
            bodies = json_batches(phases * BATCHES_PER_PHASE * 500, 500)
            for phase in range(phases):
                order = WORKERS if phase % 2 == 0 else WORKERS[::-1]
                part = bodies[phase * BATCHES_PER_PHASE : (phase + 1) * BATCHES_PER_PHASE]
                for n in order:
                    _, base, token = servers[n]
                    took = in_parallel(base, token, part, post)
                    seconds[(n, "ingest")] = seconds.get((n, "ingest"), 0.0) + took
                for n in order:
                    _, base, token = servers[n]
                    took = in_parallel(base, token, list(range(PAGES_PER_PHASE)), page)
                    seconds[(n, "pages")] = seconds.get((n, "pages"), 0.0) + took
        finally:
            for proc, _, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    events, pages = phases * BATCHES_PER_PHASE * 500, phases * PAGES_PER_PHASE
    return {
        (n, what): (events if what == "ingest" else pages) / seconds[(n, what)]
        for n in WORKERS
        for what in ("ingest", "pages")
    }


def report(engine: str, say: Any = print) -> None:
    rates = measure(engine)
    ingest = [rates[(n, "ingest")] for n in WORKERS]
    pages = [rates[(n, "pages")] for n in WORKERS]
    say(
        f"{engine:8} --workers 2 vs 1: ingest {ingest[1]:,.0f} vs {ingest[0]:,.0f} events/s "
        f"({ingest[1] / ingest[0]:.2f}x), pages {pages[1]:,.0f} vs {pages[0]:,.0f} /s "
        f"({pages[1] / pages[0]:.2f}x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    for engine in args.engines.split(","):
        report(engine)
