"""The tamper-evident log on every engine: gap-free indexes, proofs, and tampering detected."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import event_payload
from tests.helpers import tamper
from trailkeeper import verifier
from trailkeeper.api.native import to_view
from trailkeeper.errors import Conflict, InvalidInput
from trailkeeper.model import FIELDS, Event, EventFilter, EventIn
from trailkeeper.query import Query
from trailkeeper.service import AuditService
from trailkeeper.store import Store, open_store

VKEY_NAME = "trailkeeper.local"


def ingest(service: AuditService, start: int, count: int, tenant: str = "acme") -> None:
    events = [msgspec.convert(event_payload(n), EventIn) for n in range(start, start + count)]
    service.ingest(tenant, events)


def stored_leaf(event: Event) -> bytes:
    assert event.leaf_hash is not None
    return event.leaf_hash


def export_lines(service: AuditService, tenant: str = "acme") -> Iterator[bytes]:
    for chunk in service.export(tenant, EventFilter(), "jsonl"):
        yield from chunk.splitlines()


def verify(service: AuditService, note: str, tenant: str = "acme") -> verifier.ExportReport:
    checkpoint = verifier.parse_checkpoint(note, service.signer.vkey)
    return verifier.verify_export(export_lines(service, tenant), checkpoint)


def test_indexes_are_gap_free_under_concurrent_writers(store: Store, service: AuditService) -> None:
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for batch in range(6):
                ingest(service, worker * 10_000 + batch * 7, 7)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = sorted(store.iter_events("acme", Query()), key=lambda e: e.log_index or 0)
    assert [e.log_index for e in events] == list(range(4 * 6 * 7))
    leaves = [stored_leaf(e) for e in events]
    assert leaves == [verifier.event_leaf_hash(msgspec.to_builtins(to_view(e))) for e in events]
    head = store.ledger_head("acme")
    assert head is not None
    assert head == (len(events), verifier.root_hash(leaves))


@contextmanager
def writes_held(database_url: str, tenant: str) -> Iterator[None]:
    """Hold the tenant's writers from outside trailkeeper (SQLite: the database's write lock;
    PostgreSQL: the tenant's advisory lock), so that batches queue behind the first one."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            pg.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (tenant,))
            yield


def test_batches_that_share_a_commit_stand_or_fall_alone(
    store: Store, service: AuditService, database_url: str
) -> None:
    """Batches queued behind a writer are written in one transaction (group commit): a batch
    that fails there (an id conflict, an invalid event found half-way through its rows) is
    undone alone, and the log stays whole."""
    ingest(service, 0, 4)
    conflicting = [msgspec.convert(event_payload(n), EventIn) for n in range(100, 103)]
    conflicting.append(msgspec.convert(event_payload(1, action="edited"), EventIn))
    invalid_late = [msgspec.convert(event_payload(n), EventIn) for n in range(200, 206)]
    invalid_late.append(msgspec.convert(event_payload(206, metadata={"bad": "\x00"}), EventIn))
    batches = {
        "first": [msgspec.convert(event_payload(n), EventIn) for n in range(10, 13)],
        "good": [msgspec.convert(event_payload(n), EventIn) for n in range(20, 25)],
        "conflicting": conflicting,
        "invalid_late": invalid_late,
        "replay": [msgspec.convert(event_payload(n), EventIn) for n in (2, 3, 30)],
        "last": [msgspec.convert(event_payload(n), EventIn) for n in range(40, 42)],
    }
    outcomes: dict[str, object] = {}

    def submit(name: str) -> None:
        try:
            outcomes[name] = [created for _, created in service.ingest("acme", batches[name])]
        except Exception as exc:
            outcomes[name] = exc

    threads = {name: threading.Thread(target=submit, args=(name,)) for name in batches}
    with writes_held(database_url, "acme"):
        threads["first"].start()
        time.sleep(0.3)  # "first" takes the queue and waits for the lock; the rest queue
        for name, thread in threads.items():
            if name != "first":
                thread.start()
        time.sleep(0.3)
    for thread in threads.values():
        thread.join()

    assert outcomes["first"] == [True] * 3
    assert outcomes["good"] == [True] * 5
    assert isinstance(outcomes["conflicting"], Conflict)
    assert isinstance(outcomes["invalid_late"], InvalidInput)
    assert outcomes["replay"] == [False, False, True]
    assert outcomes["last"] == [True] * 2
    events = sorted(store.iter_events("acme", Query()), key=lambda e: e.log_index or 0)
    assert sorted(e.id for e in events) == sorted(
        f"evt-{n:05d}" for n in [*range(4), *range(10, 13), *range(20, 25), 30, 40, 41]
    )
    assert [e.log_index for e in events] == list(range(len(events)))
    leaves = [verifier.event_leaf_hash(msgspec.to_builtins(to_view(e))) for e in events]
    assert store.ledger_head("acme") == (len(events), verifier.root_hash(leaves))
    assert verify(service, service.checkpoint("acme").note).ok


def test_writers_in_other_processes_and_failed_batches_keep_the_log_whole(
    store: Store, service: AuditService, database_url: str
) -> None:
    """Each store keeps the tree's right edge in memory between batches; another process
    appending (here: a second store on the same database) or a batch that fails half-way
    must never let a stale edge into the log."""
    other = AuditService(open_store(database_url))
    try:
        ingest(service, 0, 9)
        ingest(other, 100, 5)  # `service`'s remembered edge is now stale
        ingest(service, 200, 6)
        late_invalid = [msgspec.convert(event_payload(n), EventIn) for n in range(300, 304)]
        late_invalid.append(msgspec.convert({"action": "x", "actor": {"id": "u"}}, EventIn))
        late_invalid[-1] = msgspec.structs.replace(late_invalid[-1], metadata={"bad": "\x00"})
        with pytest.raises(InvalidInput):
            service.ingest("acme", late_invalid)  # appended in memory, then rolled back
        ingest(service, 400, 3)
        ingest(other, 500, 2)
    finally:
        other.close()
    events = sorted(store.iter_events("acme", Query()), key=lambda e: e.log_index or 0)
    assert [e.log_index for e in events] == list(range(9 + 5 + 6 + 3 + 2))
    leaves = [verifier.event_leaf_hash(msgspec.to_builtins(to_view(e))) for e in events]
    assert store.ledger_head("acme") == (len(events), verifier.root_hash(leaves))
    assert verify(service, service.checkpoint("acme").note).ok


def test_tenants_have_separate_logs(store: Store, service: AuditService) -> None:
    ingest(service, 0, 5, "acme")
    ingest(service, 0, 3, "globex")
    globex = sorted(e.log_index or 0 for e in store.iter_events("globex", Query()))
    assert globex == [0, 1, 2]
    assert service.checkpoint("acme").size == 5
    assert service.checkpoint("globex").size == 3
    assert service.checkpoint("acme").root != service.checkpoint("globex").root


def test_checkpoints_and_proofs_verify(service: AuditService) -> None:
    ingest(service, 0, 13)
    first = service.checkpoint("acme")
    assert first.size == 13
    assert service.checkpoint("acme") == first, "the same size returns the stored checkpoint"
    ingest(service, 13, 20)
    latest = verifier.parse_checkpoint(service.checkpoint("acme").note, service.signer.vkey)
    assert latest.size == 33
    assert latest.origin == "trailkeeper.local/acme"
    older = verifier.parse_checkpoint(service.checkpoint("acme", 7).note, service.signer.vkey)
    _, _, proof = service.consistency_proof("acme", 7, 33)
    verifier.verify_consistency(7, 33, older.root, latest.root, proof)
    for n in (0, 12, 13, 32):
        event, checkpoint, path = service.inclusion_proof("acme", f"evt-{n:05d}")
        assert checkpoint.size == 33
        document = msgspec.json.decode(msgspec.json.encode(to_view(event)))
        assert document["id"] == event.id
        leaf = verifier.event_leaf_hash(document)
        verifier.verify_inclusion(document["log_index"], 33, leaf, path, latest.root)
    assert verify(service, service.checkpoint("acme").note).ok
    assert service.sign_due_checkpoints() == 0
    ingest(service, 33, 1)
    assert service.sign_due_checkpoints() == 1


EMPTY_OBJECTS = [
    {"target": {}},
    {"target": {"type": None, "id": None}},
    {"context": {}},
    {"context": {"ip": None, "user_agent": None}},
    {"target": {}, "context": {}},
]


def test_empty_target_or_context_objects_verify_as_stored(
    store: Store, service: AuditService
) -> None:
    """An all-empty target or context is stored as none (its columns all NULL): its leaf, the
    answer to the client and what reads and exports show must all be that same event, or an
    untouched log fails the customer's verification."""
    payloads = [{**event_payload(n), **extra} for n, extra in enumerate(EMPTY_OBJECTS)]
    results = service.ingest("acme", [msgspec.convert(p, EventIn) for p in payloads])
    for event, _ in results:
        read = store.get_event("acme", event.id)
        assert read is not None
        assert to_view(read) == to_view(event)
    report = verify(service, service.checkpoint("acme").note)
    assert report.ok, report.message
    assert report.events_checked == len(EMPTY_OBJECTS)


_text = st.text(min_size=1, max_size=12)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
_optional = st.none() | _text
_event_payloads = st.fixed_dictionaries(
    {
        "action": _text,
        "actor": st.fixed_dictionaries(
            {"id": _text},
            optional={
                "name": _optional,
                "email": st.none() | st.just("jane@example.com"),
                "type": _optional,
                "staff": st.none() | st.booleans(),
                "status": _optional,
            },
        ),
    },
    optional={
        "type": _optional,
        "source": _optional,
        "occurred_at": st.none() | st.sampled_from(["2024-02-29T23:59:59.9999+01:00"]),
        "target": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "type": _optional,
                "id": _optional,
                "name": _optional,
                "email": st.none() | st.just("x@example.org"),
            },
        ),
        "context": st.none()
        | st.fixed_dictionaries(
            {},
            optional={"ip": st.none() | st.just("2001:db8::1"), "user_agent": _optional},
        ),
        "metadata": st.dictionaries(st.text(max_size=6), _json, max_size=3),
    },
)


# One database for all examples (each uses a tenant of its own).
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(_event_payloads, min_size=1, max_size=6))
def test_whatever_is_accepted_exports_as_it_was_hashed(
    database_url: str, payloads: list[dict[str, object]]
) -> None:
    """Any event validation accepts must read back and export exactly as its leaf was made:
    the customer recomputes every leaf from the export alone."""
    store = open_store(database_url, sqlite_synchronous="NORMAL")
    service = AuditService(store)
    try:
        tenant = f"t{uuid.uuid4().hex[:12]}"
        service.create_tenant(tenant)
        try:
            events = [msgspec.convert(p, EventIn) for p in payloads]
            service.ingest(tenant, events)
        except (msgspec.ValidationError, InvalidInput):
            return  # refused as a whole: nothing stored, nothing to verify
        lines = list(export_lines(service, tenant))
        assert len(lines) == len(payloads)
        for line in lines:
            exported = msgspec.json.decode(line)
            assert verifier.event_leaf_hash(exported) == base64.b64decode(exported["leaf_hash"])
        report = verify(service, service.checkpoint(tenant).note, tenant)
        assert report.ok, report.message
    finally:
        service.close()


@pytest.fixture
def logged(service: AuditService) -> tuple[AuditService, str]:
    """20 events and the checkpoint a customer saved; the untouched log verifies."""
    ingest(service, 0, 20)
    note = service.checkpoint("acme").note
    report = verify(service, note)
    assert report.ok, report.message
    assert report.events_checked == 20
    return service, note


def test_edited_field_is_detected_and_named(database_url: str, logged: tuple) -> None:  # type: ignore[type-arg]
    service, note = logged
    tamper(
        database_url,
        "UPDATE events SET action = 'nothing happened' WHERE tenant = 'acme' AND log_index = 7",
    )
    report = verify(service, note)
    assert not report.ok
    assert report.first_bad_index == 7
    assert report.first_bad_id == "evt-00007"
    assert "altered" in report.message


def test_deleted_row_is_detected(database_url: str, logged: tuple) -> None:  # type: ignore[type-arg]
    service, note = logged
    tamper(database_url, "DELETE FROM events WHERE tenant = 'acme' AND log_index = 5")
    report = verify(service, note)
    assert not report.ok
    assert report.first_bad_index == 5
    assert "missing" in report.message


def test_reordered_rows_are_detected(database_url: str, logged: tuple) -> None:  # type: ignore[type-arg]
    service, note = logged
    tamper(
        database_url,
        "UPDATE events SET log_index = -1 WHERE tenant = 'acme' AND log_index = 3",
        "UPDATE events SET log_index = 3 WHERE tenant = 'acme' AND log_index = 4",
        "UPDATE events SET log_index = 4 WHERE tenant = 'acme' AND log_index = -1",
    )
    report = verify(service, note)
    assert not report.ok
    assert report.first_bad_index == 3


def test_forged_row_inserted_in_the_middle_is_detected(
    database_url: str,
    logged: tuple,  # type: ignore[type-arg]
) -> None:
    service, note = logged
    copied = [field.column for field in FIELDS if field.column != "log_index"]
    forged = {"id": "'forged'", "action": "'granted admin'"}
    columns = ", ".join(copied)
    values = ", ".join(forged.get(column, column) for column in copied)
    tamper(
        database_url,
        "UPDATE events SET log_index = -log_index - 1 WHERE tenant = 'acme' AND log_index >= 10",
        "UPDATE events SET log_index = -log_index WHERE tenant = 'acme' AND log_index < 0",
        f"INSERT INTO events (seq, {columns}, log_index) SELECT 999999, {values}"
        + ", 10 FROM events WHERE tenant = 'acme' AND log_index = 9",
    )
    report = verify(service, note)
    assert not report.ok
    assert report.first_bad_index == 10


def test_rolled_back_tree_is_detected(
    database_url: str,
    logged: tuple,
    store: Store,  # type: ignore[type-arg]
) -> None:
    service, note = logged
    held = verifier.parse_checkpoint(note, service.signer.vkey)
    # The attacker removes the last 5 events and rewinds the tree to size 15, consistently.
    kept = sorted(store.iter_events("acme", Query()), key=lambda e: e.log_index or 0)[:15]
    root = verifier.root_hash([stored_leaf(e) for e in kept])
    hex_root = root.hex()
    root_literal = f"X'{hex_root}'" if database_url.startswith("sqlite") else f"'\\x{hex_root}'"
    tamper(
        database_url,
        "DELETE FROM events WHERE tenant = 'acme' AND log_index >= 15",
        "DELETE FROM ledger_nodes WHERE tenant = 'acme' AND (idx + 1) * (1 << level) > 15",
        "DELETE FROM checkpoints WHERE tenant = 'acme' AND size > 15",
        f"UPDATE ledger_heads SET size = 15, root = {root_literal} WHERE tenant = 'acme'",
    )
    ingest(service, 100, 8)  # life goes on: the log grows past the held size again
    latest = verifier.parse_checkpoint(service.checkpoint("acme").note, service.signer.vkey)
    assert latest.size == 23
    _, _, proof = service.consistency_proof("acme", held.size, latest.size)
    with pytest.raises(verifier.VerificationError):
        verifier.verify_consistency(held.size, latest.size, held.root, latest.root, proof)
    report = verify(service, note)
    assert not report.ok
    # Rewritten consistently, so no single event disagrees with its recorded leaf; a root alone
    # cannot say where history changed, only that it did.
    assert "rewritten" in report.message


def test_leaf_hashes_are_exported_as_base64(service: AuditService) -> None:
    ingest(service, 0, 2)
    line = next(iter(export_lines(service)))
    event = msgspec.json.decode(line)
    assert len(base64.b64decode(event["leaf_hash"])) == 32
    assert event["log_index"] in (0, 1)


def test_periodic_checkpoints(service: AuditService) -> None:
    import time

    from trailkeeper.api.checkpointer import PeriodicCheckpoints

    ingest(service, 0, 3)
    assert service.store.get_checkpoint("acme") is None
    signer = PeriodicCheckpoints(service, interval=0.05)
    signer.start()
    try:
        deadline = time.monotonic() + 10
        while service.store.get_checkpoint("acme") is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        signer.stop()
    checkpoint = service.store.get_checkpoint("acme")
    assert checkpoint is not None
    assert checkpoint.size == 3


def test_a_garbled_leaf_hash_field_is_no_crash_and_no_change(service: AuditService) -> None:
    """`leaf_hash` only helps name an altered event; the tree is recomputed from the content,
    so an export whose leaf_hash fields are garbled still verifies, and never raises."""
    ingest(service, 0, 4)
    checkpoint = verifier.parse_checkpoint(service.checkpoint("acme").note, service.signer.vkey)
    exported = [msgspec.json.decode(line) for line in export_lines(service)]
    exported[0]["leaf_hash"], exported[1]["leaf_hash"] = 5, "not base64!"
    exported[2]["leaf_hash"] = ["x"]
    del exported[3]["leaf_hash"]
    report = verifier.verify_export([msgspec.json.encode(e) for e in exported], checkpoint)
    assert report.ok, report.message
    exported[1]["action"] = "forged"
    report = verifier.verify_export([msgspec.json.encode(e) for e in exported], checkpoint)
    assert not report.ok
