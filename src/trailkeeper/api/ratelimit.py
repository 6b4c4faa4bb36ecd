"""Per-credential request rate limit: a token bucket per API key or key pair, per process.

A key may burst up to `burst` requests, then is held to `rate` per second; past that a request
gets 429 with `Retry-After`. Buckets live in memory (one per key in use), so with several
server processes the effective limit is per process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from trailkeeper.errors import TrailkeeperError


class RateLimited(TrailkeeperError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests for this credential; retry in {retry_after} s")
        self.retry_after = retry_after


class RateLimiter:
    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated at)
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Take one token for `key`, or raise RateLimited. A rate of 0 disables the limit."""
        if self.rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                raise RateLimited(max(1, math.ceil((1 - tokens) / self.rate)))
            self._buckets[key] = (tokens - 1, now)
