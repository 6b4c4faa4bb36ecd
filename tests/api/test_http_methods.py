"""HEAD, OPTIONS, 405s and exact content types (issue 23, item 17)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error

Headers = Callable[..., dict[str, str]]
EVENT = {"action": "user.login", "actor": {"id": "u1"}, "id": "evt-1"}
# Every GET route, with a URL that answers 200 once EVENT is stored.
GET_URLS = [
    "/healthz",
    "/openapi.json",
    "/docs",
    "/v1/events",
    "/v1/events/evt-1",
    "/v1/export",
    "/v1/export?format=csv",
    "/v1/ledger/checkpoint",
    "/v1/events/evt-1/proof",
    "/v1/ledger/consistency?from=0&to=1",
    "/v1/ledger/public-key",
    "/v1/key-pairs",
    "/audit-events",
    "/audit-events/evt-1",
    "/audit-logs",
]
# Per response: a fresh request id is generated for each request without X-Request-ID.
_VARYING = {"date", "content-length", "transfer-encoding", "x-request-id"}


@pytest.fixture
def headers(client: TestClient[Any], key_for: Headers) -> dict[str, str]:
    sent = {**key_for(), "x-gr4vy-merchant-account-id": "acme"}
    assert client.post("/v1/events", json=EVENT, headers=sent).status_code == 201
    return sent


@pytest.mark.parametrize("url", GET_URLS)
def test_head_answers_like_get_without_a_body(
    client: TestClient[Any], headers: dict[str, str], url: str
) -> None:
    got = client.get(url, headers=headers)
    head = client.head(url, headers=headers)
    assert got.status_code == 200, got.text
    assert head.status_code == 200
    assert head.content == b""
    same = {k: v for k, v in got.headers.items() if k not in _VARYING}
    assert {k: v for k, v in head.headers.items() if k not in _VARYING} == same
    if "content-length" in got.headers:
        assert head.headers["content-length"] == got.headers["content-length"]


def test_head_answers_errors_like_get(client: TestClient[Any]) -> None:
    head = client.head("/v1/events")
    assert head.status_code == 401
    assert head.content == b""
    assert head.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/events", "GET, HEAD, OPTIONS, POST"),
        ("/v1/key-pairs", "GET, HEAD, OPTIONS, POST"),
        ("/v1/events/evt-1", "GET, HEAD, OPTIONS"),
        ("/v1/events/batch", "OPTIONS, POST"),
        ("/v1/key-pairs/some-id", "DELETE, OPTIONS"),
        ("/audit-logs", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_and_405_list_every_method_of_the_path(
    client: TestClient[Any], path: str, allow: str
) -> None:
    options = client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == allow
    assert options.content == b""
    wrong = client.put(path)
    assert_error(wrong, 405)
    assert wrong.headers["allow"] == allow


def test_head_on_a_path_without_get_is_405(client: TestClient[Any]) -> None:
    response = client.head("/v1/events/batch")
    assert response.status_code == 405
    assert response.content == b""
    assert response.headers["allow"] == "OPTIONS, POST"


def test_options_on_an_unknown_path_is_404(client: TestClient[Any]) -> None:
    assert_error(client.options("/v2/nothing"), 404)


def test_export_content_types_carry_one_charset(
    client: TestClient[Any], headers: dict[str, str]
) -> None:
    csv = client.get("/v1/export?format=csv", headers=headers)
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    jsonl = client.get("/v1/export", headers=headers)
    assert jsonl.headers["content-type"] == "application/x-ndjson"
