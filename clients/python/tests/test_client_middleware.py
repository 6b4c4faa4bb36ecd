"""Recording through the middlewares, in real FastAPI and Django apps, to a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import django
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.urls import path
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from conftest import Server
from trailkeeper_client import Actor, AsyncClient, Client, request_context
from trailkeeper_client.asgi import AuditMiddleware
from trailkeeper_client.django import user_actor


def fastapi_app(audit: Client) -> FastAPI:
    app = FastAPI()

    def current_user(request: Request) -> str:
        """Stands for the app's authentication: it runs after the middleware did."""
        request.state.user = request.headers["x-user"]
        return request.state.user

    @app.post("/invoices/{invoice_id}/pay")
    def pay(invoice_id: str, user: str = Depends(current_user)) -> dict[str, str]:
        return {"event": audit.record("invoice.paid", target={"type": "invoice", "id": invoice_id})}

    def actor(scope: Any) -> Actor | None:
        user = scope.get("state", {}).get("user")
        return {"id": user, "type": "user"} if user else None

    app.add_middleware(AuditMiddleware, actor_resolver=actor, trust_forwarded=True)
    return app


def test_fastapi_app_records_through_the_middleware(server: Server, api_key: str) -> None:
    with Client(server.url, api_key, source="billing") as audit:
        web = TestClient(fastapi_app(audit))
        response = web.post(
            "/invoices/in_42/pay",
            headers={
                "x-user": "u-7",
                "user-agent": "Mozilla/5.0 test",
                "x-forwarded-for": "203.0.113.7, 10.0.0.1",
                "x-request-id": "req-1",
            },
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "req-1"
        other = web.post("/invoices/in_43/pay", headers={"x-user": "u-8"})
        assert audit.flush(timeout=30)
        event = audit.get(response.json()["event"])
        second = audit.get(other.json()["event"])
    assert event["actor"]["id"] == "u-7"
    assert event["target"] is not None
    assert event["target"]["id"] == "in_42"
    assert event["context"] == {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 test"}
    assert event["metadata"] == {"request_id": "req-1"}
    assert event["source"] == "billing"
    # a request without an id gets a new one, sent back to the caller and kept in the event
    assert second["actor"]["id"] == "u-8"
    assert second["metadata"] == {"request_id": other.headers["x-request-id"]}


def test_outside_a_request_the_context_manager_supplies_it(server: Server, api_key: str) -> None:
    with Client(server.url, api_key) as audit:
        with request_context(actor={"id": "cron"}, request_id="job-1"):
            event_id = audit.record("report.sent")
        assert audit.flush(timeout=30)
        event = audit.get(event_id)
    assert event["actor"]["id"] == "cron"
    assert event["metadata"] == {"request_id": "job-1"}


def test_async_client(server: Server, api_key: str) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, api_key) as audit:
            ids = [audit.record("async.test", actor={"id": f"u{n}"}) for n in range(5)]
            assert await audit.aflush(timeout=30)
            assert (await audit.get(ids[0]))["id"] == ids[0]
            assert [e["id"] async for e in audit.list(page_size=2)] == ids[::-1]
            assert [e["id"] async for e in audit.export()] == ids

    asyncio.run(main())


# ---- Django ---------------------------------------------------------------------------------

RECORDER: dict[str, Client] = {}


def django_actor(request: HttpRequest) -> Actor | None:
    user = request.headers.get("x-user")
    return {"id": user} if user else None


def ship(request: HttpRequest, order: str) -> HttpResponse:
    return HttpResponse(RECORDER["audit"].record("order.shipped", target={"id": order}))


urlpatterns = [path("orders/<str:order>/ship", ship)]


@pytest.fixture(scope="module")
def django_settings() -> None:
    if not settings.configured:
        settings.configure(
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["testserver"],
            MIDDLEWARE=["trailkeeper_client.django.AuditMiddleware"],
            TRAILKEEPER_ACTOR_RESOLVER=f"{__name__}.django_actor",
            SECRET_KEY="test",
        )
        django.setup()


def test_django_app_records_through_the_middleware(
    django_settings: None, server: Server, api_key: str
) -> None:
    with Client(server.url, api_key) as audit:
        RECORDER["audit"] = audit
        response = DjangoClient().get(
            "/orders/o-9/ship",
            headers={"x-user": "u-5", "user-agent": "curl/8", "x-request-id": "dj-1"},
            REMOTE_ADDR="198.51.100.4",
        )
        assert response.status_code == 200
        assert response["X-Request-ID"] == "dj-1"
        assert audit.flush(timeout=30)
        event = audit.get(response.content.decode())
    assert event["actor"] == {
        "id": "u-5",
        "name": None,
        "email": None,
        "type": None,
        "staff": None,
        "status": None,
    }
    assert event["target"] is not None
    assert event["target"]["id"] == "o-9"
    assert event["context"] == {"ip": "198.51.100.4", "user_agent": "curl/8"}
    assert event["metadata"] == {"request_id": "dj-1"}


class FakeUser:
    pk, email, is_staff, is_authenticated = 42, "ann@example.com", True, True

    def get_username(self) -> str:
        return "ann"


class Anonymous:
    is_authenticated = False


def test_django_default_actor_is_the_logged_in_user() -> None:
    request: Any = type("R", (), {"user": FakeUser()})()
    assert user_actor(request) == {
        "id": "42",
        "type": "user",
        "name": "ann",
        "email": "ann@example.com",
        "staff": True,
    }
    request.user = Anonymous()
    assert user_actor(request) is None
