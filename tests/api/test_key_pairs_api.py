"""Key pairs over the native API: register, generate, list, revoke; tenant-bound; then usable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gr4vy import auth as gr4vy_auth
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from trailkeeper.auth import generate_private_key, public_pem

Headers = Callable[..., dict[str, str]]


def test_generate_list_use_revoke(client: TestClient[Any], key_for: Headers) -> None:
    admin = key_for("acme")
    created = client.post(
        "/v1/key-pairs", json={"name": "reporting", "generate": True}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    private_pem = body["private_key"]
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    listed = client.get("/v1/key-pairs", headers=admin).json()
    assert [p["id"] for p in listed] == [body["id"]]
    assert listed[0]["private_key"] is None, "the private key is shown once, never stored"

    token = gr4vy_auth.get_token(private_pem, scopes=["audit-logs.read"])
    jwt_headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "acme"}
    assert client.get("/audit-logs", headers=jwt_headers).status_code == 200
    # a JWT never gains write access, whatever it claims
    writer = gr4vy_auth.get_token(private_pem, scopes=["*.read", "*.write"])
    write = client.post(
        "/v1/events",
        json={"action": "a", "actor": {"id": "u"}},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert_error(write, 403, "forbidden")

    assert client.delete(f"/v1/key-pairs/{body['id']}", headers=admin).status_code == 204
    assert client.get("/audit-logs", headers=jwt_headers).status_code == 401


def test_register_a_public_key(client: TestClient[Any], key_for: Headers) -> None:
    admin = key_for("acme")
    public_key, _ = generate_private_key()
    pem = public_pem(public_key)
    created = client.post("/v1/key-pairs", json={"name": "mine", "public_key": pem}, headers=admin)
    assert created.status_code == 201
    assert created.json()["private_key"] is None
    again = client.post("/v1/key-pairs", json={"name": "again", "public_key": pem}, headers=admin)
    assert_error(again, 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "x", "generate": True, "public_key": "pem"},
        {"name": "x", "public_key": "not a pem"},
        {"name": "", "generate": True},
        {
            "name": "x",
            "public_key": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"
            "GyQHnVkDyDdpPTKEQm6nJdQ8XfA0Y3hYyXjAAYcJ2Y0=\n"
            "-----END PUBLIC KEY-----",
        },
    ],
    ids=["neither", "both", "garbage", "no-name", "ed25519-not-p521"],
)
def test_bad_key_pairs(client: TestClient[Any], key_for: Headers, body: dict[str, Any]) -> None:
    assert_error(client.post("/v1/key-pairs", json=body, headers=key_for("acme")), 400)


def test_key_pairs_are_tenant_bound(client: TestClient[Any], key_for: Headers) -> None:
    acme, globex = key_for("acme"), key_for("globex")
    pair = client.post("/v1/key-pairs", json={"name": "a", "generate": True}, headers=acme).json()
    assert client.get("/v1/key-pairs", headers=globex).json() == []
    assert_error(client.delete(f"/v1/key-pairs/{pair['id']}", headers=globex), 404)
    token = gr4vy_auth.get_token(pair["private_key"], scopes=["audit-logs.read"])
    other = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "globex"}
    assert client.get("/audit-logs", headers=other).status_code == 403
    assert_error(client.get("/v1/key-pairs", headers=key_for("acme", ("events.read",))), 403)
