"""Helpers every dialect uses: the service, the caller's identity, strict query checking."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Set
from datetime import datetime
from typing import Any, cast
from urllib.parse import unquote_to_bytes

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
    return [ScopeGuard(scopes, jwt_tenant)]


class ScopeGuard:
    """`requires`' guard; its `scopes` also name the route's scope in its OpenAPI 403."""

    def __init__(
        self,
        scopes: tuple[str, ...],
        jwt_tenant: Callable[[ASGIConnection[Any, Any, Any, Any]], str] | None,
    ) -> None:
        self.scopes = scopes
        self.jwt_tenant = jwt_tenant

    def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        service: AuditService = connection.app.state.service
        tenant = self.jwt_tenant(connection) if self.jwt_tenant is not None else None
        who = service.authenticate(connection.headers.get("authorization"), jwt_tenant=tenant)
        note_caller(who.tenant, who.key_id)
        limiter: Limiter = connection.app.state.rate_limiter
        limiter.hit(f"{who.tenant}/{who.key_id}")
        who.require(*self.scopes)
        connection.state[_CALLER] = who


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


async def check_request(request: Request[Any, Any, Any]) -> None:
    """The app's `before_request`: what every route refuses alike, after its guard (so a caller
    without a valid key still gets 401 or 403 first) and before Litestar reads the parameters.

    The query names a route accepts are the ones its handler (and its dependencies) declare, so
    a new route or parameter needs no list kept by hand.
    """
    reject_unknown_query(request, declared_query(request))
    await _refuse_empty_body(request)


_DECLARED: weakref.WeakKeyDictionary[BaseRouteHandler, frozenset[str]] = weakref.WeakKeyDictionary()


def declared_query(request: Request[Any, Any, Any]) -> frozenset[str]:
    """The query parameter names the request's handler declares (read once per handler)."""
    handler = request.route_handler
    names = _DECLARED.get(handler)
    if names is None:
        path_parameters = cast("dict[str, Any]", dict.fromkeys(request.path_params))
        model = handler.create_kwargs_model(path_parameters=path_parameters)
        names = frozenset(p.field_alias for p in model.expected_query_params)
        _DECLARED[handler] = names
    return names


async def _refuse_empty_body(request: Request[Any, Any, Any]) -> None:
    """A route that takes a JSON body gets one: Litestar would report an empty body as a
    missing `data` argument (`data: 'data'`), which names nothing a client sent."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None or data.is_optional:
        return
    if not (await request.body()).strip():
        raise InvalidInput(
            "request body is empty; expected a JSON object",
            details=[{"field": "body", "message": "empty; expected a JSON object", "in": "body"}],
        )


def normalise_integer_query(query_string: bytes) -> bytes:
    """Leading zeros dropped from the integer parameters (`limit=05` is 5, as docs/api.md's
    "decimal digits" says): Litestar's conversion refuses them. Every other byte stays as sent,
    for `reject_unknown_query` to judge."""
    if b"0" not in query_string:
        return query_string
    return b"&".join(_normalise_pair(pair) for pair in query_string.split(b"&"))


def _normalise_pair(pair: bytes) -> bytes:
    raw_name, equals, raw_value = pair.partition(b"=")
    name = _unquote(raw_name)
    value = _unquote(raw_value)
    if name in INTEGER_QUERY and value.isascii() and value.isdigit() and value[0] == "0":
        return raw_name + equals + (value.lstrip("0") or "0").encode()
    return pair


def _unquote(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


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
