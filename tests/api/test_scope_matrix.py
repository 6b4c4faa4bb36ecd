"""Every authenticated route against every credential: each API key scope alone, and key-pair
JWTs (which authenticate `GET /audit-logs` only, and grant `audit-logs.read` at most)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from gr4vy import auth as gr4vy_auth
from litestar.testing import TestClient

from trailkeeper import auth
from trailkeeper.api.viewer import viewer_session
from trailkeeper.errors import Unauthenticated
from trailkeeper.service import AuditService

Headers = Callable[..., dict[str, str]]
EVENT = {"id": "evt-1", "action": "created", "actor": {"id": "u1"}}
MERCHANT = {"x-gr4vy-merchant-account-id": "acme"}


class Route:
    """One route, the scopes a key needs for it, and a request that succeeds with them."""

    def __init__(self, method: str, path: str, scopes: set[str], body: Any = None) -> None:
        self.method, self.path, self.scopes, self.body = method, path, scopes, body

    def call(self, client: TestClient[Any], headers: dict[str, str], pair_id: str) -> Any:
        path = self.path.replace("{pair}", pair_id)
        return client.request(self.method, path, json=self.body, headers={**MERCHANT, **headers})

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


WRITE, READ = {auth.SCOPE_EVENTS_WRITE}, {auth.SCOPE_EVENTS_READ}
AUDIT, PAIRS = {auth.SCOPE_AUDIT_LOGS_READ}, {auth.SCOPE_KEY_PAIRS_WRITE}
VIEWER = {auth.SCOPE_VIEWER_CREATE}
ROUTES = [
    Route("POST", "/v1/events", WRITE, EVENT),
    Route("POST", "/v1/events/batch", WRITE, {"events": [EVENT]}),
    Route("GET", "/v1/events", READ),
    Route("GET", "/v1/events/evt-1", READ),
    Route("GET", "/v1/export", READ),
    Route("GET", "/v1/export?format=csv", READ),
    Route("GET", "/v1/ledger/checkpoint", READ),
    Route("GET", "/v1/ledger/checkpoint?size=0", READ),
    Route("GET", "/v1/events/evt-1/proof", READ),
    Route("GET", "/v1/ledger/consistency?from=0&to=1", READ),
    Route("GET", "/v1/key-pairs", PAIRS),
    Route("POST", "/v1/key-pairs", PAIRS | AUDIT, {"name": "k", "generate": True}),
    Route("DELETE", "/v1/key-pairs/{pair}", PAIRS),
    Route("GET", "/audit-events", AUDIT),
    Route("GET", "/audit-events/evt-1", AUDIT),
    Route("GET", "/audit-logs", AUDIT),
    Route("POST", "/v1/viewer-tokens", VIEWER, {}),
]
JWT_ROUTE = "GET /audit-logs"


@pytest.fixture
def seeded(client: TestClient[Any], key_for: Headers, service: AuditService) -> tuple[str, str]:
    """One event, one key pair: every route has something to succeed on. Returns the pair's
    id and private key."""
    assert client.post("/v1/events", json=EVENT, headers=key_for()).status_code == 201
    pair, private_pem = service.generate_key_pair("acme", "matrix")
    return pair.id, private_pem


@pytest.mark.parametrize("route", ROUTES, ids=repr)
def test_each_scope_alone_opens_exactly_its_routes(
    client: TestClient[Any], key_for: Headers, seeded: tuple[str, str], route: Route
) -> None:
    pair_id, _ = seeded
    for scope in auth.ALL_SCOPES:
        response = route.call(client, key_for(scopes=(scope,)), pair_id)
        expected_ok = route.scopes == {scope}
        assert (response.status_code < 300) == expected_ok, (scope, response.text)
        if not expected_ok:
            assert response.status_code == 403, (scope, response.text)
    response = route.call(client, key_for(scopes=tuple(route.scopes)), pair_id)
    assert response.status_code < 300, response.text


JWT_SCOPES = {
    "sdk-default": ["*.read", "*.write"],
    "read-all": ["*.read"],
    "audit-logs": ["audit-logs.read"],
    "every-scope": [*auth.ALL_SCOPES, "*.read", "*.write"],
    "events-read": ["events.read"],
    "write-all": ["*.write"],
    "unrelated": ["buyers.read"],
}


@pytest.mark.parametrize("route", ROUTES, ids=repr)
def test_a_jwt_authenticates_only_gr4vy_audit_logs(
    client: TestClient[Any], seeded: tuple[str, str], route: Route
) -> None:
    pair_id, private_pem = seeded
    for name, scopes in JWT_SCOPES.items():
        token = gr4vy_auth.get_token(private_pem, scopes=scopes)
        response = route.call(client, {"Authorization": f"Bearer {token}"}, pair_id)
        if repr(route) != JWT_ROUTE:
            assert response.status_code == 401, (name, response.text)
        elif auth.SCOPE_AUDIT_LOGS_READ in scopes or "*.read" in scopes:
            assert response.status_code == 200, (name, response.text)
        else:
            assert response.status_code == 403, (name, response.text)


def test_a_jwt_grants_audit_logs_read_at_most(service: AuditService) -> None:
    _, private_pem = service.generate_key_pair("acme", "most")
    token = gr4vy_auth.get_token(private_pem, scopes=[*auth.ALL_SCOPES, "*.read", "*.write"])
    who = service.authenticate(f"Bearer {token}", jwt_tenant="acme")
    assert who.scopes == {auth.SCOPE_AUDIT_LOGS_READ}
    with pytest.raises(Unauthenticated):
        service.authenticate(f"Bearer {token}")


PUBLIC = {"GET /healthz", "GET /openapi.json", "GET /v1/ledger/public-key"}
# The viewer page, its assets, and the token exchange (the token in the body is the credential).
VIEWER_PUBLIC = {"GET /viewer", "GET /viewer/assets/{name:str}", "POST /viewer/api/session"}


def test_every_route_but_the_public_ones_is_guarded_and_in_the_matrix(
    client: TestClient[Any],
) -> None:
    """A new route without a `requires` guard, or missing from ROUTES above, fails here."""
    in_matrix = {(r.method, r.path.split("?")[0]) for r in ROUTES}
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in set(handler.http_methods) - {"OPTIONS"}:
                label = f"{method} {route.path}"
                if label in PUBLIC or route.path.startswith("/docs"):
                    assert not handler.resolve_guards(), label
                    continue
                if route.path.startswith("/viewer"):
                    # Cookie-authenticated (tests/api/test_viewer_api.py), never a bearer key.
                    guards = [getattr(g, "func", g) for g in handler.resolve_guards()]
                    assert (label in VIEWER_PUBLIC) == (viewer_session not in guards), label
                    continue
                assert handler.resolve_guards(), f"{label} has no `requires` guard"
                pattern = re.sub(r"\{[^}]+\}", "[^/]+", route.path)
                assert any(m == method and re.fullmatch(pattern, p) for m, p in in_matrix), (
                    f"{label} is missing from ROUTES"
                )
