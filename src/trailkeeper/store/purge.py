"""Retention, erasure and legal holds in storage, the SQL shared by both engines
(docs/retention.md). `SqlReads` mixes this in; it needs only `_writer` and `_reads`.

Purge removes a prefix of a tenant's log a batch at a time, each batch one short transaction
under the tenant's write lock. What proofs still need of the prefix is copied to `ledger_kept`
first (see `nodes_to_keep`), so every proof that involves a surviving event, or starts from a
checkpoint the server stored, can still be computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import msgspec

from trailkeeper.ledger import Node, consistency_ranges, frontier_nodes, nodes_for
from trailkeeper.model import LegalHold
from trailkeeper.store import ledger_state
from trailkeeper.store.ledger_state import MIN_STORED_LEVEL, Runner

ERASED = "[erased]"  # what an erased field reads as (a NULL field stays NULL)

# Columns an erasure rewrites, by the role the subject plays in the event.
_ACTOR_FIELDS = ("actor_name", "actor_email", "ip", "user_agent")
_TARGET_FIELDS = ("target_name", "target_email")
# Which events a subject appears in, by the kind of identifier given.
_SUBJECT_WHERE = {
    "actor_id": "actor_id = {ph}",
    "target_id": "target_id = {ph}",
    "email": "(actor_email = {ph} OR target_email = {ph})",
}


def nodes_to_keep(size: int, floor: int, checkpoints: Sequence[int]) -> set[Node]:
    """The nodes inside [0, floor) that proofs need once those events are gone.

    Any tree hash or proof for a size from `floor` on, and any inclusion proof of a surviving
    event, needs of the purged prefix only its left frontier (the O(log n) perfect subtrees
    covering [0, floor)): each node it needs there is a frontier node or straddles `floor` and
    is hashed from frontier nodes and surviving leaves. A consistency proof from a stored
    checkpoint of size m < floor needs m's own frontier and the right siblings along m's path:
    O(log n) nodes per such checkpoint, computed here against the current size (later sizes
    need no others below `floor`).
    """
    keep = set(frontier_nodes(floor))
    for m in checkpoints:
        if 0 < m < floor:
            for n in {floor, size}:
                keep.update(nodes_for(consistency_ranges(m, n)))
            keep.update(frontier_nodes(m))
    return {(level, index) for level, index in keep if (index + 1) << level <= floor}


class RetentionStore:
    """Purge, erasure and holds; mixed into `SqlReads`."""

    ph: str
    to_db: Callable[[datetime], Any]
    from_db: Callable[[Any], datetime]

    def _writer(self) -> AbstractContextManager[Runner]:
        raise NotImplementedError

    @property
    def _reads(self) -> Runner:
        raise NotImplementedError

    def _after_erasure(self) -> None:
        """Make erased values unreadable from the database files too (engine-specific)."""

    # ---- retention -----------------------------------------------------------------------

    def purged_size(self, tenant: str) -> int:
        return ledger_state.purged_size(self._reads, tenant)

    def purgeable(self, tenant: str, cutoff: datetime, floor: int, limit: int) -> int:
        """How many events from log index `floor` on (at most `limit`) were received before
        `cutoff`, counting up to the first that was not: the prefix a purge may remove."""
        ph = self.ph
        rows = self._reads.rows(
            f"SELECT log_index, received_at < {ph} FROM events WHERE tenant = {ph} "
            f"AND log_index >= {ph} ORDER BY log_index LIMIT {int(limit)}",
            (self.to_db(cutoff), tenant, floor),
        )
        count = 0
        for index, old in rows:
            if not old or int(index) != floor + count:
                break
            count += 1
        return count

    def purge_batch(self, tenant: str, cutoff: datetime, limit: int) -> int:
        """Purge up to `limit` events at the start of the tenant's log that were received
        before `cutoff`, in one transaction under the tenant's lock; how many were purged."""
        with self._writer() as db:
            db.lock_tenant(tenant)
            floor = ledger_state.purged_size(db, tenant)
            count = self.purgeable(tenant, cutoff, floor, limit)
            if count:
                _purge_prefix(db, tenant, floor, floor + count)
        return count

    def frontier(self, tenant: str) -> tuple[int, list[bytes]]:
        """(purged size, hashes of its left frontier, largest subtree first): where an export
        starts and what a verifier needs to recompute roots without the purged events."""
        floor = self.purged_size(tenant)
        wanted = frontier_nodes(floor)
        nodes = ledger_state.fetch_nodes(self._reads, tenant, set(wanted))
        return floor, [nodes[node] for node in wanted]

    def kept_node_count(self, tenant: str) -> int:
        rows = self._reads.rows(
            f"SELECT count(*) FROM ledger_kept WHERE tenant = {self.ph}", (tenant,)
        )
        return int(rows[0][0])

    # ---- erasure -------------------------------------------------------------------------

    def subject_events(self, tenant: str, kind: str, value: str) -> list[int]:
        """Log indexes of the tenant's surviving events that name this subject."""
        ph = self.ph
        where = _SUBJECT_WHERE[kind].format(ph=ph)
        params = (tenant, value, value) if kind == "email" else (tenant, value)
        rows = self._reads.rows(
            f"SELECT log_index FROM events WHERE tenant = {ph} AND {where} ORDER BY log_index",
            params,
        )
        return [int(row[0]) for row in rows if row[0] is not None]

    def redact(
        self, tenant: str, kind: str, value: str, indexes: Sequence[int], personal: Sequence[str]
    ) -> int:
        """Replace the subject's personal fields in these events by `ERASED`, in one
        transaction; how many events changed. Events that no longer name the subject (erased
        before) are left alone."""
        ph = self.ph
        changed = 0
        with self._writer() as db:
            db.lock_tenant(tenant)
            for start in range(0, len(indexes), 500):
                part = list(indexes[start : start + 500])
                marks = ", ".join([ph] * len(part))
                rows = db.rows(
                    "SELECT log_index, actor_id, actor_email, target_id, target_email, metadata "
                    f"FROM events WHERE tenant = {ph} AND log_index IN ({marks})",
                    (tenant, *part),
                )
                for row in rows:
                    changed += _redact_row(db, tenant, kind, value, row, personal)
        self._after_erasure()
        return changed

    # ---- legal holds ---------------------------------------------------------------------

    def add_hold(self, hold: LegalHold) -> None:
        ph = self.ph
        with self._writer() as db:
            db.rows(
                "INSERT INTO legal_holds (id, tenant, subject, reason, created_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) RETURNING id",
                (hold.id, hold.tenant, hold.subject, hold.reason, self.to_db(hold.created_at)),
            )

    def remove_hold(self, tenant: str, hold_id: str) -> bool:
        ph = self.ph
        with self._writer() as db:
            rows = db.rows(
                f"DELETE FROM legal_holds WHERE tenant = {ph} AND id = {ph} RETURNING id",
                (tenant, hold_id),
            )
        return bool(rows)

    def holds(self, tenant: str) -> list[LegalHold]:
        rows = self._reads.rows(
            "SELECT id, tenant, subject, reason, created_at FROM legal_holds "
            f"WHERE tenant = {self.ph} ORDER BY created_at, id",
            (tenant,),
        )
        return [
            LegalHold(
                id=r[0], tenant=r[1], subject=r[2], reason=r[3], created_at=self.from_db(r[4])
            )
            for r in rows
        ]


def _purge_prefix(db: Runner, tenant: str, floor: int, new_floor: int) -> None:
    """Remove events [floor, new_floor) and the stored nodes inside [0, new_floor), keeping
    in `ledger_kept` exactly the nodes `nodes_to_keep` names."""
    ph = db.ph
    head = ledger_state.head(db, tenant)
    size = head[0] if head else new_floor
    sizes = db.rows(
        f"SELECT size FROM checkpoints WHERE tenant = {ph} AND size < {ph}", (tenant, new_floor)
    )
    keep = nodes_to_keep(size, new_floor, [int(row[0]) for row in sizes])
    values = ledger_state.fetch_nodes(db, tenant, keep)  # before anything is deleted
    kept = ledger_state.kept_nodes(db, tenant)
    db.update_rows(
        f"DELETE FROM ledger_kept WHERE tenant = {ph} AND level = {ph} AND idx = {ph}",
        [(tenant, level, index) for level, index in sorted(kept.keys() - keep)],
    )
    db.update_rows(
        f"INSERT INTO ledger_kept (tenant, level, idx, hash) VALUES ({ph}, {ph}, {ph}, {ph})",
        [
            (tenant, level, index, values[(level, index)])
            for level, index in sorted(keep - kept.keys())
        ],
    )
    db.update_rows(
        f"DELETE FROM events WHERE tenant = {ph} AND log_index >= {ph} AND log_index < {ph}",
        [(tenant, floor, new_floor)],
    )
    levels = [
        (tenant, level, floor >> level, new_floor >> level)
        for level in range(MIN_STORED_LEVEL, max(size, 1).bit_length() + 1)
        if new_floor >> level > floor >> level
    ]
    db.update_rows(
        f"DELETE FROM ledger_nodes WHERE tenant = {ph} AND level = {ph} "
        f"AND idx >= {ph} AND idx < {ph}",
        levels,
    )
    db.rows(
        f"INSERT INTO ledger_floors (tenant, first_index) VALUES ({ph}, {ph}) "
        "ON CONFLICT (tenant) DO UPDATE SET first_index = excluded.first_index RETURNING tenant",
        (tenant, new_floor),
    )


_decode = msgspec.json.decode
_encode = msgspec.json.encode


def _redact_row(
    db: Runner, tenant: str, kind: str, value: str, row: Sequence[Any], personal: Sequence[str]
) -> int:
    """Rewrite one event's personal fields; 1 if anything changed."""
    index, actor_id, actor_email, target_id, target_email, metadata = row
    columns: dict[str, Any] = {}
    as_actor = (kind == "actor_id" and actor_id == value) or (
        kind == "email" and actor_email == value
    )
    as_target = (kind == "target_id" and target_id == value) or (
        kind == "email" and target_email == value
    )
    if as_actor:
        columns.update(
            {c: f"CASE WHEN {c} IS NULL THEN NULL ELSE '{ERASED}' END" for c in _ACTOR_FIELDS}
        )
        if kind == "email" and actor_id == value:  # an email used as the id is erased too
            columns["actor_id"] = f"'{ERASED}'"
    if as_target:
        columns.update(
            {c: f"CASE WHEN {c} IS NULL THEN NULL ELSE '{ERASED}' END" for c in _TARGET_FIELDS}
        )
        if kind == "email" and target_id == value:
            columns["target_id"] = f"'{ERASED}'"
    params: list[Any] = []
    if not columns:
        return 0
    document = _decode(metadata) if isinstance(metadata, str | bytes) else metadata
    if isinstance(document, dict) and any(key in document for key in personal):
        erased = {k: (ERASED if k in personal else v) for k, v in document.items()}
        columns["metadata"] = db.ph
        params.append(_encode(erased).decode())
    assignments = ", ".join(f"{column} = {expression}" for column, expression in columns.items())
    db.update_rows(
        f"UPDATE events SET {assignments} WHERE tenant = {db.ph} AND log_index = {db.ph}",
        [(*params, tenant, index)],
    )
    return 1
