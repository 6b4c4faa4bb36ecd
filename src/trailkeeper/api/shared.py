"""Helpers every dialect uses: the service, the caller's identity, strict query checking."""

from __future__ import annotations

from collections.abc import Callable, Set
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from trailkeeper.api.observability import note_caller
from trailkeeper.api.ratelimit import Limiter
from trailkeeper.auth import Principal
from trailkeeper.errors import InvalidInput
from trailkeeper.service import AuditService

_CALLER = "trailkeeper.caller"


def service_of(request: Request[Any, Any, Any]) -> AuditService:
    service: AuditService = request.app.state.service
    return service


def requires(
    *scopes: str, jwt_tenant: Callable[[ASGIConnection[Any, Any, Any, Any]], str] | None = None
) -> list[Guard]:
    """The guard of an authenticated route: authenticate the bearer credential, apply its rate
    limit, require every one of `scopes`, and keep the caller for the handler (`caller`).

    A guard runs before Litestar reads the body or the parameters, so a caller without a valid
    key gets 401 and one without the scope 403, whatever it sent. `jwt_tenant` (the Gr4vy
    route alone) lets a key-pair JWT in, looked up in the tenant it names; elsewhere a JWT is
    a 401. Litestar runs this synchronous guard in a worker thread (it may query the store).
    """

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        service: AuditService = connection.app.state.service
        tenant = jwt_tenant(connection) if jwt_tenant is not None else None
        who = service.authenticate(connection.headers.get("authorization"), jwt_tenant=tenant)
        note_caller(who.tenant, who.key_id)
        limiter: Limiter = connection.app.state.rate_limiter
        limiter.hit(f"{who.tenant}/{who.key_id}")
        who.require(*scopes)
        connection.state[_CALLER] = who

    return [guard]


def caller(request: Request[Any, Any, Any]) -> Principal:
    """Who passed the route's `requires` guard."""
    who = request.state.get(_CALLER)
    if not isinstance(who, Principal):
        raise RuntimeError(f"{request.url.path} has no `requires` guard")  # a bug, not input
    return who


# Query parameters that mean the same on every route, with the one form each is documented
# in (docs/api.md). Litestar converts query strings leniently (`limit=1e2` is 100, and
# `since=1700000000` a Unix time); these take exactly the documented form.
INTEGER_QUERY = frozenset({"limit", "size", "from", "to"})
TIME_QUERY = frozenset({"since", "until"})


def reject_unknown_query(request: Request[Any, Any, Any], allowed: Set[str]) -> None:
    """A misspelt filter must not silently widen a query: unknown or repeated names are 400s.
    Integers and times must be written as documented (`_refuse_loose_forms`)."""
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
    _refuse_loose_forms(request)


def _refuse_loose_forms(request: Request[Any, Any, Any]) -> None:
    """Integers as decimal digits, times as RFC 3339 with an offset: what Litestar's lenient
    conversion accepted besides (`1e2`, `100.0`, `1700000000`) is a 400 naming the field."""
    for name, value in request.query_params.items():
        if name in INTEGER_QUERY and not (value.isascii() and value.isdigit()):
            raise _query_error(name, "must be a whole number written in digits (e.g. 20)")
        if name in TIME_QUERY and not _is_rfc3339(value):
            raise _query_error(
                name, "must be an RFC 3339 time with an offset (e.g. 2024-05-01T10:00:00Z)"
            )


def _is_rfc3339(value: str) -> bool:
    try:
        parsed = msgspec.convert(value, datetime)  # strict: text in RFC 3339 only
    except msgspec.ValidationError:
        return False
    return parsed.tzinfo is not None


def _query_error(name: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{name} {message}", details=[{"field": name, "message": message, "in": "query"}]
    )
