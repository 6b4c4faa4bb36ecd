"""Test helpers for streams: a receiver process, NATS, waiting for deliveries."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.e2e.server import free_port
from trailkeeper.model import EventIn
from trailkeeper.service import AuditService

RECEIVER = Path(__file__).parent / "receiver.py"
NATS_URL = "nats://127.0.0.1:4222"


class Receiver:
    """A receiver process (receiver.py) and what it acknowledged."""

    def __init__(self, url: str, out: Path, proc: subprocess.Popen[bytes], port: int) -> None:
        self.url, self.out, self.proc, self.port = url, out, proc, port

    def records(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        text = self.out.read_text()
        # A line still being written (no newline yet) is not a record yet.
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every event of every acknowledged webhook batch, in arrival order."""
        events = []
        for record in self.records():
            assert "rejected" not in record, record
            events += json.loads(record["body"])["data"]["events"]
        return events


@contextmanager
def receiver(tmp_path: Path, *args: str, port: int | None = None) -> Iterator[Receiver]:
    """A receiver process on `port` (default: a free one)."""
    port = port or free_port()
    out = tmp_path / f"received-{port}.jsonl"
    proc = subprocess.Popen([sys.executable, str(RECEIVER), str(port), str(out), *args])
    try:
        _wait_port(port)
        yield Receiver(f"http://127.0.0.1:{port}/hook", out, proc, port)
    finally:
        proc.kill()
        proc.wait()


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for(condition: Callable[[], bool], timeout: float = 60, every: float = 0.1) -> None:
    """Poll until `condition()` holds; fail (not hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(every)


def events(count: int, start: int = 0, **fields: Any) -> list[EventIn]:
    return [
        msgspec.convert(
            {"id": f"evt-{n:06d}", "action": "user.login", "actor": {"id": f"u{n}"}, **fields},
            EventIn,
        )
        for n in range(start, start + count)
    ]


def ingest(service: AuditService, tenant: str, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 500):
        service.ingest(tenant, events(min(500, start + count - first), first))


def ensure_nats() -> None:
    """NATS with JetStream on 127.0.0.1:4222, started when missing; under CI=true a missing
    server fails the test instead of skipping it."""
    if _port_open(4222):
        return
    if shutil.which("start-stop-daemon") and os.path.exists("/usr/sbin/nats-server"):
        os.makedirs("/var/lib/nats-server", exist_ok=True)
        subprocess.run(
            [
                "start-stop-daemon",
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/nats-server",
                "--",
                "-a",
                "127.0.0.1",
                "-p",
                "4222",
                "-js",
                "-sd",
                "/var/lib/nats-server",
            ],
            check=False,
        )
        for _ in range(50):
            if _port_open(4222):
                return
            time.sleep(0.1)
    if os.environ.get("CI") == "true":
        pytest.fail("NATS (nats-server -js) is not running on 127.0.0.1:4222")
    pytest.skip("NATS (nats-server -js) is not running on 127.0.0.1:4222")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
