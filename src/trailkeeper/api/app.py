"""Builds the ASGI application: dialects, error rendering, OpenAPI, health."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Response

from trailkeeper import __version__
from trailkeeper.api.checkpointer import PeriodicCheckpoints
from trailkeeper.api.courier import courier_router
from trailkeeper.api.errors import handler, render_native
from trailkeeper.api.gr4vy import gr4vy_router
from trailkeeper.api.key_pairs import key_pairs_router
from trailkeeper.api.ledger import ledger_router
from trailkeeper.api.native import native_router
from trailkeeper.api.observability import instrument
from trailkeeper.api.ratelimit import RateLimiter
from trailkeeper.api.request import SafeRequest
from trailkeeper.api.shared import service_of
from trailkeeper.config import Settings
from trailkeeper.service import AuditService


@get("/healthz", summary="Liveness and database check", sync_to_thread=True, tags=["health"])
def healthz(request: Request[Any, Any, Any]) -> dict[str, str]:
    service_of(request).check_health()
    return {"status": "ok"}


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(request.app.openapi_schema.to_schema(), media_type="application/json")


def create_app(
    service: AuditService, settings: Settings, *, owns_service: bool = False
) -> Litestar:
    """The ASGI app. With `owns_service`, shutting the app down also closes the service
    (what `serve` wants: uvicorn re-raises SIGTERM after shutdown, so nothing runs later)."""
    openapi = OpenAPIConfig(
        title="trailkeeper",
        version=__version__,
        description="Self-hosted audit log service.",
        path="/docs",
        render_plugins=[ScalarRenderPlugin()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="API key")
            }
        ),
    )
    checkpoints = PeriodicCheckpoints(service, settings.checkpoint_interval_seconds)

    def shutdown() -> None:
        checkpoints.stop()
        if owns_service:
            service.close()

    app = Litestar(
        route_handlers=[
            healthz,
            openapi_json,
            native_router,
            ledger_router,
            key_pairs_router,
            courier_router,
            gr4vy_router,
        ],
        request_class=SafeRequest,
        request_max_body_size=settings.max_body_bytes,
        exception_handlers={Exception: handler(render_native)},
        openapi_config=openapi,
        state=State(
            {
                "service": service,
                "rate_limiter": RateLimiter(
                    settings.rate_limit_per_second, settings.rate_limit_burst
                ),
            }
        ),
        on_startup=[checkpoints.start],
        on_shutdown=[shutdown],
        logging_config=None,
    )
    instrument(app, service, settings.metrics_max_tenants, settings.metrics_token)
    return app
