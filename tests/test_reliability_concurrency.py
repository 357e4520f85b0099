"""Many processes and many threads on one database: nothing is lost, nothing is locked.

Figures: 8 writer processes x 500 stores each, with 2 reader processes listing and retrieving
all the while, on a fresh database (so the first calls also race to run the migrations); and
16 threads sharing one provider, 60 stores each, whose first calls all race to migrate.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from peewee_checkpoints import PeeweeCheckpointProvider
from peewee_checkpoints._migrations import known_migrations

from ._workload import checkpoint, is_intact, run_child, wait_all

WRITERS = 8
STORES_PER_WRITER = 500
READERS = 2
THREADS = 16
STORES_PER_THREAD = 60

# fork starts a child in milliseconds; the parent has no open connection to share with it.
_fork = multiprocessing.get_context("fork")


@pytest.mark.slow
def test_eight_processes_storing_while_others_read_lose_nothing(
    db_url: str, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    writers = [
        _fork.Process(target=run_child,
                      args=("write", db_url, f"w{k}", STORES_PER_WRITER, str(tmp_path / f"w{k}")))
        for k in range(WRITERS)
    ]
    readers = [
        _fork.Process(target=run_child,
                      args=("read_until", db_url, str(stop), str(tmp_path / f"r{k}")))
        for k in range(READERS)
    ]
    start = time.monotonic()
    for p in writers + readers:
        p.start()
    try:
        wait_all(writers, timeout=150)
    finally:
        stop.touch()
        wait_all(readers, timeout=30)
    elapsed = time.monotonic() - start
    # A child that failed printed its traceback ("database is locked", a deadlock, a torn
    # row...) to stderr, which pytest shows.
    assert [p.exitcode for p in writers + readers] == [0] * (WRITERS + READERS)

    ids = {f"w{k}": (tmp_path / f"w{k}").read_text().split() for k in range(WRITERS)}
    reads = [tuple(map(int, (tmp_path / f"r{k}").read_text().split())) for k in range(READERS)]
    with PeeweeCheckpointProvider(db_url) as provider:
        everything = provider.list_checkpoints()
        assert len(everything) == WRITERS * STORES_PER_WRITER
        assert {i.id for i in everything} == {cid for v in ids.values() for cid in v}
        for agent, agent_ids in ids.items():
            assert len(agent_ids) == STORES_PER_WRITER == len(set(agent_ids))
            listed = provider.list_checkpoints(agent_id=agent)
            assert sorted(i.id for i in listed) == sorted(agent_ids)
            # Each writer's ids come from one process in order: newest first means reversed.
            assert [i.id for i in listed] == agent_ids[::-1]
            for cid in agent_ids:
                assert is_intact(provider.retrieve_checkpoint(cid), agent)
    print(f"{WRITERS}x{STORES_PER_WRITER} stores with {READERS} readers "
          f"({sum(r[0] for r in reads)} lists, {sum(r[1] for r in reads)} retrieves) "
          f"in {elapsed:.1f}s")


def test_sixteen_threads_sharing_one_provider_whose_first_calls_migrate(db_url: str) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    stored: dict[str, list[str]] = {}

    def work(n: int) -> None:
        agent = f"t{n}"
        mine: list[str] = []
        try:
            barrier.wait()
            # Every thread's first call arrives at once on a database with no tables yet:
            # a third of them store first, a third list first, a third retrieve first.
            if n % 3 == 1:
                provider.list_checkpoints(agent_id=agent)
            elif n % 3 == 2:
                assert provider.retrieve_checkpoint("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None
            for i in range(STORES_PER_THREAD):
                cid = provider.store_checkpoint(checkpoint(agent, f"{agent}-{i}"))
                mine.append(cid)
                if i % 10 == 0:
                    assert is_intact(provider.retrieve_checkpoint(cid), agent)
                    listed = provider.list_checkpoints(agent_id=agent)
                    assert [x.id for x in listed] == mine[::-1]
                    provider.list_checkpoints(limit=5)
        except BaseException as exc:
            errors.append(exc)
        stored[agent] = mine

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
        assert errors == []
        assert provider.applied_migrations() == list(known_migrations())
        everything = provider.list_checkpoints()
        assert len(everything) == THREADS * STORES_PER_THREAD
        for agent, ids in stored.items():
            assert len(set(ids)) == STORES_PER_THREAD
            for cid in ids:
                assert is_intact(provider.retrieve_checkpoint(cid), agent)
    finally:
        provider.close()
