"""How rows reach SQLite: few statements per batch, and each row written as validated."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from tests.factories import event_payload
from trailkeeper.model import MAX_BATCH, EventIn, to_ms, utc_now_ms
from trailkeeper.service import AuditService
from trailkeeper.store import open_store, sql
from trailkeeper.store.sqlite import SQLiteStore, _SQLiteRunner
from trailkeeper.validation import normalize_event


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
