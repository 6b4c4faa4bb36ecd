"""Signs checkpoints in the background while `serve` runs, so they exist without being asked."""

from __future__ import annotations

import logging
import threading

from trailkeeper.errors import TrailkeeperError
from trailkeeper.service import AuditService

log = logging.getLogger("trailkeeper.checkpoints")


class PeriodicCheckpoints:
    def __init__(self, service: AuditService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            try:
                signed = self._service.sign_due_checkpoints()
                if signed:
                    log.info("signed %d checkpoint(s)", signed)
            except TrailkeeperError as exc:  # database away: try again next round
                log.warning("could not sign checkpoints: %s", exc.message)
