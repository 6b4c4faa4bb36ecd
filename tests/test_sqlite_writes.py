"""How rows reach SQLite: few statements per batch, and each row written as validated."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.factories import event_payload
from trailkeeper.formats import encode_leaf
from trailkeeper.model import MAX_BATCH, EventFilter, EventIn, to_ms, utc_now_ms
from trailkeeper.service import AuditService
from trailkeeper.store import open_store, sql
from trailkeeper.store import sqlite as sqlite_store
from trailkeeper.store.sqlite import (
    LEAF_CHUNK,
    MAX_ROWS_PER_INSERT,
    OWN_STATEMENT_SIZES,
    SQLiteStore,
    _SQLiteRunner,
    chunk_sizes,
)
from trailkeeper.validation import normalize_event
from trailkeeper.verifier import event_leaf_hash, root_hash


def event_in(n: int, **overrides: Any) -> EventIn:
    return msgspec.convert(event_payload(n, **overrides), EventIn)


def test_merkle_nodes_of_a_batch_go_in_one_statement(tmp_path: Path) -> None:
    """`executemany` would run (and give up the GIL) once per node, ~125 times for 1000
    events; with another thread busy, each wait to take the GIL back costs up to 5 ms."""
    store = open_store(f"sqlite:///{tmp_path / 'nodes.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    statements: list[str] = []
    store._write_conn.set_trace_callback(statements.append)  # the one that writes batches
    service.ingest("acme", [event_in(n) for n in range(MAX_BATCH)])
    store._write_conn.set_trace_callback(None)
    node_inserts = [s for s in statements if s.startswith("INSERT INTO ledger_nodes")]
    assert len(node_inserts) == 1
    assert node_inserts[0].count("), (") > 100  # all of the batch's nodes in it
    size, _ = store.ledger_head("acme") or (0, b"")
    assert size == MAX_BATCH
    service.close()


def test_multi_row_inserts_split_at_the_builds_variable_limit() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (a, b, c, d)")
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 9)  # two rows of four per statement
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    rows = [(n, f"b{n}", n * 2, None) for n in range(5)]
    _SQLiteRunner(conn).insert_rows("t", ("a", "b", "c", "d"), rows)
    assert len(statements) == 3
    assert conn.execute("SELECT a, b, c, d FROM t ORDER BY a").fetchall() == rows


def test_rows_store_the_metadata_validation_encoded_unless_it_changed() -> None:
    received = utc_now_ms()
    item = normalize_event("acme", event_in(1, metadata={"b": 1, "a": [True, None]}), received)
    column = sql.EVENT_COLUMNS.index("metadata")
    row = sql.event_row(item, 1, to_ms)
    assert item.metadata_json is not None
    assert row[column] is item.metadata_json
    assert msgspec.json.decode(row[column]) == {"b": 1, "a": [True, None]}
    changed = msgspec.structs.replace(item.event, metadata={"c": 2})
    assert sql.event_row(item, 1, to_ms, changed)[column] == '{"c":2}'


def test_a_batch_size_that_repeats_gets_one_statement_and_only_a_few_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement for a new size costs about as much to prepare as the insert, so a size gets
    its own only once it has come before, and only `OWN_STATEMENT_SIZES` sizes ever do."""
    monkeypatch.setattr(sqlite_store, "LEAF_CHUNK", MAX_BATCH)  # each batch in one step
    store = open_store(f"sqlite:///{tmp_path / 'sizes.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    statements: list[str] = []
    store._write_conn.set_trace_callback(statements.append)
    sizes = [300, 300, 300, *[n for n in range(301, 301 + OWN_STATEMENT_SIZES + 1) for _ in "ab"]]
    inserts_per_batch = []
    first = 0
    for size in sizes:
        statements.clear()
        service.ingest("acme", [event_in(n) for n in range(first, first + size)])
        first += size
        inserts_per_batch.append(
            sum(s.startswith("INSERT OR FAIL INTO events") for s in statements)
        )
    store._write_conn.set_trace_callback(None)
    chunks = [len(chunk_sizes(size, MAX_ROWS_PER_INSERT)) for size in sizes]
    assert all(n > 1 for n in chunks)  # each of these sizes takes several chunks
    # 300 three times; then each new size twice, the last one past the bound
    expected = [chunks[0], 1, 1]
    for n in range(OWN_STATEMENT_SIZES + 1):
        own = n < OWN_STATEMENT_SIZES - 1  # 300 took one of the places
        expected += [chunks[3 + 2 * n], 1 if own else chunks[4 + 2 * n]]
    assert inserts_per_batch == expected
    stored = list(store.iter_events("acme", EventFilter()))
    assert sorted(e.id for e in stored) == sorted(f"evt-{n:05d}" for n in range(first))
    assert len({e.log_index for e in stored}) == first
    service.close()


def test_chunks_of_a_power_of_two_take_no_place_among_the_own_statement_sizes(
    tmp_path: Path,
) -> None:
    """Every batch over LEAF_CHUNK inserts LEAF_CHUNK rows at a time; those go in one
    statement anyway, so the few sizes that get their own stay free for clients' sizes."""
    store = open_store(f"sqlite:///{tmp_path / 'places.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    odd_sizes = [3 + 2 * n for n in range(OWN_STATEMENT_SIZES)]  # 3, 5, 7, 9: none a power
    first = 0
    for size in [2 * LEAF_CHUNK] * 2 + [n for n in odd_sizes for _ in "ab"]:
        service.ingest("acme", [event_in(n) for n in range(first, first + size)])
        first += size
    assert store._own_statement_sizes == set(odd_sizes)
    service.close()


def assert_log_matches_events(store: SQLiteStore, tenant: str, count: int) -> None:
    """Every stored event has its own leaf at a gap-free index, and the head covers them all."""
    stored = sorted(store.iter_events(tenant, EventFilter()), key=lambda e: e.log_index or 0)
    assert [e.log_index for e in stored] == list(range(count))
    leaves = [event_leaf_hash(msgspec.to_builtins(e)) for e in stored]  # the customer's view
    assert [e.leaf_hash for e in stored] == [encode_leaf(leaf) for leaf in leaves]
    assert store.ledger_head(tenant) == (count, root_hash(leaves))


def test_a_large_batch_goes_in_a_chunk_at_a_time_with_its_log_intact(tmp_path: Path) -> None:
    """Leaves are hashed a chunk ahead of the chunk being inserted (on a helper thread): the
    rows, their leaves and the tree must still come out as if hashed in one go."""
    store = open_store(f"sqlite:///{tmp_path / 'chunks.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    service.ingest("acme", [event_in(n) for n in range(7)])  # a small batch: one step
    assert MAX_BATCH > 3 * LEAF_CHUNK
    service.ingest("acme", [event_in(n) for n in range(7, 7 + MAX_BATCH)])
    assert any(t.name.startswith("trailkeeper-leaves") for t in threading.enumerate())
    assert_log_matches_events(store, "acme", 7 + MAX_BATCH)
    service.close()


def test_a_stored_id_in_a_later_chunk_undoes_the_earlier_chunks_and_the_batch_retries(
    tmp_path: Path,
) -> None:
    """The optimistic insert fails on the chunk holding a replayed id, after earlier chunks
    went in and while the helper hashes ahead: nothing of that attempt may remain."""
    store = open_store(f"sqlite:///{tmp_path / 'retry.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    service.ingest("acme", [event_in(0), event_in(1)])
    replayed = LEAF_CHUNK + 10  # position in the next batch: the second chunk
    batch = [event_in(n) for n in range(2, 2 + MAX_BATCH)]
    batch[replayed] = event_in(1)
    results = service.ingest("acme", batch)
    assert [created for _, created in results].count(False) == 1
    assert results[replayed][0].id == "evt-00001"
    assert results[replayed][1] is False
    assert_log_matches_events(store, "acme", 1 + MAX_BATCH)
    service.close()
