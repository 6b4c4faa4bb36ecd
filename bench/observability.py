"""What metrics and JSON access logs cost: the same app served twice, with observability (as
`serve` runs it: the wrapper, JSON logs at info to a file) and without (the wrapper removed,
logging at warning), measured in turns on HTTP batch ingest and on 100-event pages.

    python -m bench.observability [--engines sqlite,postgres] [--phases 6]
    python -m bench.observability serve PORT DATABASE_URL on|off LOGFILE   (one side)
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from tests.e2e.server import clean_env, free_port, wait_healthy

from bench.data import json_batches
from trailkeeper.api.app import create_app
from trailkeeper.api.observability import Observability, configure_logging
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SIDES = ("on", "off")
BATCHES_PER_PHASE = 20  # of 500 events, 4 clients at once
PAGES_PER_PHASE = 300


def serve(port: int, url: str, side: str, log_file: str) -> None:
    settings = load_settings(
        {}, database_url=url, rate_limit_per_second=0, metrics_token="bench-metrics-token-0000"
    )
    service = AuditService(open_store(url))
    app = create_app(service, settings, owns_service=True)
    if side == "on":
        configure_logging("info", "json")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(log_file, "a"))  # noqa: SIM115 - lives as long as the process
    else:
        assert isinstance(app.asgi_handler, Observability)
        app.asgi_handler = app.asgi_handler.app
        logging.basicConfig(level="WARNING")
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def fresh(engine: str, tmp: Path, name: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}"
    db = f"tk_bench_obs_{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + db


def start(engine: str, tmp: Path, side: str) -> tuple[subprocess.Popen[bytes], str, str]:
    url = fresh(engine, tmp, side)
    service = AuditService(open_store(url))
    service.create_tenant("acme")
    token = service.create_key("acme", "bench")[1]
    service.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.observability", "serve", str(port), url, side, "/dev/null"],
        env=clean_env(),
        cwd=Path(__file__).parent.parent,
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    return proc, base, token


def post_all(base: str, token: str, bodies: list[bytes]) -> float:
    queue, lock = list(bodies), threading.Lock()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                assert client.post("/v1/events/batch", content=body).status_code == 201

    threads = [threading.Thread(target=post) for _ in range(4)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def read_pages(base: str, token: str, count: int) -> float:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        began = time.perf_counter()
        for _ in range(count):
            assert client.get("/v1/events", params={"limit": 100}).status_code == 200
        return time.perf_counter() - began


def overhead(engine: str, phases: int = 6) -> tuple[float, float]:
    """(ingest, pages) time with observability / time without, minus 1 (0.03 = 3% slower)."""
    seconds: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        servers = {side: start(engine, Path(tmp_dir), side) for side in SIDES}
        try:
            bodies = json_batches(phases * BATCHES_PER_PHASE * 500, 500)
            for n in range(phases):
                order = SIDES if n % 2 == 0 else SIDES[::-1]
                for side in order:
                    _, base, token = servers[side]
                    phase = bodies[n * BATCHES_PER_PHASE : (n + 1) * BATCHES_PER_PHASE]
                    key = (side, "ingest")
                    seconds[key] = seconds.get(key, 0.0) + post_all(base, token, phase)
                for side in order:
                    _, base, token = servers[side]
                    key = (side, "pages")
                    seconds[key] = seconds.get(key, 0.0) + read_pages(base, token, PAGES_PER_PHASE)
        finally:
            for proc, _, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    return tuple(  # type: ignore[return-value]
        seconds[("on", what)] / seconds[("off", what)] - 1 for what in ("ingest", "pages")
    )


def report(engine: str, say: Any = print) -> None:
    ingest, pages = overhead(engine)
    ok = max(ingest, pages) < 0.05
    say(
        f"{engine:8} metrics + JSON access log: ingest {ingest:+.1%}, pages {pages:+.1%} "
        f"(< 5%: {'met' if ok else 'MISSED'})"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--engines", default="sqlite,postgres")
        args = parser.parse_args()
        for name in args.engines.split(","):
            report(name)
