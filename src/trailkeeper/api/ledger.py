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
from trailkeeper.api import examples
from trailkeeper.api.reference import NATIVE, documented
from trailkeeper.api.shared import caller, requires, service_of
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


QUERY_ERRORS = NATIVE.errors(400, 401, 403, 429, 503)
PROOF_ERRORS = NATIVE.errors(400, 401, 403, 404, 429, 503)
# These routes need a key (scope events.read); the public key does not.
KEY: list[dict[str, list[str]]] = [{"bearer": []}]
_CHECKPOINT_EXAMPLE = {
    "tenant": "acme",
    "origin": "trailkeeper.local/acme",
    "size": 3,
    "root": "fSf9efhGjXj5njyuBUBvYkMREaiG/nv0IP2TBA7xBhg=",
    "created_at": "2024-05-01T10:05:00.000Z",
    "note": examples.CHECKPOINT_NOTE,
}
_INCLUSION_EXAMPLE = {
    "event_id": examples.EVENT["id"],
    "log_index": 0,
    "tree_size": 3,
    "leaf_hash": examples.EVENT["leaf_hash"],
    "proof": examples.PROOF,
    "checkpoint": examples.CHECKPOINT_NOTE,
}
_CONSISTENCY_EXAMPLE = {
    "from": 1,
    "to": 3,
    "proof": examples.PROOF,
    "from_checkpoint": examples.OLDER_CHECKPOINT_NOTE,
    "to_checkpoint": examples.CHECKPOINT_NOTE,
}
_PUBLIC_KEY_EXAMPLE = {
    "name": "trailkeeper.local",
    "algorithm": "ed25519",
    "key_id": "d64b58b8",
    "public_key": "G8BZUy3ar5RjuABrsTjguD6acGaHEB9HeRL0DaE0j+c=",
    "vkey": "trailkeeper.local+d64b58b8+ARvAWVMt2q+UY7gAa7E44Lg+mnBmhxAfR3kS9A2hNI/n",
}


@get(
    "/ledger/checkpoint",
    summary="Signed checkpoint of your log",
    description="A signed note (C2SP checkpoint) of the tenant's Merkle tree: its size and root "
    "hash, signed with the server's Ed25519 key (`GET /v1/ledger/public-key`). Without `size`, "
    "the current tree; with `size`, that earlier tree (400 when larger than the log). Keep "
    "checkpoints to prove later that the log only grew (docs/integrity.md). Scope `events.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    security=KEY,
    responses=QUERY_ERRORS,
    operation_class=documented(response=_CHECKPOINT_EXAMPLE),
)
def get_checkpoint(request: Request[Any, Any, Any], size: Size = None) -> CheckpointView:
    who = caller(request)
    return _checkpoint_view(request, service_of(request).checkpoint(who.tenant, size))


@get(
    "/events/{event_id:str}/proof",
    summary="Inclusion proof of one event against a checkpoint",
    description="The RFC 9162 audit path from the event's leaf to the root of the tree of "
    "`size` events (default: the current tree), with that tree's signed checkpoint; "
    "`trailkeeper.verifier` checks it offline. 404 for an unknown event, 400 for a size that "
    "does not contain it. Scope `events.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    security=KEY,
    responses=PROOF_ERRORS,
    operation_class=documented(response=_INCLUSION_EXAMPLE),
)
def get_inclusion_proof(
    request: Request[Any, Any, Any], event_id: FromPath[str], size: Size = None
) -> InclusionProofView:
    who = caller(request)
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
    description="The RFC 9162 proof that the tree of `to` events extends the tree of `from` "
    "events (nothing earlier was changed or removed), with both signed checkpoints. 400 unless "
    "0 <= `from` <= `to` <= the current size. Scope `events.read`.",
    sync_to_thread=True,
    guards=requires(auth.SCOPE_EVENTS_READ),
    security=KEY,
    responses=QUERY_ERRORS,
    operation_class=documented(response=_CONSISTENCY_EXAMPLE),
)
def get_consistency_proof(
    request: Request[Any, Any, Any],
    from_size: Annotated[int, QueryParameter(name="from", ge=0, description="Older tree size.")],
    to_size: Annotated[int, QueryParameter(name="to", ge=0, description="Newer tree size.")],
) -> ConsistencyProofView:
    who = caller(request)
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
    description="The server's Ed25519 public key: raw (base64) and as a C2SP note verifier key "
    "(`vkey`). Pin it out of band; a checkpoint signed by any other key is not this log's. "
    "Needs no credential and is not rate limited.",
    sync_to_thread=False,
    operation_class=documented(response=_PUBLIC_KEY_EXAMPLE),
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
