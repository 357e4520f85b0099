"""State encoding: JSON bytes, checked to round-trip exactly before anything is written, then
compressed with zstd when that pays.

Each row records how its state bytes are encoded (the ``state_codec`` column, added by migration
002), so rows written by older versions, which hold plain JSON, stay readable.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import orjson
import zstandard

from .errors import InvalidCheckpointError, StorageError

# Leads the text the standard library encoded. JSON allows leading whitespace, so it is still
# plain JSON to any reader; to _loads it says "orjson must not decode this".
_STDLIB_MARK = b" "


def _dumps(state: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(state)
    except (TypeError, orjson.JSONEncodeError):
        return _stdlib_dumps(state)


def _stdlib_dumps(state: dict[str, Any]) -> bytes:
    # orjson stops at 254 levels of nesting, at 64-bit ints and at lone surrogates; the
    # standard library handles all three (ASCII escapes keep the bytes valid UTF-8).
    # Anything it cannot encode either is refused by the caller.
    text = json.dumps(state, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return _STDLIB_MARK + text.encode()


def _loads(data: bytes | memoryview) -> Any:
    if bytes(data[:1]) == _STDLIB_MARK:
        # orjson would read an integer beyond 64 bits as a float: 2**64 came back as
        # 1.8446744073709552e19 (equal to it, so the round-trip check passed, but a float).
        return json.loads(bytes(data))
    try:
        return orjson.loads(data)  # reads a memoryview in place: no copy of a large state
    except orjson.JSONDecodeError:
        return json.loads(bytes(data))


#: States whose JSON is longer than this are checked piece by piece (see _round_trips).
CHECK_WHOLE_BELOW = 1024 * 1024
# Target size of one piece of that check, in bytes of JSON.
_PIECE = 256 * 1024
# Containers with more items than this are checked through their items without being
# encoded whole first.
_DESCEND_LEN = 64


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
    A large state is checked in pieces, so the check never holds a second decoded copy of
    the whole state (for chat-like text that copy is 2.8x the JSON's size).
    """
    if type(state) is not dict:
        raise InvalidCheckpointError(
            f"state must be a dict (a JSON object), not {type(state).__name__}"
        )
    try:
        try:
            data = orjson.dumps(state)
        except (TypeError, orjson.JSONEncodeError):
            data = _stdlib_dumps(state)  # what orjson cannot encode; see there
            same = _loads(data) == state
        else:
            same = _round_trips(state) if len(data) > CHECK_WHOLE_BELOW else (
                orjson.loads(data) == state)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidCheckpointError(f"state is not JSON-serializable: {exc}") from exc
    if not same:
        raise InvalidCheckpointError(
            "state does not survive a JSON round trip unchanged: it holds a value JSON cannot "
            "represent exactly (NaN or infinity, a tuple, a non-str key, a datetime, ...); "
            "convert it to plain dict/list/str/int/float/bool/None first"
        )
    return data


def _round_trips(value: Any) -> bool:
    """``orjson.loads(orjson.dumps(value)) == value``, decoding about _PIECE bytes at a time.

    Only called once orjson has encoded the whole value: JSON is compositional, so the whole
    round-trips exactly when every piece does. Dict keys are then ``str`` (orjson refuses
    other keys), which JSON keeps exactly, so a dict is checked through its values.
    """
    if type(value) is dict:
        if any(type(key) is not str for key in value):
            return bool(orjson.loads(orjson.dumps(value)) == value)  # a str subclass as key
        return _sequence_round_trips(list(value.values()))
    if type(value) is list:
        return _sequence_round_trips(value)
    return bool(orjson.loads(orjson.dumps(value)) == value)


def _sequence_round_trips(items: list[Any]) -> bool:
    start, step = 0, 16
    while start < len(items):
        item = items[start]
        if type(item) in (dict, list) and len(item) > _DESCEND_LEN:
            # A large container (a message list): look inside it rather than encode it whole,
            # which would hold a second copy of most of the state.
            if not _round_trips(item):
                return False
            start += 1
            continue
        chunk = []
        for item in items[start : start + step]:
            if type(item) in (dict, list) and len(item) > _DESCEND_LEN:
                break
            chunk.append(item)
        data = orjson.dumps(chunk)
        if len(data) > 4 * _PIECE:
            if len(chunk) > 1:
                step = max(1, len(chunk) // 2)  # too much at once: retry with fewer items
                continue
            del data
            same = _round_trips(chunk[0])  # one large item: look inside it
        else:
            same = orjson.loads(data) == chunk
            if len(data) < _PIECE:
                step *= 2
        if not same:
            return False
        start += len(chunk)
    return True


#: ``state_codec`` of plain UTF-8 JSON: every row written by 0.1.0, and small states.
CODEC_JSON = 0
#: ``state_codec`` of a zstd frame (with its content size) holding UTF-8 JSON.
CODEC_ZSTD = 1
#: States shorter than this many bytes of JSON are stored plain: too little to gain.
COMPRESS_THRESHOLD = 1024
# Keep the compressed form only when it saves at least this fraction of the JSON's size;
# otherwise (incompressible data) reading it back would cost a decompression for nothing.
_MIN_SAVING = 0.1
# zstd level 3 (its default): measured on 20 KiB chat-like JSON, 84 us and 2.35x, where
# zlib level 1 takes 202 us for 2.19x and zlib level 6 723 us for 2.43x; zstd also
# decompresses in half zlib's time (22 us against 39 us).
_ZSTD_LEVEL = 3

# zstd contexts are not thread-safe and are worth reusing (each holds its work buffers).
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def compress_json(data: bytes) -> tuple[int, bytes]:
    """Return ``(state_codec, bytes to store)`` for the JSON ``data``."""
    if len(data) < COMPRESS_THRESHOLD:
        return CODEC_JSON, data
    packed: bytes = _compressor().compress(data)
    if len(packed) > len(data) * (1 - _MIN_SAVING):
        return CODEC_JSON, data
    return CODEC_ZSTD, packed


def pack_state(state: object) -> tuple[int, bytes]:
    """Validate and encode ``state`` for storage: ``(state_codec, bytes)``.

    Raises:
        InvalidCheckpointError: as :func:`encode_state`.
    """
    # The JSON bytes live only inside this call: the caller holds the compressed form alone,
    # which keeps the peak memory of storing a large state near two copies of its JSON.
    return compress_json(encode_state(state))


def unpack_state(codec: int, data: bytes | memoryview) -> dict[str, Any]:
    """Decode stored bytes according to their ``state_codec``."""
    if codec == CODEC_ZSTD:
        try:
            data = _decompressor().decompress(data)
        except zstandard.ZstdError as exc:
            raise StorageError(f"a stored state could not be decompressed: {exc}") from exc
    elif codec != CODEC_JSON:
        raise StorageError(
            f"a stored state has encoding {codec}, which this version does not know: it was "
            "written by a newer peewee-checkpoints; upgrade the package to read it"
        )
    return decode_state(data)


def decode_state(data: bytes | memoryview) -> dict[str, Any]:
    """Decode bytes written by :func:`encode_state`."""
    try:
        state = _loads(data)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"a stored state could not be decoded: {exc}") from exc
    if not isinstance(state, dict):
        raise StorageError("a stored state is not a JSON object")
    return state
