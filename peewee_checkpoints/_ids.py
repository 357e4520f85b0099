"""Checkpoint ids: ULIDs, 26 characters that sort by creation time and are unique anywhere."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as the ULID spec says
_RANDOM_BITS = 80


class _Generator:
    """Monotonic ULID state: the last millisecond used and the random part given out in it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                # Within one millisecond (or after the clock stepped back) the random part is
                # incremented, the spec's monotonic mode: ids made by one process sort in the
                # order they were made.
                ms = self._last_ms
                self._last_random += 1
                if self._last_random >> _RANDOM_BITS:  # 2**79 ids in one ms: borrow the next
                    ms += 1
                    self._last_random = _fresh_random()
            else:
                self._last_random = _fresh_random()
            self._last_ms = ms
            value = (ms << _RANDOM_BITS) | self._last_random
        chars = []
        for _ in range(26):
            chars.append(_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(chars))


def _fresh_random() -> int:
    # 79 random bits: one bit of headroom so the increments above practically never overflow;
    # across processes and machines the random bits keep ids unique.
    return int.from_bytes(os.urandom(10), "big") >> 1


#: Return a new ULID string (thread-safe, monotonic within the process).
new_id = _Generator()
