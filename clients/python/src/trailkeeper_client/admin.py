"""The admin API (docs/admin.md): tenants and their API keys, with an operator key.

`client.tenants` and `client.keys` on Client (sync) and AsyncClient (awaited). They need a key
of the operator tenant `_system` with scope `admin`; any other key gets ApiError 403.
Creating a tenant or a key is sent again only when the server cannot have seen it (a refused
connection, a 429): after a lost answer, retrying would make a second key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

from trailkeeper_client._transport import AsyncTransport, Transport, query
from trailkeeper_client.models import ApiKey, CreatedKey, Tenant, TenantPage

KeyList = list[ApiKey]  # named here: inside the classes `list` is the method


def _tenant_path(tenant_id: str) -> str:
    return f"/v1/tenants/{quote(tenant_id, safe='')}"


def _keys_path(tenant_id: str, key_id: str | None = None) -> str:
    path = f"{_tenant_path(tenant_id)}/keys"
    return path if key_id is None else f"{path}/{quote(key_id, safe='')}"


def _key_body(
    name: str, scopes: list[str] | None, expires_at: datetime | str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if scopes is not None:
        body["scopes"] = list(scopes)
    if expires_at is not None:
        body["expires_at"] = query({"expires_at": expires_at})["expires_at"]
    return body


def _tenant_body(tenant_id: str, name: str | None) -> dict[str, Any]:
    return {"id": tenant_id} if name is None else {"id": tenant_id, "name": name}


class Tenants:
    """Create, list, read, rename, deactivate and reactivate tenants."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def _call(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> Any:
        request = self._http.http.build_request(method, path, **kw)
        return self._http.send(request, idempotent=idempotent).json()

    def create(self, tenant_id: str, name: str | None = None) -> Tenant:
        """A new active tenant (`name` defaults to the id). ApiError 409 if the id exists,
        400 for an invalid or reserved (`_...`) id."""
        body = _tenant_body(tenant_id, name)
        return cast(Tenant, self._call("POST", "/v1/tenants", json=body, idempotent=False))

    def page(self, *, limit: int | None = None, cursor: str | None = None) -> TenantPage:
        """One page of tenants ordered by id (follow `next_cursor`)."""
        params = query({"limit": limit, "cursor": cursor})
        return cast(TenantPage, self._call("GET", "/v1/tenants", params=params))

    def list(self, *, page_size: int = 100) -> Iterator[Tenant]:
        """Every tenant (deactivated ones and `_system` too), fetching pages as you iterate."""
        cursor: str | None = None
        while True:
            page = self.page(limit=page_size, cursor=cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def get(self, tenant_id: str) -> Tenant:
        """One tenant; ApiError 404 for an unknown id."""
        return cast(Tenant, self._call("GET", _tenant_path(tenant_id)))

    def rename(self, tenant_id: str, name: str) -> Tenant:
        return cast(Tenant, self._call("PATCH", _tenant_path(tenant_id), json={"name": name}))

    def deactivate(self, tenant_id: str) -> Tenant:
        """Its keys get 401 from now on; its events and keys stay."""
        return cast(Tenant, self._call("PATCH", _tenant_path(tenant_id), json={"active": False}))

    def reactivate(self, tenant_id: str) -> Tenant:
        """Its unrevoked, unexpired keys work again."""
        return cast(Tenant, self._call("PATCH", _tenant_path(tenant_id), json={"active": True}))


class Keys:
    """Create, list and revoke a tenant's API keys."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def create(
        self,
        tenant_id: str,
        name: str,
        *,
        scopes: list[str] | None = None,
        expires_at: datetime | str | None = None,
    ) -> CreatedKey:
        """A new key; its secret is `["key"]`, in this answer only. `scopes` default to every
        tenant scope; `expires_at` (timezone required, in the future) to never."""
        request = self._http.http.build_request(
            "POST", _keys_path(tenant_id), json=_key_body(name, scopes, expires_at)
        )
        return cast(CreatedKey, self._http.send(request, idempotent=False).json())

    def list(self, tenant_id: str) -> KeyList:
        """Every key of the tenant, revoked ones too; never a secret."""
        request = self._http.http.build_request("GET", _keys_path(tenant_id))
        return cast(KeyList, self._http.send(request).json()["items"])

    def revoke(self, tenant_id: str, key_id: str) -> None:
        """From now on the key gets 401. Revoking it again is harmless; ApiError 404 for a key
        the tenant does not have."""
        self._http.send(self._http.http.build_request("DELETE", _keys_path(tenant_id, key_id)))


class AsyncTenants:
    """Tenants, awaited."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._http = transport

    async def _call(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> Any:
        request = self._http.http.build_request(method, path, **kw)
        return (await self._http.send(request, idempotent=idempotent)).json()

    async def create(self, tenant_id: str, name: str | None = None) -> Tenant:
        body = _tenant_body(tenant_id, name)
        return cast(Tenant, await self._call("POST", "/v1/tenants", json=body, idempotent=False))

    async def page(self, *, limit: int | None = None, cursor: str | None = None) -> TenantPage:
        params = query({"limit": limit, "cursor": cursor})
        return cast(TenantPage, await self._call("GET", "/v1/tenants", params=params))

    async def list(self, *, page_size: int = 100) -> AsyncIterator[Tenant]:
        cursor: str | None = None
        while True:
            page = await self.page(limit=page_size, cursor=cursor)
            for tenant in page["items"]:
                yield tenant
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def get(self, tenant_id: str) -> Tenant:
        return cast(Tenant, await self._call("GET", _tenant_path(tenant_id)))

    async def rename(self, tenant_id: str, name: str) -> Tenant:
        path = _tenant_path(tenant_id)
        return cast(Tenant, await self._call("PATCH", path, json={"name": name}))

    async def deactivate(self, tenant_id: str) -> Tenant:
        path = _tenant_path(tenant_id)
        return cast(Tenant, await self._call("PATCH", path, json={"active": False}))

    async def reactivate(self, tenant_id: str) -> Tenant:
        path = _tenant_path(tenant_id)
        return cast(Tenant, await self._call("PATCH", path, json={"active": True}))


class AsyncKeys:
    """Keys, awaited."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._http = transport

    async def create(
        self,
        tenant_id: str,
        name: str,
        *,
        scopes: list[str] | None = None,
        expires_at: datetime | str | None = None,
    ) -> CreatedKey:
        request = self._http.http.build_request(
            "POST", _keys_path(tenant_id), json=_key_body(name, scopes, expires_at)
        )
        return cast(CreatedKey, (await self._http.send(request, idempotent=False)).json())

    async def list(self, tenant_id: str) -> KeyList:
        request = self._http.http.build_request("GET", _keys_path(tenant_id))
        return cast(KeyList, (await self._http.send(request)).json()["items"])

    async def revoke(self, tenant_id: str, key_id: str) -> None:
        request = self._http.http.build_request("DELETE", _keys_path(tenant_id, key_id))
        await self._http.send(request)


__all__ = ["AsyncKeys", "AsyncTenants", "Keys", "Tenants"]
