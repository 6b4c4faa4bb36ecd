"""Three trailkeeper hosts on one PostgreSQL behind HAProxy (docs/haproxy.cfg), rate limits in
Redis: mixed ingest and reads through the balancer while one host is SIGKILLed and started
again. No acknowledged event may be lost, log indexes stay gap-free, the ledger verifies,
cursors from one host work on another and the rate limit holds across hosts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.server import clean_env, free_port, wait_healthy
from tests.redis_server import need_redis
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

pytestmark = pytest.mark.slow

HAPROXY_CFG = Path(__file__).parents[2] / "docs/haproxy.cfg"
RATE, BURST = 20.0, 40.0


def haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("haproxy is not installed (CI=true: .ci/run installs it)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return found


class Host:
    """One `trailkeeper serve` process on a fixed port."""

    def __init__(self, cwd: Path, port: int, env: dict[str, str]) -> None:
        self.cwd, self.port, self.env = cwd, port, env
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.cwd / f"host-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trailkeeper", "serve", "--port", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        wait_healthy(self.url)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def cluster(clean_pg_url: str, tmp_path: Path) -> Iterator[tuple[str, list[Host], dict[str, str]]]:
    """(balancer URL, hosts, tokens by name)."""
    binary = haproxy()
    redis_url = need_redis()
    service = AuditService(open_store(clean_pg_url))
    service.create_tenant("acme", "Acme")
    tokens = {name: service.create_key("acme", name)[1] for name in ("w1", "w2", "r", "x", "v")}
    service.close()
    env = clean_env(
        database_url=clean_pg_url,
        redis_url=redis_url,
        rate_limit_per_second=str(RATE),
        rate_limit_burst=str(BURST),
        checkpoint_interval_seconds="1",
        shutdown_timeout_seconds="10",
        log_level="warning",
    )
    hosts = [Host(tmp_path, free_port(), env) for _ in range(3)]
    for host in hosts:
        host.start()
    front = free_port()
    config = HAPROXY_CFG.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{front}")
    for n, host in enumerate(hosts, 1):
        config = config.replace(f"127.0.0.1:800{n}", f"127.0.0.1:{host.port}")
    (tmp_path / "haproxy.cfg").write_text(config)
    balancer = subprocess.Popen([binary, "-f", str(tmp_path / "haproxy.cfg"), "-db"])
    url = f"http://127.0.0.1:{front}"
    try:
        wait_healthy(url)
        yield url, hosts, tokens
    finally:
        balancer.terminate()
        balancer.wait(timeout=10)
        for host in hosts:
            if host.proc is not None and host.proc.poll() is None:
                host.proc.kill()
                host.proc.wait()


def _writer(url: str, token: str, prefix: str, stop: threading.Event, acked: set[str]) -> None:
    """Batches of 5 events with ids, ~10 requests a second (under the rate limit)."""
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while not stop.is_set():
            ids = [f"{prefix}-{n + i}" for i in range(5)]
            events = [{"id": i, "action": "a.b", "actor": {"id": "u"}} for i in ids]
            try:
                response = client.post("/v1/events/batch", json={"events": events})
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code in (200, 201):
                acked.update(ids)
                n += 5
            time.sleep(0.1)


def _reader(url: str, token: str, stop: threading.Event, failures: list[str]) -> None:
    """Pages through the log, each page possibly from another host."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while not stop.is_set():
            cursor = None
            for _ in range(5):
                params = {"limit": "20", **({"cursor": cursor} if cursor else {})}
                try:
                    response = client.get("/v1/events", params=params)
                except httpx.TransportError:
                    break
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    break
                cursor = response.json()["next_cursor"]
                time.sleep(0.1)
                if cursor is None:
                    break


def test_three_hosts_behind_haproxy(
    cluster: tuple[str, list[Host], dict[str, str]], clean_pg_url: str, tmp_path: Path
) -> None:
    url, hosts, tokens = cluster
    stop = threading.Event()
    acked: set[str] = set()
    failures: list[str] = []
    threads = [
        threading.Thread(target=_writer, args=(url, tokens["w1"], "w1", stop, acked)),
        threading.Thread(target=_writer, args=(url, tokens["w2"], "w2", stop, acked)),
        threading.Thread(target=_reader, args=(url, tokens["r"], stop, failures)),
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3)
        victim = hosts[1]
        assert victim.proc is not None
        victim.proc.kill()  # SIGKILL: no drain, in-flight requests are cut off
        victim.proc.wait()
        time.sleep(2)
        victim.start()
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert len(acked) > 50

    _assert_rate_limit_is_global(url, tokens["x"])
    _assert_cursor_continues_on_another_host(hosts, tokens["r"])
    for host in hosts:
        assert host.stop() == 0

    with psycopg.connect(clean_pg_url) as conn:
        rows = conn.execute(
            "SELECT id, log_index FROM events WHERE tenant = 'acme' ORDER BY log_index"
        ).fetchall()
    stored = {event_id for event_id, _ in rows}
    assert acked - stored == set()  # no acknowledged event lost
    assert [index for _, index in rows] == list(range(len(rows)))  # gap-free
    _assert_ledger_verifies(hosts[0], tokens["v"], tmp_path)


def _assert_rate_limit_is_global(url: str, token: str) -> None:
    """100 quick requests spread over 3 hosts: per process, each host would let its ~33 pass
    (burst 40 each); shared in Redis, at most the burst plus what refills meanwhile pass."""
    headers = {"Authorization": f"Bearer {token}"}
    passed = limited = 0
    started = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for _ in range(100):
            status = client.get("/v1/events", params={"limit": "1"}).status_code
            passed += status == 200
            limited += status == 429
    elapsed = time.monotonic() - started
    assert limited > 0
    assert passed <= BURST + RATE * elapsed + 1


def _assert_cursor_continues_on_another_host(hosts: list[Host], token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    first = httpx.get(f"{hosts[0].url}/v1/events", params={"limit": "3"}, headers=headers)
    cursor = first.json()["next_cursor"]
    pages = [
        httpx.get(f"{host.url}/v1/events", params={"limit": "3", "cursor": cursor}, headers=headers)
        for host in hosts
    ]
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert pages[1].json()["items"] == pages[0].json()["items"] == pages[2].json()["items"]
    assert pages[1].json()["items"][0]["id"] not in {e["id"] for e in first.json()["items"]}


def _assert_ledger_verifies(host: Host, token: str, tmp_path: Path) -> None:
    host.start()
    try:
        vkey = httpx.get(f"{host.url}/v1/ledger/public-key").json()["vkey"]
        result = subprocess.run(
            [sys.executable, "-m", "trailkeeper", "verify", "--online", host.url, "--key", vkey],
            env={**clean_env(), "TRAILKEEPER_API_KEY": token},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        assert host.stop() == 0


def test_the_haproxy_example_is_valid() -> None:
    """The config example stays valid for haproxy itself."""
    binary = haproxy()
    result = subprocess.run([binary, "-c", "-f", str(HAPROXY_CFG)], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert re.search(rb"valid", result.stdout + result.stderr)
