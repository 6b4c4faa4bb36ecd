"""Running the app under uvicorn: slow-client limits, draining on SIGTERM, several workers.

`serve` binds its sockets itself (cli.py) and hands them here. One worker runs uvicorn in the
process; `--workers N` forks N processes that share the sockets (the kernel spreads new
connections over them) and starts a worker again when one dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trailkeeper.config import Settings

log = logging.getLogger("trailkeeper.server")

RESTART_BACKOFF_SECONDS = 1.0  # a worker that dies sooner than this after starting waits first


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request line and headers take
    longer than the configured timeout (uvicorn has no such timeout: a client sending a header
    byte every few seconds would hold its connection forever)."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a later request on a keep-alive connection
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        log.debug("closed a connection whose headers took over %s s", self.header_timeout)
        self.transport.close()


def protocol_class(header_timeout: float) -> type[HeaderTimeoutProtocol]:
    return type("Protocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})


class Server(uvicorn.Server):
    """uvicorn's server with a drain period and a clean exit on SIGTERM.

    On the first SIGTERM or SIGINT the server keeps serving for `drain_seconds` while
    `draining` is set (/healthz then answers 503, so a load balancer stops sending new
    requests), then stops accepting, lets in-flight requests finish (at most
    `timeout_graceful_shutdown`) and runs the app's shutdown. A second signal skips the rest
    of the drain. Unlike uvicorn's, it does not re-raise the signal afterwards, so the process
    exits 0 after a graceful stop.
    """

    def __init__(
        self, config: uvicorn.Config, drain_seconds: float, draining: threading.Event
    ) -> None:
        super().__init__(config)
        self._drain_seconds = drain_seconds
        self._draining = draining
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_until is None and self._drain_seconds > 0 and not self.should_exit:
            self._drain_until = time.monotonic() + self._drain_seconds
            self._draining.set()
            log.info("draining for %s s before shutting down", self._drain_seconds)
            return
        self._draining.set()
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def run_server(
    app: Any, settings: Settings, sockets: list[socket.socket], draining: threading.Event
) -> bool:
    """Serve `app` on sockets already bound until SIGTERM/SIGINT; whether it started."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(settings.header_timeout_seconds),
        log_level=settings.log_level,
        log_config=None,  # configure_logging's handler formats uvicorn's records too
        access_log=False,  # the access line is trailkeeper's own (api/observability.py)
        server_header=False,
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_seconds)),
    )
    server = Server(config, settings.shutdown_drain_seconds, draining)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    return server.started


def supervise(workers: int, run_worker: Callable[[], int]) -> int:
    """Fork `workers` processes that each return `run_worker()`'s exit code, start a new one
    when one dies, and on SIGTERM/SIGINT pass SIGTERM on and wait for all of them.

    Returns 0 when every worker stopped cleanly, else 1. Call it with no other threads running
    (fork copies only the calling thread).
    """
    children: dict[int, float] = {}  # pid -> when it started
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(_child(run_worker))
        children[pid] = time.monotonic()

    def stop(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # SIGTERM even for SIGINT: a 2nd SIGINT forces

    original = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed = False
    try:
        for _ in range(workers):
            spawn()
        while children:
            pid, status = os.wait()
            started = children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failed = failed or code != 0
                continue
            log.warning("worker %d exited with %d; starting another", pid, code)
            if time.monotonic() - started < RESTART_BACKOFF_SECONDS:
                time.sleep(RESTART_BACKOFF_SECONDS)
            if not stopping:
                spawn()
    finally:
        for sig, handler in original.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


def _child(run_worker: Callable[[], int]) -> int:
    """A worker's exit code: never returns into the parent's code after fork."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    try:
        return run_worker()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker failed")
        return 1
    finally:
        logging.shutdown()
