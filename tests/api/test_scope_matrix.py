"""Every authenticated route against every credential: each API key scope alone (`admin` on a
key of the operator tenant `_system`, the others on a tenant's key), and key-pair JWTs (which
authenticate `GET /audit-logs` only, and grant `audit-logs.read` at most)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from gr4vy import auth as gr4vy_auth
from litestar.testing import TestClient

from trailkeeper import auth, retention
from trailkeeper.api.viewer import viewer_session
from trailkeeper.errors import Unauthenticated
from trailkeeper.service import AdminActor, AuditService
from trailkeeper.streams.manage import StreamAdmin
from trailkeeper.streams.model import StreamIn

Headers = Callable[..., dict[str, str]]
EVENT = {"id": "evt-1", "action": "created", "actor": {"id": "u1"}}
MERCHANT = {"x-gr4vy-merchant-account-id": "acme"}


class Route:
    """One route, the scopes a key needs for it, and a request that succeeds with them."""

    def __init__(self, method: str, path: str, scopes: set[str], body: Any = None) -> None:
        self.method, self.path, self.scopes, self.body = method, path, scopes, body

    def call(self, client: TestClient[Any], headers: dict[str, str], seeded: Seeded) -> Any:
        path = self.path.replace("{pair}", seeded[0]).replace("{key}", seeded[2])
        if "{stream}" in path:  # a stream of its own: deleting one must not spoil the next call
            path = path.replace("{stream}", seeded[3]())
        if "{hold}" in path:  # a fresh hold each call: lifting one succeeds once
            path = path.replace("{hold}", seeded[4]())
        body = self.body() if callable(self.body) else self.body
        return client.request(self.method, path, json=body, headers={**MERCHANT, **headers})

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


# A key pair's id and private key, an API key's id, and makers of streams and legal holds
# (all acme's).
Seeded = tuple[str, str, str, Callable[[], str], Callable[[], str]]
WRITE, READ = {auth.SCOPE_EVENTS_WRITE}, {auth.SCOPE_EVENTS_READ}
AUDIT, PAIRS = {auth.SCOPE_AUDIT_LOGS_READ}, {auth.SCOPE_KEY_PAIRS_WRITE}
VIEWER = {auth.SCOPE_VIEWER_CREATE}
ERASE, HOLDS = {auth.SCOPE_ERASURE_WRITE}, {auth.SCOPE_LEGAL_HOLDS_WRITE}
STREAMS = {auth.SCOPE_STREAMS_WRITE}
WEBHOOK = {"type": "webhook", "url": "https://siem.example.com/hook"}
ADMIN = {auth.SCOPE_ADMIN}
SCOPES = (*auth.ALL_SCOPES, auth.SCOPE_ADMIN)
_numbers = itertools.count()


def _new_tenant() -> dict[str, str]:
    return {"id": f"t{next(_numbers)}"}


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
    Route("POST", "/v1/erasures", ERASE, {"subject": {"email": "a@b.c"}, "reason": "asked"}),
    Route("POST", "/v1/legal-holds", HOLDS, {"reason": "case", "subject": {"actor_id": "u9"}}),
    Route("GET", "/v1/legal-holds", HOLDS),
    Route("DELETE", "/v1/legal-holds/{hold}", HOLDS),
    Route("POST", "/v1/streams", STREAMS, {"name": "s", "destination": WEBHOOK}),
    Route("GET", "/v1/streams", STREAMS),
    Route("GET", "/v1/streams/{stream}", STREAMS),
    Route("PATCH", "/v1/streams/{stream}", STREAMS, {"paused": True}),
    Route("DELETE", "/v1/streams/{stream}", STREAMS),
    Route("POST", "/v1/streams/{stream}/replay", STREAMS, {"log_index": 0}),
    Route("POST", "/v1/streams/{stream}/rotate-secret", STREAMS, {}),
    Route("POST", "/v1/tenants", ADMIN, _new_tenant),
    Route("GET", "/v1/tenants", ADMIN),
    Route("GET", "/v1/tenants/acme", ADMIN),
    Route("PATCH", "/v1/tenants/globex", ADMIN, {"name": "Globex"}),
    Route("POST", "/v1/tenants/acme/keys", ADMIN, {"name": "made", "scopes": ["events.read"]}),
    Route("GET", "/v1/tenants/acme/keys", ADMIN),
    Route("DELETE", "/v1/tenants/acme/keys/{key}", ADMIN),
]
JWT_ROUTE = "GET /audit-logs"


@pytest.fixture
def seeded(client: TestClient[Any], key_for: Headers, service: AuditService) -> Seeded:
    """One event, one key pair, one API key: every route has something to succeed on."""
    assert client.post("/v1/events", json=EVENT, headers=key_for()).status_code == 201
    pair, private_pem = service.generate_key_pair("acme", "matrix")
    key, _ = service.create_key("acme", "to-revoke")
    streams = StreamAdmin(service.store)
    stream_in = msgspec.convert({"name": "s", "destination": WEBHOOK}, StreamIn)

    def new_stream() -> str:
        return streams.create("acme", stream_in)[0].id

    def new_hold() -> str:
        return retention.place_hold(service, "acme", "matrix", AdminActor.cli()).id

    return pair.id, private_pem, key.id, new_stream, new_hold


def _key_with(key_for: Headers, scopes: set[str] | tuple[str, ...]) -> dict[str, str]:
    """A key holding `scopes`: the operator tenant's for `admin`, acme's otherwise."""
    tenant = auth.SYSTEM_TENANT if auth.SCOPE_ADMIN in scopes else "acme"
    return key_for(tenant, tuple(scopes))


@pytest.mark.parametrize("route", ROUTES, ids=repr)
def test_each_scope_alone_opens_exactly_its_routes(
    client: TestClient[Any], key_for: Headers, seeded: Seeded, route: Route
) -> None:
    for scope in SCOPES:
        response = route.call(client, _key_with(key_for, (scope,)), seeded)
        expected_ok = route.scopes == {scope}
        assert (response.status_code < 300) == expected_ok, (scope, response.text)
        if not expected_ok:
            assert response.status_code == 403, (scope, response.text)
    response = route.call(client, _key_with(key_for, route.scopes), seeded)
    assert response.status_code < 300, response.text


@pytest.mark.parametrize("route", [r for r in ROUTES if r.scopes == ADMIN], ids=repr)
def test_a_tenant_key_with_every_scope_reaches_no_admin_route(
    client: TestClient[Any], key_for: Headers, seeded: Seeded, route: Route
) -> None:
    response = route.call(client, key_for("acme", auth.ALL_SCOPES), seeded)
    assert response.status_code == 403, response.text


JWT_SCOPES = {
    "sdk-default": ["*.read", "*.write"],
    "read-all": ["*.read"],
    "audit-logs": ["audit-logs.read"],
    "every-scope": [*auth.ALL_SCOPES, auth.SCOPE_ADMIN, "*.read", "*.write"],
    "events-read": ["events.read"],
    "write-all": ["*.write"],
    "unrelated": ["buyers.read"],
}


@pytest.mark.parametrize("route", ROUTES, ids=repr)
def test_a_jwt_authenticates_only_gr4vy_audit_logs(
    client: TestClient[Any], seeded: Seeded, route: Route
) -> None:
    private_pem = seeded[1]
    for name, scopes in JWT_SCOPES.items():
        token = gr4vy_auth.get_token(private_pem, scopes=scopes)
        response = route.call(client, {"Authorization": f"Bearer {token}"}, seeded)
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
