"""The admin API: tenants and their API keys, for the operator (scope `admin`).

Admin keys belong to the reserved operator tenant `_system`; they manage every tenant here but
read or write no tenant's events (an admin key that also has `events.read` reads the operator
log, its own tenant's). Each change is recorded in the operator log by the service, with the
admin key's id and the request's IP and user agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.params import FromPath, JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from trailkeeper import auth
from trailkeeper.api.reference import NATIVE, documented
from trailkeeper.api.shared import caller, requires, service_of
from trailkeeper.errors import InvalidInput
from trailkeeper.model import DEFAULT_PAGE, MAX_PAGE, ApiKey, Tenant, bound_ms, format_ts
from trailkeeper.service import AdminActor

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
KeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
TenantId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description=f"Page size, 1-{MAX_PAGE}.")]
Cursor = Annotated[
    str | None, Parameter(max_length=256, description="`next_cursor` of the previous page.")
]


class TenantIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`id`: 1-64 of a-z 0-9 - _, starting with a letter or digit (ids starting with `_`
    are reserved); `name`: display name, default the id."""

    id: TenantId
    name: Name | None = None


RetentionDays = Annotated[int, msgspec.Meta(ge=1, le=36500)]
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class TenantPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rename (`name`), deactivate (`active: false`) or reactivate (`active: true`); keep
    events `retention_days` after they were received (`null`: for ever); name the metadata
    keys an erasure redacts (`personal_metadata_keys`). See docs/retention.md."""

    name: Name | None = None
    active: bool | None = None
    retention_days: RetentionDays | msgspec.UnsetType | None = msgspec.UNSET
    personal_metadata_keys: Annotated[list[MetadataKey], msgspec.Meta(max_length=100)] | None = None


class TenantView(msgspec.Struct, frozen=True):
    id: str
    name: str
    active: bool
    created_at: str
    deactivated_at: str | None
    retention_days: int | None = None
    personal_metadata_keys: list[str] = []


class TenantPage(msgspec.Struct, frozen=True):
    items: list[TenantView]
    limit: int
    next_cursor: str | None


class KeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`scopes` default: every tenant scope (for `_system`: `admin`); `expires_at`: RFC 3339
    with an offset, in the future (default: never)."""

    name: KeyName
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=8)] | None = None
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class KeyView(msgspec.Struct, frozen=True):
    id: str
    tenant: str
    name: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class KeyCreated(KeyView, frozen=True):
    """The key as listed, plus the token: shown in this response only."""

    key: str


class KeyList(msgspec.Struct, frozen=True):
    items: list[KeyView]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _tenant_view(tenant: Tenant) -> TenantView:
    return TenantView(
        id=tenant.id,
        name=tenant.name,
        active=tenant.active,
        created_at=format_ts(tenant.created_at),
        deactivated_at=_ts(tenant.deactivated_at),
        retention_days=tenant.retention_days,
        personal_metadata_keys=list(tenant.personal_metadata_keys),
    )


def _key_fields(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": format_ts(key.created_at),
        "expires_at": _ts(key.expires_at),
        "revoked_at": _ts(key.revoked_at),
        "last_used_at": _ts(key.last_used_at),
    }


def _actor(request: Request[Any, Any, Any]) -> AdminActor:
    """The admin key and where its request came from, for the operator log."""
    client = request.client
    return AdminActor(
        kind="api_key",
        id=caller(request).key_id,
        ip=client.host if client else None,
        user_agent=request.headers.get("user-agent"),
    )


_TENANT_EXAMPLE = {
    "id": "acme",
    "name": "Acme Corp",
    "active": True,
    "created_at": "2024-05-01T09:00:00.000Z",
    "deactivated_at": None,
}
_KEY_EXAMPLE = {
    "id": "3f9c2a7d1e8b4c60",
    "tenant": "acme",
    "name": "billing-service",
    "scopes": ["events.write"],
    "created_at": "2024-05-01T09:00:00.000Z",
    "expires_at": "2025-05-01T00:00:00.000Z",
    "revoked_at": None,
    "last_used_at": "2024-05-01T09:12:00.000Z",
}
_KEY_CREATED_EXAMPLE = {
    **_KEY_EXAMPLE,
    "last_used_at": None,
    "key": "tk_3f9c2a7d1e8b4c60_q8Zt0Jx4mV2rYk7N1bW9cH3sLd6PfG5aTe8uRo0iXyQ",
}
_NO_TENANT = {404: "no tenant 'acme'"}
_ADMIN_DENIED = {403: "this credential lacks the `admin` scope"}
_GUARD = requires(auth.SCOPE_ADMIN)
_SCOPE_NOTE = " Scope `admin` (keys of the operator tenant `_system`)."


@post(
    "/tenants",
    summary="Create a tenant",
    description="Creates an active tenant (a customer account). 409 when the id exists; 400 "
    "for an invalid id or one starting with `_` (reserved). Recorded in the operator log."
    + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    status_code=HTTP_201_CREATED,
    responses=NATIVE.errors(
        400, 401, 403, 409, 413, 429, 503, messages={409: "tenant 'acme' already exists"}
    ),
    operation_class=documented(
        request={"id": "acme", "name": "Acme Corp"}, response=_TENANT_EXAMPLE
    ),
)
def create_tenant(request: Request[Any, Any, Any], data: JSONBody[TenantIn]) -> TenantView:
    tenant = service_of(request).create_tenant(data.id, data.name, by=_actor(request))
    return _tenant_view(tenant)


@get(
    "/tenants",
    summary="List tenants",
    description="Every tenant (the operator tenant `_system` included) ordered by id, "
    "deactivated ones too; follow `next_cursor` for the next page (null on the last)."
    + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    responses=NATIVE.errors(400, 401, 403, 429, 503),
    operation_class=documented(
        response={"items": [_TENANT_EXAMPLE], "limit": 1, "next_cursor": "YWNtZQ"}
    ),
)
def list_tenants(
    request: Request[Any, Any, Any], limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> TenantPage:
    tenants, next_cursor = service_of(request).tenants_page(limit, cursor)
    return TenantPage(
        items=[_tenant_view(t) for t in tenants], limit=limit, next_cursor=next_cursor
    )


@get(
    "/tenants/{tenant_id:str}",
    summary="Get a tenant",
    description="One tenant, active or not; 404 for an unknown id." + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages=_NO_TENANT),
    operation_class=documented(response=_TENANT_EXAMPLE),
)
def get_tenant(request: Request[Any, Any, Any], tenant_id: FromPath[str]) -> TenantView:
    return _tenant_view(service_of(request).require_tenant(tenant_id))


@patch(
    "/tenants/{tenant_id:str}",
    summary="Rename, deactivate or reactivate a tenant",
    description="`name` renames; `active: false` deactivates: from then on every API key and "
    "key-pair JWT of the tenant gets 401 (other server processes follow within "
    "TRAILKEEPER_CREDENTIAL_CACHE_SECONDS), and its events, keys and log stay as they are. "
    "`active: true` lets its unrevoked, unexpired keys in again. `retention_days` (1-36500, "
    "`null`: for ever) purges events that long after they were received; "
    "`personal_metadata_keys` are the metadata keys an erasure redacts (docs/retention.md). "
    "The operator tenant `_system` "
    "cannot be changed (400). Each change is recorded in the operator log." + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    responses=NATIVE.errors(400, 401, 403, 404, 413, 429, 503, messages=_NO_TENANT),
    operation_class=documented(
        requests={
            "rename": {"name": "Acme Corporation"},
            "deactivate": {"active": False},
            "reactivate": {"active": True},
            "retention": {"retention_days": 365, "personal_metadata_keys": ["phone"]},
        },
        response=_TENANT_EXAMPLE,
    ),
)
def update_tenant(
    request: Request[Any, Any, Any], tenant_id: FromPath[str], data: JSONBody[TenantPatch]
) -> TenantView:
    if (
        data.name is None
        and data.active is None
        and data.retention_days is msgspec.UNSET
        and data.personal_metadata_keys is None
    ):
        raise InvalidInput("give `name`, `active`, `retention_days` or `personal_metadata_keys`")
    tenant = service_of(request).update_tenant(
        tenant_id,
        name=data.name,
        active=data.active,
        retention_days=data.retention_days,
        personal_metadata_keys=data.personal_metadata_keys,
        by=_actor(request),
    )
    return _tenant_view(tenant)


@post(
    "/tenants/{tenant_id:str}/keys",
    summary="Create an API key for a tenant",
    description="Makes a key and returns its secret `key` once (only a hash is stored; it "
    "cannot be shown again). `scopes` default to every tenant scope; `admin` is only for keys "
    "of `_system`. After `expires_at` the key gets 401. 404 for an unknown tenant. Recorded in "
    "the operator log (never the secret)." + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    status_code=HTTP_201_CREATED,
    responses=NATIVE.errors(400, 401, 403, 404, 413, 429, 503, messages=_NO_TENANT),
    operation_class=documented(
        requests={
            "write-only key": {"name": "billing-service", "scopes": ["events.write"]},
            "expiring key": {
                "name": "contractor",
                "scopes": ["events.read"],
                "expires_at": "2025-05-01T00:00:00Z",
            },
        },
        response=_KEY_CREATED_EXAMPLE,
    ),
)
def create_key(
    request: Request[Any, Any, Any], tenant_id: FromPath[str], data: JSONBody[KeyIn]
) -> KeyCreated:
    default = (auth.SCOPE_ADMIN,) if tenant_id == auth.SYSTEM_TENANT else auth.DEFAULT_SCOPES
    key, token = service_of(request).create_key(
        tenant_id,
        data.name,
        default if data.scopes is None else data.scopes,
        expires_at=None if data.expires_at is None else bound_ms(data.expires_at),
        by=_actor(request),
    )
    return KeyCreated(**_key_fields(key), key=token)


@get(
    "/tenants/{tenant_id:str}/keys",
    summary="List a tenant's API keys",
    description="Every key of the tenant, revoked and expired ones included, oldest first; "
    "never a secret. `last_used_at` is kept to the minute (uses are written at most once a "
    "minute)." + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages=_NO_TENANT),
    operation_class=documented(response={"items": [_KEY_EXAMPLE]}),
)
def list_keys(request: Request[Any, Any, Any], tenant_id: FromPath[str]) -> KeyList:
    service = service_of(request)
    service.require_tenant(tenant_id)
    return KeyList(items=[KeyView(**_key_fields(k)) for k in service.list_keys(tenant_id)])


@delete(
    "/tenants/{tenant_id:str}/keys/{key_id:str}",
    summary="Revoke an API key",
    description="Revokes the key at once: it gets 401 from then on (other server processes "
    "follow within TRAILKEEPER_CREDENTIAL_CACHE_SECONDS). Revoking a revoked key again is a "
    "204. 404 for an unknown key or one of another tenant. Recorded in the operator log."
    + _SCOPE_NOTE,
    sync_to_thread=True,
    guards=_GUARD,
    status_code=HTTP_204_NO_CONTENT,
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages={404: "no API key 'abc'"}),
    operation_class=documented(),
)
def revoke_key(
    request: Request[Any, Any, Any], tenant_id: FromPath[str], key_id: FromPath[str]
) -> Response[None]:
    service_of(request).revoke_key(key_id, tenant_id=tenant_id, by=_actor(request))
    return Response(None, status_code=HTTP_204_NO_CONTENT)


admin_router = Router(
    path="/v1",
    route_handlers=[
        create_tenant,
        list_tenants,
        get_tenant,
        update_tenant,
        create_key,
        list_keys,
        revoke_key,
    ],
    tags=["admin"],
    security=[{"bearer": []}],
)
