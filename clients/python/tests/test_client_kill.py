"""10,000 events from 8 threads while the server is SIGKILLed and restarted twice."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import Server
from trailkeeper_client import Client, DeliveryError, RetryPolicy

pytestmark = pytest.mark.slow

THREADS, PER_THREAD = 8, 1250


def test_every_event_stored_exactly_once_across_two_kills(server: Server, api_key: str) -> None:
    errors: list[DeliveryError] = []
    audit = Client(
        server.url,
        api_key,
        batch_size=200,
        flush_interval=0.1,
        on_error=errors.append,
        retry=RetryPolicy(base_delay=0.05, max_delay=0.5),
        close_timeout=120,
    )
    ids: list[list[str]] = [[] for _ in range(THREADS)]

    def produce(n: int) -> None:
        for i in range(PER_THREAD):
            ids[n].append(audit.record("kill.test", actor={"id": f"t{n}"}, metadata={"i": i}))
            if i % 50 == 49:
                time.sleep(0.02)  # spread recording over the kills

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
    for producer in producers:
        producer.start()
    for threshold in (2000, 5000):  # kill while batches are in flight, twice
        while audit.stats.delivered < threshold:
            time.sleep(0.005)
        server.kill()
        time.sleep(0.3)  # the client meets refused connections for a while
        server.start()  # same port
    for producer in producers:
        producer.join()
    assert audit.flush(timeout=120)
    audit.close()

    recorded = [event_id for per_thread in ids for event_id in per_thread]
    assert len(recorded) == THREADS * PER_THREAD
    assert errors == []
    assert audit.stats.delivered == len(recorded)
    with Client(server.url, api_key) as reader:
        exported = [event["id"] for event in reader.export()]
        listed = sum(1 for _ in reader.list(page_size=100, action="kill.test"))
    assert len(exported) == len(recorded) == listed
    assert set(exported) == set(recorded)
