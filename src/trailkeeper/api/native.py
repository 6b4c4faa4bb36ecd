"""trailkeeper's own API under /v1: ingestion, listing with filters, get-one, export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trailkeeper import auth
from trailkeeper.api import examples
from trailkeeper.api.observability import note_ingested
from trailkeeper.api.reference import NATIVE, Alternative, documented
from trailkeeper.api.shared import caller, requires, service_of
from trailkeeper.formats import DOCUMENT_KEYS, document_values
from trailkeeper.model import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Actor,
    Context,
    Event,
    EventBatchIn,
    EventFilter,
    EventIn,
    Outcome,
    Target,
)
from trailkeeper.service import search_query

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
Search = Annotated[
    str,
    Parameter(
        description="A search query (docs/search.md), e.g. `action:user.* -outcome:failure "
        "after:2026-01-01 invoice`; ANDed with the other filters. A syntax error is a 400 "
        "whose `details` name the position and token."
    ),
]


def provide_filters(
    actor_id: Text = None,
    action: Text = None,
    outcome: Annotated[Outcome | None, Parameter(description="`success` or `failure`.")] = None,
    type: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    source: Text = None,
    since: Since = None,
    until: Until = None,
) -> EventFilter:
    """The filter query parameters shared by listing and export (documented in OpenAPI);
    shorthand for qualifiers of the search query `q`, with which they are ANDed."""
    return EventFilter(
        actor_id=actor_id,
        action=action,
        outcome=outcome,
        type=type,
        target_type=target_type,
        target_id=target_id,
        source=source,
        since=since,
        until=until,
    )


class EventView(msgspec.Struct, frozen=True, gc=False):
    """An event as the native API returns it: its public document (formats.event_document,
    whose RFC 8785 encoding is the leaf) plus its leaf hash. Timestamps: RFC 3339, UTC, ms."""

    id: str
    tenant: str
    occurred_at: str
    received_at: str
    action: str
    outcome: Outcome
    type: str | None
    actor: Actor
    target: Target | None
    source: str | None
    context: Context | None
    metadata: dict[str, Any]
    log_index: int | None
    leaf_hash: str | None


# The view is the event's public document, field for field (checked here at import).
assert EventView.__struct_fields__ == DOCUMENT_KEYS


def to_view(event: Event) -> EventView:
    return EventView(*document_values(event))


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


WRITE_ERRORS = NATIVE.errors(400, 401, 403, 409, 413, 429, 503)
QUERY_ERRORS = NATIVE.errors(400, 401, 403, 429, 503)
ONE_ERRORS = NATIVE.errors(401, 403, 404, 429, 503)


def _replayed(body: Any) -> dict[int, Any]:
    """The 200 of an idempotent replay: everything was already stored, nothing was created."""
    return {
        HTTP_200_OK: ResponseSpec(
            data_container=body,
            description="Already stored: the same id(s) and content were sent before",
            generate_examples=False,
        ),
        **WRITE_ERRORS,
    }


_PAGE_EXAMPLE = {
    "items": [examples.EVENT],
    "limit": 1,
    "next_cursor": examples.CURSOR,
    "previous_cursor": None,
}
_BATCH_EXAMPLE = {"items": [examples.EVENT], "created": 1, "existing": 0}
_MINIMAL_EXAMPLE = {
    "stored": [{"id": examples.EVENT["id"], "log_index": examples.EVENT["log_index"]}],
    "created": 1,
    "existing": 0,
}
_TEXT = Schema(type=OpenAPIType.STRING)


@post(
    "/events",
    summary="Record one event",
    description="Stores one event (docs/events.md) and returns it as stored, with its "
    "`log_index` in the tenant's Merkle log and its `leaf_hash`. Only `action` and `actor.id` "
    "are required; `occurred_at` defaults to the time received. Idempotent when the event "
    "carries an `id`: re-sending the same id and content returns the stored event with 200; the "
    "same id with other content is a 409. Scope `events.write`.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_WRITE),
    responses=_replayed(EventView),
    operation_class=documented(
        requests={"full event": examples.EVENT_IN, "smallest event": examples.MINIMAL_EVENT_IN},
        response=examples.EVENT,
    ),
)
def create_event(request: Request[Any, Any, Any], data: JSONBody[EventIn]) -> Response[EventView]:
    who = caller(request)
    [(event, created)] = service_of(request).ingest(who.tenant, [data])
    note_ingested(1, int(created))
    return Response(to_view(event), status_code=HTTP_201_CREATED if created else HTTP_200_OK)


@post(
    "/events/batch",
    summary="Record up to 1000 events, all or nothing",
    description="Stores 1-1000 events in one transaction: one invalid event (400, its place "
    "named as `events[n]`) or one conflicting id (409) stores none of them. The answer lists "
    "the stored events in request order; with `Prefer: return=minimal` only their `id` and "
    "`log_index` (as `stored`). 201 when any event was new, 200 when all were already stored "
    "with the same content. Scope `events.write`.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_WRITE),
    responses=_replayed(BatchResult | MinimalBatchResult),
    operation_class=documented(
        request={"events": [examples.EVENT_IN, examples.MINIMAL_EVENT_IN]},
        responses={"stored events": _BATCH_EXAMPLE, "Prefer: return=minimal": _MINIMAL_EXAMPLE},
    ),
)
def create_events(
    request: Request[Any, Any, Any], data: JSONBody[EventBatchIn], prefer: Prefer = None
) -> Response[BatchResult | MinimalBatchResult]:
    who = caller(request)
    in_full = not prefers_minimal(prefer)
    results = service_of(request).ingest(who.tenant, data.events)
    created = sum(is_new for _, is_new in results)
    note_ingested(len(results), created)
    status = HTTP_201_CREATED if created else HTTP_200_OK
    if not in_full:
        refs = [StoredRef(event.id, event.log_index) for event, _ in results]
        minimal = MinimalBatchResult(stored=refs, created=created, existing=len(refs) - created)
        return Response(
            minimal, status_code=status, headers={"Preference-Applied": "return=minimal"}
        )
    views = [to_view(event) for event, _ in results]
    body = BatchResult(items=views, created=created, existing=len(views) - created)
    return Response(body, status_code=status)


@get(
    "/events",
    summary="List events, newest first",
    guards=requires(auth.SCOPE_EVENTS_READ),
    description="One page of the tenant's events, newest first, optionally searched with `q` "
    "(docs/search.md) and filtered (filters "
    "combine with AND; unknown or repeated parameters are a 400). Follow `next_cursor` for older "
    "events and `previous_cursor` to go back; keep the same `q` and filters when following a "
    "cursor (a cursor is bound to them). "
    "Scope `events.read`.",
    sync_to_thread=True,
    responses=QUERY_ERRORS,
    operation_class=documented(response=_PAGE_EXAMPLE),
)
def list_events(
    request: Request[Any, Any, Any],
    filters: NamedDependency[EventFilter],
    q: Search = "",
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> EventPageView:
    who = caller(request)
    page, next_cursor, previous_cursor = service_of(request).list_events(
        who.tenant, search_query(filters, q), limit, cursor, DIALECT
    )
    return EventPageView(
        items=[to_view(event) for event in page.events],
        limit=limit,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
    )


@get(
    "/events/{event_id:str}",
    summary="Get one event",
    guards=requires(auth.SCOPE_EVENTS_READ),
    description="The event with this id, as stored. Another tenant's event is a 404, like one "
    "that does not exist. Scope `events.read`.",
    sync_to_thread=True,
    responses=ONE_ERRORS,
    operation_class=documented(response=examples.EVENT),
)
def get_event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> EventView:
    who = caller(request)
    return to_view(service_of(request).get_event(who.tenant, event_id))


@get(
    "/export",
    summary="Export matching events, oldest first, as JSON lines or CSV (streamed)",
    response_description="The matching events, as an attachment (`events.jsonl` or `events.csv`)",
    description="Every event matching the filters, oldest first, streamed in constant memory "
    "as a file download. `format=jsonl` (default): one event per line, as `GET "
    "/v1/events/{event_id}` returns it (`trailkeeper import` and `verify` read it). "
    "`format=csv`: a header row, then one row per event, nested fields flattened "
    "(`actor_id`, `target_type`, ...) and `metadata` as JSON. Scope `events.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    responses=QUERY_ERRORS,
    operation_class=documented(
        media=(
            Alternative("application/x-ndjson", examples.NDJSON, _TEXT),
            Alternative("text/csv", examples.CSV, _TEXT),
        )
    ),
)
def export_events(
    request: Request[Any, Any, Any],
    filters: NamedDependency[EventFilter],
    q: Search = "",
    format: Annotated[
        Literal["jsonl", "csv"], Parameter(description="`jsonl` (JSON lines) or `csv`.")
    ] = "jsonl",
) -> Stream:
    who = caller(request)
    chunks = service_of(request).export(who.tenant, search_query(filters, q), format)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"  # Litestar adds the charset
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
