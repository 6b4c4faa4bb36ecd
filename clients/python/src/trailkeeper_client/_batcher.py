"""Background delivery: a bounded queue, one sender thread, batches of up to `batch_size`.

`put` only appends to the queue (the caller's thread never waits for the network, unless the
buffer is full and the policy is `block`). The sender takes a batch when `batch_size` events
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
    """A queued event, with its wire form once encoded (the same bytes on every retry)."""

    __slots__ = ("data", "event", "recorded_at")

    def __init__(self, event: Event, recorded_at: float) -> None:
        self.event, self.recorded_at = event, recorded_at
        self.data: bytes | None = None

    def encode(self) -> bytes:
        if self.data is None:
            if "occurred_at" not in self.event:
                self.event["occurred_at"] = timestamp(self.recorded_at)
            self.data = json.dumps(
                self.event, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        return self.data


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
        self._enqueued = self._resolved = 0  # events queued, and since stored or given up
        self._flush_to = 0  # send at once until this many events were taken
        self._taken = 0
        self._closing = False
        self._deadline: float | None = None
        self._stop = threading.Event()
        self.stats = Stats()
        self.close_timeout = close_timeout
        self._thread = threading.Thread(target=self._run, name="trailkeeper-sender", daemon=True)
        self._thread.start()
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
                        self._resolved += 1
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
            return self._cond.wait_for(lambda: self._resolved >= target, timeout)

    def close(self, timeout: float) -> None:
        """Deliver what is queued, trying for at most `timeout` seconds; then give up on the
        rest (reported as undelivered) and stop the sender."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + 5)
        self._stop.set()
        self._thread.join()
        with _live_lock:
            _live.discard(self)

    # ---- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._deliver(batch)
            except Exception:  # a bug here must not silently stop delivery
                log.exception("trailkeeper: sender failed")
                self._give_up("undelivered", batch)
            with self._cond:
                self._resolved += len(batch)
                self._cond.notify_all()

    def _due(self) -> bool:
        queue = self._queue
        return bool(queue) and (
            len(queue) >= self._batch_size
            or self._closing
            or self._taken < self._flush_to
            or time.monotonic() - self._oldest >= self._interval
        )

    def _take(self) -> list[Item] | None:
        with self._cond:
            while not self._due():
                if self._closing and not self._queue:
                    return None
                wait = self._interval - (time.monotonic() - self._oldest) if self._queue else None
                self._cond.wait(wait)
            size = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            self._taken += size
            if self._queue:
                self._oldest = time.monotonic()
            self._cond.notify_all()  # room in the buffer for blocked callers
            return batch

    def _deliver(self, batch: list[Item]) -> None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._give_up("undelivered", batch)  # closing, out of time: do not try at all
            return
        todo = [self._encodable(batch)]
        while todo:
            part = todo.pop()
            if not part:
                continue
            try:
                self._send(part)
            except ApiError as error:
                todo.extend(self._narrow(part, error))
            except Abandoned:
                self._give_up("undelivered", [item for rest in (*todo, part) for item in rest])
                return
            else:
                self.stats.delivered += len(part)

    def _encodable(self, batch: list[Item]) -> list[Item]:
        good = []
        for item in batch:
            try:
                item.encode()
            except (TypeError, ValueError) as exc:
                error = ApiError(0, "unencodable", f"not JSON: {exc}")
                self._give_up("rejected", [item], error)
            else:
                good.append(item)
        return good

    def _send(self, part: list[Item]) -> None:
        body = b'{"events":[' + b",".join(item.encode() for item in part) + b"]}"
        request = self._transport.http.build_request(
            "POST",
            "/v1/events/batch",
            content=body,
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
