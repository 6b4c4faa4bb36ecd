"""A deliberately naive RFC 9162 section 2.1 implementation: the reference for property tests."""

from __future__ import annotations

import hashlib


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH over leaf *hashes*."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = split(n)
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = split(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def proof(m: int, leaves: list[bytes]) -> list[bytes]:
    if m in (0, len(leaves)):
        return []
    return subproof(m, leaves, True)


def perfect_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every complete aligned subtree hash, as trailkeeper stores them."""
    nodes = {(0, i): h for i, h in enumerate(leaves)}
    level, width = 1, 2
    while width <= len(leaves):
        for i in range(len(leaves) // width):
            nodes[(level, i)] = mth(leaves[i * width : (i + 1) * width])
        level, width = level + 1, width * 2
    return nodes
