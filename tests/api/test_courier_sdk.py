"""The official Courier SDK (`trycourier`) against a real trailkeeper server."""

from __future__ import annotations

from collections.abc import Callable

import courier
import httpx
import pydantic
import pytest
from courier.types import AuditEvent, AuditEventListResponse

from tests.factories import event_payload
from trailkeeper.service import AuditService

Headers = Callable[..., dict[str, str]]


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def seeded(live_url: str, key_for: Headers) -> dict[str, str]:
    headers = key_for("acme")
    events = [event_payload(n) for n in range(47)]
    events[0] = {
        **events[0],
        "type": "user:role-changed",
        "source": "courier.studio",
        "actor": {"id": "foo-user", "email": "joe.fake@gmail.com"},
        "target": {"id": "EF607F6E84A34305AE98B6TR", "email": "jane.doe@gmail.com"},
        "occurred_at": "2022-07-05T22:30:24.662Z",
    }
    response = httpx.post(f"{live_url}/v1/events/batch", json={"events": events}, headers=headers)
    assert response.status_code == 201
    return headers


def client(url: str, token: str) -> courier.Courier:
    return courier.Courier(api_key=token, base_url=url, max_retries=0)


def test_lists_every_page_to_the_end(live_url: str, seeded: dict[str, str]) -> None:
    sdk = client(live_url, token_of(seeded))
    page = sdk.audit_events.list()
    seen = [e.audit_event_id for e in page.results]
    pages = 1
    while page.paging.more:
        assert page.paging.cursor
        page = sdk.audit_events.list(cursor=page.paging.cursor)
        seen += [e.audit_event_id for e in page.results]
        pages += 1
    assert page.paging.cursor is None
    assert pages == 3, "default page size 20: 20 + 20 + 7"
    native = httpx.get(f"{live_url}/v1/events?limit=100", headers=seeded).json()["items"]
    assert seen == [e["id"] for e in native], "same events, same newest-first order"


def test_get_by_id_reproduces_the_reference_example(live_url: str, seeded: dict[str, str]) -> None:
    event = client(live_url, token_of(seeded)).audit_events.retrieve("evt-00000")
    assert isinstance(event, AuditEvent)
    raw = httpx.get(f"{live_url}/audit-events/evt-00000", headers=seeded).json()
    assert raw == {
        "auditEventId": "evt-00000",
        "actor": {"id": "foo-user", "email": "joe.fake@gmail.com"},
        "target": {"id": "EF607F6E84A34305AE98B6TR", "email": "jane.doe@gmail.com"},
        "source": "courier.studio",
        "timestamp": "2022-07-05T22:30:24.662Z",
        "type": "user:role-changed",
    }
    assert event.actor.id == "foo-user"
    assert event.timestamp == "2022-07-05T22:30:24.662Z"


def test_responses_validate_against_the_sdk_models(live_url: str, seeded: dict[str, str]) -> None:
    raw = httpx.get(f"{live_url}/audit-events", headers=seeded).json()
    assert set(raw) == {"paging", "results"}
    # The current SDK types `target` as a string; the reference page (which wins) shows an
    # object. Every other field must validate strictly; see docs/compatibility.md.
    with pytest.raises(pydantic.ValidationError) as excinfo:
        AuditEventListResponse.model_validate(raw)
    locations = {err["loc"][-1] for err in excinfo.value.errors()}
    assert locations == {"target"}
    for item in raw["results"]:
        item["target"] = str(item["target"])
    parsed = AuditEventListResponse.model_validate(raw)
    assert len(parsed.results) == 20
    assert parsed.paging.more is True


def test_typed_errors(
    live_url: str, seeded: dict[str, str], service: AuditService, key_for: Headers
) -> None:
    with pytest.raises(courier.AuthenticationError) as wrong:
        client(live_url, "tk_0123456789abcdef_" + "A" * 43).audit_events.list()
    assert wrong.value.body == {
        "message": "invalid, unknown or revoked API key",
        "type": "authentication_error",
    }

    key, token = service.create_key("acme", "soon revoked", ["audit-logs.read"])
    assert client(live_url, token).audit_events.list().results
    service.revoke_key(key.id)
    with pytest.raises(courier.AuthenticationError):
        client(live_url, token).audit_events.list()

    with pytest.raises(courier.PermissionDeniedError):
        client(live_url, token_of(key_for("acme", ("events.read",)))).audit_events.list()
    with pytest.raises(courier.BadRequestError) as bad:
        client(live_url, token_of(seeded)).audit_events.list(cursor="forged-cursor")
    assert isinstance(bad.value.body, dict)
    assert bad.value.body["type"] == "invalid_request_error"
    with pytest.raises(courier.NotFoundError):
        client(live_url, token_of(seeded)).audit_events.retrieve("no-such-event")


def test_another_tenants_events_and_cursors_are_invisible(
    live_url: str, seeded: dict[str, str], key_for: Headers
) -> None:
    globex = token_of(key_for("globex"))
    sdk = client(live_url, globex)
    assert sdk.audit_events.list().results == []
    with pytest.raises(courier.NotFoundError):
        sdk.audit_events.retrieve("evt-00001")
    acme_cursor = client(live_url, token_of(seeded)).audit_events.list().paging.cursor
    with pytest.raises(courier.BadRequestError):
        sdk.audit_events.list(cursor=acme_cursor)


def test_native_cursor_is_not_a_courier_cursor(live_url: str, seeded: dict[str, str]) -> None:
    native = httpx.get(f"{live_url}/v1/events", headers=seeded).json()["next_cursor"]
    with pytest.raises(courier.BadRequestError):
        client(live_url, token_of(seeded)).audit_events.list(cursor=native)
