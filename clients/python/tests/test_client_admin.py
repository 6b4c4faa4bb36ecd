"""The admin calls (`client.tenants`, `client.keys`) against a real `trailkeeper serve`:
onboarding a customer end to end, errors as ApiError, and no second key from a retry."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conftest import Server
from trailkeeper_client import ApiError, AsyncClient, Client, DeliveryError, RetryPolicy

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.2)


def refusal(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value


def test_onboarding_a_customer_end_to_end(admin_key: str, server: Server) -> None:
    """Admin key -> tenant -> its key -> events through the batching client -> read back ->
    revoke -> the revoked key's 401 reaches both the reader and the error callback."""
    with Client(server.url, admin_key) as admin:
        tenant = admin.tenants.create("globex", "Globex Inc")
        assert (tenant["id"], tenant["name"], tenant["active"]) == ("globex", "Globex Inc", True)
        assert admin.tenants.get("globex") == tenant
        expires = datetime.now(UTC) + timedelta(days=30)
        created = admin.keys.create(
            "globex", "billing", scopes=["events.write", "events.read"], expires_at=expires
        )
        secret = created["key"]
        assert secret.startswith("tk_")
        assert created["scopes"] == ["events.write", "events.read"]
        assert created["expires_at"] is not None

        with Client(server.url, secret, batch_size=500, flush_interval=60) as audit:
            ids = [audit.record("invoice.paid", actor={"id": f"u-{n}"}) for n in range(1203)]
            assert audit.flush(timeout=60)
            assert audit.stats.delivered == 1203
            assert sorted(e["id"] for e in audit.list()) == sorted(ids)
            assert {e["tenant"] for e in audit.export()} == {"globex"}

        listed = admin.keys.list("globex")
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0]  # the secret is shown once only
        assert listed[0]["revoked_at"] is None

        admin.keys.revoke("globex", created["id"])
        admin.keys.revoke("globex", created["id"])  # again: harmless
        assert admin.keys.list("globex")[0]["revoked_at"] is not None
        # The admin key (with events.read) reads the operator log: each action, once.
        logged = [(e["action"], e["target"] and e["target"]["id"]) for e in admin.export()]
        assert logged == [
            ("tenant.created", "globex"),
            ("api_key.created", created["id"]),
            ("api_key.revoked", created["id"]),
        ]

    errors: list[DeliveryError] = []
    with Client(server.url, secret, on_error=errors.append, retry=FAST_RETRY) as revoked:
        assert refusal(lambda: next(revoked.list())).status == 401
        revoked.record("after.revocation", actor={"id": "u-1"})
        assert revoked.flush(timeout=60)
    assert [(e.reason, e.error and e.error.status, len(e.events)) for e in errors] == [
        ("rejected", 401, 1)
    ]


def test_deactivate_rename_reactivate(admin_key: str, api_key: str, server: Server) -> None:
    """`api_key` is a key of tenant acme (conftest): 401 while acme is deactivated."""
    with Client(server.url, admin_key) as admin, Client(server.url, api_key) as acme:
        assert admin.tenants.rename("acme", "Acme Corp")["name"] == "Acme Corp"
        off = admin.tenants.deactivate("acme")
        assert (off["active"], off["deactivated_at"] is not None) == (False, True)
        assert refusal(lambda: acme.page()).status == 401
        on = admin.tenants.reactivate("acme")
        assert (on["active"], on["deactivated_at"]) == (True, None)
        assert acme.page()["items"] == []


def test_tenants_list_follows_the_cursor(admin_key: str, server: Server) -> None:
    with Client(server.url, admin_key) as admin:
        for n in range(5):
            admin.tenants.create(f"t{n}")
        ids = [t["id"] for t in admin.tenants.list(page_size=2)]
        assert ids == sorted(["_system", "acme", "t0", "t1", "t2", "t3", "t4"])
        first = admin.tenants.page(limit=2)
        assert len(first["items"]) == 2
        assert first["next_cursor"] is not None


def test_refusals_are_api_errors(admin_key: str, api_key: str, server: Server) -> None:
    with Client(server.url, admin_key) as admin, Client(server.url, api_key) as tenant:
        taken = refusal(lambda: admin.tenants.create("acme"))
        assert (taken.status, taken.code) == (409, "conflict")
        reserved = refusal(lambda: admin.tenants.create("_mine"))
        assert (reserved.status, reserved.code) == (400, "invalid_request")
        assert "reserved" in reserved.message
        missing = refusal(lambda: admin.tenants.get("nobody"))
        assert (missing.status, missing.code) == (404, "not_found")
        assert refusal(lambda: admin.keys.revoke("acme", "0123456789abcdef")).status == 404
        assert refusal(lambda: admin.keys.create("nobody", "k")).status == 404
        with pytest.raises(ValueError, match="timezone"):
            admin.keys.create("acme", "k", expires_at=datetime(2030, 1, 1))
        assert refusal(lambda: admin.keys.create("acme", "k", scopes=["nope"])).status == 400
        # A tenant's key manages nothing; the admin key reads only the operator log's events.
        assert refusal(lambda: next(tenant.tenants.list())).status == 403
        assert refusal(lambda: tenant.keys.list("acme")).status == 403
        assert refusal(lambda: admin.get("no-such-event")).status == 404  # _system's, not acme's


class LoseCreateAnswers(httpx.BaseTransport):
    """Forwards every request; the answer to the first `lost` POSTs is replaced by a
    connection reset (the server acted), the next `failing` by a 503 (without forwarding)."""

    def __init__(self, lost: int = 0, failing: int = 0) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost, self.failing, self.posts = lost, failing, 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return self.inner.handle_request(request)
        with self.lock:
            self.posts += 1
            step = self.posts
        if step <= self.lost:
            response = self.inner.handle_request(request)
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        if step <= self.lost + self.failing:
            body = {"error": {"code": "unavailable", "message": "down", "status": 503}}
            return httpx.Response(503, json=body)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_create_whose_answer_is_lost_is_not_sent_again(admin_key: str, server: Server) -> None:
    """Resending a key creation after a lost answer would make a second key whose secret
    nobody has: the error is raised instead, and exactly one key exists."""
    lossy = LoseCreateAnswers(lost=1)
    with Client(server.url, admin_key, transport=lossy, retry=FAST_RETRY) as admin:
        with pytest.raises(httpx.ReadError):
            admin.keys.create("acme", "billing")
        assert lossy.posts == 1
        assert [k["name"] for k in admin.keys.list("acme")] == ["client tests", "billing"]


def test_a_create_answered_503_is_not_retried_but_reads_are(admin_key: str, server: Server) -> None:
    failing = LoseCreateAnswers(failing=1)
    with Client(server.url, admin_key, transport=failing, retry=FAST_RETRY) as admin:
        assert refusal(lambda: admin.tenants.create("initech")).status == 503
        assert failing.posts == 1
        assert admin.tenants.create("initech")["id"] == "initech"


def test_async_onboarding(admin_key: str, server: Server) -> None:
    async def main() -> tuple[str, list[str]]:
        async with AsyncClient(server.url, admin_key) as admin:
            await admin.tenants.create("umbrella")
            renamed = await admin.tenants.rename("umbrella", "Umbrella Corp")
            assert renamed["name"] == "Umbrella Corp"
            created = await admin.keys.create("umbrella", "app", scopes=["events.write"])
            assert [k["id"] for k in await admin.keys.list("umbrella")] == [created["id"]]
            ids = [t["id"] async for t in admin.tenants.list(page_size=1)]
            async with AsyncClient(server.url, created["key"]) as audit:
                audit.record("user.login", actor={"id": "u-1"})
                assert await audit.aflush(timeout=30)
                assert audit.stats.delivered == 1
                with pytest.raises(ApiError) as no_read:
                    await audit.page()  # the key was made write-only
                assert no_read.value.status == 403
            await admin.keys.revoke("umbrella", created["id"])
            assert (await admin.tenants.deactivate("umbrella"))["active"] is False
            assert (await admin.tenants.reactivate("umbrella"))["active"] is True
            with pytest.raises(ApiError) as missing:
                await admin.tenants.get("nobody")
            assert missing.value.status == 404
            return created["key"], ids

    secret, ids = asyncio.run(main())
    assert ids == ["_system", "acme", "umbrella"]
    with Client(server.url, secret) as revoked:
        assert refusal(lambda: revoked.page()).status == 401
