"""What every route refuses alike (api/shared.check_request): undeclared or repeated query
parameters and an empty JSON body; and integer parameters written with leading zeros."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from trailkeeper import auth
from trailkeeper.api import viewer
from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

Headers = Callable[..., dict[str, str]]


def _every_route() -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, walked from the app itself so
    that a route added later is covered without editing this list."""
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/routes.db")
    try:
        app = create_app(AuditService(store), load_settings({}))
    finally:
        store.close()
    found = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            found += [
                (m, route.path) for m in sorted(route.methods) if m not in ("OPTIONS", "HEAD")
            ]
    return found


ROUTES = _every_route()


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", template)


@pytest.fixture
def signed_in(
    client: TestClient[Any], service: AuditService, key_for: Headers
) -> tuple[TestClient[Any], dict[str, str], dict[str, str]]:
    """The client with a viewer session cookie, a tenant key with every scope, an admin key."""
    session = viewer.Grant("session", "acme", int(time.time()) + 600)
    client.cookies.set(viewer.COOKIE, viewer.encode_grant(service.viewer_key, session))
    _, admin = service.create_key(auth.SYSTEM_TENANT, "ops", (auth.SCOPE_ADMIN,))
    return client, key_for(), {"Authorization": f"Bearer {admin}"}


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_an_unknown_query_parameter(
    signed_in: tuple[TestClient[Any], dict[str, str], dict[str, str]], method: str, template: str
) -> None:
    client, tenant, admin = signed_in
    headers = admin if template.startswith("/v1/tenants") else tenant
    path = _concrete(template)
    response = client.request(method, f"{path}?no_such_parameter=1", headers=headers)
    assert response.status_code == 400, response.text
    assert "no_such_parameter" in response.text
    if not template.startswith(("/audit-events", "/audit-logs")):  # dialects' own bodies
        error = assert_error(response, 400, "invalid_request")
        assert error["details"] == [{"field": "no_such_parameter", "message": "unknown parameter"}]


@pytest.mark.parametrize(
    "path", ["/v1/events/x", "/v1/key-pairs", "/v1/ledger/public-key", "/healthz"]
)
def test_a_repeated_parameter_is_refused_where_unknown_ones_were_ignored(
    client: TestClient[Any], key_for: Headers, path: str
) -> None:
    response = client.get(f"{path}?zz=1", headers=key_for())
    assert_error(response, 400, "invalid_request")
    repeated = client.get("/v1/events?limit=1&limit=2", headers=key_for())
    error = assert_error(repeated, 400, "invalid_request")
    assert error["details"] == [{"field": "limit", "message": "given more than once"}]


def test_unknown_query_is_checked_after_authentication(client: TestClient[Any]) -> None:
    assert_error(client.get("/v1/events/x?zz=1"), 401)
    assert_error(client.post("/v1/events?zz=1", content=b"{"), 401)


def test_asset_urls_keep_their_cache_busting_query(client: TestClient[Any]) -> None:
    page = client.get("/viewer").text
    asset = re.search(r'src="(/viewer/assets/[^"]+\?v=[^"]+)"', page)
    assert asset is not None
    assert client.get(asset.group(1)).status_code == 200
    docs = client.get("/docs").text
    script = re.search(r'src="(/docs/assets/[^"]+\?v=[^"]+)"', docs)
    assert script is not None
    assert client.get(script.group(1).replace("&amp;", "&")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/events",
        "/v1/events/batch",
        "/v1/key-pairs",
        "/v1/tenants",
        "/v1/tenants/acme/keys",
        "/v1/viewer-tokens",
    ],
)
@pytest.mark.parametrize("body", [b"", b"  \n"], ids=["empty", "whitespace"])
def test_an_empty_body_says_so(
    signed_in: tuple[TestClient[Any], dict[str, str], dict[str, str]], path: str, body: bytes
) -> None:
    client, tenant, admin = signed_in
    headers = {**(admin if path.startswith("/v1/tenants") else tenant)}
    headers["Content-Type"] = "application/json"
    error = assert_error(client.post(path, content=body, headers=headers), 400, "invalid_request")
    assert error["message"] == "request body is empty; expected a JSON object"
    assert [d["field"] for d in error["details"]] == ["body"]


@pytest.mark.parametrize("limit", ["05", "0005", "%305"])
def test_limit_with_leading_zeros_is_a_decimal_number(
    client: TestClient[Any], key_for: Headers, limit: str
) -> None:
    response = client.get(f"/v1/events?limit={limit}", headers=key_for())
    assert response.status_code == 200, response.text
    assert response.json()["limit"] == 5


def test_zero_with_leading_zeros_is_still_out_of_range(
    client: TestClient[Any], key_for: Headers
) -> None:
    error = assert_error(client.get("/v1/events?limit=000", headers=key_for()), 400)
    assert error["details"][0]["field"] == "limit"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("/v1/ledger/consistency?from=0&to=99999", "to", "to must be between"),
        ("/v1/ledger/consistency?from=99999&to=99999", "from", "from must be between"),
        ("/v1/ledger/consistency?from=2&to=1", "from", "from must not be larger than to"),
        ("/v1/ledger/checkpoint?size=99999", "size", "size must be between"),
        (
            "/v1/events?since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z",
            "since",
            "since must be earlier than until",
        ),
        ("/v1/events?cursor=garbage", "cursor", "cursor is not valid"),
        ("/v1/events?cursor=%21", "cursor", "cursor is"),
    ],
)
def test_each_400_names_its_field(
    client: TestClient[Any], key_for: Headers, query: str, field: str, message: str
) -> None:
    error = assert_error(client.get(query, headers=key_for()), 400)
    assert error["message"].startswith(message), error
    assert [d["field"] for d in error["details"]] == [field]
