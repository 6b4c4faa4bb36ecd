"""PostgreSQL goes away: requests fail fast with 503 and a clear body; service resumes alone."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from litestar.testing import TestClient

from tests.tcp_proxy import TcpProxy
from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.model import Actor, EventFilter, EventIn
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

pytestmark = pytest.mark.slow

EVENT = {"action": "created", "actor": {"id": "u1"}}


def test_postgres_outage_is_503_then_recovers(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    user = f"{parts.username}@" if parts.username else ""
    proxied = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
    service = AuditService(open_store(proxied, timeout=2.0))
    if service.store.get_tenant("outage") is None:
        service.create_tenant("outage")
    _, token = service.create_key("outage", "outage test")
    headers = {"Authorization": f"Bearer {token}"}
    settings = load_settings({}, database_url=proxied, db_timeout_seconds=2.0)
    try:
        with TestClient(create_app(service, settings)) as client:
            assert client.post("/v1/events", json=EVENT, headers=headers).status_code == 201

            proxy.cut()
            for method, path in [
                ("POST", "/v1/events"),
                ("GET", "/v1/events"),
                ("GET", "/healthz"),
            ]:
                started = time.monotonic()
                response = client.request(
                    method, path, json=EVENT if method == "POST" else None, headers=headers
                )
                elapsed = time.monotonic() - started
                assert response.status_code == 503, response.text
                body = response.json()
                assert body["error"]["code"] == "unavailable"
                assert "database" in body["error"]["message"]
                assert "Traceback" not in response.text
                assert elapsed < 8, f"{path} took {elapsed:.1f}s: it must fail fast"

            proxy.restore()
            deadline = time.monotonic() + 20
            while True:
                response = client.post("/v1/events", json=EVENT, headers=headers)
                if response.status_code == 201 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert response.status_code == 201, "service resumed without a restart"
            assert client.get("/healthz").status_code == 200
            items = client.get("/v1/events", headers=headers).json()["items"]
            assert len(items) == 2, "nothing from the outage was half-written"
    finally:
        proxy.cut()
        service.close()


def test_reads_survive_a_postgres_restart_without_a_single_error(pg_url: str) -> None:
    """Server-side disconnects (a restart, a failover) leave dead connections in the pool; the
    first read after one must still succeed, and a write fails at most once."""
    name = "tk_restart_test"
    store = open_store(f"{pg_url}?application_name={name}", pg_pool_size=4)
    service = AuditService(store)
    try:
        if store.get_tenant("restart") is None:
            service.create_tenant("restart")
        service.ingest("restart", [EventIn(action="created", actor=Actor(id="u1"))])
        _fill_pool(service)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed is not None
        assert killed[0] >= 2, "the pool held several connections"

        for _ in range(6):  # more reads than the pool has connections
            page, _, _ = service.list_events("restart", EventFilter(), 10, None, "native")
            assert len(page.events) == 1
        service.ingest("restart", [EventIn(action="updated", actor=Actor(id="u1"))])
    finally:
        service.close()


def _fill_pool(service: AuditService) -> None:
    """Make the pool open several connections by holding reads open concurrently."""
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        service.list_events("restart", EventFilter(), 10, None, "native")

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
