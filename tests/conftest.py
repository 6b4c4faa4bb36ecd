"""Fixtures: a store per engine (SQLite and PostgreSQL), a service, an in-process API client.

PostgreSQL: TRAILKEEPER_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres) must
be reachable. When it is not, the local cluster is started if this machine has one; if it still
is not, tests fail under CI=true and are skipped (with the reason) elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from litestar.testing import TestClient

from trailkeeper import auth
from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService
from trailkeeper.store import Store, open_store

PG_ADMIN_URL = os.environ.get(
    "TRAILKEEPER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# In CI every property test runs a fixed, reproducible set of examples (a failure there can be
# replayed exactly); locally they explore new random examples on every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if IN_CI else "dev")
ENGINES = ["sqlite", "postgres"]


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


def _start_local_pg() -> None:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return
    for version in os.listdir("/etc/postgresql"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this test session, dropped afterwards."""
    problem = _pg_reachable()
    if problem is not None:
        _start_local_pg()
        problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {problem}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    name = f"trailkeeper_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clean_pg(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
        if exists and exists[0]:
            tables = conn.execute(
                "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'"
            ).fetchone()
            conn.execute(f"TRUNCATE {tables[0]}")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    engine = getattr(request, "param", "sqlite")
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'trailkeeper.db'}"
    url: str = request.getfixturevalue("pg_url")
    _clean_pg(url)
    return url


@pytest.fixture
def clean_pg_url(pg_url: str) -> str:
    """The session's PostgreSQL database, emptied: for tests about PostgreSQL alone."""
    _clean_pg(pg_url)
    return pg_url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a store runs once per engine."""
    if "database_url" in metafunc.fixturenames and not any(
        m.name == "sqlite_only" for m in metafunc.definition.iter_markers()
    ):
        metafunc.parametrize("database_url", ENGINES, indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: run only against SQLite")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url, sqlite_synchronous="NORMAL")
    yield opened
    opened.close()


@pytest.fixture
def service(store: Store) -> AuditService:
    svc = AuditService(store)
    svc.create_tenant("acme")
    svc.create_tenant("globex")
    return svc


@pytest.fixture
def client(service: AuditService, database_url: str) -> Iterator[TestClient[Any]]:
    settings = load_settings({}, database_url=database_url, max_body_bytes=2 * 1024 * 1024)
    with TestClient(create_app(service, settings)) as test_client:
        yield test_client


@pytest.fixture
def key_for(service: AuditService) -> Callable[..., dict[str, str]]:
    """Make a key and return ready-to-use request headers."""

    def make(tenant: str = "acme", scopes: tuple[str, ...] = auth.ALL_SCOPES) -> dict[str, str]:
        _, token = service.create_key(tenant, "test", scopes)
        return {"Authorization": f"Bearer {token}"}

    return make
