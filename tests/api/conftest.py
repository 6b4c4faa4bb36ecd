"""A real trailkeeper server on a free 127.0.0.1 port, for tests that use official SDKs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_url(service: AuditService, database_url: str) -> Iterator[str]:
    settings = load_settings({}, database_url=database_url, checkpoint_interval_seconds=0)
    port = _free_port()
    config = uvicorn.Config(
        create_app(service, settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)
