"""Helpers every dialect uses: the service, the caller's identity, strict query checking."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from litestar import Request

from trailkeeper.api.observability import note_caller
from trailkeeper.api.ratelimit import RateLimiter
from trailkeeper.auth import Principal
from trailkeeper.errors import InvalidInput
from trailkeeper.service import AuditService


def service_of(request: Request[Any, Any, Any]) -> AuditService:
    service: AuditService = request.app.state.service
    return service


def principal(request: Request[Any, Any, Any], scope: str) -> Principal:
    """Authenticate the bearer credential, apply its rate limit, require `scope`."""
    who = service_of(request).authenticate(request.headers.get("authorization"))
    note_caller(who.tenant, who.key_id)
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(who.key_id)
    who.require(scope)
    return who


def reject_unknown_query(request: Request[Any, Any, Any], allowed: Set[str]) -> None:
    """A misspelt filter must not silently widen a query: unknown or repeated names are 400s."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s): {', '.join(unknown)}",
            details=[{"field": name, "message": "unknown parameter"} for name in unknown],
        )
    repeated = sorted(name for name in params if len(params.getall(name)) > 1)
    if repeated:
        raise InvalidInput(
            f"query parameter(s) given more than once: {', '.join(repeated)}",
            details=[{"field": name, "message": "given more than once"} for name in repeated],
        )
