"""Key pairs over the native API: register, generate, list, revoke; tenant-bound; then usable."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from gr4vy import auth as gr4vy_auth
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from trailkeeper.auth import (
    JWT_MAX_LIFETIME_SECONDS,
    generate_private_key,
    jwk_thumbprint,
    load_public_key,
    public_pem,
)
from trailkeeper.errors import InvalidInput
from trailkeeper.service import AuditService

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
    # a JWT authenticates GET /audit-logs only, whatever it claims
    writer = gr4vy_auth.get_token(private_pem, scopes=["*.read", "*.write"])
    write = client.post(
        "/v1/events",
        json={"action": "a", "actor": {"id": "u"}},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert_error(write, 401, "unauthenticated")

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
    assert client.get("/audit-logs", headers=other).status_code == 401
    assert_error(client.get("/v1/key-pairs", headers=key_for("acme", ("events.read",))), 403)


# ---- a key cannot mint more than it holds (issue 23, item 1) -------------------------------


def test_minting_a_key_pair_needs_audit_logs_read_too(
    client: TestClient[Any], key_for: Headers
) -> None:
    """A pair's JWTs read /audit-logs: a key without that scope must not obtain it."""
    only_pairs = key_for("acme", ("key-pairs.write",))
    body = {"name": "escalate", "generate": True}
    error = assert_error(client.post("/v1/key-pairs", json=body, headers=only_pairs), 403)
    assert "audit-logs.read" in error["message"]
    public_key, _ = generate_private_key()
    register = {"name": "escalate", "public_key": public_pem(public_key)}
    assert_error(client.post("/v1/key-pairs", json=register, headers=only_pairs), 403)
    assert client.get("/v1/key-pairs", headers=key_for("acme")).json() == []
    both = key_for("acme", ("key-pairs.write", "audit-logs.read"))
    assert client.post("/v1/key-pairs", json=body, headers=both).status_code == 201
    # listing and revoking grant nothing: key-pairs.write alone is enough
    assert len(client.get("/v1/key-pairs", headers=only_pairs).json()) == 1


# ---- key pairs are unique per tenant (issue 23, item 4) --------------------------------------


def jwt_read(client: TestClient[Any], private_pem: str, merchant: str) -> int:
    """The status of GET /audit-logs with an SDK-made JWT for `merchant`."""
    token = gr4vy_auth.get_token(private_pem, scopes=["audit-logs.read"])
    headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": merchant}
    return client.get("/audit-logs", headers=headers).status_code


def test_another_tenant_registering_my_key_first_changes_nothing_for_me(
    client: TestClient[Any], key_for: Headers
) -> None:
    acme, globex = key_for("acme"), key_for("globex")
    public_key, private_pem = generate_private_key()
    pem = public_pem(public_key)
    first = client.post("/v1/key-pairs", json={"name": "squat", "public_key": pem}, headers=globex)
    assert first.status_code == 201
    mine = client.post("/v1/key-pairs", json={"name": "mine", "public_key": pem}, headers=acme)
    assert mine.status_code == 201, mine.text
    kid = mine.json()["id"]
    assert kid == first.json()["id"]
    # a duplicate is a 409 only within the tenant, and says nothing of other tenants
    again = client.post("/v1/key-pairs", json={"name": "again", "public_key": pem}, headers=acme)
    error = assert_error(again, 409, "conflict")
    assert "globex" not in again.text
    assert "this tenant" in error["message"]
    # each tenant sees, revokes and is authenticated through its own registration only
    assert [(p["name"], p["tenant"]) for p in client.get("/v1/key-pairs", headers=acme).json()] == [
        ("mine", "acme")
    ]
    assert jwt_read(client, private_pem, "acme") == 200
    assert client.delete(f"/v1/key-pairs/{kid}", headers=globex).status_code == 204
    assert jwt_read(client, private_pem, "globex") == 401
    assert jwt_read(client, private_pem, "acme") == 200
    [still] = client.get("/v1/key-pairs", headers=acme).json()
    assert still["revoked_at"] is None
    # globex revoking again, or re-registering its revoked pair, never touches acme's
    assert client.delete(f"/v1/key-pairs/{kid}", headers=globex).status_code == 204
    back = client.post("/v1/key-pairs", json={"name": "b", "public_key": pem}, headers=globex)
    assert_error(back, 409, "conflict")
    assert "acme" not in back.text
    assert jwt_read(client, private_pem, "acme") == 200


def test_revoking_my_pair_leaves_another_tenants_registration_alone(
    client: TestClient[Any], key_for: Headers, service: AuditService
) -> None:
    acme, globex = key_for("acme"), key_for("globex")
    public_key, private_pem = generate_private_key()
    pem = public_pem(public_key)
    for headers in (acme, globex):
        body = {"name": "shared", "public_key": pem}
        assert client.post("/v1/key-pairs", json=body, headers=headers).status_code == 201
    kid = service.list_key_pairs("acme")[0].id
    assert client.delete(f"/v1/key-pairs/{kid}", headers=acme).status_code == 204
    assert jwt_read(client, private_pem, "acme") == 401
    assert jwt_read(client, private_pem, "globex") == 200
    # the CLI (no tenant of its own) must be told which registration it means
    with pytest.raises(InvalidInput, match="acme, globex"):
        service.revoke_key_pair(kid)
    service.revoke_key_pair(kid, "globex")
    assert jwt_read(client, private_pem, "globex") == 401


# ---- identifiers with NUL: the same answer on both engines (issue 23, item 10) -------------


def test_nul_in_key_pair_identifiers(client: TestClient[Any], key_for: Headers) -> None:
    admin = key_for("acme")
    assert_error(client.delete("/v1/key-pairs/%00", headers=admin), 404, "not_found")
    assert_error(client.delete(f"/v1/key-pairs/{'A' * 42}%00", headers=admin), 404, "not_found")
    assert_error(client.delete(f"/v1/key-pairs/{'A' * 43}", headers=admin), 404, "not_found")
    named = client.post("/v1/key-pairs", json={"name": "a\x00b", "generate": True}, headers=admin)
    error = assert_error(named, 400, "invalid_request")
    assert [d["field"] for d in error["details"]] == ["name"]
    assert client.get("/v1/key-pairs", headers=admin).json() == []

    pair = client.post("/v1/key-pairs", json={"name": "k", "generate": True}, headers=admin)
    private_pem = pair.json()["private_key"]
    for kid in ("\x00", pair.json()["id"][:42] + "\x00", "x" * 200):
        token = signed_jwt(private_pem, kid=kid)
        headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "acme"}
        response = client.get("/audit-logs", headers=headers)
        assert response.status_code == 401, response.text
    # a merchant account header no tenant can have is the same 401, not a database error
    token = signed_jwt(private_pem, kid=pair.json()["id"])
    for merchant in ("ac\x00me", "x" * 300):
        headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": merchant}
        assert client.get("/audit-logs", headers=headers).status_code == 401


# ---- JWT claims: integers and a bounded lifetime (issue 23, item 6) -------------------------


def signed_jwt(private_pem: str, *, kid: str | None = None, **claims: Any) -> str:
    """An ES512 JWT as the Gr4vy SDK makes it, with `claims` replacing its defaults."""
    now = int(time.time())
    body: dict[str, Any] = {"scopes": ["audit-logs.read"], "iat": now, "nbf": now}
    body["exp"] = now + 600
    body.update(claims)
    key = load_public_key(private_pem)
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None},
        private_pem,
        algorithm="ES512",
        headers={"kid": kid if kid is not None else jwk_thumbprint(key)},
    )


HOUR = JWT_MAX_LIFETIME_SECONDS
Claims = Callable[[int], dict[str, Any]]  # from now (seconds), the claims to change
CLAIMS: dict[str, tuple[Claims, int]] = {
    "sdk-like": (lambda now: {}, 200),
    "exp-string": (lambda now: {"exp": str(now + 600)}, 401),
    "exp-1e308": (lambda now: {"exp": 1e308}, 401),
    "exp-huge-int": (lambda now: {"exp": 10**30}, 401),
    "exp-float": (lambda now: {"exp": now + 600.5}, 401),
    "exp-bool": (lambda now: {"exp": True}, 401),
    "iat-string": (lambda now: {"iat": str(now)}, 401),
    "nbf-string": (lambda now: {"nbf": str(now)}, 401),
    "no-exp": (lambda now: {"exp": None}, 401),
    "no-iat": (lambda now: {"iat": None}, 401),
    "no-nbf": (lambda now: {"nbf": None}, 401),
    "one-hour": (lambda now: {"exp": now + HOUR}, 200),
    "over-an-hour": (lambda now: {"exp": now + HOUR + 600}, 401),
    "issued-long-ago": (lambda now: {"iat": now - HOUR, "nbf": now - HOUR}, 401),
    "issued-recently": (lambda now: {"iat": now - 600, "nbf": now - 600}, 200),
    "future-iat-long-exp": (lambda now: {"iat": now + 20, "exp": now + HOUR + 10}, 200),
    "exp-far-from-now": (lambda now: {"iat": now + 20, "exp": now + HOUR + 120}, 401),
}


@pytest.mark.parametrize(("claims", "status"), CLAIMS.values(), ids=CLAIMS.keys())
def test_jwt_claims_are_integers_and_live_at_most_an_hour(
    client: TestClient[Any], service: AuditService, claims: Claims, status: int
) -> None:
    _, private_pem = service.generate_key_pair("acme", "claims")
    token = signed_jwt(private_pem, **claims(int(time.time())))
    headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "acme"}
    response = client.get("/audit-logs", headers=headers)
    assert response.status_code == status, response.text


def test_the_sdks_default_token_is_accepted(client: TestClient[Any], service: AuditService) -> None:
    """gr4vy.auth.get_token signs for 3600 s by default: exactly the maximum."""
    _, private_pem = service.generate_key_pair("acme", "sdk")
    token = gr4vy_auth.get_token(private_pem)
    headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "acme"}
    assert client.get("/audit-logs", headers=headers).status_code == 200
    longer = gr4vy_auth.get_token(private_pem, expires_in=2 * HOUR)
    headers["Authorization"] = f"Bearer {longer}"
    assert client.get("/audit-logs", headers=headers).status_code == 401
