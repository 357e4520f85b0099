"""State encoding: JSON bytes, checked to round-trip exactly before anything is written."""

from __future__ import annotations

import json
from typing import Any

import orjson

from .errors import InvalidCheckpointError, StorageError

# Leads the text the standard library encoded. JSON allows leading whitespace, so it is still
# plain JSON to any reader; to _loads it says "orjson must not decode this".
_STDLIB_MARK = b" "


def _dumps(state: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(state)
    except (TypeError, orjson.JSONEncodeError):
        # orjson stops at 254 levels of nesting, at 64-bit ints and at lone surrogates; the
        # standard library handles all three (ASCII escapes keep the bytes valid UTF-8).
        # Anything it cannot encode either is refused by the caller.
        text = json.dumps(state, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return _STDLIB_MARK + text.encode()


def _loads(data: bytes) -> Any:
    if data[:1] == _STDLIB_MARK:
        # orjson would read an integer beyond 64 bits as a float: 2**64 came back as
        # 1.8446744073709552e19 (equal to it, so the round-trip check passed, but a float).
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps_json(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of ``value``, exact for every value a state may hold (no mark)."""
    data = _dumps(value)
    return data[1:] if data[:1] == _STDLIB_MARK else data


# For JSON from elsewhere (an import file), which carries no mark: every integer of 18 digits
# or fewer fits in 64 bits, so only text with a run of 19 digits may hold one orjson would turn
# into a float; that text goes to the standard library. Mapping digits to "0" and searching
# costs about 1 ms per MB (a regular expression took 19 ms).
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19


def loads_json(data: bytes) -> Any:
    """Parse JSON text from anywhere exactly: integers of any size stay ints."""
    if _LONG_RUN in data.translate(_DIGITS_TO_ZERO):
        return json.loads(data)
    return _loads(data)


def encode_state(state: object) -> bytes:
    """Encode ``state`` as UTF-8 JSON, or raise :class:`InvalidCheckpointError`.

    The encoded bytes are decoded again and compared with ``state``: that one check refuses
    everything JSON would silently change (NaN, tuples, non-str keys, datetimes, UUIDs, ...),
    and it is what makes ``retrieve_checkpoint(...) == stored`` a guarantee, not a hope.
    """
    if type(state) is not dict:
        raise InvalidCheckpointError(
            f"state must be a dict (a JSON object), not {type(state).__name__}"
        )
    try:
        data = _dumps(state)
        same = _loads(data) == state
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidCheckpointError(f"state is not JSON-serializable: {exc}") from exc
    if not same:
        raise InvalidCheckpointError(
            "state does not survive a JSON round trip unchanged: it holds a value JSON cannot "
            "represent exactly (NaN or infinity, a tuple, a non-str key, a datetime, ...); "
            "convert it to plain dict/list/str/int/float/bool/None first"
        )
    return data


def decode_state(data: bytes | memoryview) -> dict[str, Any]:
    """Decode bytes written by :func:`encode_state`."""
    try:
        state = _loads(bytes(data))
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"a stored state could not be decoded: {exc}") from exc
    if not isinstance(state, dict):
        raise StorageError("a stored state is not a JSON object")
    return state
