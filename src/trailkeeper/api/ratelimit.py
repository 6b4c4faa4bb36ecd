"""Per-credential request rate limit: a token bucket per API key or key pair.

A key may burst up to `burst` requests, then is held to `rate` per second; past that a request
gets 429 with `Retry-After`. By default buckets live in memory (one per key in use), so with
several server processes the effective limit is per process. With `redis_url` set, the bucket
lives in Redis and every process and host shares it: one Lua script reads, refills and takes a
token atomically, timed by the Redis server's clock (so hosts' clocks need not agree).

If Redis cannot be reached, a request is not refused for it: the process falls back to its own
in-memory bucket (fail open, with a warning) and tries Redis again after `RETRY_SECONDS`. The
limit protects capacity, not secrecy, and an audit event lost because a cache is down would be
worse than a burst that passes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from trailkeeper.config import Settings
from trailkeeper.errors import TrailkeeperError

log = logging.getLogger("trailkeeper.ratelimit")

RETRY_SECONDS = 5.0  # after a Redis failure, use the in-memory bucket this long
REDIS_TIMEOUT_SECONDS = 0.5  # connect and reply timeout: a stalled Redis must not stall requests
KEY_PREFIX = "trailkeeper:ratelimit:"

# KEYS[1]: the bucket; ARGV: rate per second, burst. Returns {allowed (0/1), tokens left as a
# string} (Lua numbers come back truncated to integers otherwise).
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RateLimited(TrailkeeperError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests for this credential; retry in {retry_after} s")
        self.retry_after = retry_after


class Limiter(Protocol):
    def hit(self, key: str) -> None:
        """Take one request for `key`, or raise RateLimited."""


def retry_after(tokens: float, rate: float) -> int:
    """Whole seconds until a bucket holding `tokens` (< 1) has one again."""
    return max(1, math.ceil((1 - tokens) / rate))


class RateLimiter:
    """The in-memory token buckets of one process."""

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
                raise RateLimited(retry_after(tokens, self.rate))
            self._buckets[key] = (tokens - 1, now)


class RedisRateLimiter:
    """Token buckets in Redis, shared by every process and host that uses the same Redis."""

    def __init__(
        self,
        url: str,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._fallback = RateLimiter(rate, burst, clock)
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._script = self._client.register_script(BUCKET_SCRIPT)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._down_until = 0.0

    def hit(self, key: str) -> None:
        if self.rate <= 0:
            return
        if self._clock() < self._down_until:
            self._fallback.hit(key)
            return
        try:
            allowed, tokens = self._script(keys=[KEY_PREFIX + key], args=[self.rate, self.burst])
        except self._errors as exc:
            if self._down_until == 0.0 or self._clock() >= self._down_until:
                log.warning(
                    "Redis unreachable (%s): rate limits are per process for %s s",
                    exc,
                    RETRY_SECONDS,
                )
            self._down_until = self._clock() + RETRY_SECONDS
            self._fallback.hit(key)
            return
        if not int(allowed):
            raise RateLimited(retry_after(float(tokens), self.rate))


def rate_limiter(settings: Settings) -> Limiter:
    """Redis-backed when `redis_url` is set, else in memory."""
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url, settings.rate_limit_per_second, settings.rate_limit_burst
        )
    return RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
