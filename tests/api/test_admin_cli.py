"""The admin CLI calls the admin API's service code (same rules, same operator log), and the
operator log verifies with `trailkeeper verify` like any tenant's."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from click.testing import CliRunner
from litestar.testing import TestClient

from trailkeeper import auth
from trailkeeper.api.app import create_app
from trailkeeper.cli import main
from trailkeeper.config import load_settings
from trailkeeper.model import EventFilter
from trailkeeper.service import AuditService
from trailkeeper.store import open_store


def run(database_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--database-url", database_url, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _operator_log(service: AuditService) -> list[dict[str, Any]]:
    page, _, _ = service.list_events(auth.SYSTEM_TENANT, EventFilter(), 100, None, "native")
    return [msgspec.to_builtins(e) for e in reversed(page.events)]


def test_cli_admin_key_tenants_and_keys_share_the_api_rules_and_log(database_url: str) -> None:
    code, admin_token, err = run(database_url, "keys", "create", "--admin", "--name", "ops")
    assert code == 0, err
    assert "scopes: admin" in err
    assert run(database_url, "tenants", "create", "acme")[0] == 0
    code, _, err = run(database_url, "tenants", "create", "_acme")
    assert code == 1
    assert "reserved" in err
    code, _, err = run(
        database_url, "keys", "create", "--tenant", "acme", "--name", "x", "--scope", "admin"
    )
    assert code == 1
    assert "admin" in err
    code, _, err = run(
        database_url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "x",
        "--expires-at",
        "2001-01-01",
    )
    assert code == 1
    assert "future" in err
    code, token, _ = run(
        database_url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--expires-at",
        "2999-01-01",
    )
    assert code == 0
    assert run(database_url, "tenants", "deactivate", "acme")[0] == 0
    assert "deactivated" in run(database_url, "tenants", "list")[1]
    code, _, err = run(database_url, "tenants", "deactivate", "_system")
    assert code == 1
    assert "cannot be changed" in err

    store = open_store(database_url)
    service = AuditService(store)
    try:
        settings = load_settings({}, database_url=database_url, checkpoint_interval_seconds=0)
        with TestClient(create_app(service, settings)) as client:
            admin = {"Authorization": f"Bearer {admin_token.strip()}"}
            tenant = {"Authorization": f"Bearer {token.strip()}"}
            [acme] = [
                t
                for t in client.get("/v1/tenants", headers=admin).json()["items"]
                if t["id"] == "acme"
            ]
            assert acme["active"] is False
            assert client.get("/v1/events", headers=tenant).status_code == 401
            assert run(database_url, "tenants", "reactivate", "acme")[0] == 0
            assert client.get("/v1/events", headers=tenant).status_code == 200
            [key] = client.get("/v1/tenants/acme/keys", headers=admin).json()["items"]
            assert key["expires_at"] == "2999-01-01T00:00:00.000Z"
        log = _operator_log(service)
    finally:
        service.close()
    assert [e["action"] for e in log] == [
        "api_key.created",
        "tenant.created",
        "api_key.created",
        "tenant.deactivated",
        "tenant.reactivated",
    ]
    for event in log:
        assert event["actor"]["type"] == "cli"
        assert "@" in event["actor"]["id"]
        assert event["context"]["user_agent"].startswith("trailkeeper ")
    assert log[0]["target"]["name"] == "ops"
    assert log[0]["metadata"] == {"tenant": "_system", "scopes": ["admin"]}


def test_the_operator_log_verifies_and_records_the_callers_ip(
    live_url: str, service: AuditService
) -> None:
    _, token = service.create_key(
        auth.SYSTEM_TENANT, "ops", (auth.SCOPE_ADMIN, auth.SCOPE_EVENTS_READ)
    )
    admin = {"Authorization": f"Bearer {token}", "User-Agent": "onboarding-script/2"}
    with httpx.Client(base_url=live_url, headers=admin) as http:
        assert http.post("/v1/tenants", json={"id": "initech"}).status_code == 201
        made = http.post("/v1/tenants/initech/keys", json={"name": "app"}).json()
        assert http.patch("/v1/tenants/initech", json={"active": False}).status_code == 200
        assert http.delete(f"/v1/tenants/initech/keys/{made['id']}").status_code == 204
        vkey = http.get("/v1/ledger/public-key").json()["vkey"]
        events = http.get("/v1/events").json()["items"]  # its own tenant: the operator log
    assert len(events) == 4
    for event in events:
        assert event["context"] == {"ip": "127.0.0.1", "user_agent": "onboarding-script/2"}
    result = CliRunner().invoke(
        main, ["verify", "--online", live_url, "--api-key", token, "--key", vkey]
    )
    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout
