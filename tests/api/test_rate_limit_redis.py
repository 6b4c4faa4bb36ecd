"""Rate limits in Redis: one bucket per key for every process; Redis away -> fail open to the
process's own bucket."""

from __future__ import annotations

import pytest

from tests.e2e.server import free_port
from tests.redis_server import need_redis
from trailkeeper.api.ratelimit import RateLimited, RateLimiter, RedisRateLimiter, rate_limiter
from trailkeeper.config import load_settings


@pytest.fixture
def redis_url() -> str:
    return need_redis()


def test_two_processes_share_one_bucket(redis_url: str) -> None:
    """Two limiters (as two workers or hosts would have) draw from the same bucket: the
    burst of 4 is spent across both, then both refuse."""
    first = RedisRateLimiter(redis_url, rate=0.01, burst=4)
    second = RedisRateLimiter(redis_url, rate=0.01, burst=4)
    for limiter in (first, second, first, second):
        limiter.hit("acme/key-1")
    for limiter in (first, second):
        with pytest.raises(RateLimited) as limited:
            limiter.hit("acme/key-1")
        assert limited.value.retry_after >= 1
    second.hit("acme/key-2")  # buckets are per key


def test_tokens_come_back_at_the_rate(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, rate=1000, burst=1)
    limiter.hit("k")
    # At 1000/s a token is back within a millisecond; Redis' clock decides, so wait for it.
    for _ in range(100):
        try:
            limiter.hit("k")
            break
        except RateLimited:
            continue
    else:
        pytest.fail("no token came back at 1000/s")


def test_redis_down_fails_open_to_the_local_bucket() -> None:
    """Nothing listens at this port: requests still pass up to the local burst, then the
    process's own limit refuses them (it is not unlimited)."""
    now = [0.0]
    limiter = RedisRateLimiter(
        f"redis://127.0.0.1:{free_port()}/0", rate=0.01, burst=2, clock=lambda: now[0]
    )
    limiter.hit("k")
    limiter.hit("k")
    with pytest.raises(RateLimited):
        limiter.hit("k")


def test_the_setting_picks_the_backend(redis_url: str) -> None:
    assert isinstance(rate_limiter(load_settings({})), RateLimiter)
    chosen = rate_limiter(load_settings({"TRAILKEEPER_REDIS_URL": redis_url}))
    assert isinstance(chosen, RedisRateLimiter)


def test_a_bad_redis_url_is_refused_at_start() -> None:
    from trailkeeper.errors import InvalidInput

    with pytest.raises(InvalidInput, match="TRAILKEEPER_REDIS_URL must start with redis://"):
        load_settings({"TRAILKEEPER_REDIS_URL": "localhost:6379"})
