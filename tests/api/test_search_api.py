"""`q=` on GET /v1/events and /v1/export: the search language over HTTP, ANDed with the filter
parameters, cursors bound to it, syntax errors as 400s naming position and token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from tests.contract.test_search_contract import EVENTS

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def acme(client: TestClient[Any], key_for: Headers) -> dict[str, str]:
    headers = key_for()
    response = client.post("/v1/events/batch", json={"events": EVENTS}, headers=headers)
    assert response.status_code == 201, response.text
    return headers


def _ids(client: TestClient[Any], headers: dict[str, str], **params: Any) -> list[str]:
    response = client.get("/v1/events", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_q_searches_listing_and_export(client: TestClient[Any], acme: dict[str, str]) -> None:
    assert _ids(client, acme, q="action:user.* -source:api") == ["e1"]
    assert _ids(client, acme, q="invoice") == ["e4", "e3"]
    assert _ids(client, acme, q="") == ["e6", "e5", "e4", "e3", "e2", "e1"]
    export = client.get("/v1/export", params={"q": "outcome:failure"}, headers=acme)
    assert export.status_code == 200
    assert [msgspec.json.decode(line)["id"] for line in export.text.splitlines()] == ["e4", "e6"]
    csv_export = client.get(
        "/v1/export", params={"q": "metadata.retries:3", "format": "csv"}, headers=acme
    )
    assert [line.split(",")[0] for line in csv_export.text.splitlines()[1:]] == ["e1", "e2"]


def test_filters_are_anded_with_q(client: TestClient[Any], acme: dict[str, str]) -> None:
    assert _ids(client, acme, q="action:user.*,invoice.*", source="api") == ["e3", "e2"]
    assert _ids(client, acme, q="actor:u1", since="2026-01-15T00:00:00Z") == ["e3"]
    assert _ids(client, acme, q="action:user.login", action="invoice.created") == []
    assert _ids(client, acme, q="-outcome:failure", outcome="failure") == []


def test_cursors_are_bound_to_q(client: TestClient[Any], acme: dict[str, str]) -> None:
    first = client.get("/v1/events", params={"q": "-action:user", "limit": 2}, headers=acme)
    cursor = first.json()["next_cursor"]
    assert [i["id"] for i in first.json()["items"]] == ["e5", "e4"]

    def page(q: str) -> Any:
        return client.get("/v1/events", params={"q": q, "limit": 2, "cursor": cursor}, headers=acme)

    assert [i["id"] for i in page("-action:user").json()["items"]] == ["e3", "e2"]
    # The same query spelt otherwise keeps the cursor; another query is refused.
    assert page("  -action:user ").status_code == 200
    for other in ["", "-action:user.login", "-action:user after:2026-01-01", "user"]:
        assert_error(page(other), 400, "invalid_cursor")
    moved = client.get(
        "/v1/events",
        params={"q": "-action:user", "limit": 2, "cursor": cursor, "source": "web"},
        headers=acme,
    )
    assert_error(moved, 400, "invalid_cursor")


@pytest.mark.parametrize("path", ["/v1/events", "/v1/export"])
@pytest.mark.parametrize(
    ("q", "position", "token"),
    [
        ("actr:x", 1, "actr"),
        ('action:user.* actor.email:"a b', 27, '"a b'),
        ("action:a OR action:b", 10, "OR"),
        ("after:2026-02-30", 7, "2026-02-30"),
        ("action:us*er", 8, "us*er"),
        ("metadata.k:v*", 12, "v*"),
        ("...", 1, "..."),
    ],
)
def test_syntax_errors_are_400s_naming_position_and_token(
    client: TestClient[Any], acme: dict[str, str], path: str, q: str, position: int, token: str
) -> None:
    error = assert_error(client.get(path, params={"q": q}, headers=acme), 400)
    [detail] = error["details"]
    assert (detail["field"], detail["position"], detail["token"]) == ("q", position, token)
    assert f"at position {position}" in error["message"]


def test_q_is_documented_in_openapi(client: TestClient[Any]) -> None:
    spec = client.app.openapi_schema.to_schema()
    for path in ("/v1/events", "/v1/export"):
        names = {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
        assert "q" in names
