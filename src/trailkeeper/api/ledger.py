"""Tamper-evidence routes: checkpoints, inclusion and consistency proofs, the public key.

Hashes and roots are standard base64, as in C2SP checkpoints. Everything a customer needs to
check these answers offline is in `trailkeeper.verifier` (docs/integrity.md).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get
from litestar.params import FromPath, Parameter, QueryParameter

from trailkeeper import auth
from trailkeeper.api.errors import ErrorBody, error_responses
from trailkeeper.api.shared import caller, reject_unknown_query, requires, service_of
from trailkeeper.model import Checkpoint, format_ts

Size = Annotated[
    int | None,
    Parameter(ge=0, description="Tree size; default: the current tree (signed on demand)."),
]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class CheckpointView(msgspec.Struct, frozen=True):
    tenant: str
    origin: str
    size: int
    root: str
    created_at: str
    note: str


class InclusionProofView(msgspec.Struct, frozen=True):
    event_id: str
    log_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]
    checkpoint: str


class ConsistencyProofView(msgspec.Struct, frozen=True):
    from_size: int = msgspec.field(name="from")
    to_size: int = msgspec.field(name="to")
    proof: list[str] = []
    from_checkpoint: str = ""
    to_checkpoint: str = ""


class PublicKeyView(msgspec.Struct, frozen=True):
    name: str
    algorithm: str
    key_id: str
    public_key: str
    vkey: str


def _checkpoint_view(request: Request[Any, Any, Any], checkpoint: Checkpoint) -> CheckpointView:
    return CheckpointView(
        tenant=checkpoint.tenant,
        origin=service_of(request).origin(checkpoint.tenant),
        size=checkpoint.size,
        root=_b64(checkpoint.root),
        created_at=format_ts(checkpoint.created_at),
        note=checkpoint.note,
    )


ERRORS = error_responses(ErrorBody)


@get(
    "/ledger/checkpoint",
    summary="Signed checkpoint of your log",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    responses=ERRORS,
)
def get_checkpoint(request: Request[Any, Any, Any], size: Size = None) -> CheckpointView:
    who = caller(request)
    reject_unknown_query(request, {"size"})
    return _checkpoint_view(request, service_of(request).checkpoint(who.tenant, size))


@get(
    "/events/{event_id:str}/proof",
    summary="Inclusion proof of one event against a checkpoint",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    responses=ERRORS,
)
def get_inclusion_proof(
    request: Request[Any, Any, Any], event_id: FromPath[str], size: Size = None
) -> InclusionProofView:
    who = caller(request)
    reject_unknown_query(request, {"size"})
    event, checkpoint, proof = service_of(request).inclusion_proof(who.tenant, event_id, size)
    assert event.log_index is not None
    assert event.leaf_hash is not None
    return InclusionProofView(
        event_id=event.id,
        log_index=event.log_index,
        tree_size=checkpoint.size,
        leaf_hash=_b64(event.leaf_hash),
        proof=[_b64(h) for h in proof],
        checkpoint=checkpoint.note,
    )


@get(
    "/ledger/consistency",
    summary="Consistency proof between two tree sizes",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    responses=ERRORS,
)
def get_consistency_proof(
    request: Request[Any, Any, Any],
    from_size: Annotated[int, QueryParameter(name="from", ge=0, description="Older tree size.")],
    to_size: Annotated[int, QueryParameter(name="to", ge=0, description="Newer tree size.")],
) -> ConsistencyProofView:
    who = caller(request)
    reject_unknown_query(request, {"from", "to"})
    older, newer, proof = service_of(request).consistency_proof(who.tenant, from_size, to_size)
    return ConsistencyProofView(
        from_size=from_size,
        to_size=to_size,
        proof=[_b64(h) for h in proof],
        from_checkpoint=older.note,
        to_checkpoint=newer.note,
    )


@get(
    "/ledger/public-key",
    summary="The key that signs checkpoints (no authentication needed)",
    sync_to_thread=False,
    responses=ERRORS,
)
def get_public_key(request: Request[Any, Any, Any]) -> PublicKeyView:
    signer = service_of(request).signer
    return PublicKeyView(
        name=signer.name,
        algorithm="ed25519",
        key_id=signer.key_id.hex(),
        public_key=_b64(signer.public_key),
        vkey=signer.vkey,
    )


ledger_router = Router(
    path="/v1",
    route_handlers=[get_checkpoint, get_inclusion_proof, get_consistency_proof, get_public_key],
    tags=["ledger"],
)
