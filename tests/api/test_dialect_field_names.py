"""Errors in a compatible dialect name that API's parameters, never trailkeeper's internal
field names (issue 23, item 17: Gr4vy's `user_id` was reported as `actor_id`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

Headers = Callable[..., dict[str, str]]
INTERNAL = ("actor_id", "target_type", "target_id")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("user_id", "%00"),
        ("user_id", "a%00b"),
        ("user_id", "x" * 257),
        ("user_id", ""),
        ("resource_type", "%00"),
        ("resource_type", "y" * 257),
        ("resource_type", ""),
    ],
)
def test_gr4vy_errors_name_gr4vy_parameters(
    client: TestClient[Any], key_for: Headers, param: str, value: str
) -> None:
    headers = {**key_for(), "x-gr4vy-merchant-account-id": "acme"}
    response = client.get(f"/audit-logs?{param}={value}", headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error"
    assert [d["pointer"] for d in body["details"]] == [param]
    assert body["message"].startswith(param)
    assert not any(name in response.text for name in INTERNAL)


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "cursor=" + "c" * 300])
def test_courier_errors_name_courier_parameters(
    client: TestClient[Any], key_for: Headers, query: str
) -> None:
    response = client.get(f"/audit-events?{query}", headers=key_for())
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"message", "type"}
    assert body["message"].startswith(query.split("=")[0])
