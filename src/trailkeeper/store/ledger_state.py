"""Persisting the Merkle log inside the engines' transactions (SQL shared by both engines).

`append` runs in the same transaction as the event insert, after the engine has serialised the
tenant's writers, so log indexes are gap-free and the stored tree can never disagree with the
committed events. Level-0 nodes are the events' own `leaf_hash` column; higher levels live in
`ledger_nodes`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import msgspec
from cachetools import LRUCache

from trailkeeper.errors import TrailkeeperError
from trailkeeper.ledger import Frontier, Node, event_leaves, frontier_nodes
from trailkeeper.model import Event, NewEvent
from trailkeeper.verifier import EMPTY_ROOT, root_hash


class Runner(Protocol):
    """How the shared SQL reaches one engine connection."""

    ph: str

    def rows(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]: ...

    def lock_tenant(self, tenant: str) -> None:
        """Serialise this tenant's writers until the transaction ends."""

    def update_rows(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        """executemany of an UPDATE."""

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Bulk insert (executemany on SQLite, COPY on PostgreSQL)."""


class LedgerCorrupt(TrailkeeperError):
    """A node the tree needs is missing: the database was altered outside trailkeeper."""

    code = "ledger_corrupt"


class Purged(TrailkeeperError):
    """A proof or checkpoint needs events that retention purged (docs/retention.md)."""

    status = 410
    code = "purged"


# Nodes below this level are not stored: each is recomputed from at most 2**(level) leaves
# when needed. That keeps proofs at O(log n) reads (plus at most 15 leaves per low sibling)
# while writing one node row per 8 events instead of one per event.
MIN_STORED_LEVEL = 4


def fetch_nodes(db: Runner, tenant: str, wanted: set[Node]) -> dict[Node, bytes]:
    """The requested perfect-subtree hashes, in at most two queries."""
    low = {node for node in wanted if 0 < node[0] < MIN_STORED_LEVEL}
    leaves_needed = {index for level, index in wanted if level == 0}
    for level, index in low:
        leaves_needed.update(range(index << level, (index + 1) << level))
    found: dict[Node, bytes] = {}
    ph = db.ph
    if leaves_needed:
        ordered = sorted(leaves_needed)
        marks = ", ".join([ph] * len(ordered))
        for index, value in db.rows(
            f"SELECT log_index, leaf_hash FROM events WHERE tenant = {ph} "
            f"AND log_index IN ({marks})",
            (tenant, *ordered),
        ):
            found[(0, int(index))] = bytes(value)
    upper = sorted(node for node in wanted if node[0] >= MIN_STORED_LEVEL)
    if upper:
        terms = " OR ".join([f"(level = {ph} AND idx = {ph})"] * len(upper))
        params: list[Any] = [tenant]
        for level, index in upper:
            params += [level, index]
        for level, index, value in db.rows(
            f"SELECT level, idx, hash FROM ledger_nodes WHERE tenant = {ph} AND ({terms})",
            params,
        ):
            found[(int(level), int(index))] = bytes(value)
    for level, index in sorted(low):
        start, end = index << level, (index + 1) << level
        if all((0, i) in found for i in range(start, end)):
            found[(level, index)] = root_hash([found[(0, i)] for i in range(start, end)])
    missing = wanted - found.keys()
    if missing:
        floor = purged_size(db, tenant)
        if floor:
            _resolve_purged(db, tenant, floor, missing, found)
            missing = wanted - found.keys()
        if missing and floor and min(index << level for level, index in missing) < floor:
            raise Purged(
                f"the first {floor} events of tenant {tenant!r} were purged; this needs them "
                "(ask for a later size, or from a checkpoint the server stored)"
            )
        if missing:
            raise LedgerCorrupt(
                f"ledger of tenant {tenant!r} is missing nodes {sorted(missing)[:3]}"
            )
    return {node: found[node] for node in wanted}


def purged_size(db: Runner, tenant: str) -> int:
    """How many events at the start of the tenant's log were purged (0: none)."""
    rows = db.rows(f"SELECT first_index FROM ledger_floors WHERE tenant = {db.ph}", (tenant,))
    return int(rows[0][0]) if rows else 0


def kept_nodes(db: Runner, tenant: str) -> dict[Node, bytes]:
    """The nodes a purge kept for proofs (store/purge.py); a few per stored checkpoint."""
    rows = db.rows(f"SELECT level, idx, hash FROM ledger_kept WHERE tenant = {db.ph}", (tenant,))
    return {(int(level), int(index)): bytes(value) for level, index, value in rows}


def _resolve_purged(
    db: Runner, tenant: str, floor: int, missing: set[Node], found: dict[Node, bytes]
) -> None:
    """Fill in missing nodes from those a purge kept: a node below the purged size is kept or
    lost; one straddling it is hashed from its children (at most one such node per level)."""
    kept = kept_nodes(db, tenant)

    def resolve(node: Node) -> bytes | None:
        if node in found:
            return found[node]
        level, index = node
        start, end = index << level, (index + 1) << level
        value = kept.get(node)
        low = level < MIN_STORED_LEVEL  # hashed from leaves, which survive from the floor on
        if value is None and level > 0 and floor < end and (start < floor or low):
            left, right = resolve((level - 1, 2 * index)), resolve((level - 1, 2 * index + 1))
            if left is not None and right is not None:
                value = root_hash([left, right])
        if value is not None:
            found[node] = value
        return value

    for node in sorted(missing):
        resolve(node)


def head(db: Runner, tenant: str) -> tuple[int, bytes] | None:
    rows = db.rows(f"SELECT size, root FROM ledger_heads WHERE tenant = {db.ph}", (tenant,))
    return (int(rows[0][0]), bytes(rows[0][1])) if rows else None


class FrontierCache:
    """The right edge of each tenant's tree as this process last wrote it, so that a batch
    usually needs no node query before it appends: one or two round trips fewer while the
    tenant's lock is held (within noise against a local PostgreSQL; it counts where the
    database is across a network).

    Trusted only when it matches the head read under the tenant's lock, size and root: an
    append by another process, or one whose commit failed, just means the nodes are fetched.
    """

    def __init__(self, tenants: int = 1024) -> None:
        self._lock = threading.Lock()
        self._edges: LRUCache[str, Frontier] = LRUCache(maxsize=tenants)

    def get(self, tenant: str, size: int, root: bytes) -> Frontier | None:
        with self._lock:
            known = self._edges.get(tenant)
        if known is None or known.size != size or known.root() != root:
            return None
        return known.copy()  # a batch that fails then leaves the remembered edge as it was

    def put(self, tenant: str, frontier: Frontier) -> None:
        with self._lock:
            self._edges[tenant] = frontier


class LogAppend:
    """Appending to one tenant's log inside a write transaction, a run of events at a time.

    An engine can then send rows as soon as their leaves are known: PostgreSQL indexes the
    rows already streamed while Python hashes the next ones, instead of the two taking turns
    (see `stamp`). Create it after the tenant's writers are serialised; call `finish` before
    committing.
    """

    def __init__(self, db: Runner, tenant: str, cache: FrontierCache | None = None) -> None:
        self._db, self._tenant, self._cache = db, tenant, cache
        size, root = head(db, tenant) or (0, EMPTY_ROOT)
        known = cache.get(tenant, size, root) if cache is not None else None
        self._frontier = known or Frontier(size, fetch_nodes(db, tenant, set(frontier_nodes(size))))
        self._nodes: list[tuple[str, int, int, bytes]] = []

    def add_all(self, events: Sequence[Event]) -> list[Event]:
        """Append these events (the next places in the log); returns them with their log index
        and leaf. The leaf covers the public document, which includes log_index but not
        leaf_hash."""
        first = self._frontier.size
        leaves = event_leaves(events, first)
        tenant = self._tenant
        self._nodes += [
            (tenant, level, index, value)
            for level, index, value in self._frontier.extend(leaves, MIN_STORED_LEVEL)
        ]
        replace = msgspec.structs.replace
        return [
            replace(event, log_index=index, leaf_hash=leaf)
            for index, (event, leaf) in enumerate(zip(events, leaves, strict=True), first)
        ]

    def finish(self) -> None:
        """Store the nodes the new events completed and the new head."""
        db, ph = self._db, self._db.ph
        if self._nodes:
            db.insert_rows("ledger_nodes", ("tenant", "level", "idx", "hash"), self._nodes)
            self._nodes = []
        db.rows(
            f"INSERT INTO ledger_heads (tenant, size, root) VALUES ({ph}, {ph}, {ph}) "
            "ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, root = excluded.root "
            "RETURNING size",
            (self._tenant, self._frontier.size, self._frontier.root()),
        )
        if self._cache is not None:
            # Before the commit, which may still fail: then the head keeps its old size and
            # root, and the next writer does not take this edge (see FrontierCache.get).
            self._cache.put(self._tenant, self._frontier)


def stamp(
    items: Sequence[NewEvent],
    seqs: Iterable[int],
    log: LogAppend | None,
    chunk: int | None = None,
) -> Iterator[tuple[NewEvent, Event]]:
    """Each item with the event to store: its `seq` and, when the log is kept, its log index
    and leaf. Leaves are hashed `chunk` events at a time (default: all), as the caller takes
    them."""
    seq = iter(seqs)
    replace = msgspec.structs.replace
    size = chunk or max(len(items), 1)
    for start in range(0, len(items), size):
        part = items[start : start + size]
        events = [replace(item.event, seq=next(seq)) for item in part]
        if log is not None:
            events = log.add_all(events)
        yield from zip(part, events, strict=True)
