"""trailkeeper's own API under /v1: ingestion, listing with filters, get-one, export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trailkeeper import auth
from trailkeeper.api.errors import ErrorBody, error_responses
from trailkeeper.api.observability import note_ingested
from trailkeeper.api.shared import principal, reject_unknown_query, service_of
from trailkeeper.formats import EventView, ingest_view, to_view
from trailkeeper.model import DEFAULT_PAGE, MAX_PAGE, EventBatchIn, EventFilter, EventIn

DIALECT = "native"

Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description=f"Page size, 1-{MAX_PAGE}.")]
Cursor = Annotated[
    str | None,
    Parameter(max_length=256, description="`next_cursor` or `previous_cursor` of a page."),
]
Text = Annotated[str | None, Parameter(min_length=1, max_length=256)]
Since = Annotated[
    datetime | None, Parameter(description="Only events at or after this time (RFC 3339).")
]
Until = Annotated[
    datetime | None, Parameter(description="Only events before this time (RFC 3339).")
]
FILTER_PARAMS = frozenset(
    {"actor_id", "action", "type", "target_type", "target_id", "source", "since", "until"}
)


def provide_filters(
    actor_id: Text = None,
    action: Text = None,
    type: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    source: Text = None,
    since: Since = None,
    until: Until = None,
) -> EventFilter:
    """The filter query parameters shared by listing and export (documented in OpenAPI)."""
    return EventFilter(
        actor_id=actor_id,
        action=action,
        type=type,
        target_type=target_type,
        target_id=target_id,
        source=source,
        since=since,
        until=until,
    )


class EventPageView(msgspec.Struct, frozen=True):
    items: list[EventView]
    limit: int
    next_cursor: str | None
    previous_cursor: str | None


class BatchResult(msgspec.Struct, frozen=True):
    items: list[EventView]
    created: int
    existing: int


class StoredRef(msgspec.Struct, frozen=True):
    """One stored event under `Prefer: return=minimal`: enough to fetch it or its proof."""

    id: str
    log_index: int | None


class MinimalBatchResult(msgspec.Struct, frozen=True):
    """The batch result under `Prefer: return=minimal`. Its list is `stored`, not `items`, so
    that each response matches exactly one of the two schemas (OpenAPI `oneOf`)."""

    stored: list[StoredRef]
    created: int
    existing: int


Prefer = Annotated[
    str | None,
    HeaderParameter(
        name="Prefer",
        max_length=1024,
        description="`return=minimal` (RFC 7240): the response lists only each event's `id` "
        "and `log_index` (as `stored`), not the whole stored events (`items`): a smaller, "
        "faster response for bulk ingestion.",
    ),
]


def prefers_minimal(prefer: str | None) -> bool:
    """Whether an RFC 7240 Prefer header asks for `return=minimal`: preferences are comma
    separated, may carry `;` parameters, and their names and this value are case-insensitive."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False


ERRORS = error_responses(ErrorBody)


def _replayed(body: type) -> dict[int, Any]:
    """The 200 of an idempotent replay: everything was already stored, nothing was created."""
    return {
        HTTP_200_OK: ResponseSpec(
            data_container=body,
            description="Already stored: the same id(s) and content were sent before",
            generate_examples=False,
        ),
        **ERRORS,
    }


@post(
    "/events",
    summary="Record one event",
    description="Idempotent when the event carries an `id`: re-sending the same id and content "
    "returns the stored event with 200; the same id with other content is a 409.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    responses=_replayed(EventView),
)
def create_event(request: Request[Any, Any, Any], data: JSONBody[EventIn]) -> Response[EventView]:
    who = principal(request, auth.SCOPE_EVENTS_WRITE)
    [(event, created)] = service_of(request).ingest(
        who.tenant, [data], keep_canonical=True, decoded=True
    )
    note_ingested(1, int(created))
    return Response(ingest_view(event), status_code=HTTP_201_CREATED if created else HTTP_200_OK)


@post(
    "/events/batch",
    summary="Record up to 1000 events, all or nothing",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    responses=_replayed(BatchResult),
)
def create_events(
    request: Request[Any, Any, Any], data: JSONBody[EventBatchIn], prefer: Prefer = None
) -> Response[BatchResult | MinimalBatchResult]:
    who = principal(request, auth.SCOPE_EVENTS_WRITE)
    in_full = not prefers_minimal(prefer)
    results = service_of(request).ingest(
        who.tenant, data.events, keep_canonical=in_full, decoded=True
    )
    created = sum(is_new for _, is_new in results)
    note_ingested(len(results), created)
    status = HTTP_201_CREATED if created else HTTP_200_OK
    if not in_full:
        refs = [StoredRef(event.id, event.log_index) for event, _ in results]
        minimal = MinimalBatchResult(stored=refs, created=created, existing=len(refs) - created)
        return Response(
            minimal, status_code=status, headers={"Preference-Applied": "return=minimal"}
        )
    views = [ingest_view(event) for event, _ in results]
    body = BatchResult(items=views, created=created, existing=len(views) - created)
    return Response(body, status_code=status)


@get("/events", summary="List events, newest first", sync_to_thread=True, responses=ERRORS)
def list_events(
    request: Request[Any, Any, Any],
    filters: NamedDependency[EventFilter],
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> EventPageView:
    who = principal(request, auth.SCOPE_EVENTS_READ)
    reject_unknown_query(request, FILTER_PARAMS | {"limit", "cursor"})
    page, next_cursor, previous_cursor = service_of(request).list_events(
        who.tenant, filters, limit, cursor, DIALECT
    )
    return EventPageView(
        items=page.events,
        limit=limit,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
    )


@get("/events/{event_id:str}", summary="Get one event", sync_to_thread=True, responses=ERRORS)
def get_event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> EventView:
    who = principal(request, auth.SCOPE_EVENTS_READ)
    return to_view(service_of(request).get_event(who.tenant, event_id))


@get(
    "/export",
    summary="Export matching events, oldest first, as JSON lines or CSV (streamed)",
    sync_to_thread=True,
    responses=ERRORS,
)
def export_events(
    request: Request[Any, Any, Any],
    filters: NamedDependency[EventFilter],
    format: Annotated[str, Parameter(description="jsonl or csv")] = "jsonl",
) -> Stream:
    who = principal(request, auth.SCOPE_EVENTS_READ)
    reject_unknown_query(request, FILTER_PARAMS | {"format"})
    chunks = service_of(request).export(who.tenant, filters, format)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    return Stream(
        chunks,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="events.{format}"'},
    )


native_router = Router(
    path="/v1",
    route_handlers=[create_event, create_events, list_events, get_event, export_events],
    tags=["events"],
    security=[{"bearer": []}],
    dependencies={"filters": Provide(provide_filters, sync_to_thread=False)},
)
