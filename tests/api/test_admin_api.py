"""The admin API (issue 25): tenants and keys for the operator, isolation, deactivation, expiry,
`last_used_at` without a write per request, and the operator log of every admin action."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from gr4vy import auth as gr4vy_auth
from litestar.testing import TestClient

from trailkeeper import auth
from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.errors import Unauthenticated
from trailkeeper.model import ApiKey, EventFilter, utc_now_ms
from trailkeeper.service import LAST_USED_INTERVAL, AuditService
from trailkeeper.store import Store

Headers = Callable[..., dict[str, str]]
EVENT = {"id": "evt-1", "action": "created", "actor": {"id": "u1"}}
UA = {"User-Agent": "ops-console/1.0"}


@pytest.fixture
def admin(service: AuditService) -> dict[str, str]:
    """Headers of an operator key (scope `admin` only)."""
    _, token = service.create_key(auth.SYSTEM_TENANT, "ops", (auth.SCOPE_ADMIN,))
    return {"Authorization": f"Bearer {token}", **UA}


def _operator_log(service: AuditService) -> list[dict[str, Any]]:
    """The operator log's events, oldest first, as their JSON views."""
    page, _, _ = service.list_events(auth.SYSTEM_TENANT, EventFilter(), 100, None, "native")
    import msgspec

    return [msgspec.to_builtins(e) for e in reversed(page.events)]


def test_admin_creates_lists_gets_and_renames_tenants(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    created = client.post("/v1/tenants", json={"id": "initech", "name": "Initech"}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["active"] is True
    assert created.json()["name"] == "Initech"
    again = client.post("/v1/tenants", json={"id": "initech"}, headers=admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"

    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/tenants", params=params, headers=admin).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["_system", "acme", "globex", "initech"]

    renamed = client.patch("/v1/tenants/initech", json={"name": "Initech Ltd"}, headers=admin)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Initech Ltd"
    assert client.get("/v1/tenants/initech", headers=admin).json()["name"] == "Initech Ltd"
    assert client.get("/v1/tenants/nope", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tenants", {"id": "_evil"}),
        ("POST", "/v1/tenants", {"id": "_system"}),
        ("POST", "/v1/tenants", {"id": "Bad Id"}),
        ("PATCH", "/v1/tenants/_system", {"active": False}),
        ("PATCH", "/v1/tenants/_system", {"name": "mine"}),
        ("PATCH", "/v1/tenants/acme", {}),
        ("PATCH", "/v1/tenants/acme", {"name": "a\x00b"}),
        ("GET", "/v1/tenants?cursor=!!!", None),
        ("GET", "/v1/tenants?limit=0", None),
        ("POST", "/v1/tenants/acme/keys", {"name": "k", "scopes": ["admin"]}),
        ("POST", "/v1/tenants/acme/keys", {"name": "k", "scopes": ["root"]}),
        ("POST", "/v1/tenants/acme/keys", {"name": "k", "scopes": []}),
        ("POST", "/v1/tenants/_system/keys", {"name": "k", "scopes": ["events.write"]}),
        ("POST", "/v1/tenants/acme/keys", {"name": "k", "expires_at": "2020-01-01T00:00:00Z"}),
        ("POST", "/v1/tenants/acme/keys", {"name": "k", "expires_at": "2099-01-01T00:00:00"}),
    ],
)
def test_bad_admin_requests_are_400s_and_change_nothing(
    client: TestClient[Any],
    admin: dict[str, str],
    service: AuditService,
    method: str,
    path: str,
    body: Any,
) -> None:
    keys_before = len(service.list_keys())
    response = client.request(method, path, json=body, headers=admin)
    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) == {"code", "message", "status", "details"}
    assert [t.id for t in service.list_tenants()] == ["_system", "acme", "globex"]
    assert all(t.active and t.name == t.id for t in service.list_tenants()[1:])
    assert len(service.list_keys()) == keys_before


ADMIN_ROUTES = [
    ("POST", "/v1/tenants", {"id": "initech"}),
    ("GET", "/v1/tenants", None),
    ("GET", "/v1/tenants/{other}", None),
    ("PATCH", "/v1/tenants/{other}", {"active": False}),
    ("POST", "/v1/tenants/{other}/keys", {"name": "stolen"}),
    ("GET", "/v1/tenants/{other}/keys", None),
    ("DELETE", "/v1/tenants/{other}/keys/{other_key}", None),
    ("GET", "/v1/tenants/{own}", None),
    ("POST", "/v1/tenants/{own}/keys", {"name": "more", "scopes": ["admin"]}),
    ("DELETE", "/v1/tenants/{own}/keys/{own_key}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_no_tenant_key_reaches_an_admin_route(
    client: TestClient[Any],
    key_for: Headers,
    service: AuditService,
    method: str,
    path: str,
    body: Any,
) -> None:
    """A key of acme with every tenant scope manages neither globex nor itself: 403, and
    nothing changes."""
    acme_key, _ = service.create_key("acme", "own")
    globex_key, _ = service.create_key("globex", "other")
    url = path.format(own="acme", own_key=acme_key.id, other="globex", other_key=globex_key.id)
    response = client.request(method, url, json=body, headers=key_for("acme"))
    assert response.status_code == 403, response.text
    assert all(t.active for t in service.list_tenants())
    assert not any(k.revoked_at for k in service.list_keys())
    assert {k.name for k in service.list_keys()} == {"own", "other", "test"}
    assert _operator_log(service) == []


def test_an_admin_key_reads_and_writes_no_events(
    client: TestClient[Any], admin: dict[str, str], key_for: Headers, service: AuditService
) -> None:
    assert client.post("/v1/events", json=EVENT, headers=key_for("acme")).status_code == 201
    for method, path in [("POST", "/v1/events"), ("GET", "/v1/events"), ("GET", "/v1/export")]:
        body = EVENT if method == "POST" else None
        response = client.request(method, path, json=body, headers=admin)
        assert response.status_code == 403, (path, response.text)
    # Also scoped events.read: it reads its own tenant's log (the operator log) only.
    _, token = service.create_key(
        auth.SYSTEM_TENANT, "reader", (auth.SCOPE_ADMIN, auth.SCOPE_EVENTS_READ)
    )
    reader = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/events/evt-1", headers=reader).status_code == 404
    assert client.post("/v1/events", json=EVENT, headers=reader).status_code == 403


def test_admin_creates_lists_and_revokes_keys(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    made = client.post(
        "/v1/tenants/acme/keys", json={"name": "billing", "scopes": ["events.write"]}, headers=admin
    )
    assert made.status_code == 201, made.text
    token, key_id = made.json()["key"], made.json()["id"]
    tenant_key = {"Authorization": f"Bearer {token}"}
    assert client.post("/v1/events", json=EVENT, headers=tenant_key).status_code == 201
    assert client.get("/v1/events", headers=tenant_key).status_code == 403

    listed = client.get("/v1/tenants/acme/keys", headers=admin)
    assert listed.status_code == 200
    [row] = [k for k in listed.json()["items"] if k["id"] == key_id]
    assert "key" not in row
    assert token not in listed.text
    assert "secret" not in listed.text
    assert row["scopes"] == ["events.write"]
    assert row["revoked_at"] is None

    # Another tenant's path does not reach the key.
    assert client.delete(f"/v1/tenants/globex/keys/{key_id}", headers=admin).status_code == 404
    assert client.post("/v1/events", json=EVENT, headers=tenant_key).status_code == 200
    assert client.delete(f"/v1/tenants/acme/keys/{key_id}", headers=admin).status_code == 204
    assert client.delete(f"/v1/tenants/acme/keys/{key_id}", headers=admin).status_code == 204
    assert client.post("/v1/events", json=EVENT, headers=tenant_key).status_code == 401
    assert client.get("/v1/tenants/nope/keys", headers=admin).status_code == 404
    assert (
        client.post("/v1/tenants/nope/keys", json={"name": "x"}, headers=admin).status_code == 404
    )


def test_deactivation_refuses_keys_and_jwts_keeps_data_and_reactivation_restores(
    client: TestClient[Any], admin: dict[str, str], key_for: Headers, service: AuditService
) -> None:
    acme = key_for("acme")
    assert client.post("/v1/events", json=EVENT, headers=acme).status_code == 201
    _, private_pem = service.generate_key_pair("acme", "sdk")
    jwt = gr4vy_auth.get_token(private_pem, scopes=["*.read"])
    gr4vy = {"Authorization": f"Bearer {jwt}", "x-gr4vy-merchant-account-id": "acme"}
    assert client.get("/audit-logs", headers=gr4vy).status_code == 200

    off = client.patch("/v1/tenants/acme", json={"active": False}, headers=admin)
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert off.json()["deactivated_at"] is not None
    for response in (
        client.get("/v1/events", headers=acme),
        client.post("/v1/events", json=EVENT, headers=acme),
        client.get("/audit-logs", headers=gr4vy),
    ):
        assert response.status_code == 401, response.text
        assert "deactivated" in response.text  # Gr4vy's body has its own shape
    assert client.get("/v1/events", headers=key_for("globex")).status_code == 200
    assert service.get_event("acme", "evt-1").action == "created"  # the data stays

    on = client.patch("/v1/tenants/acme", json={"active": True}, headers=admin)
    assert on.status_code == 200
    assert on.json()["deactivated_at"] is None
    assert client.get("/v1/events/evt-1", headers=acme).status_code == 200
    assert client.get("/audit-logs", headers=gr4vy).status_code == 200


def test_deactivation_drops_cached_credentials_at_once(store: Store) -> None:
    service = AuditService(store, credential_cache_seconds=300)
    service.create_tenant("acme")
    _, token = service.create_key("acme", "cached")
    assert service.authenticate(f"Bearer {token}").tenant == "acme"  # now cached
    service.update_tenant("acme", active=False)
    with pytest.raises(Unauthenticated, match="deactivated"):
        service.authenticate(f"Bearer {token}")
    service.update_tenant("acme", active=True)
    assert service.authenticate(f"Bearer {token}").tenant == "acme"


class Clock:
    def __init__(self) -> None:
        self.now = utc_now_ms()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(store: Store, database_url: str) -> Iterator[tuple[AuditService, Clock, Any]]:
    clock = Clock()
    service = AuditService(store, clock=clock)
    service.create_tenant("acme")
    settings = load_settings({}, database_url=database_url, checkpoint_interval_seconds=0)
    with TestClient(create_app(service, settings)) as client:
        yield service, clock, client


def test_an_expired_key_gets_401(clocked: tuple[AuditService, Clock, Any]) -> None:
    service, clock, client = clocked
    _, token = service.create_key(auth.SYSTEM_TENANT, "ops", (auth.SCOPE_ADMIN,), by=None)
    admin = {"Authorization": f"Bearer {token}"}
    soon = (clock.now + timedelta(hours=1)).isoformat()
    made = client.post(
        "/v1/tenants/acme/keys", json={"name": "temp", "expires_at": soon}, headers=admin
    )
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"].startswith(soon[:19])
    temp = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.get("/v1/events", headers=temp).status_code == 200
    clock.now += timedelta(hours=1)
    expired = client.get("/v1/events", headers=temp)
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_an_expired_key_stored_by_any_path_is_refused(service: AuditService) -> None:
    key, token = auth.new_key("acme", "old", auth.ALL_SCOPES)
    past = utc_now_ms() - timedelta(seconds=1)
    service.store.create_key(ApiKey(**{**_fields(key), "expires_at": past}))
    with pytest.raises(Unauthenticated, match="expired"):
        service.authenticate(f"Bearer {token}")


def _fields(key: ApiKey) -> dict[str, Any]:
    return {f: getattr(key, f) for f in key.__struct_fields__}


def test_last_used_at_is_written_at_most_once_a_minute(
    clocked: tuple[AuditService, Clock, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, clock, client = clocked
    writes: list[dict[str, datetime]] = []
    touch = service.store.touch_keys
    monkeypatch.setattr(
        service.store, "touch_keys", lambda used: (writes.append(used), touch(used))
    )
    key, token = service.create_key("acme", "busy")
    headers = {"Authorization": f"Bearer {token}"}
    first_use = clock.now
    for _ in range(20):
        assert client.get("/v1/events", headers=headers).status_code == 200
        clock.now += timedelta(seconds=1)
    assert writes == [{key.id: first_use}]  # 20 requests, one write
    [stored] = service.store.list_keys("acme")
    assert stored.last_used_at == first_use
    [listed] = service.list_keys("acme")  # the uses not written yet show in listings
    assert listed.last_used_at == clock.now - timedelta(seconds=1)

    clock.now = first_use + LAST_USED_INTERVAL
    assert client.get("/v1/events", headers=headers).status_code == 200
    assert len(writes) == 2
    assert writes[1] == {key.id: clock.now}
    [stored] = service.store.list_keys("acme")
    assert stored.last_used_at == clock.now


def test_usage_not_written_yet_is_written_at_close(store: Store) -> None:
    service = AuditService(store)
    service.create_tenant("acme")
    key, token = service.create_key("acme", "k")
    service.authenticate(f"Bearer {token}")  # written at once (the first use)
    service._clock = lambda: utc_now_ms() + timedelta(seconds=5)
    service.authenticate(f"Bearer {token}")  # held back
    held = service.list_keys("acme")[0].last_used_at
    service.flush_key_usage()
    assert service.store.get_key(key.id).last_used_at == held  # type: ignore[union-attr]


def test_the_operator_log_records_each_admin_action_with_actor_and_context(
    client: TestClient[Any], service: AuditService
) -> None:
    ops_key, token = service.create_key(auth.SYSTEM_TENANT, "ops", (auth.SCOPE_ADMIN,))
    admin = {"Authorization": f"Bearer {token}", **UA}
    made = client.post("/v1/tenants/acme/keys", json={"name": "ci"}, headers=admin).json()
    client.post("/v1/tenants", json={"id": "initech"}, headers=admin)
    client.patch("/v1/tenants/initech", json={"name": "Initech"}, headers=admin)
    client.patch("/v1/tenants/initech", json={"active": False}, headers=admin)
    client.patch("/v1/tenants/initech", json={"active": True}, headers=admin)
    client.delete(f"/v1/tenants/acme/keys/{made['id']}", headers=admin)

    log = _operator_log(service)
    assert [(e["action"], e["target"]["id"]) for e in log] == [
        ("api_key.created", made["id"]),
        ("tenant.created", "initech"),
        ("tenant.renamed", "initech"),
        ("tenant.deactivated", "initech"),
        ("tenant.reactivated", "initech"),
        ("api_key.revoked", made["id"]),
    ]
    for event in log:
        assert event["actor"]["id"] == ops_key.id
        assert event["actor"]["type"] == "api_key"
        assert event["context"]["user_agent"] == UA["User-Agent"]
        assert event["source"] == "admin-api"
        assert event["log_index"] is not None
    assert log[0]["metadata"] == {"tenant": "acme", "scopes": list(auth.DEFAULT_SCOPES)}
    assert made["key"] not in str(log)  # never the secret
    assert log[2]["metadata"] == {"from": "initech", "to": "Initech"}


def test_operator_log_keeps_a_valid_request_ip(service: AuditService) -> None:
    from trailkeeper.service import AdminActor

    by = AdminActor(kind="api_key", id="k1", ip="203.0.113.9", user_agent="x\x00y")
    service.create_tenant("initech", by=by)
    service.create_tenant("hooli", by=AdminActor(kind="api_key", id="k1", ip="testclient"))
    first, second = _operator_log(service)
    assert first["context"] == {"ip": "203.0.113.9", "user_agent": "xy"}
    assert second["context"] is None or not second["context"].get("ip")


def test_expires_at_is_shown_in_utc(client: TestClient[Any], admin: dict[str, str]) -> None:
    later = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    paris = later.astimezone(timezone(timedelta(hours=2))).isoformat()
    body = {"name": "tz", "expires_at": paris}
    made = client.post("/v1/tenants/acme/keys", json=body, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"] == later.strftime("%Y-%m-%dT%H:%M:%S.000Z")
