"""`serve --workers N`, graceful shutdown and slow clients, against real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import clean_env, free_port, wait_healthy
from trailkeeper.service import AuditService
from trailkeeper.store import open_store


def _key(database_url: str) -> str:
    service = AuditService(open_store(database_url))
    try:
        service.create_tenant("acme", "Acme")
        return service.create_key("acme", "k")[1]
    finally:
        service.close()


def _serve(
    cwd: Path, database_url: str, *args: str, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=clean_env(database_url=database_url, rate_limit_per_second="0", **settings),
        stdout=subprocess.DEVNULL,
        stderr=(cwd / "serve.log").open("ab"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    return proc, url


def _writer(url: str, token: str, stop: threading.Event, acked: set[str], prefix: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        n = 0
        while not stop.is_set():
            ids = [f"{prefix}-{n}-{i}" for i in range(10)]
            events = [{"id": i, "action": "a.b", "actor": {"id": "u"}} for i in ids]
            try:
                if client.post("/v1/events/batch", json={"events": events}).status_code == 201:
                    acked.update(ids)
            except httpx.TransportError:
                pass
            n += 1


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _stored(database_url: str) -> list[tuple[str, int]]:
    store = open_store(database_url)
    try:
        rows = store._fetch(  # type: ignore[attr-defined]
            "SELECT id, log_index FROM events WHERE tenant = 'acme' ORDER BY log_index", ()
        )
        return [(str(i), int(n)) for i, n in rows]
    finally:
        store.close()


def _assert_all_acked_stored_gap_free(database_url: str, acked: set[str]) -> None:
    rows = _stored(database_url)
    assert acked - {event_id for event_id, _ in rows} == set()
    assert [index for _, index in rows] == list(range(len(rows)))


@pytest.mark.slow
def test_workers_share_the_port_survive_a_killed_worker_and_stop_cleanly(
    database_url: str, tmp_path: Path
) -> None:
    """Two workers on both engines: concurrent writers, one worker SIGKILLed (the supervisor
    starts another), then SIGTERM: exit 0, every acknowledged event stored, gap-free."""
    token = _key(database_url)
    proc, url = _serve(tmp_path, database_url, "--workers", "2")
    stop, acked = threading.Event(), set[str]()
    writers = [
        threading.Thread(target=_writer, args=(url, token, stop, acked, f"w{n}")) for n in range(3)
    ]
    for writer in writers:
        writer.start()
    try:
        time.sleep(1)
        first = _children(proc.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = _children(proc.pid)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.1)
        assert len(_children(proc.pid)) == 2
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        if proc.poll() is None:
            proc.kill()
    assert len(acked) > 0
    _assert_all_acked_stored_gap_free(database_url, acked)


@pytest.mark.slow
def test_sigterm_during_a_stream_drains_and_exits_zero(database_url: str, tmp_path: Path) -> None:
    """While draining, /healthz is 503 and requests are still served; then in-flight ones
    finish and the process exits 0 within drain + shutdown timeout."""
    token = _key(database_url)
    proc, url = _serve(
        tmp_path, database_url, shutdown_drain_seconds="2", shutdown_timeout_seconds="10"
    )
    stop, acked = threading.Event(), set[str]()
    writers = [
        threading.Thread(target=_writer, args=(url, token, stop, acked, f"w{n}")) for n in range(2)
    ]
    for writer in writers:
        writer.start()
    try:
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert httpx.get(f"{url}/healthz").status_code == 503
        assert proc.wait(timeout=2 + 10 + 15) == 0
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        if proc.poll() is None:
            proc.kill()
    assert len(acked) > 0
    _assert_all_acked_stored_gap_free(database_url, acked)


@pytest.mark.sqlite_only
def test_a_slowloris_client_is_cut_off(database_url: str, tmp_path: Path) -> None:
    """Header bytes trickling in keep a connection open only until header_timeout_seconds."""
    proc, url = _serve(tmp_path, database_url, header_timeout_seconds="1")
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            closed = False
            for n in range(40):  # up to ~8 s of one header byte every 0.2 s
                try:
                    sock.sendall(b"X-Slow-%d: y\r\n" % n)
                    time.sleep(0.2)
                    sock.setblocking(False)
                    try:
                        closed = sock.recv(1024) == b""
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                if closed:
                    break
        assert closed
        assert httpx.get(f"{url}/healthz").status_code == 200  # others are still served
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.sqlite_only
def test_workers_on_an_in_memory_sqlite_database_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trailkeeper", "serve", "--workers", "2"],
        env=clean_env(database_url="sqlite:///:memory:", port=str(free_port())),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --workers > 1 needs a database file or PostgreSQL: with an in-memory SQLite "
        "database every worker would keep a separate log"
    ]
