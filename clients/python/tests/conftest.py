"""A real `trailkeeper serve` for the client's tests, on SQLite and on PostgreSQL.

The client itself imports nothing of the server; its tests do, to start one and make a key.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import _clean_pg, pg_url  # noqa: F401 - the session's PostgreSQL database
from tests.e2e.server import clean_env, free_port, wait_healthy

from trailkeeper.service import AuditService
from trailkeeper.store import open_store


@dataclass
class Server:
    """A `trailkeeper serve` process that a test can SIGKILL and start again on its port."""

    database_url: str
    cwd: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trailkeeper",
                "--database-url",
                self.database_url,
                "serve",
                "--port",
                str(self.port),
            ],
            cwd=self.cwd,
            env=clean_env(rate_limit_per_second="0"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_healthy(self.url)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(params=["sqlite", "postgres"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trailkeeper.db'}"
    url: str = request.getfixturevalue("pg_url")
    _clean_pg(url)
    return url


@pytest.fixture
def api_key(engine_url: str) -> str:
    store = open_store(engine_url)
    try:
        service = AuditService(store)
        service.create_tenant("acme")
        return service.create_key("acme", "client tests")[1]
    finally:
        store.close()


@pytest.fixture
def server(engine_url: str, api_key: str, tmp_path: Path) -> Iterator[Server]:
    running = Server(engine_url, tmp_path)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def admin_key(engine_url: str) -> str:
    """An operator key (tenant `_system`, scopes admin and events.read), as `keys create
    --admin --scope events.read` makes it."""
    store = open_store(engine_url)
    try:
        return AuditService(store).create_key("_system", "ops", ("admin", "events.read"))[1]
    finally:
        store.close()
