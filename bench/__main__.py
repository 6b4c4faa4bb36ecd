"""`make bench`: trailkeeper against baselines measured in the same run.

Baselines: the raw engine (the same rows inserted with the bare driver, one transaction per
batch, COPY on PostgreSQL; the same keyset query run through the bare driver) and the
framework floor (the same 100-event JSON page from a bare Litestar endpoint on uvicorn).
Targets are ratios (docs/performance.md); absolute figures are printed too.

    python -m bench [--sizes 100000,1000000] [--engines sqlite,postgres] [--load-seconds 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import psycopg
from tests.e2e.server import clean_env, free_port, start_serve, wait_healthy

from bench import client as client_bench
from bench import observability, retention, verify_export, workers
from bench import search as search_bench
from bench import streams as streams_bench
from bench.data import batches, iter_batches, json_batches, with_amounts
from trailkeeper.cursor import cursor_scope
from trailkeeper.ledger import event_leaves
from trailkeeper.model import (
    FIELDS,
    FILTER_FIELDS,
    Direction,
    EventFilter,
    EventIn,
    Position,
    field_values,
    from_ms,
    to_ms,
    utc_now_ms,
)
from trailkeeper.query import Query
from trailkeeper.service import AuditService
from trailkeeper.store import open_store
from trailkeeper.validation import validate

PG_ADMIN = os.environ.get(
    "TRAILKEEPER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).parent / "results"
T = TypeVar("T")
FILTERS = [
    ("no filter", EventFilter(), ""),
    ("actor_id", EventFilter(actor_id="user-7"), "actor_id=user-7"),
    ("action+source", EventFilter(action="created", source="api"), "action=created&source=api"),
    (
        "target_type+since",
        EventFilter(target_type="buyer", since=datetime(2025, 1, 1, 1, tzinfo=UTC)),
        "target_type=buyer&since=2025-01-01T01:00:00Z",
    ),
]
report: list[str] = []


RETENTION_EVENTS = 100_000  # events purged by bench/retention.py per engine


def say(line: str = "") -> None:
    print(line, flush=True)
    report.append(line)


def row(engine: str, size: int, text: str) -> None:
    say(f"{engine:8} {size:>9,} {text}")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def fresh_url(engine: str, tmp: Path, name: str) -> str:
    if engine == "sqlite":
        path = tmp / (name + ".db")
        for leftover in (path, path.with_suffix(".db-wal"), path.with_suffix(".db-shm")):
            leftover.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    db = f"tk_bench_{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
        # Write out what earlier runs left dirty, so that no run pays for the one before it.
        conn.execute("CHECKPOINT")
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + db


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]


# ---- ingest -------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    """The stored form when it is the value itself (timestamps on PostgreSQL, ms on SQLite)."""
    return value


# The raw baseline's rows, from the public field table: the stored columns of every field,
# then whether the client gave occurred_at (see docs/events.md, "Idempotency").
RAW_COLUMNS = ["seq", *(field.column for field in FIELDS), "occurred_at_given"]
_PG_TYPES = {
    "text": "text",
    "bool": "bool",
    "int": "int8",
    "time": "timestamptz",
    "json": "text",
    "bytes": "bytea",
}
RAW_COPY_TYPES = ["int8", *(_PG_TYPES[field.kind] for field in FIELDS), "bool"]
RAW_COPY = f"COPY events ({', '.join(RAW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
RAW_INSERT = (
    f"INSERT INTO events ({', '.join(RAW_COLUMNS)}) VALUES ({', '.join('?' * len(RAW_COLUMNS))})"
)


def raw_row(event: Any, occurred_given: bool, to_db: Callable[[datetime], Any]) -> list[Any]:
    row: list[Any] = [event.seq]
    for field, value in zip(FIELDS, field_values(event), strict=True):
        if field.kind == "time":
            value = to_db(value)
        elif field.kind == "json":
            value = msgspec.json.encode(value).decode()
        row.append(value)
    return [*row, occurred_given]


def in_turn(sides: tuple[T, ...], n: int) -> tuple[T, ...]:
    """The sides of a comparison in the order they run for batch (or phase) `n`: rotated each
    time, so that none always goes first (measuring in turns; see docs/performance.md)."""
    shift = n % len(sides)
    return sides[shift:] + sides[:shift]


class RawInserter:
    """The bare driver inserting the same rows into the same schema, one transaction per
    batch: the values trailkeeper stores, log index and leaf hash included, all made before
    any clock starts (executemany on SQLite, binary COPY on PostgreSQL)."""

    def __init__(self, engine: str, url: str, data: list[list[EventIn]]) -> None:
        open_store(url).close()  # create the schema
        received, seq, self.batches = utc_now_ms(), 1, []
        to_db: Callable[[datetime], Any] = to_ms if engine == "sqlite" else _same
        for batch in data:
            rows = []
            for item in validate("acme", batch, received):
                logged = msgspec.structs.replace(
                    item.event,
                    seq=seq,
                    log_index=seq - 1,
                    leaf_hash=event_leaves([item.event], seq - 1)[0],
                )
                rows.append(raw_row(logged, item.occurred_given, to_db))
                seq += 1
            self.batches.append(rows)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[Any] | None = None
        if engine == "sqlite":
            self._sqlite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=FULL")
        else:
            self._pg = psycopg.connect(url)

    def insert(self, n: int) -> float:
        """Seconds to insert prepared batch `n`."""
        rows = self.batches[n]
        start = time.perf_counter()
        if self._sqlite is not None:
            self._sqlite.execute("BEGIN IMMEDIATE")
            self._sqlite.executemany(RAW_INSERT, rows)
            self._sqlite.execute("COMMIT")
        elif self._pg is not None:
            with self._pg.transaction(), self._pg.cursor() as cur, cur.copy(RAW_COPY) as copy:
                copy.set_types(RAW_COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
        return time.perf_counter() - start

    def close(self) -> None:
        for conn in (self._sqlite, self._pg):
            if conn is not None:
                conn.close()


def import_rates(engine: str, tmp: Path, data: list[list[EventIn]]) -> tuple[float, float]:
    """(raw, service) events/s, measured in turns: the raw driver and the service (what
    `trailkeeper import` does) take each batch in turn, which goes first alternating, so that
    drift in the machine's speed hits both alike (separate runs of each varied by +-15%)."""
    raw = RawInserter(engine, fresh_url(engine, tmp, "raw"), data)
    service = AuditService(open_store(fresh_url(engine, tmp, "svc")))
    service.create_tenant("acme")
    raw_seconds = service_seconds = 0.0
    for n, batch in enumerate(data):
        for side in in_turn(("raw", "service"), n):
            if side == "raw":
                raw_seconds += raw.insert(n)
            else:
                start = time.perf_counter()
                service.ingest("acme", batch)
                service_seconds += time.perf_counter() - start
    raw.close()
    service.close()
    count = sum(map(len, data))
    return count / raw_seconds, count / service_seconds


def service_ingest(
    url: str, data: Iterable[list[EventIn]], ledger: bool = True, analyze: bool = False
) -> float:
    """Events/s through the service (what `trailkeeper import` does, which also analyzes)."""
    service = AuditService(open_store(url, ledger=ledger))
    service.create_tenant("acme")
    count, start = 0, time.perf_counter()
    for batch in data:
        service.ingest("acme", batch)
        count += len(batch)
    elapsed = time.perf_counter() - start
    if analyze:  # as import and autovacuum do; the CI machine's PostgreSQL has autovacuum off
        service.after_bulk_load()
    service.close()
    return count / elapsed


VERIFY_EVENTS = 1_000_000  # `trailkeeper verify` of an export this long: < 15 s, < 100 MB
LEDGER_BATCHES = 30  # of 1000 events, per run
# Rounds per ledger cost, the median judged. On a noisy machine one HTTP pair ranged from -1%
# to 33% (2026-12-04), and medians of 5 from 13% to 22% run to run; 9 narrow that for ~1 s
# (service) and ~15 s (HTTP) more per engine.
LEDGER_ROUNDS = 9


def ledger_cost(engine: str, tmp: Path, data: list[list[EventIn]]) -> list[float]:
    """The ledger's cost through the service: two stores, without and with it, open at once
    take each batch in turn (which goes first alternates), so that drift in the machine's speed
    and the database's background writes hit both alike (separate back-to-back runs of ~1 s
    differed by -15% to +35%). One cost per round of `data`, each round a new tenant's log."""
    services = {
        ledger: AuditService(open_store(fresh_url(engine, tmp, name), ledger=ledger))
        for ledger, name in ((False, "plain"), (True, "logged"))
    }
    costs = []
    for round_ in range(LEDGER_ROUNDS):
        tenant = f"round-{round_}"
        seconds = dict.fromkeys(services, 0.0)
        for service in services.values():
            service.create_tenant(tenant)
        for n, batch in enumerate(data):
            for ledger in in_turn((False, True), n):
                start = time.perf_counter()
                services[ledger].ingest(tenant, batch)
                seconds[ledger] += time.perf_counter() - start
        costs.append(1 - seconds[False] / seconds[True])  # 1 - (rate with / rate without)
    for service in services.values():
        service.close()
    return costs


HTTP_PHASE = (
    20  # requests of 500 events sent in one turn (fewer: filling and draining 4 clients shows)
)
# The same for the HTTP ingest rate against raw. Each phase starts its 4 clients from idle and
# ends with them draining, which the raw driver (one connection, no pipeline) does not pay:
# with 20 requests a phase that cost ~15% of the rate on PostgreSQL (46% of raw against 52-53%
# with 60, and ~60% under continuous load; docs/performance.md). 60 requests (30,000 events,
# ~1-2 s) keep turns short against the machine's drift and the ramps a smaller share.
HTTP_RATE_PHASE = 60


def http_ledger_cost(engine: str, tmp: Path, count: int) -> list[float]:
    """The same for HTTP batch ingest (500 events per request): two servers, without and with
    the ledger, run at once and take turns of `HTTP_PHASE` requests."""
    bodies = json_batches(count, 500)
    urls = {False: fresh_url(engine, tmp, "hplain"), True: fresh_url(engine, tmp, "hlogged")}
    tokens: dict[tuple[bool, int], str] = {}
    for ledger, url in urls.items():
        service = AuditService(open_store(url, ledger=ledger))
        for round_ in range(LEDGER_ROUNDS):
            service.create_tenant(f"round-{round_}")
            tokens[ledger, round_] = service.create_key(f"round-{round_}", "bench")[1]
        service.close()
    servers = {ledger: start_variant(url, ledger) for ledger, url in urls.items()}
    costs = []
    try:
        for round_ in range(LEDGER_ROUNDS):
            seconds = dict.fromkeys(servers, 0.0)
            for n, first in enumerate(range(0, len(bodies), HTTP_PHASE)):
                for ledger in in_turn((False, True), n):
                    base, token = servers[ledger][1], tokens[ledger, round_]
                    phase = bodies[first : first + HTTP_PHASE]
                    seconds[ledger] += post_batches(base, token, phase)
            costs.append(1 - seconds[False] / seconds[True])
    finally:
        for server, _ in servers.values():
            stop(server)
    return costs


def cost_summary(costs: list[float]) -> str:
    """Median of the pairs, its verdict, and every pair (the spread is part of the answer)."""
    median = statistics.median(costs)
    pairs = ", ".join(f"{cost:.0%}" for cost in costs)
    return f"the ledger costs {median:.0%} (< 15%: {verdict(median < 0.15)}; pairs {pairs})"


def http_rates(engine: str, tmp: Path, data: list[list[EventIn]]) -> tuple[float, float, float]:
    """(raw, HTTP, HTTP with `Prefer: return=minimal`) events/s, in turns: `HTTP_RATE_PHASE`
    requests of 500 events to `serve` (4 clients at once) each way, and the raw driver
    inserting the same events in the same transactions of 500. The two HTTP ways write to two
    tenants of one server."""
    events = [event for batch in data for event in batch]
    raw = RawInserter(
        engine,
        fresh_url(engine, tmp, "hraw"),
        [events[first : first + 500] for first in range(0, len(events), 500)],
    )
    url = fresh_url(engine, tmp, "http")
    service = AuditService(open_store(url))
    tokens = {}
    for tenant in ("full", "minimal"):
        service.create_tenant(tenant)
        tokens[tenant] = service.create_key(tenant, "bench")[1]
    service.close()
    bodies = json_batches(sum(map(len, data)), 500)
    server, base = start_serve(tmp, database_url=url, rate_limit_per_second="0")
    seconds = {"raw": 0.0, "full": 0.0, "minimal": 0.0}
    try:
        for n, first in enumerate(range(0, len(bodies), HTTP_RATE_PHASE)):
            for side in in_turn(("raw", "full", "minimal"), n):
                if side == "raw":
                    for batch in range(first, min(first + HTTP_RATE_PHASE, len(bodies))):
                        seconds[side] += raw.insert(batch)
                else:
                    phase = bodies[first : first + HTTP_RATE_PHASE]
                    minimal = side == "minimal"
                    seconds[side] += post_batches(base, tokens[side], phase, minimal=minimal)
    finally:
        stop(server)
        raw.close()
    count = sum(map(len, data))
    return count / seconds["raw"], count / seconds["full"], count / seconds["minimal"]


def start_variant(url: str, ledger: bool) -> tuple[subprocess.Popen[bytes], str]:
    """bench/serve_variant.py on a free port, healthy: (process, base URL)."""
    port = free_port()
    command = [sys.executable, "-m", "bench.serve_variant", str(port), url]
    server = subprocess.Popen(
        command + ([] if ledger else ["--no-ledger"]),
        env=clean_env(),
        cwd=Path(__file__).parent.parent,
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    return server, base


def stop(server: subprocess.Popen[Any]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


def post_batches(
    base: str, token: str, bodies: list[bytes], threads: int = 4, minimal: bool = False
) -> float:
    """Seconds to POST every body to /v1/events/batch from `threads` clients at once."""
    lock, queue = threading.Lock(), list(reversed(bodies))
    failures: list[int] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if minimal:
        headers["Prefer"] = "return=minimal"

    def post() -> None:
        with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                status = client.post("/v1/events/batch", content=body).status_code
                if status != 201:
                    failures.append(status)

    workers = [threading.Thread(target=post) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    assert not failures, failures[:5]
    return elapsed


# ---- reads --------------------------------------------------------------------------------


def keyset_sql(
    engine: str, filters: EventFilter, position: Position | None, what: str, limit: int | None
) -> tuple[str, list[Any]]:
    """The newest-first keyset query over the stored columns, written out by hand: the bare
    driver's baseline for a page (`what`: the selected columns, or count(*))."""
    ph = "?" if engine == "sqlite" else "%s"
    ts: Callable[[int], Any] = _same if engine == "sqlite" else from_ms
    terms, params = [f"tenant = {ph}"], list[Any](["acme"])
    for field in FILTER_FIELDS:
        value = getattr(filters, field.column)
        if value is not None:
            terms.append(f"{field.column} = {ph}")
            params.append(value)
    if position is not None:
        terms.append(f"(occurred_at, seq) < ({ph}, {ph})")
        params += [ts(position.occurred_ms), position.seq]
    query = f"SELECT {what} FROM events WHERE {' AND '.join(terms)}"
    if limit is not None:
        query += f" ORDER BY occurred_at DESC, seq DESC LIMIT {limit}"
    return query, params


_ALL_COLUMNS = ", ".join(["seq", *(field.column for field in FIELDS)])


def raw_query(engine: str, url: str) -> Callable[[EventFilter, Position | None], object]:
    """A page's keyset query, run through the bare driver (no mapping)."""
    if engine == "sqlite":
        conn: Any = sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True)

        def run_sqlite(filters: EventFilter, position: Position | None) -> object:
            return conn.execute(
                *keyset_sql(engine, filters, position, _ALL_COLUMNS, 101)
            ).fetchall()

        return run_sqlite
    pg = psycopg.connect(url, autocommit=True)

    def run_pg(filters: EventFilter, position: Position | None) -> object:
        return pg.execute(*keyset_sql(engine, filters, position, _ALL_COLUMNS, 101)).fetchall()

    return run_pg


def timed(*fns: Callable[[], object], runs: int, block: int = 50) -> list[tuple[float, float]]:
    """(p50, p99) in ms of each function over `runs` calls, taken in turns of `block` calls
    each, the first call of every turn not counted: turns spread the machine's drift over all
    of them, and blocks keep each warm. (Alternating single calls instead made every call
    start cold, which added about the same to each and so flattered the ratio page / (raw +
    floor): one run passed 16 pages of 16 that way, the next 4 of 16 in blocks.)"""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, runs // block)):
        for fn, taken in zip(fns, samples, strict=True):
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                taken.append((time.perf_counter() - start) * 1000)
    return [percentiles(taken) for taken in samples]


def deep_position(engine: str, url: str, filters: EventFilter, depth: float) -> Position:
    """Keyset position `depth` of the way into the filtered result (newest first)."""
    query, params = keyset_sql(engine, filters, None, "count(*)", None)
    if engine == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        total = conn.execute(query, params).fetchone()[0]
        conn.close()
    else:
        with psycopg.connect(url) as pg:
            total = pg.execute(query, params).fetchone()[0]  # type: ignore[index]
    service = AuditService(open_store(url))
    try:
        offset = max(1, int(total * depth))
        position, seen = None, 0
        while seen < offset:
            step = min(1000, offset - seen)
            rows = service.store.list_events(
                "acme", Query.from_filters(filters), position, Direction.OLDER, step
            )
            if not rows:
                break
            seen += len(rows)
            position = Position.of(rows[-1])
        assert position is not None, "no events match the filter"
        return position
    finally:
        service.close()


def native_cursor(url: str, filters: EventFilter, position: Position) -> str:
    service = AuditService(open_store(url))
    try:  # bench-only use of the codec: a cursor deep in the log without paging to it
        return service._cursors.encode(
            position, Direction.OLDER, cursor_scope("acme", "native", Query.from_filters(filters))
        )
    finally:
        service.close()


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def export_run(url: str, tmp: Path) -> tuple[int, float, float, float]:
    """(events exported, events/s end to end, events/s streaming, peak RSS MB) of `trailkeeper
    export` of the whole log to /dev/null. Streaming leaves out the command's fixed start-up
    cost (Python, imports, opening the database), measured by exporting an empty tenant the
    same way.

    The count is the log's size, read before the export: the load test before it adds events
    to the tenant (~40k in 15 s), so the bench's data size understates what is exported (until
    2026-12-04 the rates were divided by it: 30% too low at 100k events, 4% at 1M)."""
    store = open_store(url)
    try:
        count = (store.ledger_head("acme") or (0, b""))[0]
    finally:
        store.close()
    full, peak = _export_once(url, tmp, "acme")
    fixed = min(_export_once(url, tmp, "empty")[0] for _ in range(3))
    return count, count / full, count / max(full - fixed, 1e-9), peak


def _export_once(url: str, tmp: Path, tenant: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one `trailkeeper export --tenant ...`."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    start = time.perf_counter()
    result = subprocess.run(
        [
            time_bin,
            "-f",
            "%M",
            sys.executable,
            "-m",
            "trailkeeper",
            "--database-url",
            url,
            "export",
            "--tenant",
            tenant,
            "-o",
            "/dev/null",
        ],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return elapsed, peak_kb / 1024


def read_benchmarks(
    engine: str, url: str, tmp: Path, size: int, floor_url: str, load_seconds: float
) -> None:
    service = AuditService(open_store(url))
    _, token = service.create_key("acme", "bench-reader")
    if service.store.get_tenant("empty") is None:
        service.create_tenant("empty")  # for the export's start-up cost
    service.close()
    server, base = start_serve(tmp, database_url=url, rate_limit_per_second="0")
    headers = {"Authorization": f"Bearer {token}"}
    raw = raw_query(engine, url)
    try:
        with (
            httpx.Client(base_url=base, headers=headers, timeout=30) as client,
            httpx.Client(base_url=floor_url, timeout=30) as floor_client,
        ):
            floor = partial(floor_client.get, "/page")
            for label, filters, query in FILTERS:
                path = f"/v1/events?limit=100&{query}"
                (h50, h99), (r50, r99), (f50, f99) = timed(
                    partial(client.get, path), partial(raw, filters, None), floor, runs=300
                )
                ok = h50 <= 1.5 * (r50 + f50) and h99 <= 1.5 * (r99 + f99)
                row(
                    engine,
                    size,
                    f"page of 100, {label:<18} p50 {h50:6.2f} ms  p99 {h99:6.2f} ms"
                    f" | raw query p50 {r50:5.2f} p99 {r99:5.2f} | floor p50 {f50:5.2f} "
                    f"p99 {f99:5.2f} | <= 1.5x (raw+floor): {verdict(ok)}",
                )
            for label, filters, query in FILTERS[:2]:
                cursor = native_cursor(url, filters, deep_position(engine, url, filters, 0.9))
                deep_path = f"/v1/events?limit=100&{query}&cursor={cursor}"
                (first, _), (deep, _) = timed(
                    partial(client.get, f"/v1/events?limit=100&{query}"),
                    partial(client.get, deep_path),
                    runs=200,
                )
                row(
                    engine,
                    size,
                    f"deep page (90% in), {label:<11} p50 {deep:6.2f} ms vs first "
                    f"page {first:6.2f} ms ({deep / first:.2f}x; <= 1.2x: "
                    f"{verdict(deep <= first * 1.2)})",
                )
        rss = rss_mb(server.pid)
        row(
            engine,
            size,
            f"server RSS after the queries {rss:4.0f} MB (< 150: {verdict(rss < 150)})",
        )
        if load_seconds > 0 and shutil.which("wrk"):
            load_test(engine, size, base, token, load_seconds)
        elif load_seconds > 0:
            row(engine, size, "wrk mixed load: NOT RUN (wrk is not installed: apt install wrk)")
    finally:
        stop(server)
    exported, rate, streaming, peak = export_run(url, tmp)
    ok = streaming >= 100_000 and peak < 150
    row(
        engine,
        size,
        f"export (CLI, JSONL)  {streaming:>10,.0f} events/s streaming ({rate:,.0f}/s with "
        f"start-up; {exported:,} events), peak RSS {peak:.0f} MB (>= 100k/s, < 150 MB: "
        f"{verdict(ok)})",
    )


def load_test(engine: str, size: int, base: str, token: str, seconds: float) -> None:
    script = Path(__file__).parent / "load.lua"
    result = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{int(seconds)}s", "--latency", "-s", str(script), base],
        env={**os.environ, "TK_KEY": token},
        capture_output=True,
        text=True,
        check=True,
    )
    RESULTS.mkdir(exist_ok=True)
    name = RESULTS / f"load-{engine}-{size}.txt"
    name.write_text(
        f"# wrk mixed load (1 write of 50 events per 4 reads), {engine}, "
        f"{size} events stored, {datetime.now(UTC):%Y-%m-%d}\n{result.stdout}"
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    errors = re.search(r"non-2xx or socket errors: (\d+)", result.stdout)
    row(
        engine,
        size,
        f"wrk mixed load {seconds:.0f}s: {rps.group(1) if rps else '?'} req/s, "
        f"errors {errors.group(1) if errors else '?'} (bench/results/{name.name})",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--ingest-events", type=int, default=100_000)
    parser.add_argument("--load-seconds", type=float, default=15)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    say(
        f"trailkeeper bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, 1 server worker"
    )
    data = batches(args.ingest_events, 1000)
    floor_port = free_port()
    floor = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", str(floor_port)],
        env=clean_env(),
        cwd=Path(__file__).parent.parent,
    )
    floor_url = f"http://127.0.0.1:{floor_port}"
    wait_healthy_floor(floor_url)
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            for engine in args.engines.split(","):
                say()
                raw, logged = import_rates(engine, tmp, data)
                costs = ledger_cost(engine, tmp, data[:LEDGER_BATCHES])
                amount_costs = ledger_cost(engine, tmp, with_amounts(data[:LEDGER_BATCHES]))
                http_raw, http, http_minimal = http_rates(engine, tmp, data)
                http_costs = http_ledger_cost(engine, tmp, LEDGER_BATCHES * 1000)
                n = args.ingest_events
                method = "executemany" if engine == "sqlite" else "binary COPY"
                row(
                    engine,
                    n,
                    f"raw insert ({method})   {raw:>10,.0f} events/s in turns with import, "
                    f"{http_raw:,.0f} in turns with HTTP",
                )
                row(
                    engine,
                    n,
                    f"import (service)     {logged:>10,.0f} events/s = {logged / raw:.0%} of raw "
                    f"(>= 70%: {verdict(logged >= 0.7 * raw)}); {cost_summary(costs)}",
                )
                row(
                    engine,
                    n,
                    f"  with a float in every event's metadata: {cost_summary(amount_costs)}",
                )
                row(
                    engine,
                    n,
                    f"HTTP batch ingest    {http:>10,.0f} events/s = {http / http_raw:.0%} of raw "
                    f"(>= 50%: {verdict(http >= 0.5 * http_raw)}); {cost_summary(http_costs)}",
                )
                row(
                    engine,
                    n,
                    f"  Prefer: return=minimal {http_minimal:>6,.0f} events/s = "
                    f"{http_minimal / http_raw:.0%} of raw "
                    f"(>= 50%: {verdict(http_minimal >= 0.5 * http_raw)})",
                )
                client_bench.report(engine, tmp, say)  # the Python client: bench/client.py
                for size in sizes:
                    url = fresh_url(engine, tmp, f"data{size}")
                    service_ingest(url, iter_batches(size, 1000), analyze=True)
                    read_benchmarks(engine, url, tmp, size, floor_url, args.load_seconds)
                    search_bench.report(engine, url, size, say)  # bench/search.py
                observability.report(engine, say)
                workers.report(engine, say)
                streams_bench.report(engine, say)  # delivery vs ingest, lag: bench/streams.py
                # purge while ingesting: bench/retention.py
                retention.report(engine, fresh_url(engine, tmp, "retention"), RETENTION_EVENTS, say)
            say()
            say(verify_export.measure(tmp, VERIFY_EVENTS, os.cpu_count() or 1))
    finally:
        floor.send_signal(signal.SIGTERM)
        floor.wait(timeout=10)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.txt").write_text("\n".join(report) + "\n")


def wait_healthy_floor(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/page", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("floor server did not start")


if __name__ == "__main__":
    main()
