"""Key pairs for Gr4vy-style signed JWTs: register, generate, list, revoke (own tenant only)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from trailkeeper import auth
from trailkeeper.api import examples
from trailkeeper.api.reference import NATIVE, documented
from trailkeeper.api.shared import caller, requires, service_of
from trailkeeper.errors import InvalidInput
from trailkeeper.model import KeyPair, format_ts

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class KeyPairIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Either `public_key` (PEM, EC P-521) or `generate: true` (the private key is returned
    once in the response and never stored)."""

    name: Name
    public_key: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    generate: bool = False


class KeyPairView(msgspec.Struct, frozen=True):
    id: str
    tenant: str
    name: str
    public_key: str
    created_at: str
    revoked_at: str | None
    private_key: str | None = None


def _view(pair: KeyPair, private_key: str | None = None) -> KeyPairView:
    return KeyPairView(
        id=pair.id,
        tenant=pair.tenant,
        name=pair.name,
        public_key=pair.public_key,
        created_at=format_ts(pair.created_at),
        revoked_at=format_ts(pair.revoked_at) if pair.revoked_at else None,
        private_key=private_key,
    )


_NO_PAIR = {404: "no key pair 'rn1vzy7JlTu3cFL25YII0WxfF33i4hAlPE9l0iaHVTM'"}
_EXISTS = {409: "key pair 'rn1vzy7JlTu3cFL25YII0WxfF33i4hAlPE9l0iaHVTM' is already registered"}
_PAIR_EXAMPLE = {
    "id": "rn1vzy7JlTu3cFL25YII0WxfF33i4hAlPE9l0iaHVTM",
    "tenant": "acme",
    "name": "gr4vy-sdk",
    "public_key": examples.PUBLIC_KEY_PEM,
    "created_at": "2024-05-01T09:00:00.000Z",
    "revoked_at": None,
    "private_key": None,
}


@post(
    "/key-pairs",
    summary="Register or generate a key pair",
    description="Registers an EC P-521 public key (PEM) whose holder may then sign ES512 JWTs "
    "for the Gr4vy-compatible API, or, with `generate: true`, makes a new pair and returns its "
    "private key once (it is never stored). The pair's `id` is its RFC 7638 JWK thumbprint, the "
    "`kid` its JWTs carry. 409 when the key is already registered. Scope `key-pairs.write`.",
    sync_to_thread=True,
    # A pair's JWTs read the Gr4vy API: only a key that may read it may mint one.
    guards=requires(auth.SCOPE_KEY_PAIRS_WRITE, auth.SCOPE_AUDIT_LOGS_READ),
    responses=NATIVE.errors(400, 401, 403, 409, 413, 429, 503, messages=_EXISTS),
    status_code=HTTP_201_CREATED,
    operation_class=documented(
        requests={
            "register a public key": {"name": "gr4vy-sdk", "public_key": examples.PUBLIC_KEY_PEM},
            "generate a pair": {"name": "gr4vy-sdk", "generate": True},
        },
        response=_PAIR_EXAMPLE,
    ),
)
def create_key_pair(request: Request[Any, Any, Any], data: JSONBody[KeyPairIn]) -> KeyPairView:
    who = caller(request)
    service = service_of(request)
    if data.generate == (data.public_key is not None):
        raise InvalidInput("give exactly one of public_key or generate: true")
    if data.public_key is not None:
        return _view(service.add_key_pair(who.tenant, data.name, data.public_key))
    pair, private_pem = service.generate_key_pair(who.tenant, data.name)
    return _view(pair, private_pem)


@get(
    "/key-pairs",
    summary="List your key pairs",
    guards=requires(auth.SCOPE_KEY_PAIRS_WRITE),
    description="Every key pair of the credential's tenant, revoked ones included (with "
    "`revoked_at`); private keys are never returned here. Scope `key-pairs.write`.",
    sync_to_thread=True,
    responses=NATIVE.errors(401, 403, 429, 503),
    operation_class=documented(response=[_PAIR_EXAMPLE]),
)
def list_key_pairs(request: Request[Any, Any, Any]) -> list[KeyPairView]:
    who = caller(request)
    return [_view(p) for p in service_of(request).list_key_pairs(who.tenant)]


@delete(
    "/key-pairs/{key_pair_id:str}",
    summary="Revoke a key pair",
    description="Revokes the pair at once: JWTs it signed are refused from then on. "
    "404 for an unknown id or another tenant's pair. Scope `key-pairs.write`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_KEY_PAIRS_WRITE),
    responses=NATIVE.errors(401, 403, 404, 429, 503, messages=_NO_PAIR),
    status_code=HTTP_204_NO_CONTENT,
    operation_class=documented(),
)
def revoke_key_pair(request: Request[Any, Any, Any], key_pair_id: FromPath[str]) -> Response[None]:
    who = caller(request)
    service_of(request).revoke_key_pair(key_pair_id, who.tenant)
    return Response(None, status_code=HTTP_204_NO_CONTENT)


key_pairs_router = Router(
    path="/v1",
    route_handlers=[create_key_pair, list_key_pairs, revoke_key_pair],
    tags=["key pairs"],
    security=[{"bearer": []}],
)
