"""Retention: purging N events while ingest runs (docs/retention.md).

A tenant holds N events received ten days ago (a stored checkpoint every 10,000, as the
checkpointer leaves them) under a 5-day policy. Measured in one process, as `serve` runs its
purge job beside request handling: the service's ingest rate alone, then while the purge runs
(target: >= 70% of alone), the purge rate, and what the purge leaves per purged event.

    python -m bench.retention [--events 100000] [--engines sqlite,postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from bench.data import iter_batches
from trailkeeper import retention
from trailkeeper.model import EventIn, from_ms
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

KEPT_ROW_BYTES = 32 + 8 + 2 + 8  # a ledger_kept row: hash, tenant (short), level, index


class _Clock:
    def __init__(self) -> None:
        self.now = from_ms(1_780_000_000_000)

    def __call__(self) -> datetime:
        return self.now


def _ingest_for(
    service: AuditService, batches: Iterator[list[EventIn]], until: Callable[[], bool]
) -> float:
    """Ingest batches until `until()` (or they run out); events per second."""
    count, start = 0, time.perf_counter()
    for batch in batches:
        service.ingest("acme", batch)
        count += len(batch)
        if until():
            break
    return count / (time.perf_counter() - start)


def measure(engine: str, url: str, events: int) -> list[str]:
    clock = _Clock()
    store = open_store(url)
    try:
        service = AuditService(store, clock=clock)
        service.create_tenant("acme")
        for n, batch in enumerate(iter_batches(events, 1000)):
            service.ingest("acme", batch)
            if n % 10 == 9:
                service.checkpoint("acme")
        clock.now += timedelta(days=10)
        service.update_tenant("acme", retention_days=5)
        fresh = iter_batches(10_000_000, 1000, offset=events)
        alone_until = time.perf_counter() + 5
        alone = _ingest_for(service, fresh, lambda: time.perf_counter() > alone_until)
        done = threading.Event()
        took: list[float] = []

        def purge() -> None:
            start = time.perf_counter()
            retention.purge(service, "acme", share=retention.BACKGROUND_SHARE)
            took.append(time.perf_counter() - start)
            done.set()

        worker = threading.Thread(target=purge)
        worker.start()
        during = _ingest_for(service, fresh, done.is_set)
        worker.join()
        purged = store.purged_size("acme")
        kept = store.kept_node_count("acme")
        ratio = during / alone
        return [
            f"{engine:8} {events:>9,} purge {purged:,} events in {took[0]:.1f} s = "
            f"{purged / took[0]:,.0f} events/s, in batches of {retention.PURGE_BATCH} taking "
            f"{retention.BACKGROUND_SHARE:.0%} of the time (as in serve)",
            f"{engine:8} {events:>9,}   ingest during the purge {during:,.0f} events/s = "
            f"{ratio:.0%} of {alone:,.0f} alone (>= 70%: {'met' if ratio >= 0.7 else 'MISSED'})",
            f"{engine:8} {events:>9,}   left behind: {kept} kept nodes (~{kept * KEPT_ROW_BYTES:,} "
            f"bytes) = {kept * KEPT_ROW_BYTES / max(purged, 1):.3f} bytes per purged event",
        ]
    finally:
        store.close()


def report(engine: str, url: str, events: int, say: Callable[[str], None]) -> None:
    for line in measure(engine, url, events):
        say(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    from bench.__main__ import fresh_url

    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            report(engine, fresh_url(engine, Path(tmp), "retention"), args.events, print)


if __name__ == "__main__":
    main()
