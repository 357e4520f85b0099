"""State encoding: JSON bytes, checked to round-trip exactly before anything is written, then
compressed when that pays.

Each row records how its state bytes are encoded in the ``state_codec`` column (added by
migration 002): the compression (:data:`CODEC_JSON` none, :data:`CODEC_ZSTD`,
:data:`CODEC_LZ4`), plus :data:`STDLIB_JSON` when the JSON was written by the standard library
rather than orjson. Every value ever written stays readable: rows of 0.1.0 (plain JSON, codec
0) and rows written before codecs 2 and 8-10 existed, which marked standard-library JSON with a
leading space inside codecs 0 and 1. Rolling back migration 005 rewrites codecs 2 and 8-10 as
those older forms.

| ``state_codec`` | bytes |
|---|---|
| 0 | JSON from orjson (in older rows also standard-library JSON, led by a space) |
| 1 | zstd frame of what codec 0 holds |
| 2 | lz4 block (its size in 4 leading bytes) of JSON from orjson |
| 8, 9, 10 | as 0, 1, 2, of JSON from the standard library (read with :func:`json.loads`) |
"""

from __future__ import annotations

import json
import threading
from typing import Any

import lz4.block
import orjson
import zstandard

from .errors import InvalidCheckpointError, StorageError

#: ``state_codec`` of plain UTF-8 JSON: every row written by 0.1.0, and small states.
CODEC_JSON = 0
#: ``state_codec`` of a zstd frame (with its content size) holding UTF-8 JSON.
CODEC_ZSTD = 1
#: ``state_codec`` of an lz4 block, its uncompressed size in 4 leading bytes, holding JSON.
CODEC_LZ4 = 2
#: Added to the codec when the JSON was written by the standard library: orjson stops at 254
#: levels of nesting, at 64-bit ints and at lone surrogates, and reads an integer beyond 64
#: bits as a float (2**64 came back as 1.8446744073709552e19), so that JSON is read back with
#: :func:`json.loads`.
STDLIB_JSON = 8
#: Every ``state_codec`` this version reads.
KNOWN_CODECS = frozenset(
    {CODEC_JSON, CODEC_ZSTD, CODEC_LZ4} | {STDLIB_JSON + c for c in (CODEC_JSON, CODEC_ZSTD,
                                                                     CODEC_LZ4)}
)

# Before STDLIB_JSON existed, codecs 0 and 1 held standard-library JSON led by this byte (JSON
# allows leading whitespace; orjson never writes it): such rows are read with json.loads.
_LEGACY_STDLIB_MARK = b" "


def _stdlib_dumps(state: dict[str, Any]) -> bytes:
    # orjson stops at 254 levels of nesting, at 64-bit ints and at lone surrogates; the
    # standard library handles all three (ASCII escapes keep the bytes valid UTF-8).
    # Anything it cannot encode either is refused by the caller.
    text = json.dumps(state, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode()


def _loads(data: bytes | memoryview, stdlib: bool) -> Any:
    if stdlib:
        return json.loads(bytes(data))
    try:
        return orjson.loads(data)  # reads a memoryview in place: no copy of a large state
    except orjson.JSONDecodeError:
        return json.loads(bytes(data))  # nested deeper than orjson reads


#: States whose JSON is longer than this are checked piece by piece (see _round_trips).
CHECK_WHOLE_BELOW = 1024 * 1024
# Target size of one piece of that check, in bytes of JSON.
_PIECE = 256 * 1024
# Containers with more items than this are checked through their items without being
# encoded whole first.
_DESCEND_LEN = 64


def dumps_json(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of ``value``, exact for every value a state may hold."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return _stdlib_dumps(value)


# For JSON from elsewhere (an import file), which carries no mark: every integer of 18 digits
# or fewer fits in 64 bits, so only text with a run of 19 digits may hold one orjson would turn
# into a float; that text goes to the standard library. Mapping digits to "0" and searching
# costs about 1 ms per MB (a regular expression took 19 ms).
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19


def loads_json(data: bytes) -> Any:
    """Parse JSON text from anywhere exactly: integers of any size stay ints."""
    return _loads(data, _LONG_RUN in data.translate(_DIGITS_TO_ZERO))


def encode_state(state: object) -> tuple[int, bytes]:
    """Encode ``state`` as UTF-8 JSON: ``(CODEC_JSON or STDLIB_JSON, bytes)``, or raise
    :class:`InvalidCheckpointError`.

    The encoded bytes are decoded again, as :func:`unpack_state` will decode them, and
    compared with ``state``: that one check refuses everything JSON would silently change
    (NaN, tuples, non-str keys, datetimes, UUIDs, enums, ...), and it is what makes
    ``retrieve_checkpoint(...) == stored`` a guarantee, not a hope. A large state is checked
    in pieces, so the check never holds a second decoded copy of the whole state (for
    chat-like text that copy is 2.8x the JSON's size).
    """
    if type(state) is not dict:
        raise InvalidCheckpointError(
            f"state must be a dict (a JSON object), not {type(state).__name__}"
        )
    try:
        try:
            data = orjson.dumps(state)
        except (TypeError, orjson.JSONEncodeError):
            # What orjson cannot encode (see STDLIB_JSON): read back as it will be read.
            data = _stdlib_dumps(state)
            return STDLIB_JSON, _checked(json.loads(data) == state, data)
        if len(data) > CHECK_WHOLE_BELOW:
            return CODEC_JSON, _checked(_round_trips(state), data)
        return CODEC_JSON, _checked(orjson.loads(data) == state, data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidCheckpointError(f"state is not JSON-serializable: {exc}") from exc


def _checked(same: bool, data: bytes) -> bytes:
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


#: States shorter than this many bytes of JSON are stored plain: too little to gain.
COMPRESS_THRESHOLD = 1024
#: lz4 is kept when it shrinks the JSON to this fraction of its size or less: it decompresses
#: 4-5x faster than zstd, but without entropy coding it saves much less on prose (20 KiB
#: chat-like JSON: lz4 keeps 0.62 of the bytes, zstd level 3 0.42), and stored bytes count too.
LZ4_ENOUGH = 0.5
# lz4's verdict on a larger state is taken from its first this many bytes, so that a state
# lz4 would not shrink enough (prose) pays little for asking, and no full-size lz4 buffer on its
# way to zstd. A sample compresses a little worse than the whole (less history to match).
_LZ4_SAMPLE = 8 * 1024
# Keep the compressed form only when it saves at least this fraction of the JSON's size;
# otherwise (incompressible data) reading it back would cost a decompression for nothing.
_MIN_SAVING = 0.1
# zstd level 3: measured on 20 KiB chat-like JSON (benchmarks/chatdata.py, same machine, same
# run), level 1 keeps 0.44 of the bytes in 85 us, level 3 0.42 in 124 us, level -1 0.55 in 87
# us; each decompresses in 20-30 us. zlib level 1 took 202 us for 0.46, level 6 723 us.
# Level 1 was tried and put PostgreSQL at 0.52x the JSON on disk (TOAST rounds each state up
# to its chunks), over the 0.5x that bytes on disk must stay under; the 40 us it saved is 1%
# of a durable commit.
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


def compress_json(data: bytes, codec: int = CODEC_JSON) -> tuple[int, bytes]:
    """Return ``(state_codec, bytes to store)`` for the JSON ``data``.

    ``codec`` is :data:`CODEC_JSON`, or :data:`STDLIB_JSON` for JSON the standard library
    wrote. lz4 when it gets the state to :data:`LZ4_ENOUGH` of its size, else zstd when that
    saves at least a tenth, else the JSON as it is.
    """
    size = len(data)
    if size < COMPRESS_THRESHOLD:
        return codec, data
    if size <= _LZ4_SAMPLE:
        packed: bytes = lz4.block.compress(data)
        if len(packed) <= size * LZ4_ENOUGH:
            return codec + CODEC_LZ4, packed
    else:
        sample = lz4.block.compress(memoryview(data)[:_LZ4_SAMPLE])
        if len(sample) <= _LZ4_SAMPLE * LZ4_ENOUGH:
            return codec + CODEC_LZ4, lz4.block.compress(data)
    packed = _compressor().compress(data)
    if len(packed) > size * (1 - _MIN_SAVING):
        return codec, data
    return codec + CODEC_ZSTD, packed


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """The bytes :func:`compress_json` packed as ``codec`` (any bytes, not only JSON).

    Raises:
        StorageError: they do not decompress.
    """
    compression = codec & ~STDLIB_JSON
    try:
        if compression == CODEC_LZ4:
            return bytes(lz4.block.decompress(data))
        if compression == CODEC_ZSTD:
            return bytes(_decompressor().decompress(data))
    except (lz4.block.LZ4BlockError, zstandard.ZstdError) as exc:
        raise StorageError(f"a stored value could not be decompressed: {exc}") from exc
    return bytes(data)


def pack_state(state: object) -> tuple[int, bytes]:
    """Validate and encode ``state`` for storage: ``(state_codec, bytes)``.

    Raises:
        InvalidCheckpointError: as :func:`encode_state`.
    """
    # The JSON bytes live only inside this call: the caller holds the compressed form alone,
    # which keeps the peak memory of storing a large state near two copies of its JSON.
    codec, data = encode_state(state)
    return compress_json(data, codec)


def unpack_state(codec: int, data: bytes | memoryview) -> dict[str, Any]:
    """Decode stored bytes according to their ``state_codec``.

    Raises:
        StorageError: the bytes do not decode, or ``codec`` is one a newer version wrote.
    """
    if codec not in KNOWN_CODECS:
        raise StorageError(
            f"a stored state has encoding {codec}, which this version does not know: it was "
            "written by a newer peewee-checkpoints; upgrade the package to read it"
        )
    compression = codec & ~STDLIB_JSON
    try:
        if compression == CODEC_LZ4:
            data = lz4.block.decompress(data)
        elif compression == CODEC_ZSTD:
            data = _decompressor().decompress(data)
    except (lz4.block.LZ4BlockError, zstandard.ZstdError) as exc:
        raise StorageError(f"a stored state could not be decompressed: {exc}") from exc
    if codec < STDLIB_JSON:
        # Rows written before STDLIB_JSON existed mark standard-library JSON in-band.
        # bytes(): psycopg2 returns a memoryview of format "c", never equal to bytes.
        stdlib = compression != CODEC_LZ4 and bytes(data[:1]) == _LEGACY_STDLIB_MARK
    else:
        stdlib = True
    try:
        state = _loads(data, stdlib)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"a stored state could not be decoded: {exc}") from exc
    if type(state) is not dict:
        raise StorageError("a stored state is not a JSON object")
    return state
