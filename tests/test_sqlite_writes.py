"""How rows reach SQLite: few statements per batch, and each row written as validated."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from tests.factories import event_payload
from trailkeeper.api.native import to_view
from trailkeeper.model import MAX_BATCH, EventIn
from trailkeeper.query import Query
from trailkeeper.service import AuditService
from trailkeeper.store import open_store
from trailkeeper.store.sqlite import SQLiteStore, _SQLiteRunner
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


def assert_log_matches_events(store: SQLiteStore, tenant: str, count: int) -> None:
    """Every stored event has its own leaf at a gap-free index, and the head covers them all."""
    stored = sorted(store.iter_events(tenant, Query()), key=lambda e: e.log_index or 0)
    assert [e.log_index for e in stored] == list(range(count))
    views = [msgspec.to_builtins(to_view(e)) for e in stored]  # what the customer checks
    leaves = [event_leaf_hash(view) for view in views]
    assert [e.leaf_hash for e in stored] == leaves
    assert store.ledger_head(tenant) == (count, root_hash(leaves))


def test_a_large_batch_goes_in_a_chunk_at_a_time_with_its_log_intact(tmp_path: Path) -> None:
    """A batch larger than one INSERT statement: the rows, their leaves and the tree must
    come out as if written in one go."""
    store = open_store(f"sqlite:///{tmp_path / 'chunks.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    service.ingest("acme", [event_in(n) for n in range(7)])  # a small batch: one step
    assert store._max_rows < MAX_BATCH
    service.ingest("acme", [event_in(n) for n in range(7, 7 + MAX_BATCH)])
    assert_log_matches_events(store, "acme", 7 + MAX_BATCH)
    service.close()


def test_a_stored_id_in_a_later_chunk_undoes_the_earlier_chunks_and_the_batch_retries(
    tmp_path: Path,
) -> None:
    """The optimistic insert fails on the statement holding a replayed id, after earlier
    statements went in: nothing of that attempt may remain."""
    store = open_store(f"sqlite:///{tmp_path / 'retry.db'}")
    assert isinstance(store, SQLiteStore)
    service = AuditService(store)
    service.create_tenant("acme")
    service.ingest("acme", [event_in(0), event_in(1)])
    replayed = store._max_rows + 10  # position in the next batch: the second statement
    batch = [event_in(n) for n in range(2, 2 + MAX_BATCH)]
    batch[replayed] = event_in(1)
    results = service.ingest("acme", batch)
    assert [created for _, created in results].count(False) == 1
    assert results[replayed][0].id == "evt-00001"
    assert results[replayed][1] is False
    assert_log_matches_events(store, "acme", 1 + MAX_BATCH)
    service.close()
