"""Authentication, scopes and tenant isolation on every native route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from tests.helpers import secret_of
from trailkeeper import auth
from trailkeeper.service import AuditService

EVENT = {"id": "evt-1", "action": "created", "actor": {"id": "u1"}}
ROUTES = [
    ("POST", "/v1/events", EVENT, "events.write"),
    ("POST", "/v1/events/batch", {"events": [EVENT]}, "events.write"),
    ("GET", "/v1/events", None, "events.read"),
    ("GET", "/v1/events/evt-1", None, "events.read"),
    ("GET", "/v1/export", None, "events.read"),
    ("GET", "/v1/ledger/checkpoint", None, "events.read"),
    ("GET", "/v1/events/evt-1/proof", None, "events.read"),
    ("GET", "/v1/ledger/consistency?from=0&to=0", None, "events.read"),
    ("GET", "/v1/key-pairs", None, "key-pairs.write"),
    ("POST", "/v1/key-pairs", {"name": "k", "generate": True}, "key-pairs.write"),
    ("DELETE", "/v1/key-pairs/nope", None, "key-pairs.write"),
    ("GET", "/audit-events", None, "audit-logs.read"),
    ("GET", "/audit-events/evt-1", None, "audit-logs.read"),
    ("GET", "/audit-logs", None, "audit-logs.read"),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]
Headers = Callable[..., dict[str, str]]


def check(response: Any, path: str, status: int, code: str) -> dict[str, Any]:
    """Native routes answer with the native error body; dialect routes with their own."""
    if path.startswith("/v1/"):
        return assert_error(response, status, code)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["message"]
    return body


def call(client: TestClient[Any], method: str, path: str, body: Any, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer tk_0123456789abcdef_" + "A" * 43,
    ],
    ids=["missing", "empty", "no-token", "basic", "garbage", "unknown-key"],
)
def test_requests_without_a_valid_key_get_401(
    client: TestClient[Any],
    method: str,
    path: str,
    body: Any,
    scope: str,
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = call(client, method, path, body, headers)
    check(response, path, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=ROUTE_IDS)
def test_revoked_key_gets_401_at_once(
    client: TestClient[Any],
    service: AuditService,
    method: str,
    path: str,
    body: Any,
    scope: str,
) -> None:
    key, token = service.create_key("acme", "soon-revoked")
    headers = {"Authorization": f"Bearer {token}"}
    assert call(client, "GET", "/v1/events", None, headers).status_code == 200
    service.revoke_key(key.id)
    check(call(client, method, path, body, headers), path, 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=ROUTE_IDS)
def test_missing_scope_gets_403(
    client: TestClient[Any], key_for: Headers, method: str, path: str, body: Any, scope: str
) -> None:
    others = tuple(s for s in auth.ALL_SCOPES if s != scope)
    error = check(call(client, method, path, body, key_for(scopes=others)), path, 403, "forbidden")
    assert scope in error["message"]


def test_a_key_never_sees_another_tenants_data(client: TestClient[Any], key_for: Headers) -> None:
    acme, globex = key_for("acme"), key_for("globex")
    assert client.post("/v1/events", json=EVENT, headers=acme).status_code == 201
    secret = {**EVENT, "id": "globex-secret", "action": "deleted"}
    assert client.post("/v1/events", json=secret, headers=globex).status_code == 201

    # get-one: another tenant's id is simply not found
    assert_error(client.get("/v1/events/globex-secret", headers=acme), 404, "not_found")
    assert_error(client.get("/v1/events/evt-1", headers=globex), 404, "not_found")
    # list and export show only the caller's events
    assert [e["id"] for e in client.get("/v1/events", headers=acme).json()["items"]] == ["evt-1"]
    assert "globex-secret" not in client.get("/v1/export", headers=acme).text
    assert "globex-secret" not in client.get("/v1/export?format=csv", headers=acme).text
    # ledger routes: only the caller's own log
    assert_error(client.get("/v1/events/globex-secret/proof", headers=acme), 404, "not_found")
    assert client.get("/v1/ledger/checkpoint", headers=acme).json()["size"] == 1
    assert client.get("/v1/ledger/checkpoint", headers=acme).json()["origin"].endswith("/acme")
    assert_error(client.get("/v1/ledger/checkpoint?size=2", headers=acme), 400)
    # the same client id in another tenant is a separate event, not a conflict
    response = client.post("/v1/events", json={**EVENT, "action": "other"}, headers=globex)
    assert response.status_code == 201
    assert client.get("/v1/events/evt-1", headers=acme).json()["action"] == "created"


def test_a_cursor_from_another_tenant_is_rejected(
    client: TestClient[Any], key_for: Headers
) -> None:
    acme, globex = key_for("acme"), key_for("globex")
    for n in range(3):
        client.post("/v1/events", json={**EVENT, "id": f"a{n}"}, headers=acme)
        client.post("/v1/events", json={**EVENT, "id": f"g{n}"}, headers=globex)
    cursor = client.get("/v1/events?limit=1", headers=acme).json()["next_cursor"]
    assert cursor
    response = client.get(f"/v1/events?limit=1&cursor={cursor}", headers=globex)
    error = assert_error(response, 400, "invalid_cursor")
    assert "a1" not in response.text
    assert "a0" not in response.text
    assert "acme" not in error["message"]


def test_keys_are_stored_only_as_hashes(service: AuditService) -> None:
    key, token = service.create_key("acme", "hash-check")
    stored = service.store.get_key(key.id)
    assert stored is not None
    secret = secret_of(token)
    assert secret.encode() not in stored.secret_hash
    assert token.encode() != stored.secret_hash
    assert len(stored.secret_hash) == 32


def test_health_and_docs_need_no_key(client: TestClient[Any]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/events", "/v1/events/batch", "/v1/events/{event_id}", "/v1/export"} <= set(
        spec["paths"]
    )
    assert client.get("/docs").status_code == 200


# ---- authentication and scope come before the body and the parameters (issue 23, item 3) ----

BODY_ROUTES = [(m, p, scope) for m, p, body, scope in ROUTES if body is not None]
BAD_BODIES = {
    "not-json": b"{",
    "not-utf8": b'{"action": "\xff"}',
    "wrong-shape": b'{"events": "x", "name": 5}',
    "empty": b"",
}


@pytest.mark.parametrize(
    ("method", "path", "scope"), BODY_ROUTES, ids=[p for _, p, _ in BODY_ROUTES]
)
@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_body_without_a_key_is_401_and_without_the_scope_403(
    client: TestClient[Any], key_for: Headers, method: str, path: str, scope: str, body: bytes
) -> None:
    """Nothing about the body (not even whether it parses) is told to an unauthorised caller."""
    json_type = {"Content-Type": "application/json"}
    response = client.request(method, path, content=body, headers=json_type)
    assert_error(response, 401, "unauthenticated")
    others = tuple(s for s in auth.ALL_SCOPES if s != scope)
    response = client.request(
        method, path, content=body, headers={**json_type, **key_for(scopes=others)}
    )
    assert scope in assert_error(response, 403, "forbidden")["message"]
    # with the scope, the same body is what is wrong
    response = client.request(method, path, content=body, headers={**json_type, **key_for()})
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/events?limit=abc",
        "/v1/events?since=yesterday",
        "/v1/export?format=xml",
        "/v1/ledger/checkpoint?size=-1",
        "/v1/ledger/consistency?from=x",
        "/audit-events?limit=0",
        "/audit-logs?limit=0",
    ],
)
def test_bad_parameters_without_a_key_are_401(client: TestClient[Any], path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401, response.text
