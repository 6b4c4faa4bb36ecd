"""Gr4vy-compatible read API: `GET /audit-logs`.

Items `{type: "audit-log", id, timestamp, action, merchant_account_id, user, resource}` in an
`{items, limit, next_cursor, previous_cursor}` envelope; errors as
`{type: "error", code, status, message, details}`. Where the reference page and the current SDK
disagree, both shapes are served at once (docs/compatibility.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.params import HeaderParameter, QueryParameter

from trailkeeper import auth
from trailkeeper.api import examples
from trailkeeper.api.errors import handler
from trailkeeper.api.reference import Dialect, documented
from trailkeeper.api.shared import caller, requires, service_of
from trailkeeper.errors import InvalidInput, PermissionDenied
from trailkeeper.model import DEFAULT_PAGE, MAX_PAGE, Event, EventFilter, format_ts

DIALECT = "gr4vy"
MERCHANT_HEADER = "x-gr4vy-merchant-account-id"
# The reference page lists created/updated/deleted; the current SDK adds these three.
ACTIONS = ("created", "updated", "deleted", "voided", "canceled", "captured")
DEFAULT_USER_STATUS = "active"
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "duplicate_record",
    413: "bad_request",
    429: "too_many_requests",
    503: "service_unavailable",
}


class Gr4vyUser(msgspec.Struct, frozen=True):
    id: str
    name: str
    email_address: str | None
    staff: bool
    is_staff: bool
    status: str
    type: Literal["user"] = "user"


class Gr4vyResource(msgspec.Struct, frozen=True):
    type: str
    id: str
    name: str


class Gr4vyAuditLog(msgspec.Struct, frozen=True):
    id: str
    timestamp: str
    action: str
    merchant_account_id: str
    user: Gr4vyUser
    resource: Gr4vyResource
    type: Literal["audit-log"] = "audit-log"


class Gr4vyAuditLogs(msgspec.Struct, frozen=True):
    items: list[Gr4vyAuditLog]
    limit: int
    next_cursor: str | None
    previous_cursor: str | None


class Gr4vyErrorDetail(msgspec.Struct, frozen=True):
    location: str
    pointer: str
    message: str
    type: str


class Gr4vyError(msgspec.Struct, frozen=True):
    code: str
    status: int
    message: str
    details: list[Gr4vyErrorDetail]
    type: Literal["error"] = "error"


def to_gr4vy(event: Event) -> Gr4vyAuditLog:
    actor, target = event.actor, event.target
    staff = bool(actor.staff)
    return Gr4vyAuditLog(
        id=event.id,
        timestamp=format_ts(event.occurred_at).removesuffix("Z") + "+00:00",  # explicit offset
        action=event.action,
        merchant_account_id=event.tenant,
        user=Gr4vyUser(
            id=actor.id,
            name=actor.name or actor.id,
            email_address=actor.email,
            staff=staff,
            is_staff=staff,
            status=actor.status or DEFAULT_USER_STATUS,
        ),
        resource=Gr4vyResource(
            type=(target.type if target else None) or "",
            id=(target.id if target else None) or "",
            name=(target.name or target.id or "") if target else "",
        ),
    )


def render_gr4vy(
    status: int, code: str, message: str, details: list[dict[str, Any]]
) -> Response[Any]:
    body = Gr4vyError(
        code=_CODES.get(status, "server_error" if status >= 500 else code),
        status=status,
        message=message,
        details=[
            Gr4vyErrorDetail(
                location=str(d.get("in") or "query"),
                pointer=str(d.get("field") or ""),
                message=str(d.get("message") or message),
                type="value_error",
            )
            for d in details
        ],
    )
    return Response(body, status_code=status, media_type="application/json")


def merchant_account(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The merchant account a request names: the tenant whose key pairs a JWT is checked
    against (key pairs are unique per tenant only)."""
    return connection.headers.get(MERCHANT_HEADER) or "default"


GR4VY = Dialect(Gr4vyError, render_gr4vy)
_PAGE_EXAMPLE = {
    "items": [msgspec.to_builtins(to_gr4vy(examples.EXAMPLE_EVENT))],
    "limit": 1,
    "next_cursor": examples.CURSOR,
    "previous_cursor": None,
}
# Filter values: 1-256 characters, no NUL (the same rule as the native filters).
_FILTER = r"^[^\x00]*$"


@get(
    "/audit-logs",
    summary="List audit logs (Gr4vy-compatible)",
    description="Gr4vy's `GET /audit-logs` (docs/compatibility.md): the merchant account's "
    "events, newest first, in Gr4vy's shape, filtered by `user_id`, `action` and "
    "`resource_type`. The merchant account is the `x-gr4vy-merchant-account-id` header "
    "(default `default`) and must be the credential's tenant (else 403). Authenticates with an "
    "API key or an ES512 JWT signed with a registered key pair (as the Gr4vy SDK does). Errors "
    "are Gr4vy's `{type: error, code, status, message, details}`. Scope `audit-logs.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_AUDIT_LOGS_READ, jwt_tenant=merchant_account),
    responses=GR4VY.errors(400, 401, 403, 429, 503),
    operation_class=documented(response=_PAGE_EXAMPLE),
)
def list_audit_logs(
    request: Request[Any, Any, Any],
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, QueryParameter(max_length=1000)] = None,
    user_id: Annotated[
        str | None, QueryParameter(min_length=1, max_length=256, pattern=_FILTER)
    ] = None,
    action: Annotated[
        str | None,
        QueryParameter(min_length=1, max_length=256, schema_extra={"enum": [*ACTIONS, None]}),
    ] = None,
    resource_type: Annotated[
        str | None, QueryParameter(min_length=1, max_length=256, pattern=_FILTER)
    ] = None,
    merchant_account_id: Annotated[
        str | None, HeaderParameter(name=MERCHANT_HEADER, max_length=64)
    ] = None,
) -> Gr4vyAuditLogs:
    who = caller(request)
    merchant = merchant_account_id or "default"
    if merchant != who.tenant:
        raise PermissionDenied(f"no access to merchant account {merchant!r} with this credential")
    if action is not None and action not in ACTIONS:
        raise InvalidInput(
            f"action must be one of {', '.join(ACTIONS)}",
            details=[{"field": "action", "message": "unknown action", "in": "query"}],
        )
    filters = EventFilter(actor_id=user_id, action=action, target_type=resource_type)
    page, next_cursor, previous_cursor = service_of(request).list_events(
        who.tenant, filters, limit, cursor or None, DIALECT
    )
    return Gr4vyAuditLogs(
        items=[to_gr4vy(e) for e in page.events],
        limit=limit,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
    )


gr4vy_router = Router(
    path="/",
    route_handlers=[list_audit_logs],
    tags=["gr4vy"],
    security=[{"bearer": []}],
    exception_handlers={Exception: handler(render_gr4vy)},
)
