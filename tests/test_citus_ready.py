"""The PostgreSQL schema can be distributed by tenant with Citus (docs/scaling.md).

Citus can only enforce a unique or primary key, or a foreign key between distributed tables,
when it includes the distribution column, and it routes a query to one shard only when the
query names it. So every key and index of a tenant-scoped table must lead with `tenant`.
The migrations are applied to a fresh database and its catalog is read, so ALTERs in later
migrations count; every table must be classified here, so a new one forces the decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from trailkeeper.store import open_store

MIGRATIONS = Path(__file__).parents[1] / "src/trailkeeper/store/migrations/postgres"
SCALING = Path(__file__).parents[1] / "docs/scaling.md"

DISTRIBUTED = {
    "events",
    "ledger_nodes",
    "ledger_heads",
    "ledger_kept",
    "ledger_floors",
    "checkpoints",
    "key_pairs",
}
# Small tables read by id without a tenant (a key's id comes from the token), global ones, and
# the few rows background jobs scan across tenants (streams to deliver, holds to respect).
REFERENCE = {"tenants", "api_keys", "settings", "streams", "legal_holds"}


@pytest.fixture(scope="module")
def catalog(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    open_store(pg_url).close()  # applies every migration
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def test_every_table_of_the_migrations_is_classified() -> None:
    created = set()
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        created |= set(re.findall(r"CREATE TABLE (\w+)", migration.read_text(), re.IGNORECASE))
    assert created == DISTRIBUTED | REFERENCE


def test_keys_and_indexes_of_tenant_tables_lead_with_tenant(
    catalog: psycopg.Connection[tuple[object, ...]],
) -> None:
    # A non-unique GIN index (free text) is shard-local like any other; the query's
    # `tenant = ...` routes it to one shard, so only B-tree keys and indexes must lead with it.
    rows = catalog.execute(
        "SELECT t.relname, i.relname, a.attname FROM pg_index x "
        "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_am m ON m.oid = i.relam "
        "LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
        "WHERE t.relname = ANY(%s) AND (m.amname <> 'gin' OR x.indisunique)",
        (sorted(DISTRIBUTED),),
    ).fetchall()
    assert {table for table, _, _ in rows} == DISTRIBUTED  # each has at least its key
    wrong = [f"{table}.{index} leads with {first}" for table, index, first in rows]
    assert [w for w in wrong if not w.endswith(" leads with tenant")] == []


def test_foreign_keys_between_tenant_tables_include_tenant(
    catalog: psycopg.Connection[tuple[object, ...]],
) -> None:
    rows = catalog.execute(
        "SELECT c.conname, t.relname, r.relname, "
        "(SELECT array_agg(attname::text) FROM pg_attribute "
        " WHERE attrelid = c.conrelid AND attnum = ANY(c.conkey)) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_class r ON r.oid = c.confrelid WHERE c.contype = 'f'",
    ).fetchall()
    for name, table, referenced, columns in rows:
        if table in DISTRIBUTED and referenced in DISTRIBUTED:
            assert "tenant" in columns, f"{name}: {table} -> {referenced} without tenant"
        if table in REFERENCE:
            assert referenced in REFERENCE, f"{name}: reference table {table} -> {referenced}"


def test_scaling_guide_distributes_the_same_tables() -> None:
    text = SCALING.read_text()
    distributed = set(re.findall(r"create_distributed_table\('(\w+)', 'tenant'", text))
    reference = set(re.findall(r"create_reference_table\('(\w+)'\)", text))
    assert distributed == DISTRIBUTED
    assert reference == REFERENCE
