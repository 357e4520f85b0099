"""``+pool`` URLs (``sqlite+pool://``, ``postgresql+pool://``, ``mysql+pool://``) for every
operation, transactions included, and ``import_checkpoint`` racing ``delete_checkpoint``.

A pooled connection must never be released, or re-opened, inside an open transaction: the
copy command's batches, the LangGraph saver's multi-statement puts and the provider's imports
all run transactions, so each is exercised here on a pooled URL of each backend. Uses the
machine's servers through the ``db_url`` fixture (a fresh database per test), not the topology
suite.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import PeeweeCheckpointProvider, StoredCheckpoint
from peewee_checkpoints.cli import main

from ._workload import checkpoint, is_intact

ROWS = 1200  # more than two of the copy command's 500-row batches
RACE_ROUNDS = 150


def pooled(db_url: str) -> str:
    """The same database through playhouse's pooled database class: ``scheme+pool://``."""
    scheme, rest = db_url.split("://", 1)
    return f"{scheme}+pool://{rest}"


def _source(tmp_path: Path, rows: int) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    with PeeweeCheckpointProvider(url) as source:
        ids = [source.store_checkpoint(checkpoint(f"a{i % 7}", f"copy-{i}", size=i % 3 * 500))
               for i in range(rows)]
    return url, ids


def test_copy_to_a_pooled_url_writes_every_checkpoint_and_exits_zero(
        db_url: str, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``peewee-checkpoints copy --to <scheme>+pool://...`` copies 1,200 checkpoints (three
    batches) and exits 0; a second run copies nothing and also exits 0. Each batch's
    transaction keeps its one pooled connection until it commits."""
    src, ids = _source(tmp_path, ROWS)
    dst = pooled(db_url)
    start = time.monotonic()
    first = main(["--db-url", src, "copy", "--to", dst])
    seconds = time.monotonic() - start
    first_out = capsys.readouterr()
    second = main(["--db-url", src, "copy", "--to", dst])
    second_out = capsys.readouterr()
    print(f"\nFIGURE: copy to {backend}+pool: {ROWS} checkpoints, exit {first} in {seconds:.1f}s; "
          f"re-run exit {second}; stderr {' '.join(first_out.err.split())[-200:]!r}")
    assert first == 0, first_out.err
    assert second == 0, second_out.err
    with PeeweeCheckpointProvider(src) as source, PeeweeCheckpointProvider(db_url) as target:
        assert len(target.list_checkpoints()) == ROWS
        for cid in ids[:: ROWS // 60]:
            assert target.retrieve_checkpoint(cid) == source.retrieve_checkpoint(cid)


def test_every_provider_operation_works_on_a_pooled_url_from_several_threads(
        db_url: str, backend: str) -> None:
    """Store, retrieve, list, page, iterate, import, delete and prune through a pooled URL
    from 4 threads at once (the first calls also race to migrate): no errors, nothing lost."""
    provider = PeeweeCheckpointProvider(pooled(db_url))
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        agent = f"pool{n}"
        try:
            barrier.wait(30)
            mine = [provider.store_checkpoint(checkpoint(agent, f"{agent}-{i}"))
                    for i in range(30)]
            for cid in mine[::5]:
                assert is_intact(provider.retrieve_checkpoint(cid), agent)
            assert [i.id for i in provider.list_checkpoints(agent_id=agent)] == mine[::-1]
            page = provider.page_checkpoints(agent_id=agent, limit=7)
            assert [i.id for i in page.items] == mine[::-1][:7]
            assert len(list(provider.iter_checkpoints(agent_id=agent))) == 30
            got = provider.retrieve_checkpoint(mine[0])
            assert got is not None
            assert provider.delete_checkpoint(mine[0]) is True
            assert provider.import_checkpoint(got) is True
            assert provider.import_checkpoint(got) is False
            copy = StoredCheckpoint(**{**got.__dict__, "id": _new_id(provider, agent)})
            assert provider.import_checkpoint(copy) is True
            assert provider.prune(keep_last_per_agent=100) == 0
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    start = time.monotonic()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        seconds = time.monotonic() - start
        print(f"\nFIGURE: {backend}+pool provider: 4 threads x (30 stores + retrieve, list, page, "
              f"iterate, delete, 3 imports, prune) in {seconds:.1f}s; {len(errors)} errors "
              f"{errors[:2]}")
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert errors == []
        assert len(provider.list_checkpoints()) == 4 * 31
    finally:
        provider.close()


def _new_id(provider: PeeweeCheckpointProvider, agent: str) -> str:
    """A fresh id made by the provider itself (stored, then deleted)."""
    cid = provider.store_checkpoint(checkpoint(agent, "id-source"))
    provider.delete_checkpoint(cid)
    return cid


def test_a_langgraph_saver_on_a_pooled_url_puts_blobs_and_reads_them_back(
        db_url: str, backend: str) -> None:
    """A PeeweeSaver on a pooled URL: puts whose channel values go to the blob table (one
    transaction each), put_writes, get_tuple, list and delete_thread, from 2 threads."""
    pytest.importorskip("langgraph.checkpoint.base", reason="pip install -e '.[langgraph-test]'")
    from peewee_checkpoints.langgraph import PeeweeSaver

    from .topologies._work import saver_checkpoint, saver_config

    saver = PeeweeSaver(pooled(db_url))
    errors: list[str] = []

    def graph(thread_id: str) -> None:
        try:
            parent = None
            for step in range(1, 11):
                stored = saver.put(saver_config(thread_id, parent),
                                   saver_checkpoint(step, blob_kib=16), {"step": step},
                                   {"a": step, "b": step})
                parent = stored["configurable"]["checkpoint_id"]
                saver.put_writes(stored, [("a", step), ("b", [step] * 100)], f"task-{step}")
                got = saver.get_tuple(stored)
                assert got is not None
                assert got.checkpoint["channel_values"]["a"] == ["x" * 16 * 1024, step]
                assert len(got.pending_writes or []) == 2
            assert len(list(saver.list(saver_config(thread_id)))) == 10
            saver.delete_thread(thread_id)
            assert saver.get_tuple(saver_config(thread_id)) is None
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=graph, args=(f"pool-{uuid.uuid4().hex[:8]}",))
               for _ in range(2)]
    start = time.monotonic()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        print(f"\nFIGURE: {backend}+pool saver: 2 threads x 10 puts (16 KiB blob) + put_writes + "
              f"get_tuple, list, delete_thread in {time.monotonic() - start:.1f}s; "
              f"{len(errors)} errors {errors[:2]}")
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert errors == []
    finally:
        saver.close()


@pytest.mark.parametrize("pool", [False, True], ids=["plain", "pooled"])
def test_import_racing_a_delete_of_the_same_id_returns_a_bool_and_never_raises(
        db_url: str, backend: str, pool: bool) -> None:
    """Two threads, 150 rounds: one imports a checkpoint while the other deletes the same id.
    ``import_checkpoint`` returns True or False (never a duplicate-key StorageError, 1062 on
    MariaDB) and ``delete_checkpoint`` returns True or False."""
    provider = PeeweeCheckpointProvider(pooled(db_url) if pool else db_url)
    outcomes: dict[str, Any] = {"imported": 0, "refused": 0, "deleted": 0, "errors": []}
    try:
        cid = provider.store_checkpoint(checkpoint("race", "race"))
        original = provider.retrieve_checkpoint(cid)
        assert original is not None
        barrier = threading.Barrier(2)

        def importer() -> None:
            for _ in range(RACE_ROUNDS):
                try:
                    barrier.wait(30)
                    result = provider.import_checkpoint(original)
                    assert result in (True, False)
                    outcomes["imported" if result else "refused"] += 1
                except threading.BrokenBarrierError:
                    return
                except Exception as exc:
                    outcomes["errors"].append(f"import: {type(exc).__name__}: {exc}")

        def deleter() -> None:
            for _ in range(RACE_ROUNDS):
                try:
                    barrier.wait(30)
                    result = provider.delete_checkpoint(cid)
                    assert result in (True, False)
                    outcomes["deleted"] += int(result)
                except threading.BrokenBarrierError:
                    return
                except Exception as exc:
                    outcomes["errors"].append(f"delete: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=importer), threading.Thread(target=deleter)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        barrier.abort()
        assert not any(t.is_alive() for t in threads), "a thread hung"
    finally:
        provider.close()
    errors = outcomes["errors"]
    print(f"\nFIGURE: import racing delete on {backend} ({'pooled' if pool else 'plain'}): "
          f"{RACE_ROUNDS} rounds, {outcomes['imported']} imported, {outcomes['refused']} "
          f"refused, {outcomes['deleted']} deleted, {len(errors)} errors {errors[:2]}")
    assert errors == []
