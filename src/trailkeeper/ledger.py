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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from trailkeeper.formats import EventDocument, event_document
from trailkeeper.model import Event, MetadataFloats, format_ts
from trailkeeper.verifier import (
    ED25519_ALG,
    EMPTY_ROOT,
    LEAF_PREFIX,
    NODE_PREFIX,
    SIGNATURE_DASH,
    canonical_json,
    exact_whole_float,
    key_id,
    leaf_hash,
    node_hash,
    plain_float,
    whole_floats_as_ints,
)

Node = tuple[int, int]  # (level, index)
NodeGetter = Callable[[int, int], bytes]


def event_leaf(
    event: Event, log_index: int | None = None, floats: MetadataFloats = MetadataFloats.UNKNOWN
) -> bytes:
    """Leaf hash of a stored event: RFC 8785 JSON of its public form (with `log_index`, which
    may be given here for an event about to be appended at that index)."""
    return leaf_hash(canonical_event(event, log_index, floats))


_sorted_json = msgspec.json.Encoder(order="sorted")
# UTF-8 lead bytes of U+E000 and above: where UTF-16 key order can differ from code points.
_HIGH_CHARS = re.compile(rb"[\xee-\xf4]")


class _FloatFound(Exception):
    pass


def _found_float(_: str) -> Any:
    raise _FloatFound


def _found_unplain_float(text: str) -> Any:
    value = float(text)
    if plain_float(value):
        return value
    raise _FloatFound


def _found_unfit_float(text: str) -> Any:
    value = float(text)
    if plain_float(value) or exact_whole_float(value):
        return value
    raise _FloatFound


# Which floats `contains_float` looks for: any; those msgspec writes unlike RFC 8785 (it
# writes a float as repr() does, see verifier.plain_float); those even whole-number floats
# turned into ints would not mend.
ANY_FLOAT = msgspec.json.Decoder(float_hook=_found_float)
UNPLAIN_FLOAT = msgspec.json.Decoder(float_hook=_found_unplain_float)
UNFIT_FLOAT = msgspec.json.Decoder(float_hook=_found_unfit_float)


class _Fit(Enum):
    """How msgspec's sorted bytes of a document relate to its RFC 8785 form."""

    AS_IS = "the same"
    WHOLE_FLOATS_AS_INTS = "the same once whole-number floats are ints"
    NEITHER = "different"


def canonical_event(
    event: Event, log_index: int | None = None, floats: MetadataFloats = MetadataFloats.UNKNOWN
) -> bytes:
    """RFC 8785 bytes of the event's public form.

    msgspec's sorted encoding is byte-identical to JCS for everything trailkeeper stores except
    some floats (only metadata can hold them: see `verifier.plain_float`) and keys from U+E000
    up (UTF-16 sort order). Metadata whose only such floats are whole numbers (18.0, which
    RFC 8785 writes as 18) is encoded again with them as ints; events with other such floats,
    or with characters from U+E000 up anywhere, take the verifier's `canonical_json`. The
    equivalence is property-tested against the `rfc8785` reference implementation. `floats`:
    what validation found in the event's metadata (`NewEvent.metadata_floats`), if known.
    """
    document = event_document(event, log_index)
    if floats is MetadataFloats.WHOLE:
        document, floats = _whole_floats_as_ints(document), MetadataFloats.PLAIN
    encoded = _sorted_json.encode(document)
    fit = _msgspec_fit(encoded, event, floats)
    return encoded if fit is _Fit.AS_IS else _refit(document, fit)


def _msgspec_fit(encoded: bytes | bytearray, event: Event, floats: MetadataFloats) -> _Fit:
    """How msgspec's sorted encoding of the event's document relates to its RFC 8785 form."""
    if not encoded.isascii() and _HIGH_CHARS.search(encoded) is not None:  # isascii: in C
        return _Fit.NEITHER
    # Only metadata can hold a float, and validation has usually looked already (NewEvent).
    # Else metadata is probed alone: the document's user agent ("Mozilla/5.0") nearly always
    # defeats contains_float's quick pre-check.
    if floats is MetadataFloats.PLAIN:
        return _Fit.AS_IS
    metadata = _sorted_json.encode(event.metadata)
    if not contains_float(metadata, UNPLAIN_FLOAT):
        return _Fit.AS_IS
    return _Fit.NEITHER if contains_float(metadata, UNFIT_FLOAT) else _Fit.WHOLE_FLOATS_AS_INTS


def _refit(document: EventDocument, fit: _Fit) -> bytes:
    """RFC 8785 bytes of a document whose msgspec encoding is not (`fit` not AS_IS)."""
    if fit is _Fit.WHOLE_FLOATS_AS_INTS:
        return _sorted_json.encode(_whole_floats_as_ints(document))
    return canonical_json(msgspec.to_builtins(document))


def _whole_floats_as_ints(document: EventDocument) -> EventDocument:
    """The document with its metadata's whole-number floats as ints, as RFC 8785 writes them.
    Where validation found such floats (`MetadataFloats.WHOLE`), the leaf starts from this, so
    that the document is encoded once."""
    return msgspec.structs.replace(document, metadata=whole_floats_as_ints(document.metadata))


def event_leaves(
    events: Sequence[Event],
    first_index: int,
    metadata_floats: Sequence[MetadataFloats],
    documents: list[bytes | None] | None = None,
) -> list[bytes]:
    """`event_leaf` of each event as appended at `first_index`, `first_index + 1`, ...

    One loop over the batch with one reused buffer: msgspec encodes each document into it
    after the leaf's 0x00 prefix, and SHA-256 reads it in place (~0.4 us less per event than
    `event_leaf`; docs/performance-log.md). Given `documents`, each event's document bytes are
    appended to it where they are msgspec's own encoding too (else None): the ingest response
    reuses them (`Event.canonical`): ~0.5 us a copy, against ~1.6 us for building the view.

    Where validation found whole-number floats (`MetadataFloats.WHOLE`), the document is made
    with them as integers before it is first encoded: ~1.3 us more than a plain event, where
    encoding it as msgspec does, finding them and encoding it again cost ~6.5 us."""
    buffer = bytearray(LEAF_PREFIX)
    encode_into, sha256 = _sorted_json.encode_into, hashlib.sha256
    plain, whole = MetadataFloats.PLAIN, MetadataFloats.WHOLE
    leaves = []
    for index, (event, floats) in enumerate(zip(events, metadata_floats, strict=True), first_index):
        document = event_document(event, index)
        kept = True  # whether the bytes hashed are msgspec's encoding of the event too
        if floats is whole:
            document, floats, kept = _whole_floats_as_ints(document), plain, False
        encode_into(document, buffer, 1)
        # _msgspec_fit's usual answer, checked here in C: ~0.27 us less per event than the call
        if not (floats is plain and buffer.isascii()):
            fit = _msgspec_fit(buffer, event, floats)
            if fit is not _Fit.AS_IS:
                buffer[1:] = _refit(document, fit)
                kept = False
        leaves.append(sha256(buffer).digest())
        if documents is not None:
            documents.append(bytes(memoryview(buffer)[1:]) if kept else None)
    return leaves


# msgspec writes every float with a '.' or an exponent right after a digit; an integer never
# has one. Without a match there is no float; a match may be inside a string, so it is checked.
_FLOATISH = re.compile(rb"[0-9][.eE]")


def contains_float(encoded_json: bytes, probe: msgspec.json.Decoder[Any] = ANY_FLOAT) -> bool:
    """Whether a JSON document has a float of the kind `probe` looks for (any non-integer
    number by default; decoded in C, stops at the first)."""
    if _FLOATISH.search(encoded_json) is None:
        return False
    try:
        probe.decode(encoded_json)
    except _FloatFound:
        return True
    return False


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
        rather than walking up from every leaf in turn (~0.2 us less per leaf; a leaf at an
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

    def sign_checkpoint(self, origin: str, size: int, root: bytes, at: datetime) -> str:
        body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {format_ts(at)}\n"
        signature = base64.b64encode(self.key_id + self._key.sign(body.encode())).decode()
        return f"{body}\n{SIGNATURE_DASH} {self.name} {signature}\n"
