"""Retention: purging a prefix of a tenant's log keeps every proof about what survives
(docs/retention.md), on both engines."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from trailkeeper import retention, verifier
from trailkeeper.errors import Conflict, NotFound
from trailkeeper.ledger import consistency_ranges, frontier_nodes, inclusion_ranges, nodes_for
from trailkeeper.model import EventFilter, EventIn, from_ms
from trailkeeper.service import AdminActor, AuditService
from trailkeeper.store import Store, open_store
from trailkeeper.store.ledger_state import Purged
from trailkeeper.store.purge import nodes_to_keep

DAY = timedelta(days=1)
BY = AdminActor(kind="cli", id="ops@host")


class Clock:
    def __init__(self) -> None:
        self.now = from_ms(1_780_000_000_000)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(store: Store, clock: Clock) -> AuditService:
    service = AuditService(store, clock=clock)
    service.create_tenant("acme")
    return service


def ingest(svc: AuditService, count: int, start: int = 0, batch: int = 7) -> None:
    for first in range(start, start + count, batch):
        events = [
            msgspec.convert(
                {
                    "id": f"e{i}",
                    "action": "user.login",
                    "actor": {"id": f"u{i % 5}", "email": f"person{i % 5}@example.com"},
                    "context": {"ip": "10.0.0.1"},
                    "metadata": {"n": i, "phone": "555-0100"},
                },
                EventIn,
            )
            for i in range(first, min(first + batch, start + count))
        ]
        svc.ingest("acme", events)


def export_lines(svc: AuditService, tenant: str = "acme") -> list[bytes]:
    text = b"".join(svc.export(tenant, EventFilter()))
    return [line for line in text.split(b"\n") if line]


def checkpoint_of(svc: AuditService, size: int | None = None) -> verifier.Checkpoint:
    note = svc.checkpoint("acme", size).note
    return verifier.parse_checkpoint(note, svc.signer.vkey)


def old_and_new(svc: AuditService, clock: Clock, old: int = 100, new: int = 30) -> list[int]:
    """`old` events, then 10 days later `new` ones; checkpoints stored along the way."""
    first = min(37, old // 2)
    ingest(svc, first)
    sizes = [svc.checkpoint("acme").size]
    ingest(svc, old - first, start=first)
    sizes.append(svc.checkpoint("acme").size)
    clock.now += 10 * DAY
    ingest(svc, new, start=old)
    sizes.append(svc.checkpoint("acme").size)
    svc.update_tenant("acme", retention_days=5)
    return sizes


def test_purge_removes_the_old_prefix_and_every_proof_survives(
    svc: AuditService, clock: Clock
) -> None:
    sizes = old_and_new(svc, clock)
    [result] = retention.purge(svc, "acme", batch=16)
    assert (result.purged, result.first_index) == (100, 100)
    with pytest.raises(NotFound):
        svc.get_event("acme", "e5")
    latest = checkpoint_of(svc)
    # offline: the export starts with where it starts, and verifies
    lines = export_lines(svc)
    header = json.loads(lines[0])["trailkeeper_export"]
    assert header["first_index"] == 100
    assert len(header["frontier"]) == 3  # 64 + 32 + 4
    report = verifier.verify_export(lines, latest)
    assert report.ok, report.message
    assert "were purged" in report.message
    # inclusion of a surviving event
    for event_id in ("e100", "e117", "e129"):
        event, checkpoint, proof = svc.inclusion_proof("acme", event_id)
        leaf = verifier.event_leaf_hash(json.loads(msgspec.json.encode(_view(svc, event_id))))
        verifier.verify_inclusion(event.log_index or 0, checkpoint.size, leaf, proof, latest.root)
    # consistency from checkpoints taken before the purge
    for old in sizes:
        older, newer, proof = svc.consistency_proof("acme", old, latest.size)
        verifier.verify_consistency(old, latest.size, older.root, newer.root, proof)
    # a past size nobody stored needs the purged events: a clear 410
    with pytest.raises(Purged):
        svc.checkpoint("acme", 50)


def _view(svc: AuditService, event_id: str) -> Any:
    lines = [json.loads(line) for line in export_lines(svc)]
    [found] = [line for line in lines if line.get("id") == event_id]
    return found


def test_the_log_grows_and_verifies_after_a_purge_in_a_new_process(
    svc: AuditService, clock: Clock, database_url: str
) -> None:
    old_and_new(svc, clock, old=61, new=9)
    retention.purge(svc, batch=10)
    ingest(svc, 40, start=200)
    store = open_store(database_url)  # no cached frontier: read from what the purge kept
    try:
        again = AuditService(store, clock=clock)
        ingest(again, 13, start=300)
        latest = checkpoint_of(again)
        assert latest.size == 61 + 9 + 40 + 13
        report = verifier.verify_export(export_lines(again), latest)
        assert report.ok, report.message
    finally:
        store.close()


def test_purging_again_moves_the_start_and_keeps_old_consistency(
    svc: AuditService, clock: Clock
) -> None:
    sizes = old_and_new(svc, clock, old=45, new=20)
    retention.purge(svc, batch=8)
    clock.now += 10 * DAY
    ingest(svc, 33, start=500)
    sizes.append(svc.checkpoint("acme").size)
    [result] = retention.purge(svc, batch=8)
    assert result.first_index == 65
    latest = checkpoint_of(svc)
    for old in sizes:
        older, newer, proof = svc.consistency_proof("acme", old, latest.size)
        verifier.verify_consistency(old, latest.size, older.root, newer.root, proof)
    assert verifier.verify_export(export_lines(svc), latest).ok


def test_dry_run_counts_without_purging(svc: AuditService, clock: Clock) -> None:
    old_and_new(svc, clock, old=20, new=5)
    [result] = retention.purge(svc, "acme", dry_run=True, batch=6)
    assert (result.purged, result.first_index) == (20, 20)
    assert svc.store.purged_size("acme") == 0
    assert svc.get_event("acme", "e0").log_index == 0


def test_no_policy_purges_nothing(svc: AuditService, clock: Clock) -> None:
    ingest(svc, 10)
    clock.now += 1000 * DAY
    assert retention.purge(svc) == []
    assert len(export_lines(svc)) == 10


def test_an_old_occurred_at_is_not_purged_early(svc: AuditService, clock: Clock) -> None:
    """Retention counts from received_at: an event imported with an old occurred_at stays."""
    svc.update_tenant("acme", retention_days=5)
    old = {"action": "a", "actor": {"id": "u"}, "occurred_at": "2001-01-01T00:00:00Z"}
    svc.ingest("acme", [msgspec.convert(old, EventIn)])
    assert retention.purge(svc, "acme")[0].purged == 0


def test_a_tenant_on_legal_hold_is_not_purged(svc: AuditService, clock: Clock) -> None:
    old_and_new(svc, clock, old=10, new=3)
    hold = retention.place_hold(svc, "acme", "litigation 2026-17", BY)
    with pytest.raises(Conflict):
        retention.purge(svc, "acme")
    assert retention.purge(svc) == []  # the periodic job skips it
    retention.lift_hold(svc, "acme", hold.id, BY)
    assert retention.purge(svc, "acme")[0].purged == 10


# ---- tamper drills after a purge ---------------------------------------------------------


def _execute(store: Store, query: str, params: tuple[Any, ...] = ()) -> None:
    with store._writer() as db:  # type: ignore[attr-defined]
        db.update_rows(query.replace("?", db.ph), [params])


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE events SET action = 'user.logout' WHERE tenant = 'acme' AND log_index = 21",
        "DELETE FROM events WHERE tenant = 'acme' AND log_index = 22",
        "UPDATE events SET log_index = -log_index - 1 WHERE tenant = 'acme' "
        "AND log_index IN (20, 23)",
    ],
    ids=["edit", "delete", "reorder"],
)
def test_tampering_is_caught_after_a_purge(
    svc: AuditService, clock: Clock, store: Store, tamper: str
) -> None:
    old_and_new(svc, clock, old=20, new=10)
    retention.purge(svc, "acme", batch=4)
    latest = checkpoint_of(svc)
    _execute(store, tamper)
    if "-log_index" in tamper:  # swap 20 and 23
        _execute(store, "UPDATE events SET log_index = 23 WHERE tenant='acme' AND log_index=-21")
        _execute(store, "UPDATE events SET log_index = 20 WHERE tenant='acme' AND log_index=-24")
    report = verifier.verify_export(export_lines(svc), latest)
    assert not report.ok


def test_a_forged_row_below_the_purged_prefix_is_caught(
    svc: AuditService, clock: Clock, store: Store
) -> None:
    old_and_new(svc, clock, old=20, new=10)
    retention.purge(svc, "acme")
    latest = checkpoint_of(svc)
    _execute(
        store,
        "UPDATE events SET log_index = 5, id = 'forged' WHERE tenant = 'acme' AND log_index = 25",
    )
    report = verifier.verify_export(export_lines(svc), latest)
    assert not report.ok
    assert "before the export's first index" in report.message or "missing" in report.message


def test_a_forged_frontier_is_caught(svc: AuditService, clock: Clock) -> None:
    old_and_new(svc, clock, old=20, new=10)
    retention.purge(svc, "acme")
    latest = checkpoint_of(svc)
    lines = export_lines(svc)
    header = json.loads(lines[0])
    header["trailkeeper_export"]["frontier"][0] = base64.b64encode(bytes(32)).decode()
    report = verifier.verify_export([json.dumps(header).encode(), *lines[1:]], latest)
    assert not report.ok


def test_a_checkpoint_older_than_the_export_start_says_so(svc: AuditService, clock: Clock) -> None:
    sizes = old_and_new(svc, clock, old=20, new=10)
    old = checkpoint_of(svc, sizes[0])
    retention.purge(svc, "acme")
    report = verifier.verify_export(export_lines(svc), old)
    assert not report.ok
    assert "newer checkpoint" in report.message


# ---- what is kept ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 16, 17, 100, 1000, 4097])
def test_kept_nodes_answer_every_proof_about_what_survives(size: int) -> None:
    """Over a tree where only the kept nodes below `floor` exist (and every node from it on),
    every surviving inclusion proof, root and consistency proof from a stored size resolves."""
    for floor in sorted({1, size // 3, size // 2, size - 1, size} - {0}):
        stored = sorted({max(1, floor // 4), max(1, floor - 1), floor})
        keep = nodes_to_keep(size, floor, stored)
        assert len(keep) <= 2 * size.bit_length() * (len(stored) + 1)
        ok = _resolvable(keep, floor)
        for n in {floor, size}:
            assert all(ok(node) for node in frontier_nodes(n))
            for m in stored:
                assert all(ok(node) for node in nodes_for(consistency_ranges(m, n)))
        for index in range(floor, size, max(1, size // 20)):
            assert all(ok(node) for node in nodes_for(inclusion_ranges(index, size)))


def _resolvable(keep: set[tuple[int, int]], floor: int) -> Callable[[tuple[int, int]], bool]:
    def ok(node: tuple[int, int]) -> bool:
        level, index = node
        start, end = index << level, (index + 1) << level
        if start >= floor or node in keep:
            return True
        if end <= floor or level == 0:
            return False
        return ok((level - 1, 2 * index)) and ok((level - 1, 2 * index + 1))

    return ok
