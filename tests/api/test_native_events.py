"""Native API behaviour: ingestion, idempotency, batches, filters, paging, cursors."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from tests.factories import event_payload
from trailkeeper.api.native import prefers_minimal

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def acme(key_for: Headers) -> dict[str, str]:
    return key_for("acme")


def all_ids(client: TestClient[Any], headers: dict[str, str]) -> list[str]:
    return [
        line.split('"id":"', 1)[1].split('"', 1)[0]
        for line in client.get("/v1/export", headers=headers).text.splitlines()
    ]


def test_created_event_has_server_fields(client: TestClient[Any], acme: dict[str, str]) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = client.post(
        "/v1/events", json={"action": "user.login", "actor": {"id": "u1"}}, headers=acme
    )
    assert response.status_code == 201
    body = response.json()
    assert body["tenant"] == "acme"
    assert len(body["id"]) == 36
    assert body["id"][14] == "7", "server ids are UUIDv7"
    received = datetime.fromisoformat(body["received_at"])
    assert body["occurred_at"] == body["received_at"], "occurred_at defaults to receive time"
    assert before <= received <= datetime.now(UTC) + timedelta(seconds=1)
    assert body["received_at"].endswith("Z")
    assert len(body["received_at"]) == 24
    assert client.get(f"/v1/events/{body['id']}", headers=acme).json() == body


def test_idempotent_single_ingest(client: TestClient[Any], acme: dict[str, str]) -> None:
    event = event_payload(1)
    first = client.post("/v1/events", json=event, headers=acme)
    again = client.post("/v1/events", json=event, headers=acme)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    changed = client.post("/v1/events", json={**event, "action": "deleted"}, headers=acme)
    assert_error(changed, 409, "conflict")
    assert all_ids(client, acme) == ["evt-00001"]
    assert client.get("/v1/events/evt-00001", headers=acme).json() == first.json()


def test_same_instant_in_another_offset_is_the_same_event(
    client: TestClient[Any], acme: dict[str, str]
) -> None:
    event = {
        "id": "tz",
        "action": "a",
        "actor": {"id": "u"},
        "occurred_at": "2024-01-01T02:00:00+02:00",
    }
    assert client.post("/v1/events", json=event, headers=acme).status_code == 201
    same = {**event, "occurred_at": "2024-01-01T00:00:00.000Z"}
    assert client.post("/v1/events", json=same, headers=acme).status_code == 200


def test_batch_is_all_or_nothing(client: TestClient[Any], acme: dict[str, str]) -> None:
    good = [event_payload(n) for n in range(5)]
    bad_field = [*good, {"action": "x", "actor": {"id": ""}}]
    assert_error(client.post("/v1/events/batch", json={"events": bad_field}, headers=acme), 400)
    assert all_ids(client, acme) == []

    response = client.post("/v1/events/batch", json={"events": good}, headers=acme)
    assert response.status_code == 201
    assert response.json()["created"] == 5
    assert [e["id"] for e in response.json()["items"]] == [e["id"] for e in good]

    conflicting = [event_payload(n) for n in range(5, 9)] + [{**good[0], "action": "changed"}]
    assert_error(client.post("/v1/events/batch", json={"events": conflicting}, headers=acme), 409)
    assert sorted(all_ids(client, acme)) == sorted(e["id"] for e in good)

    replay = client.post("/v1/events/batch", json={"events": good}, headers=acme)
    assert replay.status_code == 200
    assert (replay.json()["created"], replay.json()["existing"]) == (0, 5)


def test_ingest_response_is_the_stored_event(client: TestClient[Any], acme: dict[str, str]) -> None:
    """The ingest response reuses the bytes the leaf hashed where they are msgspec's own
    encoding (formats.ingest_view): whatever path an event takes, its item must be what a
    read returns. Floats that RFC 8785 writes differently, keys from U+E000 up and non-ASCII
    text take other paths than plain events."""
    metadata = [
        {"plain": "text", "n": 3, "none": None},
        {"amount": 12.5, "ratio": 0.25},
        {"whole": 18.0},
        {"tiny": 1e-7, "huge": 1e21},
        {"\ue000key": 1, "a": "b"},
        {"text": "caf\u00e9 \u2603 \U0001f600", "nested": {"b": [1, 2.5, {"c": None}], "a": True}},
    ]
    events = [event_payload(n, metadata=m) for n, m in enumerate(metadata)]
    events.append({"action": "bare", "actor": {"id": "u9"}})  # server id, no target or context
    response = client.post("/v1/events/batch", json={"events": events}, headers=acme)
    assert response.status_code == 201
    items = exact_json(response.text)["items"]
    assert len(items) == len(events)
    for item in items:
        assert exact_json(client.get(f"/v1/events/{item['id']}", headers=acme).text) == item
    single = client.post("/v1/events", json=event_payload(50, metadata={"x": 1.5}), headers=acme)
    assert single.status_code == 201
    assert exact_json(client.get("/v1/events/evt-00050", headers=acme).text) == exact_json(
        single.text
    )


def exact_json(text: str) -> Any:
    """JSON with each float kept as written (18.0 and 18 differ), key order ignored."""
    return json.loads(text, parse_float=lambda written: ("float", written))


def test_batch_with_prefer_return_minimal(client: TestClient[Any], acme: dict[str, str]) -> None:
    """RFC 7240: the response lists only ids and log indexes; the events are stored whole."""
    given = [event_payload(0), {"action": "no.id", "actor": {"id": "u1"}}, event_payload(1)]
    minimal = {**acme, "Prefer": "respond-async, RETURN=Minimal; x=1"}
    response = client.post("/v1/events/batch", json={"events": given}, headers=minimal)
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "return=minimal"
    body = response.json()
    assert (body["created"], body["existing"]) == (3, 0)
    assert set(body) == {"stored", "created", "existing"}
    assert [set(item) for item in body["stored"]] == [{"id", "log_index"}] * 3
    assert [item["log_index"] for item in body["stored"]] == [0, 1, 2]
    assert [body["stored"][0]["id"], body["stored"][2]["id"]] == [given[0]["id"], given[2]["id"]]
    for item in body["stored"]:  # the server-assigned id too
        stored = client.get(f"/v1/events/{item['id']}", headers=acme).json()
        assert stored["log_index"] == item["log_index"]
    assert client.get(f"/v1/events/{body['stored'][1]['id']}", headers=acme).json()["action"] == (
        "no.id"
    )

    replay = client.post("/v1/events/batch", json={"events": given[:1]}, headers=minimal)
    assert replay.status_code == 200
    assert replay.json() == {"stored": [body["stored"][0]], "created": 0, "existing": 1}

    full = client.post(
        "/v1/events/batch",
        json={"events": [event_payload(2)]},
        headers={**acme, "Prefer": "return=representation"},
    )
    assert "preference-applied" not in full.headers
    assert full.json()["items"][0]["actor"]["id"] == event_payload(2)["actor"]["id"]


@pytest.mark.parametrize(
    ("header", "minimal"),
    [
        ("return=minimal", True),
        ('return="minimal"', True),
        (" Return = MINIMAL ", True),
        ("wait=5, return=minimal;foo=bar", True),
        ("return=representation", False),
        ("minimal", False),
        ("return", False),
        ("", False),
        (None, False),
        (",,;=;", False),
    ],
)
def test_prefer_header_parsing(header: str | None, minimal: bool) -> None:
    assert prefers_minimal(header) is minimal


def test_batch_limits(client: TestClient[Any], acme: dict[str, str]) -> None:
    assert_error(client.post("/v1/events/batch", json={"events": []}, headers=acme), 400)
    many = [{"action": "a", "actor": {"id": "u"}}] * 1001
    assert_error(client.post("/v1/events/batch", json={"events": many}, headers=acme), 400)
    exactly = client.post("/v1/events/batch", json={"events": many[:1000]}, headers=acme)
    assert exactly.status_code == 201
    assert exactly.json()["created"] == 1000


def seed(client: TestClient[Any], headers: dict[str, str], count: int) -> list[dict[str, Any]]:
    events = [event_payload(n) for n in range(count)]
    for start in range(0, count, 500):
        response = client.post(
            "/v1/events/batch", json={"events": events[start : start + 500]}, headers=headers
        )
        assert response.status_code == 201
    return events


@pytest.mark.parametrize(
    "query",
    [
        "actor_id=user-1",
        "action=created",
        "type=user:role-changed",
        "target_type=buyer",
        "target_id=transaction-1",
        "source=api",
        "since=2024-05-01T00:00:10Z",
        "until=2024-05-01T00:00:30%2B00:00",
        "actor_id=user-2&action=updated&source=dashboard",
        "target_type=buyer&since=2024-05-01T00:00:05Z&until=2024-05-01T00:00:35Z",
    ],
)
def test_filters_over_http_page_through_exactly_the_matches(
    client: TestClient[Any], acme: dict[str, str], query: str
) -> None:
    seed(client, acme, 150)
    export = client.get(f"/v1/export?{query}", headers=acme)
    expected = [line for line in export.text.splitlines()]
    assert expected
    seen: list[str] = []
    cursor = None
    while True:
        url = f"/v1/events?limit=9&{query}" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=acme).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(expected)


def test_paging_forward_then_back_while_events_arrive(
    client: TestClient[Any], acme: dict[str, str]
) -> None:
    seed(client, acme, 53)
    snapshot = [e["id"] for e in client.get("/v1/events?limit=100", headers=acme).json()["items"]]
    forward_pages: list[list[str]] = []
    page = client.get("/v1/events?limit=7", headers=acme).json()
    assert page["previous_cursor"] is None
    arrived = 0
    while True:
        forward_pages.append([e["id"] for e in page["items"]])
        # New events keep arriving (newest, and one back-dated) while the client pages.
        client.post("/v1/events", json={"action": "new", "actor": {"id": "late"}}, headers=acme)
        arrived += 1
        if page["next_cursor"] is None:
            break
        page = client.get(f"/v1/events?limit=7&cursor={page['next_cursor']}", headers=acme).json()
    assert [i for p in forward_pages for i in p] == snapshot, "no gap, no duplicate"
    assert all(len(p) == 7 for p in forward_pages[:-1])

    # Back from the last page: each previous page is exactly the page the client came from.
    backward_pages: list[list[str]] = []
    while page["previous_cursor"] is not None:
        page = client.get(
            f"/v1/events?limit=7&cursor={page['previous_cursor']}", headers=acme
        ).json()
        backward_pages.append([e["id"] for e in page["items"]])
        assert page["next_cursor"] is not None
    newest_first = [i for p in reversed(backward_pages) for i in p]
    assert backward_pages[: len(forward_pages) - 1] == forward_pages[-2::-1]
    # Going all the way back reaches the events that arrived meanwhile, in order, once each.
    everything = [e["id"] for e in client.get("/v1/events?limit=100", headers=acme).json()["items"]]
    last_page = forward_pages[-1]
    assert newest_first + last_page == everything
    assert len(everything) == len(snapshot) + arrived


def test_empty_cursor_means_first_page(client: TestClient[Any], acme: dict[str, str]) -> None:
    seed(client, acme, 3)
    assert (
        client.get("/v1/events?cursor=", headers=acme).json()
        == client.get("/v1/events", headers=acme).json()
    )


def test_cursor_is_bound_to_filters(client: TestClient[Any], acme: dict[str, str]) -> None:
    seed(client, acme, 30)
    cursor = client.get("/v1/events?limit=2&action=created", headers=acme).json()["next_cursor"]
    assert (
        client.get(f"/v1/events?limit=2&action=created&cursor={cursor}", headers=acme).status_code
        == 200
    )
    for other in ["action=updated", "", "action=created&source=api"]:
        response = client.get(f"/v1/events?limit=2&{other}&cursor={cursor}", headers=acme)
        assert_error(response, 400, "invalid_cursor")


def _flip(cursor: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[index % len(raw)] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_forged_and_malformed_cursors_are_400(
    client: TestClient[Any], acme: dict[str, str]
) -> None:
    seed(client, acme, 10)
    cursor = client.get("/v1/events?limit=2", headers=acme).json()["next_cursor"]
    raw_len = len(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = [_flip(cursor, i) for i in range(raw_len)]
    malformed = [
        "x",
        "%00",
        "!!!!",
        "a" * 300,
        cursor[:-2],
        cursor + "AA",
        "é",
        "null",
        base64.urlsafe_b64encode(b'{"seq": 1}').decode(),
    ]
    for bad in forged + malformed:
        response = client.get("/v1/events", params={"cursor": bad, "limit": 2}, headers=acme)
        assert response.status_code == 400, (bad, response.text)
        assert_error(response, 400)


def test_outcome_is_stored_returned_filtered_exported_and_in_the_leaf(
    client: TestClient[Any], acme: dict[str, str]
) -> None:
    """`outcome` (default success) goes everywhere the event does: the answer, reads, the
    `outcome=` filter of listing and export, both export formats and the leaf a customer
    recomputes from the exported line."""
    from trailkeeper.verifier import event_leaf_hash

    failed = {**event_payload(1), "action": "user.login", "outcome": "failure"}
    made = client.post(
        "/v1/events/batch", json={"events": [event_payload(0), failed]}, headers=acme
    )
    assert made.status_code == 201, made.text
    assert [e["outcome"] for e in made.json()["items"]] == ["success", "failure"]
    assert client.get("/v1/events/evt-00001", headers=acme).json()["outcome"] == "failure"
    page = client.get("/v1/events", params={"outcome": "failure"}, headers=acme).json()
    assert [e["id"] for e in page["items"]] == ["evt-00001"]
    lines = client.get("/v1/export", params={"outcome": "failure"}, headers=acme).text
    [line] = [json.loads(text) for text in lines.splitlines()]
    assert line["outcome"] == "failure"
    assert base64.b64decode(line["leaf_hash"]) == event_leaf_hash(line)
    flipped = {**line, "outcome": "success"}  # the outcome is covered by the leaf
    assert base64.b64decode(line["leaf_hash"]) != event_leaf_hash(flipped)
    csv_text = client.get("/v1/export", params={"format": "csv"}, headers=acme).text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert {row["id"]: row["outcome"] for row in rows} == {
        "evt-00000": "success",
        "evt-00001": "failure",
    }
    # A replay must say the same outcome: another one is other content.
    assert (
        client.post("/v1/events", json={**failed, "outcome": "success"}, headers=acme).status_code
        == 409
    )


@pytest.mark.parametrize("where", ["body", "filter"])
def test_an_unknown_outcome_is_a_400(
    client: TestClient[Any], acme: dict[str, str], where: str
) -> None:
    if where == "body":
        answer = client.post(
            "/v1/events", json={**event_payload(1), "outcome": "maybe"}, headers=acme
        )
    else:
        answer = client.get("/v1/events", params={"outcome": "maybe"}, headers=acme)
    assert_error(answer, 400)
