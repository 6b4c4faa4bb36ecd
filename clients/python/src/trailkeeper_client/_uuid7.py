"""UUIDv7 (RFC 9562, section 5.7) without a dependency: Python 3.11's `uuid` has no uuid7.

48 bits of Unix milliseconds, then 12 bits of a counter seeded at random each millisecond
(method 1 of section 6.2), then 62 random bits. Ids made by one process sort in the order they
were made, even within a millisecond, which keeps the server's id index append-mostly.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _next() -> tuple[int, int]:
    """(milliseconds, counter), strictly increasing across calls in this process."""
    global _last_ms, _counter
    now = time.time_ns() // 1_000_000
    with _lock:
        if now > _last_ms:
            _last_ms, _counter = now, int.from_bytes(os.urandom(2)) & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted (or the clock went back): borrow a ms
                _last_ms, _counter = _last_ms + 1, 0
        return _last_ms, _counter


def uuid7() -> str:
    """A new UUIDv7 in its canonical text form (lower-case hex with dashes)."""
    ms, counter = _next()
    rand = int.from_bytes(os.urandom(8)) & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
