"""Per-key rate limiting: 429 with Retry-After, in each API's own error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from trailkeeper.api.app import create_app
from trailkeeper.api.ratelimit import RateLimited, RateLimiter
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.hit("k")
    with pytest.raises(RateLimited) as limited:
        limiter.hit("k")
    assert limited.value.retry_after == 1
    limiter.hit("other")  # buckets are per key
    now[0] += 0.5  # one token back at 2/s
    limiter.hit("k")
    with pytest.raises(RateLimited):
        limiter.hit("k")
    RateLimiter(rate=0, burst=1).hit("k")  # 0 disables


@pytest.fixture
def strict_client(service: AuditService, database_url: str) -> Iterator[TestClient[Any]]:
    settings = load_settings(
        {}, database_url=database_url, rate_limit_per_second=0.5, rate_limit_burst=2
    )
    with TestClient(create_app(service, settings)) as test_client:
        yield test_client


def test_429_per_key_in_each_dialect(strict_client: TestClient[Any], service: AuditService) -> None:
    _, token = service.create_key("acme", "limited")
    headers = {"Authorization": f"Bearer {token}"}
    assert strict_client.get("/v1/events", headers=headers).status_code == 200
    assert strict_client.get("/v1/events", headers=headers).status_code == 200
    native = strict_client.get("/v1/events", headers=headers)
    error = assert_error(native, 429, "rate_limited")
    assert "retry" in error["message"]
    assert int(native.headers["retry-after"]) >= 1

    courier = strict_client.get("/audit-events", headers=headers)
    assert courier.status_code == 429
    assert courier.json()["type"] == "rate_limit_error"
    gr4vy = strict_client.get(
        "/audit-logs", headers={**headers, "x-gr4vy-merchant-account-id": "acme"}
    )
    assert gr4vy.status_code == 429
    assert gr4vy.json()["code"] == "too_many_requests"
    assert "retry-after" in gr4vy.headers

    _, fresh = service.create_key("acme", "another")
    response = strict_client.get("/v1/events", headers={"Authorization": f"Bearer {fresh}"})
    assert response.status_code == 200, "other keys are not affected"
