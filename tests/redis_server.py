"""A local Redis for the tests that need one: started when missing (as CI expects); a test
skips without it, except under CI=true, where it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

REDIS_URL = os.environ.get("TRAILKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _ping() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def need_redis() -> str:
    """The URL of a running Redis (database 15, emptied), starting a local one if needed."""
    if not _ping() and shutil.which("redis-server"):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not _ping() and time.monotonic() < deadline:
            time.sleep(0.1)
    if not _ping():
        message = f"Redis unreachable at {REDIS_URL} (and redis-server could not start it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: Redis tests must run)")
        pytest.skip(message)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL
