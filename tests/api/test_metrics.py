"""/metrics: protected by its own token, Prometheus text format, counters that move with
traffic, labels of bounded cardinality; and the request id every response carries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import assert_error
from trailkeeper.api.app import create_app
from trailkeeper.api.observability import JsonFormatter, TextFormatter
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService

TOKEN = "metrics-token-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def make_client(service: AuditService, database_url: str, **settings: Any) -> TestClient[Any]:
    config = load_settings(
        {},
        database_url=database_url,
        checkpoint_interval_seconds=0,
        rate_limit_per_second=0,
        **settings,
    )
    return TestClient(create_app(service, config))


@pytest.fixture
def metered(service: AuditService, database_url: str) -> Iterator[TestClient[Any]]:
    with make_client(service, database_url, metrics_token=TOKEN) as client:
        yield client


def scrape(client: TestClient[Any]) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, labels), and every family's type, as Prometheus parses them."""
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def events(n: int, start: int = 0) -> dict[str, Any]:
    return {"events": [{"action": "a", "actor": {"id": f"u{i}"}} for i in range(start, start + n)]}


def test_metrics_are_off_without_a_token(service: AuditService, database_url: str) -> None:
    with make_client(service, database_url) as client:
        assert_error(client.get("/metrics", headers=SCRAPE), 404, "not_found")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}],
)
def test_metrics_need_the_token(metered: TestClient[Any], headers: dict[str, str]) -> None:
    assert_error(metered.get("/metrics", headers=headers), 401, "unauthenticated")


def test_counters_move_with_requests(
    metered: TestClient[Any], key_for: Callable[..., dict[str, str]]
) -> None:
    acme = key_for("acme")
    before, types = scrape(metered)
    assert types["trailkeeper_http_requests"] == "counter"
    assert types["trailkeeper_http_request_duration_seconds"] == "histogram"
    assert types["trailkeeper_events_ingested"] == "counter"
    assert types["trailkeeper_ingest_batch_size"] == "histogram"

    assert metered.post("/v1/events/batch", json=events(3), headers=acme).status_code == 201
    assert metered.post("/v1/events/batch", json=events(2, 10), headers=acme).status_code == 201
    listed = metered.get("/v1/events", headers=acme).json()["items"]
    for event in listed[:2]:  # two ids, one route template
        assert metered.get(f"/v1/events/{event['id']}", headers=acme).status_code == 200
    assert metered.get("/v1/events/evt_missing", headers=acme).status_code == 404
    assert metered.get("/no/such/path").status_code == 404

    after, _ = scrape(metered)
    requests = "trailkeeper_http_requests_total"
    batch = {"method": "POST", "route": "/v1/events/batch", "status": "201"}
    assert value(after, requests, **batch) - value(before, requests, **batch) == 2
    one = {"method": "GET", "route": "/v1/events/{event_id}"}
    assert value(after, requests, **one, status="200") == 2
    assert value(after, requests, **one, status="404") == 1
    assert value(after, requests, method="GET", route="unmatched", status="404") == 1
    assert value(after, "trailkeeper_http_request_duration_seconds_count", **one) == 3
    routes = {dict(labels).get("route") for name, labels in after if name == requests}
    assert not any(route and "evt_" in route for route in routes), "raw paths never become labels"
    assert value(after, "trailkeeper_events_ingested_total", tenant="acme") == 5
    assert value(after, "trailkeeper_ingest_batch_size_count") == 2
    assert value(after, "trailkeeper_ingest_batch_size_sum") == 5


def test_retried_events_are_not_counted_twice(
    metered: TestClient[Any], key_for: Callable[..., dict[str, str]]
) -> None:
    acme = key_for("acme")
    batch = {"events": [{"id": f"evt-{i}", "action": "a", "actor": {"id": "u"}} for i in range(4)]}
    assert metered.post("/v1/events/batch", json=batch, headers=acme).status_code == 201
    assert metered.post("/v1/events/batch", json=batch, headers=acme).status_code == 200
    samples, _ = scrape(metered)
    assert value(samples, "trailkeeper_events_ingested_total", tenant="acme") == 4
    assert value(samples, "trailkeeper_ingest_batch_size_count") == 2


def test_tenant_labels_are_bounded(
    service: AuditService, database_url: str, key_for: Callable[..., dict[str, str]]
) -> None:
    with make_client(service, database_url, metrics_token=TOKEN, metrics_max_tenants=1) as client:
        for tenant in ("acme", "globex", "acme"):
            response = client.post("/v1/events/batch", json=events(2), headers=key_for(tenant))
            assert response.status_code == 201
        samples, _ = scrape(client)
    ingested = {
        dict(labels)["tenant"]: count
        for (name, labels), count in samples.items()
        if name == "trailkeeper_events_ingested_total"
    }
    assert ingested == {"acme": 4, "_other": 2}


def test_database_figures_are_exported(metered: TestClient[Any], database_url: str) -> None:
    samples, _ = scrape(metered)
    if database_url.startswith("sqlite"):
        assert ("trailkeeper_db_writer_queue", frozenset()) in samples
    else:
        assert value(samples, "trailkeeper_db_pool_connections", state="size") >= 1
        assert ("trailkeeper_db_pool_requests_waiting", frozenset()) in samples


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("trace.id:42_x", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ('quote"', False),
        ("", False),
    ],
)
def test_request_id_is_echoed_when_sane(
    metered: TestClient[Any], key_for: Callable[..., dict[str, str]], sent: str, kept: bool
) -> None:
    response = metered.get("/v1/events", headers={**key_for("acme"), "X-Request-ID": sent})
    returned = response.headers["x-request-id"]
    if kept:
        assert returned == sent
    else:
        assert returned != sent
        assert len(returned) == 32
        assert returned.isalnum()


def test_errors_are_logged_with_the_request_id(
    metered: TestClient[Any],
    key_for: Callable[..., dict[str, str]],
    service: AuditService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "list_events", broken)
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not assignment: it clears the loggers' caches
    try:
        headers = {**key_for("acme"), "X-Request-ID": "req-500"}
        response = metered.get("/v1/events", headers=headers)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert_error(response, 500, "internal_error")
    assert response.headers["x-request-id"] == "req-500"
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    [error] = [line for line in lines if line["level"] == "error"]
    assert error["request_id"] == "req-500"
    assert "RuntimeError: boom" in error["exception"]
    [access] = [line for line in lines if line["logger"] == "trailkeeper.access"]
    assert access["status"] == 500
    assert access["request_id"] == "req-500"


FORGED = "2026-12-07 14:51:00,000 INFO trailkeeper.access DELETE /v1/events 204 1.0ms"


def test_text_logs_escape_control_characters_so_no_line_can_be_forged(
    metered: TestClient[Any], service: AuditService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoded request path with a newline or a terminal escape stays on its own line,
    escaped; so do the fields and a traceback's lines (indented)."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom\n{FORGED}\x1b[2J")

    monkeypatch.setattr(service, "list_events", broken)
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        metered.get("/x%0A" + FORGED.replace(" ", "%20") + "%1B[2J%E2%80%A8")
        metered.get("/v1/events", headers=metered_key(service))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = sink.getvalue()
    assert "\x1b" not in text
    assert "\u2028" not in text
    for line in text.splitlines():
        assert not line.startswith(FORGED), text
    [access] = [line for line in text.splitlines() if "GET /x" in line]
    assert f"GET /x\\n{FORGED}\\x1b[2J\\u2028 404" in access
    assert "    RuntimeError: boom" in text


def metered_key(service: AuditService) -> dict[str, str]:
    _, token = service.create_key("acme", "test", ("events.read",))
    return {"Authorization": f"Bearer {token}"}


def test_a_405_is_labelled_with_its_routes_template(
    metered: TestClient[Any], key_for: Callable[..., dict[str, str]]
) -> None:
    """`unmatched` is for paths no route serves; a wrong method on a served path is not one."""
    assert metered.put("/v1/events", headers=key_for()).status_code == 405
    assert metered.delete("/v1/events/evt_1", headers=key_for()).status_code == 405
    after, _ = scrape(metered)
    requests = "trailkeeper_http_requests_total"
    assert value(after, requests, method="PUT", route="/v1/events", status="405") == 1
    one = {"method": "DELETE", "route": "/v1/events/{event_id}", "status": "405"}
    assert value(after, requests, **one) == 1
    assert value(after, requests, method="PUT", route="unmatched", status="405") == 0


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_metrics_take_the_bearer_scheme_in_any_case(metered: TestClient[Any], scheme: str) -> None:
    response = metered.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200, response.text
