"""The provider and the LangGraph saver behind PgBouncer 1.18, in transaction and session mode.

In transaction mode each transaction may run on a different server connection, so nothing
session-scoped (a session advisory lock, a SET) survives from one transaction to the next. In
session mode a pool of 10 server connections is shared by every client; a client that keeps a
connection it no longer uses starves the others.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import MigrationError, PeeweeCheckpointProvider

from .._workload import checkpoint, is_intact
from ._servers import MAIN_POSTGRES, PgBouncer, pg_connect, pg_query
from ._work import first_use, read_reports, run_child, saver_checkpoint, saver_config

pytestmark = pytest.mark.topology("pgbouncer")

_fork = multiprocessing.get_context("fork")

PROCESSES = 8
LONG_THREADS = 4
SHORT_THREADS = 50
SHORT_AT_ONCE = 5
# Connections one process may hold through the session-mode pooler: at most one per live thread
# that has used the provider or the saver: 4 long-lived + 5 short-lived + 1 saver thread + the
# main thread (which migrated) = 11, one more than the pool, so a client may queue, but only
# until a short-lived thread ends and its connection goes.
CLIENT_BOUND = LONG_THREADS + SHORT_AT_ONCE + 1 + 1
# The whole workload takes about a second when connections are released; a client queued behind
# connections nobody releases waits PgBouncer's query_wait_timeout (20 s here) and fails.
POOL_SECONDS = 15
HANG_SECONDS = 45
# The constructor keyword this round adds (given through a dict so the test type-checks
# before and after it exists).
LOCK_TIMEOUT_2S: dict[str, Any] = {"migration_lock_timeout": 2}
MIGRATION_LOCK_KEY = (
    int.from_bytes(hashlib.sha256(b"peewee_checkpoints.migrate").digest()[:8], "big") >> 1
)


def history(dbname: str) -> list[tuple[str, int]]:
    """(name, rows) of the package's migration history, read on 5432 directly."""
    conn = pg_connect(MAIN_POSTGRES[1], dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, count(*) FROM peewee_checkpoints_migrations "
                        "GROUP BY name ORDER BY name")
            return [(str(n), int(c)) for n, c in cur.fetchall()]
    finally:
        conn.close()


def eight_first_uses(urls: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """Fork one process per URL; all make their first call at the same moment (half through a
    provider, half through a LangGraph saver). Returns their reports."""
    import peewee_checkpoints.langgraph  # noqa: F401 - imported once here, not in each child

    go_at = time.time() + 1.5
    outs = [tmp_path / f"first-use-{k}.json" for k in range(len(urls))]
    procs = [
        _fork.Process(target=run_child, args=(first_use, {
            "db_url": url, "use_saver": k % 2 == 1, "go_at": go_at, "out": str(out)}))
        for k, (url, out) in enumerate(zip(urls, outs, strict=True))
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + HANG_SECONDS
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join(5)
    reports = read_reports(outs)
    for p, report in zip(procs, reports, strict=True):
        if p in hung:
            report["errors"] += 1
            report["messages"].append(f"hung for {HANG_SECONDS} s (killed)")
    return reports


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_eight_processes_first_use_a_fresh_database_through_pgbouncer_at_once(
        pgbouncer: PgBouncer, bouncer_db: str, mode: str, tmp_path: Path) -> None:
    """8 of 8 first uses succeed through the pooler and each migration is recorded once: the
    migration lock is taken in the migration's own transaction, so it holds in transaction
    mode, where a session lock and its unlock land on different server connections."""
    url = pgbouncer.url(bouncer_db, mode)
    start = time.monotonic()
    reports = eight_first_uses([url] * PROCESSES, tmp_path)
    elapsed = time.monotonic() - start
    ok = sum(1 for r in reports if r["errors"] == 0)
    rows = history(bouncer_db)
    print(f"\nFIGURE: pgbouncer {mode} mode: {ok}/{PROCESSES} first uses succeeded in "
          f"{elapsed:.1f}s; history {rows}; errors: "
          f"{[m for r in reports for m in r['messages']][:3]}")
    assert ok == PROCESSES, [m for r in reports for m in r["messages"]]
    with PeeweeCheckpointProvider(url) as provider:
        assert provider.pending_migrations() == []
        applied = provider.applied_migrations()
    assert rows == [(name, 1) for name in sorted(applied)]
    assert len(rows) >= 3


def _pool_counts(pgbouncer: PgBouncer, dbname: str) -> tuple[int, int]:
    """(server connections on 5432 to ``dbname``, client connections PgBouncer's session pool
    holds for it)."""
    servers = int(pg_query(MAIN_POSTGRES[1],
                           "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (dbname,)))
    clients = 0
    conn = pg_connect(pgbouncer.session_port, "pgbouncer")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW POOLS")
            names = [d[0] for d in cur.description]
            for row in cur.fetchall():
                pool = dict(zip(names, row, strict=True))
                if pool["database"] == dbname:
                    clients += int(pool["cl_active"]) + int(pool["cl_waiting"])
    finally:
        conn.close()
    return servers, clients


def test_threads_and_short_lived_threads_share_a_session_pool_of_ten_without_starving(
        pgbouncer: PgBouncer, bouncer_db: str) -> None:
    """4 long-lived threads, 50 thread-per-request threads (5 at a time) and a LangGraph saver
    thread on one provider, through a session-mode pool of 10, finish within 15 s: a thread's
    connection goes back (or is closed) when the thread ends, so finished threads do not keep
    the pool's connections, and the process holds at most one connection per busy thread."""
    from peewee_checkpoints.langgraph import PeeweeSaver

    url = pgbouncer.url(bouncer_db, "session")
    provider = PeeweeCheckpointProvider(url)
    saver = PeeweeSaver(url)
    errors: list[str] = []
    stop = threading.Event()
    peak = {"servers": 0, "clients": 0}
    done = {"long": 0, "short": 0, "saver": 0}
    lock = threading.Lock()

    def record(exc: BaseException) -> None:
        with lock:
            errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")

    def long_lived(n: int) -> None:
        try:
            for i in range(40):
                cid = provider.store_checkpoint(checkpoint(f"long{n}", f"long{n}-{i}"))
                assert is_intact(provider.retrieve_checkpoint(cid))
                with lock:
                    done["long"] += 1
        except BaseException as exc:
            record(exc)

    def request(n: int) -> None:
        try:
            cid = provider.store_checkpoint(checkpoint("req", f"req-{n}"))
            assert is_intact(provider.retrieve_checkpoint(cid))
            with lock:
                done["short"] += 1
        except BaseException as exc:
            record(exc)

    def graph() -> None:
        try:
            parent = None
            for i in range(20):
                stored = saver.put(saver_config("pool-thread", parent), saver_checkpoint(i + 1),
                                   {"step": i}, {"a": i + 1, "b": i + 1})
                parent = stored["configurable"]["checkpoint_id"]
                assert saver.get_tuple(stored) is not None
                with lock:
                    done["saver"] += 1
        except BaseException as exc:
            record(exc)

    def monitor() -> None:
        while not stop.is_set():
            try:
                servers, clients = _pool_counts(pgbouncer, bouncer_db)
                peak["servers"] = max(peak["servers"], servers)
                peak["clients"] = max(peak["clients"], clients)
            except Exception:  # noqa: S110 - a missed sample is not a failure
                pass
            stop.wait(0.1)

    provider.migrate()
    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    start = time.monotonic()
    deadline = start + 2 * POOL_SECONDS
    slowest_wave = 0.0
    workers = [threading.Thread(target=long_lived, args=(n,), daemon=True)
               for n in range(LONG_THREADS)]
    workers.append(threading.Thread(target=graph, daemon=True))
    try:
        for t in workers:
            t.start()
        for first in range(0, SHORT_THREADS, SHORT_AT_ONCE):
            batch = [threading.Thread(target=request, args=(n,), daemon=True)
                     for n in range(first, min(first + SHORT_AT_ONCE, SHORT_THREADS))]
            wave_start = time.monotonic()
            for t in batch:
                t.start()
            for t in batch:
                t.join(max(0.0, deadline - time.monotonic()))
            slowest_wave = max(slowest_wave, time.monotonic() - wave_start)
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.monotonic() - start
        hung = sum(t.is_alive() for t in workers)
        stop.set()
        watcher.join(5)
        _, clients_after = _pool_counts(pgbouncer, bouncer_db)
    finally:
        stop.set()
        watcher.join(5)
        provider.close()
        saver.close()
    print(f"\nFIGURE: pgbouncer session pool of {pgbouncer.pool_size}: {LONG_THREADS} threads x "
          f"40 store+retrieve ({done['long']} done), {SHORT_THREADS} short-lived threads "
          f"({done['short']} done, slowest wave {slowest_wave:.1f}s), saver 20 "
          f"put+get_tuple ({done['saver']} done) in "
          f"{elapsed:.1f}s; peak {peak['servers']} server connections, {peak['clients']} "
          f"client connections ({clients_after} once the threads had ended); {len(errors)} errors "
          f"{errors[:2]}")
    assert hung == 0, f"still running after {2 * POOL_SECONDS} s; errors: {errors[:3]}"
    assert elapsed < POOL_SECONDS, f"took {elapsed:.1f}s: a client waited for a connection"
    assert errors == []
    assert done == {"long": LONG_THREADS * 40, "short": SHORT_THREADS, "saver": 20}
    assert peak["servers"] <= pgbouncer.pool_size
    assert peak["clients"] <= CLIENT_BOUND


def test_a_migration_lock_held_elsewhere_fails_after_the_configured_wait(
        pgbouncer: PgBouncer, bouncer_db: str) -> None:
    """While another connection holds the migration lock (a transaction-scoped advisory lock),
    ``migrate()`` through PgBouncer's transaction mode waits ``migration_lock_timeout`` seconds,
    then raises MigrationError saying another process holds the lock, instead of waiting
    forever."""
    holder = pg_connect(MAIN_POSTGRES[1], bouncer_db)
    holder.autocommit = False
    outcome: dict[str, Any] = {}
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))

        def attempt() -> None:
            start = time.monotonic()
            try:
                provider = PeeweeCheckpointProvider(pgbouncer.url(bouncer_db, "transaction"),
                                                    **LOCK_TIMEOUT_2S)
                try:
                    outcome["result"] = provider.migrate()
                finally:
                    provider.close()
            except BaseException as exc:
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - start

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(30)
        hung = thread.is_alive()
    finally:
        holder.rollback()  # releases the lock, so a hung attempt can finish
        holder.close()
    if hung:
        thread.join(30)
    error = outcome.get("error")
    print(f"\nFIGURE: migration lock held elsewhere: migrate() gave "
          f"{type(error).__name__ if error else outcome.get('result')} after "
          f"{outcome.get('seconds', 30.0):.1f}s (timeout 2 s)")
    assert not hung, "migrate() was still waiting for the lock after 30 s"
    assert isinstance(error, MigrationError), repr(error)
    message = str(error).lower()
    assert "lock" in message and "another" in message, str(error)
    assert 1.5 <= outcome["seconds"] <= 10
