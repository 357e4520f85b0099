"""Checkpoint ids: ULIDs, 26 characters that sort by creation time and are unique anywhere."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as the ULID spec says
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def new_id() -> str:
    """Return a new ULID string.

    Within one millisecond the random part is incremented (the spec's monotonic mode), so ids
    made by one process sort in the order they were made; across processes and machines the
    80 random bits keep them unique.
    """
    global _last_ms, _last_random  # noqa: PLW0603 - process-wide monotonic state, locked
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _last_random += 1
            if _last_random >> _RANDOM_BITS:  # 2**80 ids in one ms: borrow the next ms
                ms += 1
                _last_random = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # One bit of headroom so the increments above practically never overflow.
            _last_random = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms = ms
        value = (ms << _RANDOM_BITS) | _last_random
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
