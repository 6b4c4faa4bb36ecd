"""Tamper evidence, server side: the per-tenant Merkle log (RFC 9162), pure and I/O-free.

Storage keeps the hash of every *perfect* subtree: level 0 is each event's leaf hash, and node
(level, i) covers leaves [i * 2**level, (i + 1) * 2**level). Such a node never changes once its
last leaf is appended, so the tree is append-only in storage too. Any tree hash, inclusion proof
or consistency proof for a tree of size n needs O(log n) of these nodes: the functions here first
say *which* nodes (`*_nodes`), the store fetches them in one query, then they compute.

Hashing and verification are shared with `verifier.py`, the module customers vendor.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from trailkeeper.formats import DOCUMENT_KEYS, document_values, event_document
from trailkeeper.model import Event, format_ts
from trailkeeper.verifier import (
    ED25519_ALG,
    EMPTY_ROOT,
    NODE_PREFIX,
    NOT_PLAIN,
    SIGNATURE_DASH,
    canonical_json,
    key_id,
    leaf_hash,
    node_hash,
    plain_form,
)

Node = tuple[int, int]  # (level, index)
NodeGetter = Callable[[int, int], bytes]

_sorted_json = msgspec.json.Encoder(order="sorted")
# The leaf's document (the public document without `leaf_hash`, its last key) as a struct of
# the same keys: the sorted encoder writes it, and the event's nested structs in it, as it
# writes the document's dict, without building that dict and its nested dicts first.
_LeafDocument = msgspec.defstruct(
    "_LeafDocument", [(key, Any) for key in DOCUMENT_KEYS[:-1]], frozen=True, gc=False
)
_LOG_INDEX_AT = DOCUMENT_KEYS.index("log_index")
_METADATA_AT = DOCUMENT_KEYS.index("metadata")


def canonical_event(event: Event, log_index: int | None = None) -> bytes:
    """RFC 8785 bytes of the event's public document (docs/integrity.md), whose hash is its
    leaf; `log_index` overrides the event's own (for one about to be appended).

    The verifier's `canonical_json` defines the bytes. Its `plain_form` says whether msgspec's
    sorted encoding writes the metadata as RFC 8785 does (the document's own fields always
    are: strings, booleans, null and integers under 2**53, under ASCII keys); then that
    encoder, the same bytes several times faster, writes the whole document.
    """
    metadata = plain_form(event.metadata)
    if metadata is NOT_PLAIN:
        document = event_document(event, leaf=False)
        if log_index is not None:
            document["log_index"] = log_index
        return canonical_json(document)
    values = document_values(event)
    values[_METADATA_AT] = metadata
    if log_index is not None:
        values[_LOG_INDEX_AT] = log_index
    return _sorted_json.encode(_LeafDocument(*values[:-1]))


def event_leaves(events: Sequence[Event], first_index: int) -> list[bytes]:
    """The leaf of each event as appended at `first_index`, `first_index + 1`, ..."""
    return [
        leaf_hash(canonical_event(event, index)) for index, event in enumerate(events, first_index)
    ]


def _split(n: int) -> int:
    """Largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# ---- which perfect subtrees make up a range ----------------------------------------------


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees whose hashes give MTH(leaves[start:end]), as RFC 9162 splits."""
    size = end - start
    if size <= 0:
        return []
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return [(level, start >> level)]
    k = _split(size)
    return range_nodes(start, start + k) + range_nodes(start + k, end)


def range_hash(start: int, end: int, node: NodeGetter) -> bytes:
    size = end - start
    if size <= 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return node(level, start >> level)
    k = _split(size)
    return node_hash(range_hash(start, start + k, node), range_hash(start + k, end, node))


def _inclusion_ranges(index: int, start: int, end: int) -> list[tuple[int, int]]:
    """RFC 9162 PATH(m, D[start:end]) as the leaf ranges whose hashes form the proof."""
    if end - start <= 1:
        return []
    k = _split(end - start)
    if index < start + k:
        return [*_inclusion_ranges(index, start, start + k), (start + k, end)]
    return [*_inclusion_ranges(index, start + k, end), (start, start + k)]


def _consistency_ranges(m: int, start: int, end: int, whole: bool) -> list[tuple[int, int]]:
    """RFC 9162 SUBPROOF(m, D[start:end], b) as leaf ranges."""
    n = end - start
    if m == n:
        return [] if whole else [(start, end)]
    k = _split(n)
    if m <= k:
        return [*_consistency_ranges(m, start, start + k, whole), (start + k, end)]
    return [*_consistency_ranges(m - k, start + k, end, False), (start, start + k)]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    return _inclusion_ranges(index, 0, size)


def consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    if not 0 <= m <= n:
        raise ValueError(f"sizes {m} and {n} are not in order")
    if m in (0, n):
        return []
    return _consistency_ranges(m, 0, n, True)


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    """Every stored node needed to hash these ranges (what the store must fetch)."""
    return {node for start, end in ranges for node in range_nodes(start, end)}


def hash_ranges(ranges: Iterable[tuple[int, int]], nodes: Mapping[Node, bytes]) -> list[bytes]:
    def get(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    return [range_hash(start, end, get) for start, end in ranges]


# ---- appending ---------------------------------------------------------------------------


def frontier_nodes(size: int) -> list[Node]:
    """The perfect subtrees covering [0, size), largest first: the right edge of the tree."""
    return range_nodes(0, size)


class Frontier:
    """The right edge of a tree; appending leaves yields the new perfect nodes to store."""

    def __init__(self, size: int, nodes: Mapping[Node, bytes]) -> None:
        self.size = size
        self._stack: list[tuple[int, bytes]] = [  # (level, hash), levels strictly decreasing
            (level, nodes[(level, index)]) for level, index in frontier_nodes(size)
        ]

    def extend(self, leaves: Sequence[bytes], min_level: int = 0) -> list[tuple[int, int, bytes]]:
        """Add these leaves; returns (level, index, hash) of every node from `min_level` up that
        they complete (level 0 is the leaves themselves), ordered by level.

        A level at a time: each level's new nodes are hashed in one pass over the level below,
        rather than walking up from every leaf in turn (a leaf at an
        even index completes nothing, so half the walks were empty)."""
        created: list[tuple[int, int, bytes]] = []
        old = self._stack
        kept: list[tuple[int, bytes]] = []  # new right-edge nodes, lowest level first
        level, first, nodes = 0, self.size, list(leaves)
        self.size += len(nodes)
        sha256, prefix = hashlib.sha256, NODE_PREFIX
        while nodes:
            if level >= min_level:
                created += [(level, index, value) for index, value in enumerate(nodes, first)]
            if first & 1:  # the first new node's left sibling is the old edge at this level
                nodes.insert(0, old.pop()[1])
                first -= 1
            if len(nodes) & 1:
                kept.append((level, nodes.pop()))
            nodes = [
                sha256(prefix + left + right).digest()
                for left, right in zip(nodes[::2], nodes[1::2], strict=True)
            ]
            level, first = level + 1, first >> 1
        old.extend(reversed(kept))
        return created

    def copy(self) -> Frontier:
        twin = Frontier(0, {})
        twin.size, twin._stack = self.size, list(self._stack)
        return twin

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value


# ---- signed checkpoints (C2SP tlog-checkpoint) ---------------------------------------------


class Signer:
    """The server's Ed25519 checkpoint key. `name` appears in every signature line."""

    def __init__(self, name: str, seed: bytes) -> None:
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string customers configure: `<name>+<hex id>+<base64 key>`."""
        encoded = base64.b64encode(ED25519_ALG + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """key id || Ed25519 signature over `message` (erasure statements, verifier.py)."""
        return self.key_id + self._key.sign(message)

    def sign_checkpoint(self, origin: str, size: int, root: bytes, at: datetime) -> str:
        body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {format_ts(at)}\n"
        signature = base64.b64encode(self.key_id + self._key.sign(body.encode())).decode()
        return f"{body}\n{SIGNATURE_DASH} {self.name} {signature}\n"
