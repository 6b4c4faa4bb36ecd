"""Query plans PostgreSQL must keep choosing: a bad estimate turns an index walk into a scan
of the whole tenant, which no result-based test notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import psycopg

from tests.factories import event_payload
from trailkeeper.model import EventIn
from trailkeeper.query import Query
from trailkeeper.service import AuditService
from trailkeeper.store import sql
from trailkeeper.store.postgres import PostgresStore

EVENTS = 20_000


def test_an_export_range_walks_the_time_index(clean_pg_url: str) -> None:
    """PostgreSQL estimates a row-value comparison at a third of the table whatever its values;
    with only that, every export range of a large tenant was planned as a parallel scan of the
    whole table (~35 ms a range at 1M events, against ~6 ms along the index); at 20k events,
    as here, it was a bitmap scan of a quarter of the table and a sort."""
    store = PostgresStore(clean_pg_url)
    service = AuditService(store)
    service.create_tenant("acme")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for first in range(0, EVENTS, 1000):
        service.ingest(
            "acme",
            [
                msgspec.convert(
                    event_payload(n, occurred_at=(start + timedelta(seconds=n)).isoformat()),
                    EventIn,
                )
                for n in range(first, first + 1000)
            ],
        )
    service.after_bulk_load()
    ranges = list(store._export_ranges("acme", Query(), 200))
    after, upto = ranges[len(ranges) // 2]
    query, params = sql.range_query(
        "acme",
        Query(),
        after,
        upto,
        store.ph,
        store.position_ts,
        sql.PG_EXPORT_COLUMNS,
    )
    with psycopg.connect(clean_pg_url) as conn:
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params).fetchall())
    service.close()
    # Along the index in order: no scan of the table or bitmap, and no sort.
    assert plan.startswith("Index Scan using events_by_time on events"), plan
