"""One checkpoint signer at a time across processes and hosts (api/checkpointer.py)."""

from __future__ import annotations

import msgspec

from trailkeeper.api.checkpointer import LEASE, PeriodicCheckpoints
from trailkeeper.model import EventIn
from trailkeeper.service import AuditService
from trailkeeper.store import Store, open_store

EVENT = msgspec.convert({"action": "a.b", "actor": {"id": "u"}}, EventIn)


def test_lease_has_one_holder_until_it_expires_or_is_released(
    store: Store, database_url: str
) -> None:
    other = open_store(database_url, sqlite_synchronous="NORMAL")  # another process's store
    try:
        assert store.claim_lease(LEASE, "host-a", now_ms=1_000, ttl_ms=30_000)
        assert not other.claim_lease(LEASE, "host-b", now_ms=2_000, ttl_ms=30_000)
        assert store.claim_lease(LEASE, "host-a", now_ms=3_000, ttl_ms=30_000)  # renewed
        assert not other.claim_lease(LEASE, "host-b", now_ms=32_999, ttl_ms=30_000)
        assert other.claim_lease(LEASE, "host-b", now_ms=33_001, ttl_ms=30_000)  # expired
        assert not store.claim_lease(LEASE, "host-a", now_ms=34_000, ttl_ms=30_000)
        store.release_lease(LEASE, "host-a")  # not its lease: nothing happens
        assert not store.claim_lease(LEASE, "host-a", now_ms=34_000, ttl_ms=30_000)
        other.release_lease(LEASE, "host-b")
        assert store.claim_lease(LEASE, "host-a", now_ms=35_000, ttl_ms=30_000)
    finally:
        other.close()


def test_only_the_lease_holder_signs_and_stop_flushes(store: Store) -> None:
    service = AuditService(store)
    service.create_tenant("acme", "Acme")
    first = PeriodicCheckpoints(service, interval=3600)
    second = PeriodicCheckpoints(service, interval=3600)
    service.ingest("acme", [EVENT])
    assert second.sign_round() == 1  # second takes the free lease and signs
    service.ingest("acme", [EVENT])
    assert first.sign_round() == 0  # held by second
    second.start()
    second.stop()  # a graceful stop signs what is due and gives the lease up
    assert service.store.get_checkpoint("acme") is not None
    assert service.store.get_checkpoint("acme").size == 2  # type: ignore[union-attr]
    service.ingest("acme", [EVENT])
    assert first.sign_round() == 1
