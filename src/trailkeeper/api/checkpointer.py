"""Signs checkpoints in the background while `serve` runs, so they exist without being asked.

With several workers or hosts on one database, one of them signs at a time: each round, a
process first claims the `checkpoints` lease in the database (held for `lease_seconds`,
renewed every round by its holder). If the holder dies, another takes over once the lease
expires. On shutdown the holder signs what is due once more and gives the lease up.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from trailkeeper.errors import TrailkeeperError
from trailkeeper.service import AuditService

log = logging.getLogger("trailkeeper.checkpoints")

LEASE = "checkpoints"
MIN_LEASE_SECONDS = 30.0


def lease_seconds(interval: float) -> float:
    """How long a claim holds: three rounds, so a holder that is merely slow keeps it."""
    return max(MIN_LEASE_SECONDS, 3 * interval)


class PeriodicCheckpoints:
    def __init__(self, service: AuditService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def start(self) -> None:
        """Start (again, after a stop: an app's lifespan may run more than once)."""
        if self._interval <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="checkpoints", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the rounds, then sign what is due once more (if this process holds the lease)
        and give the lease up: a graceful shutdown leaves no growth unsigned."""
        running = self._thread is not None and self._thread.is_alive()
        self._stop.set()
        if self._thread is not None and running:
            self._thread.join(timeout=10)
        if running:
            self.sign_round()
            self._release()

    def sign_round(self) -> int:
        """Sign every checkpoint that is due if this process holds (or gets) the lease; how
        many were signed. Database errors are logged: the next round tries again."""
        try:
            now_ms = int(time.time() * 1000)
            ttl_ms = int(lease_seconds(self._interval) * 1000)
            if not self._service.store.claim_lease(LEASE, self.holder, now_ms, ttl_ms):
                return 0
            signed = self._service.sign_due_checkpoints()
        except TrailkeeperError as exc:  # database away: try again next round
            log.warning("could not sign checkpoints: %s", exc.message)
            return 0
        if signed:
            log.info("signed %d checkpoint(s)", signed)
        return signed

    def _release(self) -> None:
        try:
            self._service.store.release_lease(LEASE, self.holder)
        except TrailkeeperError as exc:  # it expires by itself
            log.warning("could not release the checkpoint lease: %s", exc.message)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self.sign_round()
