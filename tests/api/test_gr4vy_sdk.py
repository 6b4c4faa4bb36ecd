"""The official Gr4vy SDK (`gr4vy`) against a real trailkeeper server, with ES512 JWT auth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gr4vy import Gr4vy, errors, models
from gr4vy import auth as gr4vy_auth

from tests.factories import event_payload
from trailkeeper.auth import generate_private_key
from trailkeeper.service import AuditService

Headers = Callable[..., dict[str, str]]
REFERENCE_ITEM_KEYS = {
    "type",
    "id",
    "timestamp",
    "action",
    "merchant_account_id",
    "user",
    "resource",
}


@pytest.fixture
def private_key(service: AuditService) -> str:
    _, pem = service.generate_key_pair("acme", "sdk test")
    return pem


@pytest.fixture
def seeded(live_url: str, key_for: Headers) -> list[dict[str, Any]]:
    events = [event_payload(n) for n in range(53)]
    events[0] = {
        **events[0],
        "action": "created",
        "occurred_at": "2022-01-01T00:00:00Z",
        "actor": {
            "id": "77a76f7e-d2de-4bbc-ada9-d6a0015e6bd5",
            "name": "John L",
            "email": "john@example.com",
            "staff": False,
            "status": "active",
        },
        "target": {
            "type": "buyer",
            "id": "fe26475d-ec3e-4884-9553-f7356683f7f9",
            "name": "Samuel J",
        },
    }
    response = httpx.post(
        f"{live_url}/v1/events/batch", json={"events": events}, headers=key_for("acme")
    )
    assert response.status_code == 201
    return events


def sdk(url: str, private_key: str, *, merchant: str = "acme", **token: Any) -> Gr4vy:
    return Gr4vy(
        server_url=url,
        merchant_account_id=merchant,
        bearer_auth=gr4vy_auth.with_token(private_key, **token),
    )


def ids(response: models.ListAuditLogsResponse) -> list[str]:
    return [item.id or "" for item in response.result.items]


def test_pages_to_the_end_and_back(
    live_url: str, private_key: str, seeded: list[dict[str, Any]]
) -> None:
    client = sdk(live_url, private_key, scopes=["audit-logs.read"])
    first = client.audit_logs.list(limit=10)
    assert first.result.previous_cursor is None
    pages, page = [first], first
    while (following := page.next()) is not None:
        pages.append(following)
        page = following
    assert page.result.next_cursor is None
    assert [len(p.result.items) for p in pages] == [10, 10, 10, 10, 10, 3]
    forward = [i for p in pages for i in ids(p)]
    assert len(set(forward)) == 53
    # backward with previous_cursor lands exactly on the pages we came from
    back = page
    for expected in reversed(pages[:-1]):
        cursor = back.result.previous_cursor
        assert cursor is not None
        back = client.audit_logs.list(limit=10, cursor=cursor)
        assert ids(back) == ids(expected)
    assert back.result.previous_cursor is None


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({"user_id": "user-2"}, lambda e: e["actor"]["id"] == "user-2"),
        ({"action": "created"}, lambda e: e["action"] == "created"),
        ({"resource_type": "buyer"}, lambda e: (e.get("target") or {}).get("type") == "buyer"),
        (
            {"user_id": "user-1", "action": "updated", "resource_type": "transaction"},
            lambda e: (
                e["actor"]["id"] == "user-1"
                and e["action"] == "updated"
                and (e.get("target") or {}).get("type") == "transaction"
            ),
        ),
    ],
)
def test_filters(
    live_url: str,
    private_key: str,
    seeded: list[dict[str, Any]],
    filters: dict[str, str],
    matches: Callable[[dict[str, Any]], bool],
) -> None:
    response = sdk(live_url, private_key).audit_logs.list(limit=100, **filters)  # type: ignore[arg-type]
    assert sorted(ids(response)) == sorted(e["id"] for e in seeded if matches(e))


def test_items_match_the_reference_and_the_sdk_models(
    live_url: str, private_key: str, seeded: list[dict[str, Any]]
) -> None:
    token = gr4vy_auth.get_token(private_key, scopes=["audit-logs.read"])
    raw = httpx.get(
        f"{live_url}/audit-logs?limit=100",
        headers={"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "acme"},
    ).json()
    assert set(raw) == {"items", "limit", "next_cursor", "previous_cursor"}
    parsed = models.AuditLogEntries.model_validate(raw)  # strict validation, SDK model
    assert len(parsed.items) == 53
    example = next(i for i in raw["items"] if i["id"] == "evt-00000")
    assert set(example) == REFERENCE_ITEM_KEYS
    assert example == {
        "type": "audit-log",
        "id": "evt-00000",
        "timestamp": "2022-01-01T00:00:00.000+00:00",
        "action": "created",
        "merchant_account_id": "acme",
        "user": {
            "id": "77a76f7e-d2de-4bbc-ada9-d6a0015e6bd5",
            "name": "John L",
            "email_address": "john@example.com",
            "staff": False,
            "is_staff": False,
            "status": "active",
            "type": "user",
        },
        "resource": {
            "type": "buyer",
            "id": "fe26475d-ec3e-4884-9553-f7356683f7f9",
            "name": "Samuel J",
        },
    }


def test_auth_errors_are_typed(
    live_url: str, private_key: str, seeded: list[dict[str, Any]], service: AuditService
) -> None:
    with pytest.raises(errors.Error401) as expired:
        sdk(live_url, private_key, expires_in=-120).audit_logs.list()
    assert expired.value.data.code == "unauthorized"
    assert "expired" in (expired.value.data.message or "")

    stranger = gr4vy_auth.get_token(generate_private_key()[1], scopes=["audit-logs.read"])
    with pytest.raises(errors.Error401):
        Gr4vy(
            server_url=live_url, merchant_account_id="acme", bearer_auth=stranger
        ).audit_logs.list()

    with pytest.raises(errors.Error403) as scope:
        sdk(live_url, private_key, scopes=["buyers.read"]).audit_logs.list()
    assert scope.value.data.code == "forbidden"

    # a JWT is checked against the key pairs of the merchant account it names (only)
    with pytest.raises(errors.Error401):
        sdk(live_url, private_key, merchant="globex").audit_logs.list()
    with pytest.raises(errors.Error401):
        sdk(live_url, private_key, merchant="default").audit_logs.list()

    pair = service.list_key_pairs("acme")[0]
    service.revoke_key_pair(pair.id)
    with pytest.raises(errors.Error401):
        sdk(live_url, private_key).audit_logs.list()


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_bad_limit_is_a_typed_400(live_url: str, private_key: str, limit: int) -> None:
    with pytest.raises(errors.Error400) as bad:
        sdk(live_url, private_key).audit_logs.list(limit=limit)
    assert bad.value.data.status == 400
    assert bad.value.data.details
    assert bad.value.data.details[0].pointer == "limit"
    assert bad.value.data.details[0].location == "query"


def test_bad_cursor_and_action_are_400(live_url: str, private_key: str) -> None:
    client = sdk(live_url, private_key)
    with pytest.raises(errors.Error400):
        client.audit_logs.list(cursor="ZXhhbXBsZTE")
    with pytest.raises(errors.Error400):
        client.audit_logs.list(action="exploded")  # type: ignore[arg-type]


def test_plain_api_key_with_the_scope_works(
    live_url: str, seeded: list[dict[str, Any]], key_for: Headers
) -> None:
    token = key_for("acme", ("audit-logs.read",))["Authorization"].removeprefix("Bearer ")
    response = Gr4vy(
        server_url=live_url, merchant_account_id="acme", bearer_auth=token
    ).audit_logs.list(limit=5)
    assert len(response.result.items) == 5
    other = key_for("acme", ("events.read",))["Authorization"].removeprefix("Bearer ")
    with pytest.raises(errors.Error403):
        Gr4vy(server_url=live_url, merchant_account_id="acme", bearer_auth=other).audit_logs.list()
