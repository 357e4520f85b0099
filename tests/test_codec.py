"""State codecs: exact round trips, the codec each state gets, and rows written by every
earlier encoding read back, on every backend."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import lz4.block
import orjson
import pytest
import zstandard

from peewee_checkpoints import (
    InvalidCheckpointError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
)
from peewee_checkpoints._codec import (
    CODEC_JSON,
    CODEC_LZ4,
    CODEC_ZSTD,
    KNOWN_CODECS,
    STDLIB_JSON,
    compress_json,
    pack_state,
    unpack_state,
)
from peewee_checkpoints._migrations import known_migrations

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
from chatdata import chat_state

TABLE = "peewee_checkpoints"


def _nested(depth: int) -> dict[str, Any]:
    state: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        state = {"k": [state]}
    return state


def _round_trip(state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    codec, data = pack_state(state)
    got = unpack_state(codec, data)
    assert got == state
    assert unpack_state(codec, memoryview(data)) == state
    assert unpack_state(codec, memoryview(data).cast("c")) == state  # as psycopg2 returns it
    return codec, got


def _same_types(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    if type(a) is dict:
        assert list(a) == list(b)  # key order kept
        for key in a:
            _same_types(a[key], b[key])
    elif type(a) is list:
        for x, y in zip(a, b, strict=True):
            _same_types(x, y)
    elif type(a) is float:
        assert math.copysign(1.0, a) == math.copysign(1.0, b)  # -0.0 stays -0.0


@pytest.mark.parametrize(
    "state",
    [
        {"small": 1},
        {"ints": [0, -1, 2**63 - 1, -(2**63)], "floats": [0.0, -0.0, 1.0, 1e-310, 1.5e300]},
        {"z": 1, "a": 2, "m": {"y": 1.0, "b": 1}},  # key order, and 1.0 stays a float
        {"text": "prose " * 400, "n": 3, "f": -0.0},  # compressed
        {"nul and astral": "a\x00b\U0001f600" * 300},
    ],
)
def test_plain_states_round_trip_with_their_types(state: dict[str, Any]) -> None:
    codec, got = _round_trip(state)
    assert codec < STDLIB_JSON
    _same_types(state, got)


@pytest.mark.parametrize(
    "state",
    [
        {"big": 2**64},
        {"big": -(2**100), "text": "words " * 500},  # compressed with it
        {"big": [2**70, 1.0, -0.0], "more": "x" * 3000},
        {"lone surrogate": "\ud800"},
        _nested(300),  # deeper than orjson's 254 levels
    ],
)
def test_what_orjson_cannot_encode_is_stored_as_stdlib_json(state: dict[str, Any]) -> None:
    codec, got = _round_trip(state)
    assert codec & STDLIB_JSON
    _same_types(state, got)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, (1, 2), {1: "x"}, b"bytes", {1, 2}]
)
def test_what_json_would_change_is_refused(value: Any) -> None:
    with pytest.raises(InvalidCheckpointError):
        pack_state({"bad": value, "filler": "y" * 2000})
    with pytest.raises(InvalidCheckpointError):
        pack_state({"big": 2**64, "bad": [value]})  # on the standard library's path too


def test_nesting_deeper_than_python_can_encode_is_refused() -> None:
    with pytest.raises(InvalidCheckpointError):
        pack_state(_nested(100_000))  # 3.13 encodes past the recursion limit: go deeper


def test_each_state_gets_the_cheapest_codec_that_pays() -> None:
    assert pack_state({"k": "v"})[0] == CODEC_JSON  # below 1 KiB
    repetitive = {"rows": [{"id": i, "status": "ok", "tags": ["a", "b"]} for i in range(300)]}
    codec, data = pack_state(repetitive)
    assert codec == CODEC_LZ4 and len(data) <= 0.5 * len(orjson.dumps(repetitive))
    chat = chat_state(20 * 1024, seed=1)  # prose: lz4 keeps 0.6 of it, zstd 0.42
    codec, data = pack_state(chat)
    assert codec == CODEC_ZSTD and len(data) < 0.45 * len(orjson.dumps(chat))
    noise = os.urandom(4096)
    assert compress_json(noise) == (CODEC_JSON, noise)
    assert compress_json(noise, STDLIB_JSON) == (STDLIB_JSON, noise)
    big = {"big": 2**64, "text": "prose " * 1000}
    assert pack_state(big)[0] == STDLIB_JSON + CODEC_LZ4


def test_a_larger_state_takes_lz4_or_zstd_from_a_sample() -> None:
    repetitive = b'{"x":"' + b"abcdefgh" * 40_000 + b'"}'
    assert compress_json(repetitive)[0] == CODEC_LZ4
    prose = orjson.dumps(chat_state(300 * 1024, seed=3))
    assert compress_json(prose)[0] == CODEC_ZSTD


OLD_STATE: dict[str, Any] = {"from": "an earlier version", "text": "plain JSON " * 200,
                             "n": 2**63 - 1, "f": -0.0}
OLD_BIG_STATE: dict[str, Any] = {"from": "an earlier version", "text": "big ints " * 200,
                                 "n": 2**64 + 1}


# Every encoding an earlier version wrote: (state_codec, bytes) for a state.
def _old_encodings(state: dict[str, Any]) -> dict[str, tuple[int, bytes]]:
    """Only the marked forms can hold an int beyond 64 bits, which orjson never wrote."""
    plain = orjson.dumps(state) if state is not OLD_BIG_STATE else b"{}"
    stdlib = b" " + json.dumps(state, separators=(",", ":")).encode()
    zstd = zstandard.ZstdCompressor(level=3).compress
    return {
        "0: plain JSON (0.1.0)": (0, plain),
        "0: JSON with the space mark": (0, stdlib),
        "1: zstd": (1, zstd(plain)),
        "1: zstd of JSON with the space mark": (1, zstd(stdlib)),
    }


@pytest.mark.parametrize("label", list(_old_encodings(OLD_STATE)))
def test_old_codec_values_stay_readable(label: str) -> None:
    for state in (OLD_STATE, OLD_BIG_STATE):
        if state is OLD_BIG_STATE and "mark" not in label:
            continue
        codec, data = _old_encodings(state)[label]
        got = unpack_state(codec, data)
        assert got == state
        _same_types(state, got)


def test_every_known_codec_decodes_and_an_unknown_one_is_a_storage_error() -> None:
    state = {"text": "abc " * 1000, "n": 1}
    plain = orjson.dumps(state)
    packed = {0: plain, 1: zstandard.ZstdCompressor().compress(plain),
              2: lz4.block.compress(plain)}
    for codec in KNOWN_CODECS:
        assert unpack_state(codec, packed[codec & ~STDLIB_JSON]) == state
    with pytest.raises(StorageError, match="newer"):
        unpack_state(99, plain)
    with pytest.raises(StorageError, match="decompressed"):
        unpack_state(CODEC_LZ4, b"\xff\xff\xff\x7fnot lz4")


def _insert_raw(provider: PeeweeCheckpointProvider, cid: str, codec: int, data: bytes) -> None:
    db = provider.database
    p = db.param
    db.execute_sql(
        f"INSERT INTO {TABLE} (id, name, agent_id, session_id, agent_type, created_at, state, "
        f"state_codec) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
        (cid, "old", "agent", "", "", 1234, data, codec),
    )


def test_rows_written_with_each_old_codec_read_back(provider: PeeweeCheckpointProvider) -> None:
    provider.migrate()
    expected = {}
    for i, (label, (codec, data)) in enumerate(_old_encodings(OLD_STATE).items()):
        cid = f"01HOLDCODEC00000000000000{i}"
        _insert_raw(provider, cid, codec, data)
        expected[cid] = label
    for i, (codec, data) in enumerate(
        v for k, v in _old_encodings(OLD_BIG_STATE).items() if "mark" in k
    ):
        cid = f"01HOLDBIGINT0000000000000{i}"
        _insert_raw(provider, cid, codec, data)
        got = provider.retrieve_checkpoint(cid)
        assert got is not None and got.state == OLD_BIG_STATE
        assert type(got.state["n"]) is int
    for cid, label in expected.items():
        got = provider.retrieve_checkpoint(cid)
        assert got is not None and got.state == OLD_STATE, label
        _same_types(OLD_STATE, got.state)


NEW_STATES = {
    "lz4": {"rows": [{"id": i, "status": "ok"} for i in range(300)]},
    "zstd": chat_state(8 * 1024, seed=5),
    "stdlib": {"big": 2**64},
    "stdlib lz4": {"big": 2**64, "rows": [{"id": i, "status": "ok"} for i in range(300)]},
    "stdlib zstd": {"big": -(2**80), **chat_state(8 * 1024, seed=6)},
}


def _stored_codec(provider: PeeweeCheckpointProvider, cid: str) -> int:
    db = provider.database
    row = db.execute_sql(f"SELECT state_codec FROM {TABLE} WHERE id = {db.param}",
                         (cid,)).fetchone()
    return int(row[0])


def test_new_codecs_round_trip_and_rolling_back_005_rewrites_them_for_the_old_reader(
    provider: PeeweeCheckpointProvider,
) -> None:
    ids = {label: provider.store_checkpoint(NamedCheckpoint(name=label, agent_id="a",
                                                            state=state))
           for label, state in NEW_STATES.items()}
    codecs = {label: _stored_codec(provider, cid) for label, cid in ids.items()}
    assert codecs == {"lz4": CODEC_LZ4, "zstd": CODEC_ZSTD, "stdlib": STDLIB_JSON,
                      "stdlib lz4": STDLIB_JSON + CODEC_LZ4,
                      "stdlib zstd": STDLIB_JSON + CODEC_ZSTD}
    for label, cid in ids.items():
        got = provider.retrieve_checkpoint(cid)
        assert got is not None and got.state == NEW_STATES[label]
    rolled_back = []
    while not rolled_back or rolled_back[-1] != "005_mysql_compact_state":
        rolled_back.append(provider.rollback_migration())
    for label, cid in ids.items():
        assert _stored_codec(provider, cid) in (0, 1), label
    # What the previous version's reader did: codecs 0 and 1, a leading space meaning json.
    db = provider.database
    for label, cid in ids.items():
        codec, data = db.execute_sql(
            f"SELECT state_codec, state FROM {TABLE} WHERE id = {db.param}", (cid,)
        ).fetchone()
        data = bytes(data)
        if codec == 1:
            data = zstandard.ZstdDecompressor().decompress(data)
        state = json.loads(data) if data[:1] == b" " else orjson.loads(data)
        assert state == NEW_STATES[label], label
    provider.migrate()
    for label, cid in ids.items():
        got = provider.retrieve_checkpoint(cid)
        assert got is not None and got.state == NEW_STATES[label]


def test_005_makes_the_table_page_compressed_on_mariadb_only(
    provider: PeeweeCheckpointProvider,
) -> None:
    provider.migrate()
    assert "005_mysql_compact_state" in known_migrations()
    if provider.backend != "mysql":
        return
    db = provider.database
    version = db.execute_sql("SELECT VERSION()").fetchone()[0]
    options = db.execute_sql(
        "SELECT CREATE_OPTIONS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (TABLE,)
    ).fetchone()[0]
    if "mariadb" in version.lower():
        assert "page_compressed" in options.lower()
        assert "1" in options.lower().split("page_compressed")[1]
