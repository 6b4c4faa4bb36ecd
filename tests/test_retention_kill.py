"""SIGKILL in the middle of a purge batch and between logging and applying an erasure: the
log stays consistent and verifiable, and running the job again finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest

from tests.test_retention import BY, Clock, checkpoint_of, export_lines, ingest
from trailkeeper import retention, verifier
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

pytestmark = pytest.mark.slow

# Runs in a child process: the job, killed with SIGKILL at a chosen point inside it.
_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import timedelta
    from trailkeeper import retention
    from trailkeeper.service import AdminActor, AuditService
    from trailkeeper.store import open_store, purge

    url, job, now_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from trailkeeper.model import from_ms
    service = AuditService(open_store(url), clock=lambda: from_ms(now_ms))
    if job == "purge":
        real, batches = purge._purge_prefix, []
        def dying(db, tenant, floor, new_floor):
            batches.append(floor)
            real(db, tenant, floor, new_floor)  # rows deleted, not yet committed
            if len(batches) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        purge._purge_prefix = dying
        retention.purge(service, "acme", batch=10)
    else:
        def dying(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        service.store.redact = dying
        retention.erase(service, "acme", "email", "person3@example.com", "r", AdminActor.cli())
    """
)


def _run_child(database_url: str, job: str, clock: Clock) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    now_ms = int(clock.now.timestamp() * 1000)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, database_url, job, str(now_ms)], env=env, timeout=60
    )
    assert done.returncode == -signal.SIGKILL


def test_sigkill_during_a_purge_leaves_a_verifiable_log(database_url: str) -> None:
    clock = Clock()
    store = open_store(database_url)
    try:
        svc = AuditService(store, clock=clock)
        svc.create_tenant("acme")
        ingest(svc, 60)
        before = svc.checkpoint("acme")
        clock.now += timedelta(days=10)
        ingest(svc, 5, start=100)
        svc.update_tenant("acme", retention_days=5)
        store.close()
        _run_child(database_url, "purge", clock)
        store = open_store(database_url)
        svc = AuditService(store, clock=clock)
        assert store.purged_size("acme") == 20  # two batches committed, the third rolled back
        latest = checkpoint_of(svc)
        assert verifier.verify_export(export_lines(svc), latest).ok
        older, newer, proof = svc.consistency_proof("acme", before.size, latest.size)
        verifier.verify_consistency(before.size, latest.size, older.root, newer.root, proof)
        assert retention.purge(svc, "acme")[0].first_index == 60
        assert verifier.verify_export(export_lines(svc), checkpoint_of(svc)).ok
    finally:
        store.close()


def test_sigkill_during_an_erasure_leaves_a_verifiable_log(database_url: str) -> None:
    clock = Clock()
    store = open_store(database_url)
    try:
        svc = AuditService(store, clock=clock)
        svc.create_tenant("acme")
        ingest(svc, 20)
        store.close()
        _run_child(database_url, "erase", clock)
        store = open_store(database_url)
        svc = AuditService(store, clock=clock)
        lines = export_lines(svc)
        assert any(b"trailkeeper.erasure" in line for line in lines)  # logged, not applied
        assert verifier.verify_export(lines, checkpoint_of(svc)).ok
        assert retention.erase(svc, "acme", "email", "person3@example.com", "r", BY).events == 4
        report = verifier.verify_export(export_lines(svc), checkpoint_of(svc))
        assert report.ok, report.message
    finally:
        store.close()
