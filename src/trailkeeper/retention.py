"""Retention, erasure and legal holds (docs/retention.md), on top of `AuditService`.

Purge removes the prefix of a tenant's log received before its retention window, in batches;
erasure replaces a person's data in their events by "[erased]" after logging, in the tenant's
own log, which events it changes (signed with the checkpoint key, so `verify` can tell a
logged erasure from tampering); a legal hold stops both.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from trailkeeper.errors import Conflict, InvalidInput, NotFound, TrailkeeperError
from trailkeeper.model import EventIn, LegalHold
from trailkeeper.service import AdminActor, AuditService
from trailkeeper.verifier import erasure_statement

log = logging.getLogger("trailkeeper.retention")

PURGE_BATCH = 1000  # events per purge transaction: the writer is never held for long
ERASURE_PART = 500  # log indexes listed per erasure event (metadata is at most 8 KiB)
SUBJECT_KINDS = ("actor_id", "email", "target_id")
ERASURE_ACTION = "trailkeeper.erasure"
LEASE = "purge"
# The share of time the purge job in `serve` spends in batches: ingest keeps the rest of the
# writer (>= 70% of its rate without a purge, bench/retention.py).
BACKGROUND_SHARE = 0.25


class PurgeResult(msgspec.Struct, frozen=True):
    tenant: str
    purged: int
    first_index: int  # the tenant's log now starts here


class ErasureResult(msgspec.Struct, frozen=True):
    id: str
    tenant: str
    subject_kind: str
    events: int  # how many events named the subject (and were redacted)
    log_indexes: list[int]
    logged_as: list[str]  # the ids of the erasure events in the tenant's log


def subject_key(service: AuditService) -> bytes:
    """The server's key for hashing subject identifiers (kept in the database's settings):
    the log records which subject an erasure or hold concerns without storing who it is."""
    value = service.store.get_or_create_setting("subject_key", secrets.token_hex(32))
    return value.encode()


def subject_hash(service: AuditService, kind: str, value: str) -> str:
    if kind not in SUBJECT_KINDS:
        raise InvalidInput(f"subject must be one of {', '.join(SUBJECT_KINDS)}")
    digest = hmac.new(subject_key(service), f"{kind}:{value}".encode(), hashlib.sha256)
    return "hmac-sha256:" + digest.hexdigest()


# ---- retention ---------------------------------------------------------------------------


def purge(
    service: AuditService,
    tenant: str | None = None,
    *,
    dry_run: bool = False,
    batch: int = PURGE_BATCH,
    share: float = 1.0,
) -> list[PurgeResult]:
    """Purge every tenant with a retention policy (or just `tenant`) down to its window.
    A tenant on legal hold is skipped (with `tenant` given: 409). `share` < 1 paces the
    batches so that they take at most that share of the time: after a batch that took t
    seconds it waits t * (1 / share - 1), leaving the writer to ingest the rest."""
    tenants = [service.require_tenant(tenant)] if tenant else service.list_tenants()
    results = []
    for found in tenants:
        if found.retention_days is None:
            continue
        if any(hold.subject is None for hold in service.store.holds(found.id)):
            if tenant:
                raise Conflict(f"tenant {found.id!r} is on legal hold: nothing is purged")
            continue
        cutoff = service.now() - timedelta(days=found.retention_days)
        results.append(_purge_tenant(service, found.id, cutoff, dry_run, batch, share))
    return results


def _purge_tenant(
    service: AuditService, tenant: str, cutoff: datetime, dry_run: bool, batch: int, share: float
) -> PurgeResult:
    store = service.store
    floor = store.purged_size(tenant)
    total = 0
    while True:
        started = time.monotonic()
        if dry_run:
            count = store.purgeable(tenant, cutoff, floor + total, batch)
        else:
            count = store.purge_batch(tenant, cutoff, batch)
        total += count
        if count < batch:
            break
        if share < 1:
            time.sleep((time.monotonic() - started) * (1 / share - 1))
    return PurgeResult(tenant, total, floor + total if dry_run else store.purged_size(tenant))


class PeriodicPurge:
    """Purges in the background while `serve` runs (like api/checkpointer.py: one process of
    any number holds the `purge` lease at a time; the others skip the round)."""

    def __init__(self, service: AuditService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def start(self) -> None:
        if self._interval <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="purge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(TrailkeeperError):  # it expires by itself
            self._service.store.release_lease(LEASE, self.holder)

    def purge_round(self) -> int:
        """Purge what is due if this process holds (or gets) the lease; events purged."""
        try:
            now_ms = int(time.time() * 1000)
            ttl_ms = int(max(60.0, 3 * self._interval) * 1000)
            if not self._service.store.claim_lease(LEASE, self.holder, now_ms, ttl_ms):
                return 0
            purged = sum(r.purged for r in purge(self._service, share=BACKGROUND_SHARE))
        except TrailkeeperError as exc:  # database away: try again next round
            log.warning("could not purge: %s", exc.message)
            return 0
        if purged:
            log.info("purged %d event(s) past their retention", purged)
        return purged

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.purge_round()


# ---- erasure -----------------------------------------------------------------------------


def erase(
    service: AuditService, tenant: str, kind: str, value: str, reason: str, by: AdminActor
) -> ErasureResult:
    """Erase a subject's personal data from the tenant's events (docs/retention.md).

    First the erasure is logged, as events in the tenant's own log naming the log indexes it
    changes (signed by the checkpoint key); then the rows are rewritten in one transaction. A
    crash between the two leaves the events as they were, the log verifiable, and the erasure
    to be run again."""
    found = service.require_tenant(tenant)
    if not value or not reason.strip():
        raise InvalidInput("an erasure needs a subject and a reason")
    digest = subject_hash(service, kind, value)
    for hold in service.store.holds(found.id):
        if hold.subject in (None, digest):
            raise Conflict(f"legal hold {hold.id} covers this subject: nothing was erased")
    indexes = service.store.subject_events(found.id, kind, value)
    erasure_id = "er_" + secrets.token_hex(8)
    parts = [indexes[i : i + ERASURE_PART] for i in range(0, len(indexes), ERASURE_PART)] or [[]]
    logged = []
    for number, part in enumerate(parts, 1):
        statement = erasure_statement(service.origin(found.id), erasure_id, number, part)
        signature = base64.b64encode(service.signer.sign(statement)).decode()
        metadata: dict[str, Any] = {
            "erasure": erasure_id,
            "part": number,
            "parts": len(parts),
            "reason": reason,
            "subject_kind": kind,
            "events": len(indexes),
            "log_indexes": part,
            "signature": signature,
        }
        event_id = f"{erasure_id}.{number}"
        _log(service, found.id, event_id, ERASURE_ACTION, by, digest, metadata)
        logged.append(event_id)
    service.store.redact(found.id, kind, value, indexes, found.personal_metadata_keys)
    return ErasureResult(erasure_id, found.id, kind, len(indexes), indexes, logged)


def _log(
    service: AuditService,
    tenant: str,
    event_id: str,
    action: str,
    by: AdminActor,
    subject: str | None,
    metadata: dict[str, Any],
) -> None:
    """Append a retention event to the tenant's own log, through the normal ingest path."""
    document = {
        "id": event_id,
        "action": action,
        "type": "retention",
        "actor": {"id": by.id, "type": by.kind},
        "target": {"type": "subject" if subject else "tenant", "id": subject or tenant},
        "source": "trailkeeper",
        "metadata": metadata,
    }
    service.ingest(tenant, [msgspec.convert(document, EventIn)])


# ---- legal holds -------------------------------------------------------------------------


def place_hold(
    service: AuditService,
    tenant: str,
    reason: str,
    by: AdminActor,
    subject: tuple[str, str] | None = None,
) -> LegalHold:
    """Hold the whole tenant (subject None) or one subject: no purge, no erasure of it."""
    found = service.require_tenant(tenant)
    if not reason.strip():
        raise InvalidInput("a legal hold needs a reason")
    digest = subject_hash(service, *subject) if subject else None
    hold = LegalHold(
        id="lh_" + secrets.token_hex(8),
        tenant=found.id,
        subject=digest,
        reason=reason,
        created_at=service.now(),
    )
    service.store.add_hold(hold)
    _log(
        service,
        found.id,
        f"{hold.id}.placed",
        "trailkeeper.legal_hold.placed",
        by,
        digest,
        {"hold": hold.id, "reason": reason},
    )
    return hold


def lift_hold(service: AuditService, tenant: str, hold_id: str, by: AdminActor) -> None:
    found = service.require_tenant(tenant)
    holds = {hold.id: hold for hold in service.store.holds(found.id)}
    if hold_id not in holds or not service.store.remove_hold(found.id, hold_id):
        raise NotFound(f"no legal hold {hold_id!r}")
    _log(
        service,
        found.id,
        f"{hold_id}.lifted",
        "trailkeeper.legal_hold.lifted",
        by,
        holds[hold_id].subject,
        {"hold": hold_id},
    )


def list_holds(service: AuditService, tenant: str) -> Sequence[LegalHold]:
    return service.store.holds(service.require_tenant(tenant).id)
