"""Search latency (docs/search.md, issue 29): one page (50 events) of `GET /v1/events?q=` as
the service serves it, p50/p99 per query, over the bench data already loaded.

Targets: qualifiers served by an index p50 <= 10 ms, p99 <= 50 ms; free text p50 <= 50 ms;
metadata and negations scan within the other terms' range (reported, no target).

Alone: `python -m bench.search --engine sqlite --size 100000` loads a fresh database first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trailkeeper.query import parse_query
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

# (kind, query): kind "index" has the qualifier target, "text" the free-text one.
QUERIES = [
    ("index", "actor:user-17"),
    ("index", "target.id:buyer-123"),
    ("index", "action:created"),
    ("index", "action:capt*"),
    ("index", "type:user:role-changed after:2025-01-10 before:2025-01-20"),
    ("index", "outcome:failure"),
    ("index", "actor:user-17 action:created,deleted"),
    ("text", "captured"),
    ("text", "samuel"),
    ("text", "role*"),
    ("text", '"role changed" actor:user-17'),
    ("text", "jane -captured"),
    ("scan", "-source:api"),
    ("scan", "metadata.plan:pro"),
    ("scan", "metadata.ticket:OPS-17"),
    ("scan", "metadata.ticket:OPS-17 actor:user-17"),
]
ROUNDS = 30
PAGE = 50


def measure(url: str) -> list[tuple[str, str, float, float, int]]:
    """(kind, query, p50 ms, p99 ms, rows on the first page) per query."""
    service = AuditService(open_store(url))
    try:
        results = []
        for kind, text in QUERIES:
            query = parse_query(text)
            samples = []
            rows = 0
            for _ in range(ROUNDS):
                start = time.perf_counter()
                page, _, _ = service.list_events("acme", query, PAGE, None, "native")
                samples.append((time.perf_counter() - start) * 1000)
                rows = len(page.events)
            samples.sort()
            p99 = samples[max(0, int(len(samples) * 0.99) - 1)]
            results.append((kind, text, statistics.median(samples), p99, rows))
        return results
    finally:
        service.close()


def report(engine: str, url: str, size: int, say: Callable[[str], None]) -> None:
    """Lines for the bench report; a verdict for the queries with a target."""
    for kind, text, p50, p99, rows in measure(url):
        if kind == "index":
            verdict = "ok" if p50 <= 10 and p99 <= 50 else "MISSED"
            target = f"(index: p50 <= 10, p99 <= 50: {verdict})"
        elif kind == "text":
            target = f"(free text: p50 <= 50: {'ok' if p50 <= 50 else 'MISSED'})"
        else:
            target = "(scans within the range; no target)"
        say(
            f"{engine:<8} {size:>9,}  search {text!r:<44} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
            f"{rows:>2} rows {target}"
        )


def main() -> None:
    from bench.__main__ import fresh_url, service_ingest
    from bench.data import iter_batches

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="sqlite")
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_url(args.engine, Path(tmp), f"search{args.size}")
        start = time.perf_counter()
        rate = service_ingest(url, iter_batches(args.size, 1000), analyze=True)
        print(f"{args.engine}: loaded {args.size:,} events at {rate:,.0f}/s", flush=True)
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        report(args.engine, url, args.size, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
