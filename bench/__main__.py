"""`make bench`: trailkeeper against the raw engine, measured in the same run.

Prints events/s for batch ingest through the service (what `import` and the batch API use)
next to the driver inserting the same rows into the same schema, and page latency through the
service next to the raw keyset query. Ratios, not absolute numbers, are the targets.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import psycopg
from tests.factories import event_payload

from trailkeeper.model import Direction, EventFilter, EventIn, to_ms, utc_now_ms
from trailkeeper.service import AuditService, normalize_event
from trailkeeper.store import open_store, sql

PG_ADMIN = os.environ.get(
    "TRAILKEEPER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH = 1000


def events(count: int, offset: int = 0) -> list[EventIn]:
    return [msgspec.convert(event_payload(offset + n), EventIn) for n in range(count)]


def fresh_url(engine: str, tmp: Path, name: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}"
    db = f"tk_bench_{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + db


def raw_insert(engine: str, url: str, batches: list[list[EventIn]], method: str) -> float:
    """Insert pre-built rows with the bare driver; one transaction per batch. Returns seconds."""
    store = open_store(url, sqlite_synchronous="FULL")
    store.close()
    received = utc_now_ms()
    seq = 1
    rows_per_batch = []
    for batch in batches:
        rows = []
        for e in batch:
            item = normalize_event("acme", e, received)
            to_db = to_ms if engine == "sqlite" else (lambda d: d)
            rows.append(sql.event_row(item, seq, to_db))
            seq += 1
        rows_per_batch.append(rows)
    if engine == "sqlite":
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        insert = sql.insert_sql("?")
        start = time.perf_counter()
        for rows in rows_per_batch:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return elapsed
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for rows in rows_per_batch:
            with conn.transaction(), conn.cursor() as cur:
                if method == "copy":
                    cols = ", ".join(sql.INSERT_COLUMNS)
                    with cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    cur.executemany(sql.insert_sql("%s"), rows)
        return time.perf_counter() - start


def service_insert(
    url: str, batches: list[list[EventIn]], ledger: bool = True
) -> tuple[float, AuditService]:
    service = AuditService(open_store(url, sqlite_synchronous="FULL", ledger=ledger))
    service.create_tenant("acme")
    start = time.perf_counter()
    for batch in batches:
        service.ingest("acme", batch)
    return time.perf_counter() - start, service


def latency(fn: Callable[[], object], runs: int = 200) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


PAGE_FILTERS = [
    ("no filter", EventFilter()),
    ("actor_id", EventFilter(actor_id="user-2")),
    ("action+source", EventFilter(action="created", source="api")),
]


def report_pages(engine: str, service: AuditService) -> None:
    """Page of 100 through the service (cursor, mapping) vs the store's keyset query alone."""
    for label, filters in PAGE_FILTERS:
        p50, p99 = latency(lambda f=filters: service.list_events("acme", f, 100, None, "native"))
        r50, r99 = latency(
            lambda f=filters: service.store.list_events("acme", f, None, Direction.OLDER, 101)
        )
        print(
            f"{engine:8} page of 100, {label:<14} service p50 {p50:6.2f} ms p99 {p99:6.2f} ms"
            f" | store p50 {r50:6.2f} ms p99 {r99:6.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"events: {args.events}, batch {BATCH}, 8 secondary indexes, synchronous commits\n")
    batches = [events(BATCH, start) for start in range(0, args.events, BATCH)]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for engine in args.engines.split(","):
            methods = ["executemany"] if engine == "sqlite" else ["executemany", "copy"]
            raw = {}
            for method in methods:
                seconds = raw_insert(
                    engine, fresh_url(engine, tmp, f"raw_{method}"), batches, method
                )
                raw[method] = args.events / seconds
                print(f"{engine:8} raw {method:<12} {raw[method]:>10,.0f} events/s")
            seconds, plain = service_insert(fresh_url(engine, tmp, "nolog"), batches, False)
            plain.close()
            no_ledger = args.events / seconds
            print(f"{engine:8} service, no ledger  {no_ledger:>10,.0f} events/s")
            seconds, service = service_insert(fresh_url(engine, tmp, "svc"), batches)
            rate = args.events / seconds
            best = max(raw.values())
            print(
                f"{engine:8} service ingest      {rate:>10,.0f} events/s  "
                f"({rate / best:.0%} of best raw; the ledger costs {1 - rate / no_ledger:.0%})"
            )
            report_pages(engine, service)
            service.close()
            print()


if __name__ == "__main__":
    main()
