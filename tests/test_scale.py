"""Storage format (codec column, migration 002), batched prune, and the interface's generic
paging built on list_checkpoints, on every backend."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from peewee_checkpoints import (
    CheckpointProvider,
    InvalidCheckpointError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
    _codec,
)
from peewee_checkpoints._codec import (
    CODEC_JSON,
    CODEC_LZ4,
    CODEC_ZSTD,
    COMPRESS_THRESHOLD,
    compress_json,
)
from peewee_checkpoints._migrations import HISTORY_TABLE, _Router, known_migrations, migrations_dir
from peewee_checkpoints.testing import CheckpointProviderContract
from peewee_checkpoints.testing.contract import INVALID_STATES, TRICKY_STATES

TABLE = "peewee_checkpoints"


def _chat(messages: int) -> dict[str, Any]:
    return {"messages": [{"role": "user" if i % 2 else "assistant",
                          "content": f"message {i} about step {i * 37 % 101}: the tool returned "
                                     f"{i * 7919 % 1000} rows from table t{i % 13}"}
                         for i in range(messages)]}


def _stored(provider: PeeweeCheckpointProvider, checkpoint_id: str) -> tuple[int, bytes]:
    db = provider.database
    row = db.execute_sql(f"SELECT state_codec, state FROM {TABLE} WHERE id = {db.param}",
                         (checkpoint_id,)).fetchone()
    return int(row[0]), bytes(row[1])


def test_large_states_are_stored_compressed_and_small_ones_plain(
    provider: PeeweeCheckpointProvider,
) -> None:
    big = _chat(300)
    small = {"k": "v"}
    big_id = provider.store_checkpoint(NamedCheckpoint(name="big", agent_id="a", state=big))
    small_id = provider.store_checkpoint(NamedCheckpoint(name="s", agent_id="a", state=small))
    codec, data = _stored(provider, big_id)
    assert codec in (CODEC_LZ4, CODEC_ZSTD)
    assert len(data) < len(orjson.dumps(big)) / 3
    assert _stored(provider, small_id) == (CODEC_JSON, orjson.dumps(small))
    got = provider.retrieve_checkpoint(big_id)
    assert got is not None and got.state == big


def test_bytes_that_do_not_compress_are_kept_as_they_are() -> None:
    # JSON text always compresses a little (base85 of random bytes by 20%); random bytes
    # stand for data where zstd would save less than it costs to decompress.
    data = os.urandom(4 * COMPRESS_THRESHOLD)
    assert compress_json(data) == (CODEC_JSON, data)
    assert compress_json(b"x" * (COMPRESS_THRESHOLD - 1))[0] == CODEC_JSON
    assert compress_json(b"x" * COMPRESS_THRESHOLD)[0] == CODEC_LZ4


@pytest.fixture
def check_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every state take the piecewise round-trip check, with pieces of a few bytes."""
    monkeypatch.setattr(_codec, "CHECK_WHOLE_BELOW", 0)
    monkeypatch.setattr(_codec, "_PIECE", 8)


@pytest.mark.parametrize("label", list(TRICKY_STATES))
def test_the_piecewise_check_accepts_what_the_whole_check_accepts(
    check_in_pieces: None, label: str
) -> None:
    state = TRICKY_STATES[label]
    codec, data = _codec.pack_state(state)
    assert _codec.unpack_state(codec, data) == state


@pytest.mark.parametrize("label", [k for k in INVALID_STATES if "instead" not in k])
def test_the_piecewise_check_refuses_what_the_whole_check_refuses(
    check_in_pieces: None, label: str
) -> None:
    nested = {"messages": [{"i": i} for i in range(50)] + [{"bad": INVALID_STATES[label]}],
              "tail": "x"}
    with pytest.raises(InvalidCheckpointError):
        _codec.pack_state(nested)
    with pytest.raises(InvalidCheckpointError):
        _codec.pack_state({"big": "y" * 100, "deep": {"k": [1, 2, INVALID_STATES[label]]}})


def test_a_row_written_before_migration_002_reads_back(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url) as provider:
        db = provider.database
        router = _Router(db, migrate_dir=migrations_dir(), migrate_table=HISTORY_TABLE)
        assert router.run("001_initial") == ["001_initial"]
        state = {"from": "0.1.0", "text": "plain JSON " * 200, "n": 2**63 - 1}
        p = db.param
        db.execute_sql(
            f"INSERT INTO {TABLE} (id, name, agent_id, session_id, agent_type, created_at, state)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
            ("01HOLDROW0000000000000000A", "old", "agent", "s", "t", 1234, orjson.dumps(state)))
        assert provider.pending_migrations() == list(known_migrations()[1:])
        got = provider.retrieve_checkpoint("01HOLDROW0000000000000000A")
        assert provider.pending_migrations() == []
        assert got is not None and got.state == state and got.created_at == 1234


def test_rolling_back_002_leaves_plain_json_that_0_1_0_reads(
    provider: PeeweeCheckpointProvider,
) -> None:
    state = _chat(200)
    cid = provider.store_checkpoint(NamedCheckpoint(name="c", agent_id="a", state=state))
    assert _stored(provider, cid)[0] in (CODEC_LZ4, CODEC_ZSTD)
    # Roll back from the newest down to 002 (003 and later are other features' tables).
    rolled_back = []
    while not rolled_back or rolled_back[-1] != "002_state_codec":
        rolled_back.append(provider.rollback_migration())
    assert rolled_back == [n for n in reversed(known_migrations()) if n >= "002"]
    db = provider.database
    row = db.execute_sql(f"SELECT state FROM {TABLE} WHERE id = {db.param}", (cid,)).fetchone()
    assert orjson.loads(bytes(row[0])) == state
    provider.migrate()
    got = provider.retrieve_checkpoint(cid)
    assert got is not None and got.state == state


def test_a_codec_from_a_newer_version_is_a_storage_error(
    provider: PeeweeCheckpointProvider,
) -> None:
    cid = provider.store_checkpoint(NamedCheckpoint(name="c", agent_id="a", state={"k": 1}))
    db = provider.database
    db.execute_sql(f"UPDATE {TABLE} SET state_codec = 99 WHERE id = {db.param}", (cid,))
    with pytest.raises(StorageError, match="newer"):
        provider.retrieve_checkpoint(cid)


def test_prune_deletes_across_many_batches(provider: PeeweeCheckpointProvider) -> None:
    provider.prune_batch = 3
    for i in range(20):
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id=f"a{i % 2}", state={},
                                                  created_at=100 + i // 4))
    assert provider.prune(keep_last_per_agent=2, dry_run=True) == 16
    assert provider.prune(keep_last_per_agent=2) == 16
    assert sorted(i.agent_id for i in provider.list_checkpoints()) == ["a0", "a0", "a1", "a1"]
    for _ in range(10):
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="b", state={},
                                                  created_at=50))
    assert provider.prune(before=100) == 10
    assert len(provider.list_checkpoints()) == 4


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_20_mib_compressible_state_fits_mysql_max_allowed_packet(
    provider: PeeweeCheckpointProvider,
) -> None:
    state = _chat(210_000)
    assert len(orjson.dumps(state)) > 20 * 2**20 > provider.database.execute_sql(
        "SELECT @@max_allowed_packet").fetchone()[0]
    cid = provider.store_checkpoint(NamedCheckpoint(name="huge", agent_id="a", state=state))
    got = provider.retrieve_checkpoint(cid)
    assert got is not None and got.state == state


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mysql"])
def test_an_incompressible_state_past_max_allowed_packet_is_refused(
    provider: PeeweeCheckpointProvider,
) -> None:
    state = {"blob": base64.b64encode(os.urandom(18 * 2**20)).decode()}  # zstd: ~0.75x
    with pytest.raises(StorageError, match="max_allowed_packet"):
        provider.store_checkpoint(NamedCheckpoint(name="huge", agent_id="a", state=state))
    assert provider.list_checkpoints() == []


class _GenericPaging(PeeweeCheckpointProvider):
    """The Peewee provider with the interface's generic paging, iteration and prune."""

    page_checkpoints = CheckpointProvider.page_checkpoints  # type: ignore[assignment]
    iter_checkpoints = CheckpointProvider.iter_checkpoints  # type: ignore[assignment]
    prune = CheckpointProvider.prune  # type: ignore[assignment]


@pytest.mark.parametrize("backend", ["sqlite"])
class TestGenericPagingContract(CheckpointProviderContract):
    """The contract suite on the defaults a third-party provider inherits."""

    @pytest.fixture
    def provider(self, db_url: str) -> Iterator[PeeweeCheckpointProvider]:
        with _GenericPaging(db_url) as p:
            yield p


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_pool_serves_a_thread_per_request_without_running_out(db_url: str) -> None:
    url = db_url.replace("://", "+pool://", 1) + "?max_connections=2"
    errors: list[BaseException] = []

    def request(n: int) -> None:
        try:
            cid = provider.store_checkpoint(NamedCheckpoint(name=f"r{n}", agent_id="a",
                                                            state={"n": n}))
            assert provider.retrieve_checkpoint(cid) is not None
        except BaseException as exc:
            errors.append(exc)

    with PeeweeCheckpointProvider(url) as provider:
        for n in range(12):  # one short-lived thread per request, more than the pool holds
            thread = threading.Thread(target=request, args=(n,))
            thread.start()
            thread.join()
        assert errors == []
        assert len(provider.list_checkpoints()) == 12
