"""When to retry and how long to wait: shared by the sync and async transports.

Connection errors, 5xx and 429 are retried; any other 4xx is final (sending the same request
again cannot succeed). Waits grow exponentially with full jitter, so that many clients that
lost the same server do not come back in step; a `Retry-After` from the server is honoured.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from trailkeeper_client.errors import ApiError

MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` for reads (None: no limit); background delivery retries until closed."""

    max_attempts: int | None = 5
    base_delay: float = 0.1
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:  # the server knows best; capped against a bogus header
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy


def retryable(status: int, idempotent: bool = True) -> bool:
    """Whether a response with `status` is worth sending again. A request that is not
    idempotent (creating a tenant or a key) may have taken effect behind a 5xx, so only a 429
    (refused before it was handled) is retried for it."""
    return status == 429 or (idempotent and status >= 500)


def unsent(error: httpx.TransportError, idempotent: bool = True) -> bool:
    """Whether a connection error is worth retrying: any for an idempotent request; for
    another, only one raised before the request could reach the server (sending a key
    creation twice would make two keys, the secret of one lost)."""
    return idempotent or isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date (RFC 9110, 10.2.3)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def api_error(response: httpx.Response) -> ApiError:
    """The server's error body as an ApiError (or the status line when there is none)."""
    try:
        body: Any = response.json()
        error = body["error"]
        return ApiError(
            int(error.get("status", response.status_code)),
            str(error.get("code", "error")),
            str(error.get("message", "")),
            list(error.get("details") or []),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(response.status_code, "http_error", response.reason_phrase or "")
