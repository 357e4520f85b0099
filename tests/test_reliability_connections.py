"""Dropped connections and unreachable servers: reconnect by itself, never hang, lose nothing.

Connections are killed for real on the server (PostgreSQL ``pg_terminate_backend``, MariaDB
``KILL``); "down" and "hung" servers are simulated on loopback only: a closed port, and a
listener that accepts connections and never answers.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg2
import pymysql
import pytest

from peewee_checkpoints import PeeweeCheckpointProvider, StorageError
from peewee_checkpoints._database import CONNECT_TIMEOUT

from ._workload import checkpoint, is_intact
from .conftest import with_database

server_backend = pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)


class Admin:
    """A separate superuser connection that can see and kill the provider's connections."""

    def __init__(self, backend: str, db_url: str) -> None:
        self.backend = backend
        parts = urlparse(db_url)
        self.database = parts.path.lstrip("/")
        if backend == "postgres":
            self.conn: Any = psycopg2.connect(
                host=parts.hostname, port=parts.port or 5432, user=parts.username,
                password=parts.password or None, dbname=self.database, connect_timeout=10)
            self.conn.autocommit = True
        else:
            self.conn = pymysql.connect(
                host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                password=parts.password or "", connect_timeout=10, autocommit=True)
        self.kills = 0

    def sessions(self) -> list[int]:
        """Server ids of every other connection to the test database."""
        with self.conn.cursor() as cur:
            if self.backend == "postgres":
                cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                            "AND pid <> pg_backend_pid()", (self.database,))
            else:
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                            "AND ID <> CONNECTION_ID()", (self.database,))
            return [row[0] for row in cur.fetchall()]

    def kill(self, session: int) -> None:
        with self.conn.cursor() as cur:
            try:
                if self.backend == "postgres":
                    cur.execute("SELECT pg_terminate_backend(%s)", (session,))
                else:
                    cur.execute(f"KILL {int(session)}")
                self.kills += 1
            except pymysql.err.OperationalError as exc:  # it had already gone
                if exc.args[0] != 1094:  # "Unknown thread id"
                    raise

    def kill_all(self) -> int:
        sessions = self.sessions()
        for s in sessions:
            self.kill(s)
        return len(sessions)

    def execute(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)


@pytest.fixture
def admin(backend: str, db_url: str) -> Iterator[Admin]:
    a = Admin(backend, db_url)
    yield a
    a.conn.close()


def _until_ok(call: Any) -> tuple[Any, int]:
    """Run ``call``: it may fail once with StorageError; the next attempt must work."""
    try:
        return call(), 0
    except StorageError:
        return call(), 1


@server_backend
def test_each_call_after_a_killed_connection_reconnects_by_itself(
    backend: str, db_url: str, admin: Admin
) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    acknowledged = [provider.store_checkpoint(checkpoint("a", "first"))]
    calls = {
        "store": lambda: acknowledged.append(
            provider.store_checkpoint(checkpoint("a", f"n{len(acknowledged)}"))),
        "retrieve": lambda: provider.retrieve_checkpoint(acknowledged[0]),
        "list": lambda: provider.list_checkpoints(agent_id="a"),
        "delete": lambda: provider.delete_checkpoint("no-such-id"),
        "migrate": provider.migrate,
    }
    failures = 0
    try:
        for _round in range(3):
            for name, call in calls.items():
                assert admin.kill_all() == 1, name
                _, failed = _until_ok(call)
                failures += failed
        # These calls reconnect transparently: not even one StorageError.
        assert failures == 0
        assert {i.id for i in provider.list_checkpoints()} == set(acknowledged)
        assert all(is_intact(provider.retrieve_checkpoint(c), "a") for c in acknowledged)
        print(f"{admin.kills} kills between calls, {failures} StorageErrors")
    finally:
        provider.close()


def _block_reads(admin: Admin) -> None:
    """Take a table lock that makes every read of the checkpoints table wait."""
    if admin.backend == "postgres":
        admin.conn.autocommit = False
        admin.execute("LOCK TABLE peewee_checkpoints IN ACCESS EXCLUSIVE MODE")
    else:
        admin.execute(f"LOCK TABLES {admin.database}.peewee_checkpoints WRITE")


def _unblock_reads(admin: Admin) -> None:
    if admin.backend == "postgres":
        admin.conn.rollback()
        admin.conn.autocommit = True
    else:
        admin.execute("UNLOCK TABLES")


@server_backend
def test_a_listing_whose_connection_is_killed_while_it_runs_still_answers(
    backend: str, db_url: str, admin: Admin
) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    ids = {provider.store_checkpoint(checkpoint("a", f"n{i}")) for i in range(200)}
    results: list[Any] = []
    _block_reads(admin)
    blocked = True
    lister = threading.Thread(target=lambda: results.append(_try_list(provider)))
    try:
        lister.start()
        # Wait until the listing is on the server, stuck behind the lock, then kill it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _waiting_sessions(admin):
            time.sleep(0.02)
        waiting = _waiting_sessions(admin)
        assert waiting, "the listing never reached the server"
        for s in waiting:
            admin.kill(s)
        time.sleep(0.3)
    finally:
        _unblock_reads(admin)
        blocked = False
        lister.join(30)
    try:
        assert not blocked
        assert not lister.is_alive(), "the listing hung after its connection was killed"
        outcome = results[0]
        if isinstance(outcome, StorageError):  # allowed once; the next call must work
            outcome = provider.list_checkpoints()
        assert {i.id for i in outcome} == ids
        print(f"listing killed while it ran: {type(results[0]).__name__} first")
    finally:
        provider.close()


def _try_list(provider: PeeweeCheckpointProvider) -> Any:
    try:
        return provider.list_checkpoints()
    except StorageError as exc:
        return exc


def _waiting_sessions(admin: Admin) -> list[int]:
    with admin.conn.cursor() as cur:
        if admin.backend == "postgres":
            # Inside the lock's transaction pg_stat_activity is a frozen snapshot: refresh it.
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                        "wait_event_type = 'Lock' AND pid <> pg_backend_pid()", (admin.database,))
        else:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND "
                        "STATE LIKE %s AND ID <> CONNECTION_ID()",
                        (admin.database, "%metadata lock%"))
        return [row[0] for row in cur.fetchall()]


@server_backend
def test_connections_killed_at_random_moments_under_load_lose_no_write(
    backend: str, db_url: str, admin: Admin
) -> None:
    """4 threads store, read and list for 3 s while a killer ends random sessions."""
    provider = PeeweeCheckpointProvider(db_url)
    provider.migrate()
    stop = threading.Event()
    acknowledged: list[str] = []
    ops = [0]
    errors: list[BaseException] = []
    storage_errors = [0]
    lock = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(n)
        failed_last = False
        i = 0
        while not stop.is_set():
            try:
                op = rng.random()
                if op < 0.5:
                    cid = provider.store_checkpoint(checkpoint(f"t{n}", f"t{n}-{i}"))
                    with lock:
                        acknowledged.append(cid)
                    i += 1
                elif op < 0.8:
                    provider.list_checkpoints(limit=rng.choice([None, 10]))
                elif acknowledged:
                    assert is_intact(provider.retrieve_checkpoint(rng.choice(acknowledged)))
                failed_last = False
            except StorageError as exc:
                # A kill may cost one call, never two in a row.
                if failed_last:
                    errors.append(exc)
                    return
                failed_last = True
                with lock:
                    storage_errors[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                ops[0] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    rng = random.Random(0)
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.01, 0.1))
            sessions = admin.sessions()
            if sessions:
                admin.kill(rng.choice(sessions))
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "a thread hung after a kill"
        assert errors == []
        stored = {i.id for i in provider.list_checkpoints()}
        # A store that failed with StorageError may still have committed; an acknowledged
        # one must have.
        assert set(acknowledged) <= stored
        assert all(is_intact(provider.retrieve_checkpoint(c)) for c in stored)
        print(f"{admin.kills} random kills during {ops[0]} operations by 4 threads: "
              f"{storage_errors[0]} single StorageErrors, {len(acknowledged)} writes, none lost")
        assert admin.kills >= 20
    finally:
        provider.close()


# -- servers that are down or hung (simulated on loopback) -----------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


SCHEMES = {"postgres": "postgresql", "mysql": "mysql"}


@server_backend
def test_a_server_that_is_down_gives_storage_error_at_once(backend: str) -> None:
    provider = PeeweeCheckpointProvider(f"{SCHEMES[backend]}://u@127.0.0.1:1/db")
    start = time.monotonic()
    with pytest.raises(StorageError, match=r"127\.0\.0\.1"):
        provider.list_checkpoints()
    assert time.monotonic() - start < 5


@server_backend
def test_a_server_that_never_answers_gives_storage_error_within_the_connect_timeout(
    backend: str, silent_port: int
) -> None:
    provider = PeeweeCheckpointProvider(
        f"{SCHEMES[backend]}://u@127.0.0.1:{silent_port}/db?connect_timeout=1")
    store = lambda: provider.store_checkpoint(checkpoint("a", "n"))  # noqa: E731
    for call in (provider.list_checkpoints, store):
        start = time.monotonic()
        with pytest.raises(StorageError):
            call()
        elapsed = time.monotonic() - start
        # One timeout, not one per internal step (the migration check, then the migration).
        assert elapsed < 2.5, elapsed


@server_backend
def test_the_default_connect_timeout_bounds_every_server_connection(backend: str) -> None:
    provider = PeeweeCheckpointProvider(f"{SCHEMES[backend]}://u@127.0.0.1:1/db")
    assert provider.database.connect_params["connect_timeout"] == CONNECT_TIMEOUT == 10


@server_backend
def test_a_killed_connection_keeps_no_stale_session_open(
    backend: str, db_url: str, admin: Admin
) -> None:
    with PeeweeCheckpointProvider(with_database(db_url, admin.database)) as provider:
        provider.store_checkpoint(checkpoint("a", "n"))
        admin.kill_all()
        provider.store_checkpoint(checkpoint("a", "m"))
        # A killed session ends on the server a moment after the kill: wait for that.
        assert _eventually(lambda: len(admin.sessions()) == 1)
    assert _eventually(lambda: admin.sessions() == [])


def _eventually(check: Any, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@server_backend
def test_the_bounded_handshake_does_not_time_out_slow_queries_afterwards(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url + "?connect_timeout=1") as provider:
        provider.migrate()
        sleep = "SELECT pg_sleep(1.5)" if provider.backend == "postgres" else "SELECT SLEEP(1.5)"
        provider.database.execute_sql(sleep)
        assert provider.list_checkpoints() == []
