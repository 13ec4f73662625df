"""UUID v7 made in Python, so a process can name rows before inserting them and send dependent statements in one
pipeline instead of waiting for ``RETURNING``. Same layout as ``uuid_generate_v7()``: 48-bit Unix milliseconds,
then random bits; a counter in the random part keeps ids from one process increasing within a millisecond."""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> UUID:
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _counter += 1
            if _counter >= 1 << 12:  # 4096 ids in one millisecond: borrow the next one
                now_ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        _last_ms = now_ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return UUID(int=value)
