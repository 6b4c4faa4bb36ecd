"""The deliverer: the background job inside `serve` that pushes each stream's events.

One thread per server process runs an asyncio loop. Every second it lists the streams and
claims a database lease (`stream:<id>`, the mechanism the checkpointer uses) for each unpaused
stream it does not run yet, renewing those it holds every `lease_seconds / 3`; for each stream
it holds it runs one task, so exactly one process of any host delivers a stream, and another
takes over once a dead holder's lease expires.

A task reads a bounded batch after the stream's position (the database is the buffer: a
destination that is down costs no memory), sends the events that pass the filters, and
advances the position only once the destination acknowledged them, by compare-and-set (a
replay made meanwhile wins). A failed attempt is retried after an exponential backoff with
full jitter; after `retry_budget` attempts in a row the stream is marked `failing` and keeps
retrying at the longest backoff, never skipping an event. Events missing below the first
retained one (a purged prefix) are skipped and counted as `purged`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ParamSpec, TypeVar

from trailkeeper.errors import TrailkeeperError
from trailkeeper.model import Event, utc_now_ms
from trailkeeper.store import Store
from trailkeeper.streams.destinations import DeliveryError, Senders
from trailkeeper.streams.model import Stream

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("trailkeeper.streams")

LEASE_PREFIX = "stream:"


@dataclass(frozen=True)
class DeliveryOptions:
    poll_seconds: float = 0.2  # how often an idle stream looks for new events
    lease_seconds: float = 30.0  # how long a dead holder keeps a stream
    retry_budget: int = 8  # failed attempts in a row before the stream is `failing`
    first_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0  # the longest wait between attempts


def backoff(attempt: int, options: DeliveryOptions, rand: Callable[[], float]) -> float:
    """Full jitter: a random wait up to `first * 2^(attempt-1)`, capped."""
    ceiling = min(options.max_backoff_seconds, options.first_backoff_seconds * 2 ** (attempt - 1))
    return max(0.05, float(ceiling * rand()))


class StreamDeliverer:
    def __init__(
        self,
        store: Store,
        options: DeliveryOptions,
        *,
        clock: Callable[[], datetime] = utc_now_ms,
        senders: Callable[[], Senders] = Senders,
    ) -> None:
        self._store = store
        self.options = options
        self._clock = clock
        self._make_senders = senders
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._rand = random.SystemRandom().random
        self._ready = threading.Event()
        # New streams are looked for every second; held leases are renewed every third of
        # their length (a claim is a write: not every second for every stream).
        self._discover_seconds = min(1.0, options.lease_seconds / 3)
        self._renewed: dict[str, float] = {}

    # ---- lifecycle (called by the app's startup and shutdown) ----------------------------

    def start(self) -> None:
        if self.options.poll_seconds <= 0 or (self._thread and self._thread.is_alive()):
            return
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="streams", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        """Cancel the tasks (a batch in flight is sent again by the next holder) and give
        the leases up, so another server takes over at once."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=15)
        self._thread = None

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        senders = self._make_senders()
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            while not self._stopping.is_set():
                try:
                    await self._supervise(tasks, senders)
                except TrailkeeperError as exc:  # the database is away: next round
                    log.warning("streams: database error: %s", exc.message)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._discover_seconds)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for stream_id in tasks:
                with contextlib.suppress(TrailkeeperError):  # it expires by itself
                    await self._call(
                        self._store.release_lease, LEASE_PREFIX + stream_id, self.holder
                    )
            await senders.close()

    async def _supervise(self, tasks: dict[str, asyncio.Task[None]], senders: Senders) -> None:
        """Start a task for each stream whose lease this process holds; end the others."""
        streams = await self._call(self._store.list_streams, None)
        wanted = set()
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self.options.lease_seconds * 1000)
        for stream in streams:
            if stream.paused:
                continue
            running = tasks.get(stream.id)
            renewed = self._renewed.get(stream.id, 0.0)
            if running and not running.done() and now_ms - renewed < ttl_ms / 3:
                wanted.add(stream.id)
                continue
            held = await self._call(
                self._store.claim_lease, LEASE_PREFIX + stream.id, self.holder, now_ms, ttl_ms
            )
            if held:
                self._renewed[stream.id] = now_ms
                wanted.add(stream.id)
                task = tasks.get(stream.id)
                if task is None or task.done():
                    tasks[stream.id] = asyncio.create_task(
                        self._deliver(stream.tenant, stream.id, senders), name=stream.id
                    )
        for stream_id in list(tasks):
            if stream_id not in wanted:
                tasks.pop(stream_id).cancel()
                self._renewed.pop(stream_id, None)
                await self._call(self._store.release_lease, LEASE_PREFIX + stream_id, self.holder)

    # ---- one stream ---------------------------------------------------------------------

    async def _deliver(self, tenant: str, stream_id: str, senders: Senders) -> None:
        """Deliver batch after batch until the stream is gone or paused (or cancelled)."""
        while True:
            try:
                if not await self._step(tenant, stream_id, senders):
                    return
            except TrailkeeperError as exc:  # the database is away: try again shortly
                log.warning("stream %s: database error: %s", stream_id, exc.message)
                await asyncio.sleep(max(1.0, self.options.poll_seconds))

    async def _step(self, tenant: str, stream_id: str, senders: Senders) -> bool:
        """One round: deliver a batch if one is due; False once the stream is gone or
        paused."""
        poll = self.options.poll_seconds
        stream = await self._call(self._store.get_stream, tenant, stream_id)
        if stream is None or stream.paused:
            return False
        events = await self._call(
            self._store.events_after, tenant, stream.position, stream.batch_size
        )
        if not events:
            await asyncio.sleep(poll)
        elif len(events) < stream.batch_size and not self._batch_due(stream, events):
            await asyncio.sleep(poll)  # let the batch fill up to batch_wait_ms
        else:
            await self._deliver_batch(stream, events, senders)
        return True

    def _batch_due(self, stream: Stream, events: Sequence[Event]) -> bool:
        age = (self._clock() - events[0].received_at).total_seconds() * 1000
        return age >= stream.batch_wait_ms

    async def _deliver_batch(
        self, stream: Stream, events: Sequence[Event], senders: Senders
    ) -> None:
        """Send one batch until acknowledged, then advance; give up on the batch (without
        advancing) if the stream was paused, replayed or deleted meanwhile."""
        upto = events[-1].log_index
        first = events[0].log_index
        assert upto is not None
        assert first is not None
        purged = first - stream.position - 1
        if purged:
            log.warning(
                "stream %s: log indexes %d-%d are gone (purged); skipped",
                stream.id,
                stream.position + 1,
                first - 1,
            )
        matching = [e for e in events if stream.filters.matches(e)]
        attempt = 0
        while matching:
            try:
                await senders.for_stream(stream).send(stream, matching, self._clock())
                break
            except DeliveryError as exc:
                attempt += 1
                failing = attempt >= self.options.retry_budget
                await self._call(
                    self._store.record_stream_failure,
                    stream.id,
                    str(exc),
                    self._clock(),
                    failing=failing,
                )
                if attempt == 1 or (failing and attempt == self.options.retry_budget):
                    log.warning(
                        "stream %s: delivery failed (attempt %d): %s", stream.id, attempt, exc
                    )
                await asyncio.sleep(backoff(attempt, self.options, self._rand))
                current = await self._call(self._store.get_stream, stream.tenant, stream.id)
                if current is None or current.paused or current.position != stream.position:
                    return
                stream = current  # a rotated secret signs the next attempt
        await self._call(
            self._store.record_stream_delivery,
            stream.id,
            stream.position,
            upto,
            len(matching),
            purged,
            self._clock(),
        )

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A store call in a worker thread, so the loop keeps serving other streams."""
        return await asyncio.to_thread(fn, *args, **kwargs)
