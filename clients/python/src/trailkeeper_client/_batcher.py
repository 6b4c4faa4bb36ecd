"""Background delivery: a bounded queue, sender threads, batches of up to `batch_size`.

`put` only appends to the queue (the caller's thread never waits for the network, unless the
buffer is full and the policy is `block`). `senders` threads (default 2, so that one encodes
the next batch while the server stores the last) each take a batch when `batch_size` events
are waiting, when the oldest has waited `flush_interval`, or when asked to (flush, close). A
batch is retried until the server answers; every event carries its own id, so a batch that
reached the server before the connection broke is answered 200 the second time and stored once.

A batch the server refuses (4xx) is narrowed down to the events at fault: a 400 names the
failing event (`events[n]` in its details), which goes to the error callback while the others
are sent again; other refusals split the batch in halves until the bad events are alone.
401, 403 and 404 concern every event alike and reject the whole batch.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from trailkeeper_client._transport import Abandoned, Transport
from trailkeeper_client.errors import ApiError, DeliveryError, Reason
from trailkeeper_client.models import Event, Overflow

log = logging.getLogger("trailkeeper_client")
_INDEX = re.compile(r"events\[(\d+)\]")
_WHOLE_BATCH = {401, 403, 404}


class Item:
    """A queued event and when it was recorded (its `occurred_at` unless it has one)."""

    __slots__ = ("event", "recorded_at")

    def __init__(self, event: Event, recorded_at: float) -> None:
        self.event, self.recorded_at = event, recorded_at

    def complete(self) -> Event:
        """The event as sent, the same on every retry: `occurred_at` is fixed once."""
        if "occurred_at" not in self.event:
            self.event["occurred_at"] = timestamp(self.recorded_at)
        return self.event


# One encoder for every batch (json.dumps would build one per call); the whole batch in one
# call, which costs half as much per event as encoding events one by one.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def body(items: list[Item]) -> bytes:
    return _encode({"events": [item.complete() for item in items]}).encode()


def timestamp(seconds: float) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ`, the form the server stores."""
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (
        f".{int((seconds - whole) * 1000):03d}Z"
    )


def log_error(error: DeliveryError) -> None:
    log.error("trailkeeper: %s", error)


@dataclass
class Stats:
    """Counts since the client was made: events stored, refused, dropped, undelivered."""

    delivered: int = 0
    rejected: int = 0
    dropped: int = 0
    undelivered: int = 0


class Batcher:
    def __init__(
        self,
        transport: Transport,
        *,
        batch_size: int,
        flush_interval: float,
        max_buffer: int,
        overflow: Overflow,
        on_error: Callable[[DeliveryError], None],
        close_timeout: float,
        senders: int,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be 1-1000 (the server's batch limit)")
        if max_buffer < batch_size:
            raise ValueError("max_buffer must be at least batch_size")
        self._transport = transport
        self._batch_size, self._interval = batch_size, flush_interval
        self._max_buffer, self._overflow, self._on_error = max_buffer, overflow, on_error
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition()
        self._oldest = 0.0  # monotonic time the oldest queued event was queued
        # Events are numbered in queue order: `_enqueued` were queued, `_dequeued` have left
        # the queue (taken by a sender or dropped); `_inflight` holds the first number of
        # each batch being delivered.
        self._enqueued = self._dequeued = 0
        self._inflight: set[int] = set()
        self._flush_to = 0  # send at once until this many events left the queue
        self._closing = False
        self._deadline: float | None = None
        self._stop = threading.Event()
        self.stats = Stats()
        self.close_timeout = close_timeout
        self._threads = [
            threading.Thread(target=self._run, name=f"trailkeeper-sender-{n}", daemon=True)
            for n in range(senders)
        ]
        for thread in self._threads:
            thread.start()
        with _live_lock:
            _live.add(self)

    # ---- the caller's side ----------------------------------------------------------------

    def put(self, items: list[Item]) -> None:
        dropped: list[Item] = []
        with self._cond:
            if self._closing:
                raise RuntimeError("the trailkeeper client is closed")
            for item in items:
                if len(self._queue) >= self._max_buffer:
                    if self._overflow == "drop_oldest":
                        dropped.append(self._queue.popleft())
                        self._dequeued += 1
                    else:
                        while len(self._queue) >= self._max_buffer and not self._closing:
                            self._cond.wait()
                if not self._queue:
                    self._oldest = time.monotonic()
                self._queue.append(item)
                self._enqueued += 1
                if len(self._queue) == self._batch_size:
                    self._cond.notify_all()
            if dropped:
                self.stats.dropped += len(dropped)
                self._cond.notify_all()
        if dropped:
            self._report("dropped", dropped)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is stored (or given up); False on timeout."""
        with self._cond:
            target = self._enqueued
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done_before(target), timeout)

    def _done_before(self, target: int) -> bool:
        """Whether events numbered below `target` are all stored or given up."""
        return self._dequeued >= target and all(start >= target for start in self._inflight)

    def close(self, timeout: float) -> None:
        """Deliver what is queued, trying for at most `timeout` seconds; then give up on the
        rest (reported as undelivered) and stop the sender."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        give_up_at = time.monotonic() + timeout + 5
        for thread in self._threads:
            thread.join(max(0.0, give_up_at - time.monotonic()))
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with _live_lock:
            _live.discard(self)

    # ---- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            start, batch = taken
            try:
                self._deliver(batch)
            except Exception:  # a bug here must not silently stop delivery
                log.exception("trailkeeper: sender failed")
                self._give_up("undelivered", batch)
            with self._cond:
                self._inflight.discard(start)
                self._cond.notify_all()

    def _due(self) -> bool:
        queue = self._queue
        return bool(queue) and (
            len(queue) >= self._batch_size
            or self._closing
            or self._dequeued < self._flush_to
            or time.monotonic() - self._oldest >= self._interval
        )

    def _take(self) -> tuple[int, list[Item]] | None:
        """The next batch to deliver and its first event's number; None once closed."""
        with self._cond:
            while not self._due():
                if self._closing and not self._queue:
                    return None
                wait = self._interval - (time.monotonic() - self._oldest) if self._queue else None
                self._cond.wait(wait)
            size = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            start = self._dequeued
            self._dequeued += size
            self._inflight.add(start)
            if self._queue:
                self._oldest = time.monotonic()
            self._cond.notify_all()  # room in the buffer for blocked callers
            return start, batch

    def _deliver(self, batch: list[Item]) -> None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._give_up("undelivered", batch)  # closing, out of time: do not try at all
            return
        first, data = self._encodable(batch)
        todo: list[tuple[list[Item], bytes | None]] = [(first, data)]
        while todo:
            part, data = todo.pop()
            if not part:
                continue
            try:
                self._send(data or body(part))
            except ApiError as error:
                todo.extend((rest, None) for rest in self._narrow(part, error))
            except Abandoned:
                left = [item for rest, _ in todo for item in rest]
                self._give_up("undelivered", part + left)
                return
            else:
                with self._cond:  # several senders count
                    self.stats.delivered += len(part)

    def _encodable(self, batch: list[Item]) -> tuple[list[Item], bytes | None]:
        """The batch and its body, less the events that are not JSON (a set, an object in
        metadata...), which are reported: checked one by one only when the batch fails."""
        try:
            return batch, body(batch)
        except (TypeError, ValueError):
            pass
        good = []
        for item in batch:
            try:
                body([item])
            except (TypeError, ValueError) as exc:
                error = ApiError(0, "unencodable", f"not JSON: {exc}")
                self._give_up("rejected", [item], error)
            else:
                good.append(item)
        return good, None

    def _send(self, data: bytes) -> None:
        request = self._transport.http.build_request(
            "POST",
            "/v1/events/batch",
            content=data,
            headers={"Content-Type": "application/json", "Prefer": "return=minimal"},
        )
        try:
            response = self._transport.send(
                request, forever=True, deadline=lambda: self._deadline, stop=self._stop
            )
        except httpx.TransportError:  # cannot happen while retrying forever; never lose a batch
            raise Abandoned from None
        response.close()

    def _narrow(self, part: list[Item], error: ApiError) -> list[list[Item]]:
        """What to send again after `error` refused `part`; the events at fault are reported."""
        if error.status in _WHOLE_BATCH or len(part) == 1:
            self._give_up("rejected", part, error)
            return []
        index = _failing_index(error, len(part))
        if index is not None:
            self._give_up("rejected", [part[index]], error)
            return [part[:index] + part[index + 1 :]]
        middle = len(part) // 2
        return [part[middle:], part[:middle]]  # the first half is popped, so sent, first

    def _give_up(self, reason: Reason, items: list[Item], error: ApiError | None = None) -> None:
        with self._cond:
            if reason == "rejected":
                self.stats.rejected += len(items)
            else:
                self.stats.undelivered += len(items)
        self._report(reason, items, error)

    def _report(self, reason: Reason, items: list[Item], error: ApiError | None = None) -> None:
        try:
            self._on_error(DeliveryError(reason, [item.event for item in items], error))
        except Exception:
            log.exception("trailkeeper: the on_error callback failed")


def _failing_index(error: ApiError, size: int) -> int | None:
    """The event a 400 names (`events[3].actor.id`), if it names exactly one."""
    if error.status != 400:
        return None
    found = {
        int(match.group(1))
        for detail in error.details
        if (match := _INDEX.match(str(detail.get("field", ""))))
    }
    if len(found) == 1 and (index := found.pop()) < size:
        return index
    return None


_live: set[Batcher] = set()
_live_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    """At interpreter exit, deliver what every open client still holds (each within its
    `close_timeout`). The sender threads are daemons, so they still run at this point."""
    with _live_lock:
        batchers = list(_live)
    for batcher in batchers:
        batcher.close(batcher.close_timeout)
