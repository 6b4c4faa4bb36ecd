"""UUIDv7 (RFC 9562, section 5.7) without a dependency: Python 3.11's `uuid` has no uuid7.

48 bits of Unix milliseconds, then 12 bits of a counter seeded at random each millisecond
(method 1 of section 6.2), then 62 random bits. Ids made by one process sort in the order they
were made, even within a millisecond, which keeps the server's id index append-mostly.

Random bits come from os.urandom, read 4 KiB at a time (one system call per 512 ids, since
`record` makes one id per call); a forked child drops its parent's unread bytes, so two
workers forked from one process never hand out the same ones.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_pool = b""
_at = 0
_POOL_BYTES = 4096


def _forget_pool() -> None:
    global _pool, _at, _last_ms
    _pool, _at, _last_ms = b"", 0, 0


os.register_at_fork(after_in_child=_forget_pool)


def _fields() -> tuple[int, int, int]:
    """(milliseconds, counter, 64 random bits), (ms, counter) strictly increasing."""
    global _last_ms, _counter, _pool, _at
    now = time.time_ns() // 1_000_000
    with _lock:
        if _at + 10 > len(_pool):
            _pool, _at = os.urandom(_POOL_BYTES), 0
        random = int.from_bytes(_pool[_at : _at + 8])
        if now > _last_ms:
            _last_ms, _counter = now, int.from_bytes(_pool[_at + 8 : _at + 10]) & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted (or the clock went back): borrow a ms
                _last_ms, _counter = _last_ms + 1, 0
        _at += 10
        return _last_ms, _counter, random


def uuid7() -> str:
    """A new UUIDv7 in its canonical text form (lower-case hex with dashes)."""
    ms, counter, random = _fields()
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | (random >> 2)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
