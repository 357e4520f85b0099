"""The provider and the LangGraph saver on a 3-node MariaDB Galera cluster.

Galera replicates each commit to every node, but ``GET_LOCK`` is node-local, a read on one node
may not yet see a commit made through another (unless ``wsrep_sync_wait`` is set), and
conflicting writes through different nodes fail at commit with a deadlock error (1213). The
tests that kill nodes run last; the ``galera`` fixture restarts any node a test left down.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import PeeweeCheckpointProvider, StorageError, StoredCheckpoint

from .._workload import checkpoint, is_intact
from ._servers import Galera
from ._work import (
    hot_rows,
    read_reports,
    run_child,
    saver_checkpoint,
    saver_config,
    saver_puts,
    store_until_error,
)
from .test_pgbouncer import eight_first_uses

pytestmark = pytest.mark.topology("galera")

_fork = multiprocessing.get_context("fork")

PROCESSES = 8
HOT_OPS = 500
SHARED_IDS = 20
SAVER_PUTS = 600
READS = 500
WRITERS_ON_VICTIM = 3


def history(galera: Galera, dbname: str) -> list[tuple[str, int]]:
    """(name, rows) of the package's migration history, read on node 1."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=galera.sql_ports[0], user="root",
                           password="", database=dbname, connect_timeout=5, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute("SELECT name, count(*) FROM peewee_checkpoints_migrations "
                        "GROUP BY name ORDER BY name")
            return [(str(n), int(c)) for n, c in cur.fetchall()]
    finally:
        conn.close()


def run_workers(targets: list[tuple[Any, dict[str, Any]]], timeout: float) -> list[int | None]:
    """Fork one child per (function, kwargs); wait up to ``timeout`` s; kill what hangs."""
    procs = [_fork.Process(target=run_child, args=(fn, kwargs)) for fn, kwargs in targets]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)
    return [p.exitcode for p in procs]


def test_eight_processes_spread_over_three_nodes_first_use_a_fresh_database_at_once(
        galera: Galera, galera_db: str, tmp_path: Path) -> None:
    """8 of 8 first uses succeed when the processes reach the fresh database through different
    nodes at the same moment, and each migration is recorded once: the migration lock is
    cluster-wide (``GET_LOCK`` only holds on the node that took it) and the history's names are
    unique."""
    urls = [galera.url(k % 3, galera_db) for k in range(PROCESSES)]
    start = time.monotonic()
    reports = eight_first_uses(urls, tmp_path)
    elapsed = time.monotonic() - start
    ok = sum(1 for r in reports if r["errors"] == 0)
    rows = history(galera, galera_db)
    print(f"\nFIGURE: galera first use: {ok}/{PROCESSES} processes over 3 nodes succeeded in "
          f"{elapsed:.1f}s; history {rows}; errors: "
          f"{[m for r in reports for m in r['messages']][:3]}")
    assert ok == PROCESSES, [m for r in reports for m in r["messages"]]
    assert rows and all(count == 1 for _, count in rows), rows
    with PeeweeCheckpointProvider(urls[0]) as provider:
        assert provider.pending_migrations() == []
        assert sorted(provider.applied_migrations()) == [name for name, _ in rows]


def _shared_checkpoints(url: str) -> list[StoredCheckpoint]:
    """Checkpoints with fixed ids for the workers to import and delete (stored, read back,
    then deleted, so every worker starts from the same absent rows)."""
    shared = []
    with PeeweeCheckpointProvider(url) as provider:
        for i in range(SHARED_IDS):
            cid = provider.store_checkpoint(checkpoint("shared", f"shared-{i}"))
            got = provider.retrieve_checkpoint(cid)
            assert got is not None
            shared.append(got)
            provider.delete_checkpoint(cid)
    return shared


def test_writers_on_three_nodes_hammering_the_same_rows_see_no_errors(
        galera: Galera, galera_db: str, tmp_path: Path) -> None:
    """3 processes (one per node) x 500 operations on shared rows (stores, imports of a shared
    id set, deletes of shared ids), and a LangGraph saver putting 600 checkpoints (3 x 200) on
    one thread from the 3 nodes, end with 0 errors: certification conflicts (1213 deadlock) are
    retried for these idempotent operations instead of reaching the caller."""
    shared = _shared_checkpoints(galera.url(0, galera_db))
    go_at = time.time() + 2
    hot_outs = [tmp_path / f"hot-{n}.json" for n in range(3)]
    put_outs = [tmp_path / f"put-{n}.json" for n in range(3)]
    targets: list[tuple[Any, dict[str, Any]]] = [
        (hot_rows, {"db_url": galera.url(n, galera_db), "worker": n, "ops": HOT_OPS,
                    "shared": shared, "go_at": go_at, "out": str(hot_outs[n])})
        for n in range(3)
    ]
    targets += [
        (saver_puts, {"db_url": galera.url(n, galera_db), "worker": n,
                      "puts": SAVER_PUTS // 3, "thread_id": "hot-thread", "go_at": go_at,
                      "out": str(put_outs[n])})
        for n in range(3)
    ]
    start = time.monotonic()
    exits = run_workers(targets, timeout=120)
    elapsed = time.monotonic() - start
    hot, puts = read_reports(hot_outs), read_reports(put_outs)
    hot_errors, put_errors = sum(r["errors"] for r in hot), sum(r["errors"] for r in puts)
    print(f"\nFIGURE: galera hot rows: 3 processes x {HOT_OPS} provider ops "
          f"({sum(r['ops'] for r in hot)} done): {hot_errors} errors; saver "
          f"{SAVER_PUTS} puts on one thread from 3 nodes ({sum(r['ops'] for r in puts)} done): "
          f"{put_errors} errors; {elapsed:.1f}s; first errors: "
          f"{[m for r in hot + puts for m in r['messages']][:3]}")
    assert exits == [0] * 6, f"exit codes {exits} (a worker crashed or hung)"
    assert hot_errors == 0, [m for r in hot for m in r["messages"]]
    assert put_errors == 0, [m for r in puts for m in r["messages"]]


def test_a_read_through_another_node_sees_the_write_just_made(
        galera: Galera, galera_db: str) -> None:
    """Store through node 1, then at once retrieve through node 2 (another provider), 500 times:
    0 misses; likewise a LangGraph put through node 1 then get_tuple through node 2. The package
    sets ``wsrep_sync_wait`` when it detects Galera, so a read waits for earlier commits."""
    from peewee_checkpoints.langgraph import PeeweeSaver

    writer = PeeweeCheckpointProvider(galera.url(0, galera_db))
    reader = PeeweeCheckpointProvider(galera.url(1, galera_db))
    saver_w = PeeweeSaver(galera.url(0, galera_db))
    saver_r = PeeweeSaver(galera.url(1, galera_db))
    try:
        writer.migrate()
        reader.list_checkpoints(limit=1)
        start = time.monotonic()
        misses = 0
        for i in range(READS):
            cid = writer.store_checkpoint(checkpoint("ryw", f"ryw-{i}"))
            if not is_intact(reader.retrieve_checkpoint(cid)):
                misses += 1
        provider_seconds = time.monotonic() - start
        start = time.monotonic()
        tuple_misses = 0
        parent = None
        for i in range(READS):
            stored = saver_w.put(saver_config("ryw", parent), saver_checkpoint(i + 1),
                                 {"step": i}, {"a": i + 1, "b": i + 1})
            parent = stored["configurable"]["checkpoint_id"]
            if saver_r.get_tuple(stored) is None:
                tuple_misses += 1
        saver_seconds = time.monotonic() - start
    finally:
        for closable in (writer, reader, saver_w, saver_r):
            closable.close()
    print(f"\nFIGURE: galera read-your-writes across nodes: {misses}/{READS} retrieve misses "
          f"({provider_seconds:.1f}s), {tuple_misses}/{READS} get_tuple misses "
          f"({saver_seconds:.1f}s)")
    assert misses == 0
    assert tuple_misses == 0


def test_acknowledged_stores_survive_a_node_killed_mid_write(
        galera: Galera, galera_db: str, tmp_path: Path) -> None:
    """Three writers store through node 3 in a loop; node 3 is SIGKILLed. Every id a store
    returned is on the two surviving nodes. Each writer's failed store raised StorageError;
    one whose row was sent and may have committed carries the checkpoint's id
    (``err.checkpoint_id``) and says the outcome is unknown, and any failed store whose row is
    on the survivors did so (that error is how its caller learns the id). A store that failed
    before its row was sent (the connection was found dead, the reconnect refused) may say
    only that: its row is absent. Node 3 then rejoins (IST)."""
    victim = 2
    with PeeweeCheckpointProvider(galera.url(0, galera_db)) as provider:
        provider.migrate()
    read_fd, write_fd = os.pipe()
    outs = [tmp_path / f"writer-{n}.json" for n in range(WRITERS_ON_VICTIM)]
    procs = [
        _fork.Process(target=run_child, args=(store_until_error, {
            "db_url": galera.url(victim, galera_db), "agent": f"kill{n}", "fd": write_fd,
            "out": str(outs[n]), "seconds": 60}))
        for n in range(WRITERS_ON_VICTIM)
    ]
    for p in procs:
        p.start()
    os.close(write_fd)
    # Drain the pipe while the writers run: a full pipe (64 KiB, about 2,400 ids) would block
    # them in os.write, and they would never reach the kill.
    acks_read: list[str] = []
    reader = threading.Thread(target=lambda: acks_read.append(os.fdopen(read_fd).read()))
    reader.start()
    time.sleep(2.0)
    galera.kill(victim)
    killed_at = time.monotonic()
    for p in procs:
        p.join(max(0.0, killed_at + 60 - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(5)
    reader.join(30)
    acknowledged = [line for line in "".join(acks_read).split("\n") if len(line) == 26]
    reports = read_reports(outs)
    rejoin_seconds = galera.restart(victim)

    present: dict[int, dict[str, str]] = {}
    for node in (0, 1):
        with PeeweeCheckpointProvider(galera.url(node, galera_db)) as survivor:
            present[node] = {
                item.name: item.id
                for agent in (f"kill{n}" for n in range(WRITERS_ON_VICTIM))
                for item in survivor.list_checkpoints(agent_id=agent)
            }
    failures = [r for r in reports if r["errors"]]
    committed_anyway = [r for r in failures if r.get("failed_name") in present[0]]
    unknown = [r for r in failures if isinstance(r.get("checkpoint_id"), str)]
    print(f"\nFIGURE: galera node SIGKILLed mid-write: {len(acknowledged)} acknowledged stores, "
          f"{sum(a in present[0].values() for a in acknowledged)} on node 1, "
          f"{sum(a in present[1].values() for a in acknowledged)} on node 2; "
          f"{len(failures)} failed stores ({len(unknown)} with checkpoint_id and outcome "
          f"unknown, {len(committed_anyway)} committed), errors: "
          f"{[r.get('message', r['messages'])[:160] for r in failures]}; node 3 rejoined in "
          f"{rejoin_seconds:.1f}s")
    assert acknowledged, "no store succeeded before the kill"
    for node in (0, 1):
        missing = set(acknowledged) - set(present[node].values())
        assert not missing, f"{len(missing)} acknowledged ids are missing on node {node + 1}"
    assert len(failures) == WRITERS_ON_VICTIM, "a writer on the killed node saw no error"
    for report in failures:
        assert report["storage_error"], report["messages"]
        says_unknown = "unknown" in report["message"].lower()
        carries_id = isinstance(report["checkpoint_id"], str)
        assert says_unknown == carries_id, report["message"]
        name = report["failed_name"]
        if name in present[0] or name in present[1]:
            assert carries_id and says_unknown, f"{name} committed, but: {report['message']}"
            assert present[0][name] == present[1][name] == report["checkpoint_id"]


def test_losing_quorum_is_reported_as_lost_quorum(galera: Galera, galera_db: str) -> None:
    """With two of three nodes killed, the survivor refuses queries (1047, not Primary); an
    operation there raises StorageError saying the cluster lost quorum, for a provider already
    in use and for a new one (whose first call is not 'checking migrations')."""
    url = galera.url(0, galera_db)
    used = PeeweeCheckpointProvider(url)
    try:
        used.store_checkpoint(checkpoint("quorum", "before"))
        galera.kill(1)
        galera.kill(2)
        start = time.monotonic()
        while time.monotonic() - start < 40:
            if galera.status(0, "wsrep_cluster_status") != "Primary":
                break
            time.sleep(0.5)
        lost_after = time.monotonic() - start
        with pytest.raises(StorageError) as in_use:
            used.store_checkpoint(checkpoint("quorum", "after"))
        fresh = PeeweeCheckpointProvider(url)
        try:
            with pytest.raises(StorageError) as first_call:
                fresh.list_checkpoints(limit=1)
        finally:
            fresh.close()
    finally:
        used.close()
    print(f"\nFIGURE: galera quorum lost {lost_after:.1f}s after killing 2 of 3 nodes; store: "
          f"{' '.join(str(in_use.value).split())[:200]!r}; first call of a new provider: "
          f"{' '.join(str(first_call.value).split())[:200]!r}")
    for error in (in_use.value, first_call.value):
        message = str(error).lower()
        assert "quorum" in message, str(error)
        assert "check migrations" not in message and "checking migrations" not in message
