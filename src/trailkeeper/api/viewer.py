"""The event viewer: `/viewer` (a page, one script, one stylesheet) and its cookie API.

Access: an application's backend mints a short-lived viewer token (`POST /v1/viewer-tokens`,
scope `viewer.create`); the page reads it from the URL fragment (never sent to a server, so
never in access logs), removes it from the address bar and trades it for a session cookie
(`POST /viewer/api/session`). Every `/viewer/api` route reads only that cookie, is read-only,
and narrows every query to the token's tenant and pinned query. docs/viewer.md.

Tokens are stateless: HMAC-SHA256 over their claims with a key derived from the server secret
(docs/decisions.md). A token says what it is for (`link`, `session` or `frame`), so a frame
grant or a session cookie can never be replayed as a link, nor a link as a cookie.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import html
import re
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED

from trailkeeper import auth
from trailkeeper.api.docs_ui import CACHE_FOREVER, Asset, CacheBuster
from trailkeeper.api.ledger import InclusionProofView
from trailkeeper.api.native import EventView, to_view
from trailkeeper.api.reference import NATIVE, documented
from trailkeeper.api.shared import caller, requires, service_of
from trailkeeper.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from trailkeeper.model import DEFAULT_PAGE, EPOCH, MAX_PAGE, Event
from trailkeeper.query import Query, matches, parse_query
from trailkeeper.service import AuditService

DIALECT = "viewer"
COOKIE = "tk_viewer"
CSRF_HEADER = "x-trailkeeper-viewer"
DEFAULT_TTL_SECONDS = 15 * 60
MAX_TTL_SECONDS = 24 * 60 * 60
MIN_TTL_SECONDS = 60
MAX_ORIGINS = 10
_PREFIX = "tkv1"
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::[0-9]{1,5})?")
_TOKEN_CHARS = 4096
_ASSETS = {
    "viewer.js": "text/javascript",
    "viewer.css": "text/css",
}
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
)
_API_HEADERS = [
    ResponseHeader(name="Cache-Control", value="no-store"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Content-Security-Policy", value="default-src 'none'; sandbox"),
]

# ---- tokens -----------------------------------------------------------------------------

Kind = Literal["link", "session", "frame"]


class Grant(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a viewer token grants: one tenant's events, narrowed by `pin`, until `exp`
    (Unix seconds); `origins` may frame the page."""

    kind: Kind
    tenant: str
    exp: int
    pin: str = ""
    origins: tuple[str, ...] = ()


class Expired(Unauthenticated):
    code = "viewer_session_expired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"trailkeeper viewer\x1f" + payload, hashlib.sha256).digest()


def encode_grant(key: bytes, grant: Grant) -> str:
    payload = msgspec.json.encode(grant)
    return f"{_PREFIX}.{_b64(payload)}.{_b64(_mac(key, payload))}"


def decode_grant(key: bytes, token: str, kind: Kind, now: float | None = None) -> Grant:
    """The grant a token carries, if its MAC is right, it is of `kind` and not expired."""
    invalid = Unauthenticated("this viewer link is not valid (altered, or for another server)")
    parts = token.split(".")
    if len(token) > _TOKEN_CHARS or len(parts) != 3 or parts[0] != _PREFIX:
        raise invalid
    try:
        payload, mac = _unb64(parts[1]), _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise invalid
    try:
        grant = msgspec.json.decode(payload, type=Grant)
    except msgspec.ValidationError:
        raise invalid from None
    if grant.kind != kind:
        raise invalid
    if grant.exp <= (time.time() if now is None else now):
        raise Expired(
            "this viewer link has expired: ask the application that gave it to you for a new one"
        )
    return grant


def check_origins(origins: list[str]) -> tuple[str, ...]:
    """Origins as CSP `frame-ancestors` takes them: scheme, host and port, nothing else."""
    if len(origins) > MAX_ORIGINS:
        raise InvalidInput(f"at most {MAX_ORIGINS} allowed_origins")
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise InvalidInput(
                f"allowed_origins: {origin!r} is not an origin like https://app.example.com",
                details=[{"field": "allowed_origins", "message": "scheme://host[:port] only"}],
            )
    return tuple(dict.fromkeys(o.lower() for o in origins))


def mint(
    service: AuditService,
    tenant: str,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    pinned_query: str = "",
    allowed_origins: tuple[str, ...] = (),
    now: float | None = None,
) -> tuple[str, str, datetime]:
    """A link token and the viewer path to open (token in the fragment); with its expiry."""
    service.require_tenant(tenant)
    if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput(
            f"ttl_seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}",
            details=[{"field": "ttl_seconds", "message": "out of range"}],
        )
    pin = parse_query(pinned_query).render() if pinned_query.strip() else ""
    exp = int(time.time() if now is None else now) + ttl_seconds
    origins = check_origins(list(allowed_origins))
    token = encode_grant(service.viewer_key, Grant("link", tenant, exp, pin, origins))
    path = "/viewer"
    if origins:
        frame = encode_grant(service.viewer_key, Grant("frame", tenant, exp, origins=origins))
        path += f"?frame={frame}"
    return token, f"{path}#token={token}", EPOCH + timedelta(seconds=exp)


# ---- the query: the pin ANDed with what the page asks --------------------------------------


def viewer_filters(tenant: str, pin: str, q: str) -> Query:
    """The one place the viewer's search text becomes a store query: the pin AND `q`."""
    del tenant  # the tenant is applied by the service
    return parse_query(pin).and_(parse_query(q))


# ---- minting: the customer's backend --------------------------------------------------------


class ViewerTokenIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl_seconds: Annotated[int, msgspec.Meta(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)] = (
        DEFAULT_TTL_SECONDS
    )
    pinned_query: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    allowed_origins: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=256)]], msgspec.Meta(max_length=MAX_ORIGINS)
    ] = []


class ViewerTokenView(msgspec.Struct, frozen=True):
    token: str
    url: str
    expires_at: str
    tenant: str
    pinned_query: str
    allowed_origins: list[str]


_TOKEN_EXAMPLE = {
    "token": "tkv1.eyJraW5kIjoibGluayIsInRlbmFudCI6ImFjbWUiLCJleHAiOjE3MTQ1NjAwMDB9.c2lnbmF0dXJl",
    "url": "/viewer#token=tkv1.eyJraW5kIjoibGluayIsInRlbmFudCI6ImFjbWUiLCJleHAiOjE3MTQ1NjAwMDB9"
    ".c2lnbmF0dXJl",
    "expires_at": "2024-05-01T10:15:00.000Z",
    "tenant": "acme",
    "pinned_query": "target.id:workspace-9",
    "allowed_origins": [],
}


@post(
    "/viewer-tokens",
    summary="Mint a link to the event viewer for your tenant",
    description="A short-lived token (default 15 minutes, at most 24 hours: `ttl_seconds`) that "
    "opens `/viewer` on this tenant's events, optionally pinned to a query (`pinned_query`, e.g. "
    "`target.id:workspace-9`: the viewer ANDs it with every search, so the holder sees only that "
    "slice) and embeddable in an iframe by `allowed_origins`. Open `url` (relative to this "
    "server): the page trades the token for a session cookie. Scope `viewer.create`.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    guards=requires(auth.SCOPE_VIEWER_CREATE),
    security=[{"bearer": []}],
    tags=["viewer"],
    responses=NATIVE.errors(400, 401, 403, 413, 429, 503),
    operation_class=documented(
        request={"ttl_seconds": 900, "pinned_query": "target.id:workspace-9"},
        response=_TOKEN_EXAMPLE,
    ),
)
def create_viewer_token(
    request: Request[Any, Any, Any], data: JSONBody[ViewerTokenIn]
) -> ViewerTokenView:
    who = caller(request)
    token, url, expires = mint(
        service_of(request),
        who.tenant,
        ttl_seconds=data.ttl_seconds,
        pinned_query=data.pinned_query,
        allowed_origins=tuple(data.allowed_origins),
    )
    grant = decode_grant(service_of(request).viewer_key, token, "link")
    return ViewerTokenView(
        token=token,
        url=url,
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        tenant=grant.tenant,
        pinned_query=grant.pin,
        allowed_origins=list(grant.origins),
    )


viewer_tokens_router = Router(path="/v1", route_handlers=[create_viewer_token])


# ---- the page and its assets ----------------------------------------------------------------


@functools.cache
def asset(name: str) -> Asset | None:
    if name not in _ASSETS:
        return None
    body = resources.files("trailkeeper.api").joinpath("static", "viewer", name).read_bytes()
    return Asset(body, _ASSETS[name])


def _asset_url(name: str) -> str:
    found = asset(name)
    assert found is not None, name
    return f"/viewer/assets/{name}?v={found.version}"


@get("/viewer/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def serve_asset(name: FromPath[str], v: CacheBuster = None) -> Response[bytes]:
    found = asset(name)
    if found is None:
        raise NotFoundException(f"no viewer asset {name!r}")
    return Response(
        found.body,
        media_type=found.media_type,
        headers={"Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff"},
    )


def _ancestors(service: AuditService, request: Request[Any, Any, Any], frame: str | None) -> str:
    """Who may frame the page: the origins of a valid frame grant in the URL (first load), or
    of the session cookie (a reload); otherwise nobody."""
    origins: tuple[str, ...] = ()
    try:
        if frame:
            origins = decode_grant(service.viewer_key, frame, "frame").origins
        elif cookie := request.cookies.get(COOKIE):
            origins = decode_grant(service.viewer_key, cookie, "session").origins
    except Unauthenticated:
        origins = ()
    return " ".join(origins) if origins else "'none'"


@get("/viewer", include_in_schema=False, sync_to_thread=False)
def viewer_page(
    request: Request[Any, Any, Any],
    frame: Annotated[str | None, Parameter(max_length=_TOKEN_CHARS)] = None,
) -> Response[bytes]:
    service = service_of(request)
    ancestors = _ancestors(service, request, frame)
    headers = {
        "Content-Security-Policy": PAGE_CSP.format(ancestors=ancestors),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return Response(_page(service.signer.vkey), media_type="text/html", headers=headers)


def _page(vkey: str) -> bytes:
    """The page, its assets named by content digest (and checked by SRI), the log key in its
    config (`data-vkey`)."""
    fills = {
        "css": _asset_url("viewer.css"),
        "js": _asset_url("viewer.js"),
        "css_sri": _sri("viewer.css"),
        "js_sri": _sri("viewer.js"),
        "vkey": vkey,
    }
    text = resources.files("trailkeeper.api").joinpath("static", "viewer", "viewer.html")
    page = text.read_text()
    for name, value in fills.items():
        page = page.replace("{{" + name + "}}", html.escape(value))
    return page.encode()


def _sri(name: str) -> str:
    found = asset(name)
    assert found is not None, name
    return found.integrity


# ---- the cookie API -------------------------------------------------------------------------

_SESSION = "trailkeeper.viewer"


def viewer_session(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The guard of every `/viewer/api` read: a valid, unexpired session cookie."""
    cookie = connection.cookies.get(COOKIE)
    if not cookie:
        raise Unauthenticated("no viewer session: open the viewer with a link")
    service: AuditService = connection.app.state.service
    connection.state[_SESSION] = decode_grant(service.viewer_key, cookie, "session")


def _grant(request: Request[Any, Any, Any]) -> Grant:
    grant = request.state.get(_SESSION)
    if not isinstance(grant, Grant):
        raise RuntimeError(f"{request.url.path} has no `viewer_session` guard")  # a bug
    return grant


def _check_csrf(request: Request[Any, Any, Any]) -> None:
    """A state-changing request must come from the viewer's own script: the custom header
    (which a cross-site form cannot send) and, when the browser says, the same origin."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise PermissionDenied(f"missing the {CSRF_HEADER} header")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        raise PermissionDenied("cross-origin request refused")


class SessionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=_TOKEN_CHARS)]


class SessionView(msgspec.Struct, frozen=True):
    tenant: str
    pinned_query: str
    expires_at: str
    log_origin: str


def _session_view(service: AuditService, grant: Grant) -> SessionView:
    expires = EPOCH + timedelta(seconds=grant.exp)
    return SessionView(
        tenant=grant.tenant,
        pinned_query=grant.pin,
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        log_origin=service.origin(grant.tenant),
    )


@post(
    "/viewer/api/session",
    include_in_schema=False,
    sync_to_thread=False,
    status_code=200,
    response_headers=_API_HEADERS,
)
def open_session(
    request: Request[Any, Any, Any], data: JSONBody[SessionIn]
) -> Response[SessionView]:
    """Trade a link token for the session cookie (HttpOnly, SameSite=Strict, Path=/viewer)."""
    _check_csrf(request)
    service = service_of(request)
    link = decode_grant(service.viewer_key, data.token, "link")
    session = msgspec.structs.replace(link, kind="session")
    cookie = Cookie(
        key=COOKIE,
        value=encode_grant(service.viewer_key, session),
        path="/viewer",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
        max_age=max(0, session.exp - int(time.time())),
    )
    return Response(_session_view(service, session), cookies=[cookie])


@get(
    "/viewer/api/session",
    include_in_schema=False,
    sync_to_thread=False,
    guards=[viewer_session],
    response_headers=_API_HEADERS,
)
def read_session(request: Request[Any, Any, Any]) -> SessionView:
    return _session_view(service_of(request), _grant(request))


class ViewerPage(msgspec.Struct, frozen=True):
    items: list[EventView]
    limit: int
    next_cursor: str | None
    previous_cursor: str | None


Q = Annotated[str, Parameter(max_length=1024)]


@get("/viewer/api/events", include_in_schema=False, sync_to_thread=True)
def list_events(
    request: Request[Any, Any, Any],
    q: Q = "",
    cursor: Annotated[str | None, Parameter(max_length=256)] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> ViewerPage:
    grant = _grant(request)
    filters = viewer_filters(grant.tenant, grant.pin, q)
    page, next_cursor, previous_cursor = service_of(request).list_events(
        grant.tenant, filters, limit, cursor, DIALECT
    )
    return ViewerPage([to_view(e) for e in page.events], limit, next_cursor, previous_cursor)


def _pinned_event(request: Request[Any, Any, Any], event_id: str) -> Event:
    """The event, if the session may see it; outside the pin it does not exist (404)."""
    grant = _grant(request)
    event = service_of(request).get_event(grant.tenant, event_id)
    if not matches(viewer_filters(grant.tenant, grant.pin, ""), event):
        raise NotFound(f"no event {event_id!r}")
    return event


@get("/viewer/api/events/{event_id:str}", include_in_schema=False, sync_to_thread=True)
def get_event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> EventView:
    return to_view(_pinned_event(request, event_id))


class ViewerProof(msgspec.Struct, frozen=True):
    event: EventView
    proof: InclusionProofView


@get("/viewer/api/events/{event_id:str}/proof", include_in_schema=False, sync_to_thread=True)
def get_proof(request: Request[Any, Any, Any], event_id: FromPath[str]) -> ViewerProof:
    """The event as stored, its RFC 9162 inclusion proof and the signed checkpoint: what the
    page checks against the key it pinned (it trusts none of this answer by itself)."""
    event = _pinned_event(request, event_id)
    stored, checkpoint, path = service_of(request).inclusion_proof(event.tenant, event.id)
    if stored.log_index is None or stored.leaf_hash is None:
        raise NotFound(f"event {event_id!r} is not in the log")
    proof = InclusionProofView(
        event_id=stored.id,
        log_index=stored.log_index,
        tree_size=checkpoint.size,
        leaf_hash=base64.b64encode(stored.leaf_hash).decode(),
        proof=[base64.b64encode(h).decode() for h in path],
        checkpoint=checkpoint.note,
    )
    return ViewerProof(event=to_view(stored), proof=proof)


@get("/viewer/api/export", include_in_schema=False, sync_to_thread=True)
def export_events(
    request: Request[Any, Any, Any],
    q: Q = "",
    format: Annotated[Literal["jsonl", "csv"], Parameter()] = "jsonl",
) -> Stream:
    """The current query, oldest first, as a download (the same files as `/v1/export`)."""
    grant = _grant(request)
    filters = viewer_filters(grant.tenant, grant.pin, q)
    chunks = service_of(request).export(grant.tenant, filters, format)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Stream(
        chunks,
        media_type="application/x-ndjson" if format == "jsonl" else "text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="events-{stamp}.{format}"',
            "Cache-Control": "no-store",
        },
    )


viewer_router = Router(
    path="/",
    route_handlers=[viewer_page, serve_asset, open_session, read_session],
    include_in_schema=False,
)
viewer_api_router = Router(
    path="/",
    route_handlers=[list_events, get_event, get_proof, export_events],
    guards=[viewer_session],
    include_in_schema=False,
    response_headers=_API_HEADERS,
)
