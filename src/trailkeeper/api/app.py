"""Builds the ASGI application: dialects, error rendering, OpenAPI, health."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Response
from litestar.types import Message, Scope, Send
from litestar.utils import normalize_path

from trailkeeper import __version__
from trailkeeper.api.admin import admin_router
from trailkeeper.api.checkpointer import PeriodicCheckpoints
from trailkeeper.api.courier import courier_router
from trailkeeper.api.docs_ui import LocalSwaggerUI, docs_router
from trailkeeper.api.erasures import erasures_router
from trailkeeper.api.errors import handler, render_native
from trailkeeper.api.gr4vy import gr4vy_router
from trailkeeper.api.key_pairs import key_pairs_router
from trailkeeper.api.ledger import ledger_router
from trailkeeper.api.native import native_router
from trailkeeper.api.observability import instrument
from trailkeeper.api.ratelimit import rate_limiter
from trailkeeper.api.reference import NATIVE, documented, fit_error_examples
from trailkeeper.api.request import SafeRequest
from trailkeeper.api.shared import check_request, normalise_integer_query, service_of
from trailkeeper.api.streams import streams_router
from trailkeeper.api.viewer import viewer_api_router, viewer_router, viewer_tokens_router
from trailkeeper.config import Settings
from trailkeeper.errors import Unavailable
from trailkeeper.retention import PeriodicPurge
from trailkeeper.service import AuditService
from trailkeeper.streams.delivery import DeliveryOptions, StreamDeliverer
from trailkeeper.streams.manage import StreamAdmin

_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


class App(Litestar):
    """Litestar, with the HEAD and OPTIONS of RFC 9110 on every route.

    Integer query parameters lose their leading zeros first (`shared.normalise_integer_query`).

    Litestar answers HEAD on a GET route with 405, and its OPTIONS lists only the methods of
    the first handler registered on a path. Here HEAD runs the GET and sends its status and
    headers without the body, and OPTIONS (and a 405's `Allow`) lists every method of the path.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope.get("method") if scope["type"] == "http" else None
        if method is not None and (query := scope.get("query_string")):
            scope = {**scope, "query_string": normalise_integer_query(query)}
        if method not in ("HEAD", "OPTIONS"):
            if method is not None:
                send = _with_allow(send, lambda: self.allowed_methods(scope))
            await super().__call__(scope, receive, send)
            return
        allowed = self.allowed_methods(scope)
        if method == "OPTIONS" and allowed:
            await _no_content(send, allowed)
        elif method == "HEAD" and "GET" in allowed:
            # A copy: the server must still see HEAD (and so send no body itself).
            head_as_get = cast("Scope", {**scope, "method": "GET"})
            await super().__call__(head_as_get, receive, _bodiless(send))
        else:
            await super().__call__(scope, receive, _with_allow(send, lambda: allowed))

    def allowed_methods(self, scope: Scope) -> list[str]:
        """The methods the path answers (with HEAD and OPTIONS), or [] for an unknown path."""
        path = scope["path"]
        if root_path := scope.get("root_path", ""):
            path = path.split(root_path, maxsplit=1)[-1]
        found = []
        for method in _METHODS:
            try:
                self.asgi_router.handle_routing(path=normalize_path(path), method=method)
            except (NotFoundException, MethodNotAllowedException):
                continue
            found.append(method)
        if not found:
            return []
        return sorted({*found, "OPTIONS", *(["HEAD"] if "GET" in found else [])})


async def _no_content(send: Send, allowed: list[str]) -> None:
    headers = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _bodiless(send: Send) -> Send:
    """Pass the response start on; replace the body with one empty final message."""
    done = False

    async def send_head(message: Message) -> None:
        nonlocal done
        if message["type"] != "http.response.body":
            await send(message)
        elif not done:
            done = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return send_head


def _with_allow(send: Send, allowed: Callable[[], list[str]]) -> Send:
    """A 405's `Allow` header: every method of the path (looked up only for a 405)."""

    async def send_allow(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            allow = ", ".join(allowed()).encode()
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
            message = {**message, "headers": [*headers, (b"allow", allow)]}
        await send(message)

    return send_allow


@get(
    "/healthz",
    summary="Liveness and database check",
    description="200 when the server runs and its database answers a query; 503 when the "
    "database is unreachable or busy, or the server is shutting down (a load balancer should "
    "take this instance out). Needs no credential.",
    sync_to_thread=True,
    tags=["health"],
    responses=NATIVE.errors(503),
    operation_class=documented(response={"status": "ok"}),
)
def healthz(request: Request[Any, Any, Any]) -> dict[str, str]:
    draining: threading.Event | None = request.app.state.get("draining")
    if draining is not None and draining.is_set():
        raise Unavailable("shutting down: send requests to another instance")
    service_of(request).check_health()
    return {"status": "ok"}


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(request.app.openapi_schema.to_schema(), media_type="application/json")


def create_app(
    service: AuditService,
    settings: Settings,
    *,
    owns_service: bool = False,
    draining: threading.Event | None = None,
) -> Litestar:
    """The ASGI app. With `owns_service`, shutting the app down also closes the service.
    While `draining` is set, /healthz answers 503 (the server is about to stop)."""
    openapi = OpenAPIConfig(
        title="trailkeeper",
        version=__version__,
        description="Self-hosted audit log service: record audit events, read them back with "
        "filters and cursor paging, export them, and prove with signed checkpoints that the "
        "log was never rewritten. Courier- and Gr4vy-compatible read APIs are included. "
        "Every error has one body per dialect; the native one is "
        '`{"error": {"code", "message", "status", "details"}}`.',
        path="/docs",
        render_plugins=[LocalSwaggerUI()],
        openapi_router=docs_router("/docs"),
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key (`tk_...`, made with `trailkeeper keys create`, or "
                    "`POST /v1/tenants/{tenant_id}/keys`; admin routes need a key with scope "
                    "`admin`, made with `trailkeeper keys create --admin`). "
                    "`GET /audit-logs` also takes an ES512 JWT signed with a registered key "
                    "pair, as the Gr4vy SDK sends.",
                )
            }
        ),
    )
    checkpoints = PeriodicCheckpoints(service, settings.checkpoint_interval_seconds)
    purges = PeriodicPurge(service, settings.purge_interval_seconds)
    deliverer = StreamDeliverer(service.store, delivery_options(settings))

    def startup() -> None:
        checkpoints.start()
        deliverer.start()
        purges.start()

    def shutdown() -> None:
        deliverer.stop()
        checkpoints.stop()
        purges.stop()
        if owns_service:
            service.close()

    app = App(
        route_handlers=[
            healthz,
            openapi_json,
            native_router,
            ledger_router,
            key_pairs_router,
            erasures_router,
            streams_router,
            admin_router,
            courier_router,
            gr4vy_router,
            viewer_tokens_router,
            viewer_router,
            viewer_api_router,
        ],
        request_class=SafeRequest,
        before_request=check_request,
        request_max_body_size=settings.max_body_bytes,
        exception_handlers={Exception: handler(render_native)},
        openapi_config=openapi,
        state=State(
            {
                "service": service,
                "rate_limiter": rate_limiter(settings),
                "draining": draining,
                "streams": StreamAdmin(service.store),
            }
        ),
        on_startup=[startup],
        on_shutdown=[shutdown],
        logging_config=None,
    )
    for route in app.routes:
        for route_handler in getattr(route, "route_handlers", ()):
            fit_error_examples(route_handler)
    instrument(app, service, settings.metrics_max_tenants, settings.metrics_token)
    return app


def delivery_options(settings: Settings) -> DeliveryOptions:
    return DeliveryOptions(
        poll_seconds=settings.stream_poll_seconds,
        lease_seconds=settings.stream_lease_seconds,
        retry_budget=settings.stream_retry_budget,
        max_backoff_seconds=settings.stream_max_backoff_seconds,
    )
