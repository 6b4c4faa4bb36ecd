"""Streams API: push a tenant's events to a webhook, Splunk HEC, Datadog or NATS JetStream
(own tenant only; scope `streams.write`). Delivery itself runs in the background
(streams/delivery.py); docs/streams.md says how it behaves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from trailkeeper import auth
from trailkeeper.api.reference import NATIVE, documented
from trailkeeper.api.shared import caller, requires
from trailkeeper.streams.manage import DEFAULT_OVERLAP_SECONDS, StreamAdmin, StreamView
from trailkeeper.streams.model import MAX_OVERLAP_SECONDS, StreamIn

GUARD = requires(auth.SCOPE_STREAMS_WRITE)


class StreamPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`paused: true` stops delivery after the batch in flight; `false` resumes it from the
    stream's position."""

    paused: bool


class ReplayIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exactly one: `log_index` (deliver again from this index) or `since` (from the first
    event received at or after this time)."""

    log_index: Annotated[int, msgspec.Meta(ge=0)] | None = None
    since: datetime | None = None


class RotateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How long the old secret keeps signing beside the new one."""

    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_OVERLAP_SECONDS)] = (
        DEFAULT_OVERLAP_SECONDS
    )


def _admin(request: Request[Any, Any, Any]) -> StreamAdmin:
    admin: StreamAdmin = request.app.state.streams
    return admin


_STATUS = {
    "state": "active",
    "lag_events": 0,
    "lag_seconds": 0.0,
    "last_success_at": "2024-05-01T10:00:01.250Z",
    "last_error": None,
    "last_error_at": None,
    "deliveries": 12,
    "delivered_events": 1180,
    "failures": 1,
    "purged": 0,
}
_STREAM = {
    "id": "str_9f8e7d6c5b4a3921",
    "tenant": "acme",
    "name": "siem",
    "destination": {"type": "webhook", "url": "https://siem.example.com/trailkeeper"},
    "filters": {"action": "invoice.paid"},
    "position": 1179,
    "batch_size": 100,
    "batch_wait_ms": 200,
    "created_at": "2024-05-01T09:00:00.000Z",
    "status": _STATUS,
    "secret": None,
}
_CREATED = {**_STREAM, "position": -1, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
_NO_STREAM = {404: "no stream 'str_9f8e7d6c5b4a3921'"}
_ERRORS = (400, 401, 403, 404, 413, 429, 503)


@post(
    "/streams",
    summary="Create a stream",
    description="Starts pushing the tenant's events to a destination: `webhook` (signed per "
    "Standard Webhooks; the answer carries the signing `secret`, shown this once), "
    "`splunk_hec`, `datadog` or `nats` (JetStream). Delivery is at least once, in log order, "
    "from the beginning of the log (`start: beginning`) or from now (`end`). URLs must be "
    "https:// (http:// only to 127.0.0.1 or ::1). Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(400, 401, 403, 413, 429, 503),
    status_code=HTTP_201_CREATED,
    operation_class=documented(
        requests={
            "webhook": {
                "name": "siem",
                "destination": {"type": "webhook", "url": "https://siem.example.com/trailkeeper"},
                "filters": {"action": "invoice.paid"},
            },
            "splunk": {
                "name": "splunk",
                "destination": {
                    "type": "splunk_hec",
                    "url": "https://splunk.example.com:8088",
                    "token": "12345678-1234-1234-1234-123456789012",
                    "index": "audit",
                },
            },
            "datadog": {
                "name": "datadog",
                "destination": {
                    "type": "datadog",
                    "api_key": "0123456789abcdef",
                    "tags": "env:prod",
                },
            },
            "nats": {
                "name": "nats",
                "destination": {
                    "type": "nats",
                    "url": "nats://nats.internal:4222",
                    "subject": "audit.acme",
                },
                "start": "end",
            },
        },
        response=_CREATED,
    ),
)
def create_stream(request: Request[Any, Any, Any], data: JSONBody[StreamIn]) -> StreamView:
    who = caller(request)
    admin = _admin(request)
    stream, secret = admin.create(who.tenant, data)
    return admin.view(stream, secret)


@get(
    "/streams",
    summary="List your streams",
    description="Every stream of the credential's tenant with its status: state (`active`, "
    "`paused` or `failing`), lag in events and seconds, last success and error, counts. "
    "Secrets and credentials are never shown. Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(401, 403, 429, 503),
    operation_class=documented(response=[_STREAM]),
)
def list_streams(request: Request[Any, Any, Any]) -> list[StreamView]:
    who = caller(request)
    admin = _admin(request)
    return [admin.view(s) for s in admin.list(who.tenant)]


@get(
    "/streams/{stream_id:str}",
    summary="Show a stream",
    description="One stream and its status. 404 for an unknown id or another tenant's "
    "stream. Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages=_NO_STREAM),
    operation_class=documented(response=_STREAM),
)
def show_stream(request: Request[Any, Any, Any], stream_id: FromPath[str]) -> StreamView:
    who = caller(request)
    admin = _admin(request)
    return admin.view(admin.get(who.tenant, stream_id))


@patch(
    "/streams/{stream_id:str}",
    summary="Pause or resume a stream",
    description="`paused: true` stops delivery once the batch in flight is done (its "
    "position stays); `false` resumes from the position. Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(*_ERRORS, messages=_NO_STREAM),
    operation_class=documented(
        requests={"pause": {"paused": True}, "resume": {"paused": False}},
        response={**_STREAM, "status": {**_STATUS, "state": "paused"}},
    ),
)
def patch_stream(
    request: Request[Any, Any, Any], stream_id: FromPath[str], data: JSONBody[StreamPatch]
) -> StreamView:
    who = caller(request)
    admin = _admin(request)
    return admin.view(admin.set_paused(who.tenant, stream_id, data.paused))


@delete(
    "/streams/{stream_id:str}",
    summary="Delete a stream",
    description="Stops delivery and forgets the stream (a batch in flight may still arrive). "
    "404 for an unknown id. Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages=_NO_STREAM),
    status_code=HTTP_204_NO_CONTENT,
    operation_class=documented(),
)
def delete_stream(request: Request[Any, Any, Any], stream_id: FromPath[str]) -> Response[None]:
    who = caller(request)
    _admin(request).delete(who.tenant, stream_id)
    return Response(None, status_code=HTTP_204_NO_CONTENT)


@post(
    "/streams/{stream_id:str}/replay",
    summary="Replay a stream",
    description="Moves the stream's position back, so events are delivered again from "
    "`log_index` or from the first event received at or after `since`; clears `failing`. "
    "Only backwards (400 past the position): a stream never skips events. "
    "Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(*_ERRORS, messages=_NO_STREAM),
    status_code=200,
    operation_class=documented(
        requests={
            "from an index": {"log_index": 0},
            "from a time": {"since": "2024-05-01T00:00:00Z"},
        },
        response={**_STREAM, "position": -1},
    ),
)
def replay_stream(
    request: Request[Any, Any, Any], stream_id: FromPath[str], data: JSONBody[ReplayIn]
) -> StreamView:
    who = caller(request)
    admin = _admin(request)
    stream = admin.replay(who.tenant, stream_id, log_index=data.log_index, since=data.since)
    return admin.view(stream)


@post(
    "/streams/{stream_id:str}/rotate-secret",
    summary="Rotate a webhook stream's secret",
    description="Makes a new signing secret (returned this once). For `overlap_seconds` "
    "(default a day) requests carry two signatures, the new secret's and the old one's, so "
    "receivers can switch without rejecting a request. 400 for a stream that is not a "
    "webhook. Scope `streams.write`.",
    sync_to_thread=True,
    guards=GUARD,
    responses=NATIVE.errors(*_ERRORS, messages=_NO_STREAM),
    status_code=200,
    operation_class=documented(request={"overlap_seconds": 3600}, response=_CREATED),
)
def rotate_secret(
    request: Request[Any, Any, Any], stream_id: FromPath[str], data: JSONBody[RotateIn]
) -> StreamView:
    who = caller(request)
    admin = _admin(request)
    stream, secret = admin.rotate_secret(who.tenant, stream_id, data.overlap_seconds)
    return admin.view(stream, secret)


streams_router = Router(
    path="/v1",
    route_handlers=[
        create_stream,
        list_streams,
        show_stream,
        patch_stream,
        delete_stream,
        replay_stream,
        rotate_secret,
    ],
    tags=["streams"],
    security=[{"bearer": []}],
)
