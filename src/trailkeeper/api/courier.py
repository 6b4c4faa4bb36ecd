"""Courier-compatible read API: `GET /audit-events` and `GET /audit-events/{id}`.

A thin translation of the event model to Courier's shapes (docs/compatibility.md): results
`{auditEventId, actor: {id, email}, target: {id, email}, source, timestamp, type}` in a
`{paging: {cursor, more}, results}` envelope, errors as `{message, type}`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get
from litestar.params import FromPath, QueryParameter

from trailkeeper import auth
from trailkeeper.api import examples
from trailkeeper.api.errors import handler
from trailkeeper.api.reference import Dialect, documented
from trailkeeper.api.shared import caller, requires, service_of
from trailkeeper.model import DEFAULT_PAGE, MAX_PAGE, Event, EventFilter, format_ts

DIALECT = "courier"
_NO_FILTERS = EventFilter()
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class CourierPerson(msgspec.Struct, frozen=True):
    id: str | None
    email: str | None


class CourierAuditEvent(msgspec.Struct, frozen=True, rename="camel"):
    audit_event_id: str
    actor: CourierPerson
    target: CourierPerson
    source: str
    timestamp: str
    type: str


class CourierPaging(msgspec.Struct, frozen=True):
    cursor: str | None
    more: bool


class CourierPage(msgspec.Struct, frozen=True):
    paging: CourierPaging
    results: list[CourierAuditEvent]


class CourierError(msgspec.Struct, frozen=True):
    message: str
    type: str


def to_courier(event: Event) -> CourierAuditEvent:
    target = event.target
    return CourierAuditEvent(
        audit_event_id=event.id,
        actor=CourierPerson(id=event.actor.id, email=event.actor.email),
        target=CourierPerson(
            id=target.id if target else None, email=target.email if target else None
        ),
        source=event.source or "",
        timestamp=format_ts(event.occurred_at),
        type=event.type or event.action,
    )


def render_courier(
    status: int, code: str, message: str, details: list[dict[str, Any]]
) -> Response[Any]:
    error_type = _ERROR_TYPES.get(status, "api_error")
    return Response(
        CourierError(message=message, type=error_type),
        status_code=status,
        media_type="application/json",
    )


COURIER = Dialect(CourierError, render_courier)
_EVENT_EXAMPLE = msgspec.to_builtins(to_courier(examples.EXAMPLE_EVENT))
_PAGE_EXAMPLE = {"paging": {"cursor": examples.CURSOR, "more": True}, "results": [_EVENT_EXAMPLE]}


@get(
    "/audit-events",
    summary="List audit events (Courier-compatible)",
    description="Courier's `GET /audit-events`: the tenant's events, newest first, in Courier's "
    "shape (docs/compatibility.md). Pass `paging.cursor` as `cursor` for the next page; "
    "`paging.more` is false on the last. Errors are Courier's `{message, type}`. "
    "Scope `audit-logs.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_AUDIT_LOGS_READ),
    responses=COURIER.errors(400, 401, 403, 429, 503),
    operation_class=documented(response=_PAGE_EXAMPLE),
)
def list_audit_events(
    request: Request[Any, Any, Any],
    cursor: Annotated[str | None, QueryParameter(max_length=256)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> CourierPage:
    who = caller(request)
    page, next_cursor, _ = service_of(request).list_events(
        who.tenant, _NO_FILTERS, limit, cursor, DIALECT
    )
    return CourierPage(
        paging=CourierPaging(cursor=next_cursor, more=next_cursor is not None),
        results=[to_courier(e) for e in page.events],
    )


@get(
    "/audit-events/{audit_event_id:str}",
    summary="Get an audit event",
    description="Courier's `GET /audit-events/{auditEventId}`: one event in Courier's shape, or "
    "404 (also for another tenant's event). Scope `audit-logs.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_AUDIT_LOGS_READ),
    responses=COURIER.errors(401, 403, 404, 429, 503),
    operation_class=documented(response=_EVENT_EXAMPLE),
)
def get_audit_event(
    request: Request[Any, Any, Any], audit_event_id: FromPath[str]
) -> CourierAuditEvent:
    who = caller(request)
    return to_courier(service_of(request).get_event(who.tenant, audit_event_id))


courier_router = Router(
    path="/",
    route_handlers=[list_audit_events, get_audit_event],
    tags=["courier"],
    security=[{"bearer": []}],
    exception_handlers={Exception: handler(render_courier)},
)
