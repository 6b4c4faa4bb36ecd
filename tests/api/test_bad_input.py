"""Table-driven bad input: each gets a 4xx with the one error body, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error

Headers = Callable[..., dict[str, str]]
OK = {"action": "created", "actor": {"id": "u1"}}


def with_(**changes: Any) -> bytes:
    return json.dumps({**OK, **changes}).encode()


BAD_BODIES: list[tuple[str, bytes, int]] = [
    ("not json", b"{nope", 400),
    ("empty body", b"", 400),
    ("json array", b"[]", 400),
    ("json string", b'"event"', 400),
    ("invalid utf-8", b'{"action": "\xff\xfe", "actor": {"id": "u"}}', 400),
    ("lone surrogate", b'{"action": "\\ud800", "actor": {"id": "u"}}', 400),
    (
        "deep nesting",
        b'{"action":"a","actor":{"id":"u"},"metadata":{"x":'
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}}",
        400,
    ),
    ("metadata too deep", with_(metadata={"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}), 400),
    ("missing action", json.dumps({"actor": {"id": "u"}}).encode(), 400),
    ("missing actor", json.dumps({"action": "a"}).encode(), 400),
    ("empty actor id", with_(actor={"id": ""}), 400),
    ("action wrong type", with_(action=5), 400),
    ("staff wrong type", with_(actor={"id": "u", "staff": "yes"}), 400),
    ("unknown field", with_(tenant_id="other"), 400),
    ("unknown actor field", with_(actor={"id": "u", "role": "x"}), 400),
    ("action too long", with_(action="a" * 257), 400),
    ("user agent too long", with_(context={"user_agent": "u" * 1025}), 400),
    ("metadata too big", with_(metadata={"blob": "x" * 9000}), 400),
    ("metadata not object", with_(metadata=[1, 2]), 400),
    ("nul in action", with_(action="a\x00b"), 400),
    ("nul in metadata key", with_(metadata={"a\x00": 1}), 400),
    ("nul in metadata value", with_(metadata={"a": ["ok", {"b": "x\x00"}]}), 400),
    ("bad id chars", with_(id="../../etc/passwd"), 400),
    ("id too long", with_(id="a" * 129), 400),
    ("naive occurred_at", with_(occurred_at="2024-01-01T00:00:00"), 400),
    ("occurred_at garbage", with_(occurred_at="yesterday"), 400),
    ("occurred_at far future", with_(occurred_at="2999-01-01T00:00:00Z"), 400),
    ("occurred_at before 1970", with_(occurred_at="1969-12-31T23:59:59Z"), 400),
    # No UTC datetime exists for these (OverflowError, a 500, before they were refused).
    ("occurred_at before year 1 in UTC", with_(occurred_at="0001-01-01T00:00:00+00:01"), 400),
    ("occurred_at after 9999 in UTC", with_(occurred_at="9999-12-31T23:59:59-01:00"), 400),
    ("bad ip", with_(context={"ip": "999.1.1.1"}), 400),
    ("nul in ip", with_(context={"ip": "1.2.3.4\x00"}), 400),
    ("ip with newline", with_(context={"ip": "1.2.3.4\n"}), 400),
    ("bad email", with_(actor={"id": "u", "email": "not-an-email"}), 400),
    ("bad target email", with_(target={"email": "a@@b"}), 400),
    ("id with newline", with_(id="abc\n"), 400),
    ("sql in id", with_(id="x'; DROP TABLE events;--"), 400),
]


@pytest.mark.parametrize(
    ("body"), [b for _, b, _ in BAD_BODIES], ids=[name for name, _, _ in BAD_BODIES]
)
def test_bad_event_bodies(client: TestClient[Any], key_for: Headers, body: bytes) -> None:
    headers = {**key_for(), "Content-Type": "application/json"}
    response = client.post("/v1/events", content=body, headers=headers)
    assert_error(response, 400)
    batch = b'{"events": [' + json.dumps(OK).encode() + b", " + body + b"]}"
    assert_error(client.post("/v1/events/batch", content=batch, headers=headers), 400)
    assert client.get("/v1/events", headers=headers).json()["items"] == []


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


def test_metadata_depth_limit_is_exact(client: TestClient[Any], key_for: Headers) -> None:
    headers = key_for()
    ok = client.post("/v1/events", content=with_(metadata=nested(16)), headers=headers)
    assert ok.status_code == 201, ok.text
    assert_error(
        client.post("/v1/events", content=with_(metadata=nested(17)), headers=headers), 400
    )
    # brackets inside strings are not nesting
    text = client.post(
        "/v1/events", content=with_(metadata={"s": "[[[[{{{{" * 10}), headers=headers
    )
    assert text.status_code == 201


def test_oversized_body_is_413_and_stores_nothing(
    client: TestClient[Any], key_for: Headers
) -> None:
    headers = {**key_for(), "Content-Type": "application/json"}
    event = json.dumps(OK).encode()
    body = b'{"events": [' + b",".join([event] * 80_000) + b"]}"  # ~3 MiB > the 2 MiB limit
    assert_error(
        client.post("/v1/events/batch", content=body, headers=headers), 413, "payload_too_large"
    )
    assert client.get("/v1/events", headers=headers).json()["items"] == []


BAD_QUERIES = [
    "limit=0",
    "limit=101",
    "limit=-5",
    "limit=ten",
    "limit=1.5",
    "limit=1e2",
    "limit=20.0",
    "since=1700000000",
    "until=1700000000.5",
    "since=yesterday",
    "since=2024-01-01T00:00:00",
    "until=2024-13-01T00:00:00Z",
    "since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z",
    "actorid=u1",
    "action=a&action=b",
    "action=",
    "actor_id=" + "x" * 300,
    "cursor=" + "x" * 300,
    "cursor=' OR 1=1 --",
    "actor_id=%00",
    "source=a%00b",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_list_queries(client: TestClient[Any], key_for: Headers, query: str) -> None:
    assert_error(client.get(f"/v1/events?{query}", headers=key_for()), 400)


@pytest.mark.parametrize(
    "value", ["' OR '1'='1", 'x"; DROP TABLE events; --', "%", "_", "*", "\\", "😀", "null"]
)
def test_sql_metacharacters_in_filters_are_just_text(
    client: TestClient[Any], key_for: Headers, value: str
) -> None:
    headers = key_for()
    assert client.post("/v1/events", json=OK, headers=headers).status_code == 201
    for name in ["actor_id", "action", "type", "target_type", "target_id", "source"]:
        response = client.get("/v1/events", params={name: value}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []
    assert len(client.get("/v1/events", headers=headers).json()["items"]) == 1


def test_bad_export_format(client: TestClient[Any], key_for: Headers) -> None:
    assert_error(client.get("/v1/export?format=xml", headers=key_for()), 400)


@pytest.mark.parametrize("event_id", ["a" * 129, "nope", "%00", "..", "x'--"])
def test_unknown_or_odd_ids_are_404(
    client: TestClient[Any], key_for: Headers, event_id: str
) -> None:
    assert_error(client.get(f"/v1/events/{event_id}", headers=key_for()), 404)


# ---- exactly the documented forms (docs/events.md, docs/api.md) ----------------------------

LOOSE_BODIES = [
    ({"occurred_at": 1700000000}, "occurred_at"),
    ({"occurred_at": 1700000000.5}, "occurred_at"),
    ({"occurred_at": "1700000000"}, "occurred_at"),
    ({"actor": {"id": "u", "staff": "true"}}, "actor.staff"),
    ({"actor": {"id": "u", "staff": "false"}}, "actor.staff"),
    ({"actor": {"id": "u", "staff": "1"}}, "actor.staff"),
    ({"actor": {"id": "u", "staff": 1}}, "actor.staff"),
    ({"actor": {"id": "u", "staff": 0}}, "actor.staff"),
]


@pytest.mark.parametrize(("change", "field"), LOOSE_BODIES, ids=[str(c) for c, _ in LOOSE_BODIES])
def test_loose_body_values_are_refused_naming_the_field(
    client: TestClient[Any], key_for: Headers, change: dict[str, Any], field: str
) -> None:
    headers = key_for()
    error = assert_error(client.post("/v1/events", content=with_(**change), headers=headers), 400)
    assert [d["field"] for d in error["details"]] == [field]
    batch = {"events": [OK, {**OK, **change}]}
    error = assert_error(client.post("/v1/events/batch", json=batch, headers=headers), 400)
    assert [d["field"] for d in error["details"]] == [f"events[1].{field}"]
    assert client.get("/v1/events", headers=headers).json()["items"] == []


def test_documented_body_forms_are_accepted(client: TestClient[Any], key_for: Headers) -> None:
    headers = key_for()
    for change in [
        {"actor": {"id": "u", "staff": True}},
        {"actor": {"id": "u", "staff": False}},
        {"occurred_at": "2024-05-01T10:00:00Z"},
        {"occurred_at": "2024-05-01T12:00:00.123456+02:00"},
    ]:
        response = client.post("/v1/events", content=with_(**change), headers=headers)
        assert response.status_code == 201, response.text


NATIVE_LOOSE_QUERIES = [
    ("/v1/events", "limit", "1e2"),
    ("/v1/events", "limit", "20.0"),
    ("/v1/events", "since", "1700000000"),
    ("/v1/events", "until", "1700000000.5"),
    ("/v1/export", "since", "1700000000"),
    ("/v1/export", "until", "0"),
    ("/v1/ledger/checkpoint", "size", "1e3"),
    ("/v1/ledger/checkpoint", "size", "0.0"),
    ("/v1/ledger/consistency?to=0", "from", "0e0"),
    ("/v1/ledger/consistency?from=0", "to", "1e0"),
]


@pytest.mark.parametrize(("path", "name", "value"), NATIVE_LOOSE_QUERIES)
def test_loose_query_values_are_refused_naming_the_parameter(
    client: TestClient[Any], key_for: Headers, path: str, name: str, value: str
) -> None:
    """Litestar converts query text leniently (`1e2` -> 100, `1700000000` -> a Unix time)."""
    joiner = "&" if "?" in path else "?"
    error = assert_error(client.get(f"{path}{joiner}{name}={value}", headers=key_for()), 400)
    assert [d["field"] for d in error["details"]] == [name]
    assert name in error["message"]


def test_loose_query_values_are_refused_by_the_compatible_apis(
    client: TestClient[Any], key_for: Headers
) -> None:
    headers = key_for()
    courier = client.get("/audit-events?limit=1e2", headers=headers)
    assert courier.status_code == 400, courier.text
    assert courier.json()["type"] == "invalid_request_error"
    assert courier.json()["message"].startswith("limit ")
    gr4vy_headers = {**headers, "x-gr4vy-merchant-account-id": "acme"}
    gr4vy = client.get("/audit-logs?limit=1e2", headers=gr4vy_headers)
    assert gr4vy.status_code == 400, gr4vy.text
    assert [d["pointer"] for d in gr4vy.json()["details"]] == ["limit"]
    for path in ["/audit-events?limit=20", "/audit-logs?limit=20"]:
        assert client.get(path, headers=gr4vy_headers).status_code == 200
