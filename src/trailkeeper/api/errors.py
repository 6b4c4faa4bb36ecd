"""Rendering every failure as one machine-readable JSON body, never a stack trace.

Native body: `{"error": {"code": str, "message": str, "status": int, "details": [...]}}`.
Framework exceptions (unknown route, wrong method, body too large, query validation) are mapped
into the same body, so a client has exactly one error shape to parse. A dialect can supply its
own `render` to the same mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from trailkeeper.errors import TrailkeeperError

log = logging.getLogger("trailkeeper.api")

_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    message: str
    status: int
    details: list[dict[str, Any]]


class ErrorBody(msgspec.Struct, frozen=True):
    """The native error body."""

    error: ErrorDetail


Renderer = Callable[[int, str, str, list[dict[str, Any]]], Response[Any]]


def render_native(
    status: int, code: str, message: str, details: list[dict[str, Any]]
) -> Response[Any]:
    body = ErrorBody(ErrorDetail(code=code, message=message, status=status, details=details))
    return Response(content=body, status_code=status, media_type="application/json")


def classify(exc: Exception) -> tuple[int, str, str, list[dict[str, Any]], dict[str, str]]:
    """(status, code, message, details, headers) for any exception."""
    if isinstance(exc, TrailkeeperError):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        return exc.status, exc.code, exc.message, exc.details, headers
    if isinstance(exc, ValidationException):
        details = [
            {
                "field": item.get("key"),
                "message": item.get("message"),
                # Litestar gives a ParamType, a str enum: its value, so that every dialect
                # renders "query" (str() of it would be "ParamType.QUERY").
                "in": _plain(item.get("source")),
            }
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        text = "; ".join(f"{d['field']}: {d['message']}" for d in details) or exc.detail
        return 400, "invalid_request", text, details, {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        code = _CODES.get(status, "error")
        message = exc.detail or code.replace("_", " ")
        if status == 413:
            message = "request body is larger than this server accepts"
        return status, code, message, [], dict(exc.headers or {})
    log.exception("unhandled error", exc_info=exc)
    return 500, "internal_error", "internal server error", [], {}


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def handler(render: Renderer) -> Callable[[Request[Any, Any, Any], Exception], Response[Any]]:
    """A Litestar exception handler that renders with `render`."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        status, code, message, details, headers = classify(exc)
        response = render(status, code, message, details)
        for name, value in headers.items():
            response.headers[name] = value
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="trailkeeper"'
        return response

    return handle
