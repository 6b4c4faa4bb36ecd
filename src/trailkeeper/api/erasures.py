"""Erasure (right to be forgotten) and legal holds, for the credential's own tenant
(docs/retention.md)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from trailkeeper import auth, retention
from trailkeeper.api.reference import NATIVE, documented
from trailkeeper.api.shared import caller, service_of
from trailkeeper.api.shared import requires as _requires
from trailkeeper.errors import InvalidInput
from trailkeeper.model import LegalHold, format_ts
from trailkeeper.service import AdminActor

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]


class Subject(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exactly one identifier of the person."""

    actor_id: Identifier | None = None
    email: Identifier | None = None
    target_id: Identifier | None = None

    def pick(self) -> tuple[str, str]:
        given = [(k, v) for k, v in msgspec.structs.asdict(self).items() if v is not None]
        if len(given) != 1:
            raise InvalidInput(
                "give exactly one of subject.actor_id, subject.email, subject.target_id"
            )
        return given[0]


class ErasureIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subject: Subject
    reason: Reason


class ErasureView(msgspec.Struct, frozen=True):
    id: str
    tenant: str
    subject_kind: str
    events: int
    log_indexes: list[int]
    logged_as: list[str]


class HoldIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """No `subject`: the whole tenant is held."""

    reason: Reason
    subject: Subject | None = None


class HoldView(msgspec.Struct, frozen=True):
    id: str
    tenant: str
    subject: str | None
    reason: str
    created_at: str


def _hold_view(hold: LegalHold) -> HoldView:
    return HoldView(hold.id, hold.tenant, hold.subject, hold.reason, format_ts(hold.created_at))


def _by(request: Request[Any, Any, Any]) -> AdminActor:
    who = caller(request)
    return AdminActor(
        kind="api_key",
        id=who.key_id,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


_HELD = {409: "legal hold lh_5f2c9a7e1b3d4c6a covers this subject: nothing was erased"}
_ERASURE_EXAMPLE = {
    "id": "er_3b9f0c2d7a1e4f58",
    "tenant": "acme",
    "subject_kind": "email",
    "events": 2,
    "log_indexes": [0, 7],
    "logged_as": ["er_3b9f0c2d7a1e4f58.1"],
}
_HOLD_EXAMPLE = {
    "id": "lh_5f2c9a7e1b3d4c6a",
    "tenant": "acme",
    "subject": None,
    "reason": "litigation 2026-17",
    "created_at": "2026-05-01T09:00:00.000Z",
}


@post(
    "/erasures",
    summary="Erase a person's data",
    description="Replaces the subject's personal data (actor or target names and emails, IPs, "
    "user agents, the metadata keys the tenant marked personal) by `[erased]` in every event "
    "that names them. The erasure is first logged in the tenant's own log as "
    "`trailkeeper.erasure` events listing the log indexes it changes, signed by the log key, "
    "so `verify` reports those events as erased rather than tampered with. 409 when a legal "
    "hold covers the tenant or the subject. Scope `erasure.write`.",
    sync_to_thread=True,
    guards=_requires(auth.SCOPE_ERASURE_WRITE),
    status_code=HTTP_201_CREATED,
    responses=NATIVE.errors(400, 401, 403, 409, 413, 429, 503, messages=_HELD),
    operation_class=documented(
        requests={
            "by email": {"subject": {"email": "john@example.com"}, "reason": "GDPR art. 17"},
            "by actor id": {"subject": {"actor_id": "u-77"}, "reason": "ticket 4711"},
        },
        response=_ERASURE_EXAMPLE,
    ),
)
def create_erasure(request: Request[Any, Any, Any], data: JSONBody[ErasureIn]) -> ErasureView:
    kind, value = data.subject.pick()
    result = retention.erase(
        service_of(request), caller(request).tenant, kind, value, data.reason, _by(request)
    )
    return ErasureView(**msgspec.structs.asdict(result))


@post(
    "/legal-holds",
    summary="Place a legal hold",
    description="While a hold stands, the tenant (no `subject`) or the subject is neither "
    "purged by retention nor erased (409). Placing it is logged in the tenant's log "
    "(`trailkeeper.legal_hold.placed`); the subject appears there only as a keyed hash. "
    "Scope `legal-holds.write`.",
    sync_to_thread=True,
    guards=_requires(auth.SCOPE_LEGAL_HOLDS_WRITE),
    status_code=HTTP_201_CREATED,
    responses=NATIVE.errors(400, 401, 403, 413, 429, 503),
    operation_class=documented(
        requests={
            "the whole tenant": {"reason": "litigation 2026-17"},
            "one person": {"reason": "investigation", "subject": {"email": "john@example.com"}},
        },
        response=_HOLD_EXAMPLE,
    ),
)
def place_hold(request: Request[Any, Any, Any], data: JSONBody[HoldIn]) -> HoldView:
    subject = data.subject.pick() if data.subject else None
    hold = retention.place_hold(
        service_of(request), caller(request).tenant, data.reason, _by(request), subject
    )
    return _hold_view(hold)


@get(
    "/legal-holds",
    summary="List legal holds",
    description="The holds on the credential's tenant. Scope `legal-holds.write`.",
    sync_to_thread=True,
    guards=_requires(auth.SCOPE_LEGAL_HOLDS_WRITE),
    responses=NATIVE.errors(401, 403, 429, 503),
    operation_class=documented(response=[_HOLD_EXAMPLE]),
)
def list_holds(request: Request[Any, Any, Any]) -> list[HoldView]:
    holds = retention.list_holds(service_of(request), caller(request).tenant)
    return [_hold_view(hold) for hold in holds]


@delete(
    "/legal-holds/{hold_id:str}",
    summary="Lift a legal hold",
    description="Lifting is logged in the tenant's log (`trailkeeper.legal_hold.lifted`). "
    "404 for an unknown hold. Scope `legal-holds.write`.",
    sync_to_thread=True,
    guards=_requires(auth.SCOPE_LEGAL_HOLDS_WRITE),
    status_code=HTTP_204_NO_CONTENT,
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages={404: "no legal hold 'lh_1'"}),
    operation_class=documented(),
)
def lift_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[None]:
    retention.lift_hold(service_of(request), caller(request).tenant, hold_id, _by(request))
    return Response(None, status_code=HTTP_204_NO_CONTENT)


erasures_router = Router(
    path="/v1",
    route_handlers=[create_erasure, place_hold, list_holds, lift_hold],
    tags=["erasure and legal holds"],
    security=[{"bearer": []}],
)
