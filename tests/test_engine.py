"""The engine under every public surface: URLs, connections, locks, retries, error wording.

Each test runs against real servers (and a real SQLite file); the topologies (PgBouncer,
Galera, a standby) have their own suite under tests/topologies/.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from peewee_checkpoints import (
    MemoryCheckpointProvider,
    MigrationError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
    StoredCheckpoint,
)
from peewee_checkpoints._engine import Engine
from peewee_checkpoints._profiles import PG_LOCK_KEY

from .conftest import create_server_database, drop_server_database


def _cp(i: int, agent: str = "a") -> NamedCheckpoint:
    return NamedCheckpoint(name=f"n{i}", agent_id=agent, state={"i": i})


# -- URLs ----------------------------------------------------------------------------------


def test_constructing_a_sqlite_provider_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    provider = PeeweeCheckpointProvider(f"sqlite:///{path}")
    assert not path.exists()
    provider.store_checkpoint(_cp(1))
    assert path.exists()
    assert (path.stat().st_mode & 0o777) == 0o600
    provider.close()


def test_an_in_memory_database_leaves_no_file_after_close() -> None:
    provider = PeeweeCheckpointProvider("sqlite:///:memory:")
    provider.store_checkpoint(_cp(1))
    path = provider.database.database
    assert os.path.exists(path)
    provider.close()
    assert not any(os.path.exists(path + s) for s in ("", "-wal", "-shm"))
    # Used again after close(), it is a fresh, empty database.
    assert provider.list_checkpoints() == []
    provider.close()


@pytest.mark.parametrize("url", [
    "sqlite:///x.db?foo=bar",
    "sqlite:/x.db",
])
def test_a_malformed_sqlite_url_is_a_config_error_that_explains_it(url: str) -> None:
    from peewee_checkpoints import ConfigError

    with pytest.raises(ConfigError, match=r"foo|three slashes"):
        PeeweeCheckpointProvider(url)


def test_libpq_multi_host_urls_are_accepted_and_connect(servers: Any) -> None:
    admin = servers.url("postgres")
    parts = urlparse(admin)
    host, port = parts.hostname, parts.port or 5432
    user = parts.username
    url = create_server_database("postgres", admin)
    name = urlparse(url).path.lstrip("/")
    try:
        for form in (
            f"postgresql://{user}@{host}:{port},{host}:{port}/{name}"
            "?target_session_attrs=read-write",
            f"postgresql://{user}@/{name}?host={host},{host}&port={port},{port}"
            "&target_session_attrs=read-write",
        ):
            with PeeweeCheckpointProvider(form) as provider:
                checkpoint_id = provider.store_checkpoint(_cp(1))
                assert provider.retrieve_checkpoint(checkpoint_id) is not None
    finally:
        drop_server_database("postgres", admin, url)


# -- connections ---------------------------------------------------------------------------


def _server_connections(backend: str, db_url: str) -> int:
    """Connections the server has open to this test's database (from another connection)."""
    name = urlparse(db_url).path.lstrip("/")
    if backend == "postgres":
        import psycopg2

        parts = urlparse(db_url)
        conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                                user=parts.username, dbname="postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
                return int(cur.fetchone()[0])
        finally:
            conn.close()
    import pymysql

    parts = urlparse(db_url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=parts.username or "root", password=parts.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = %s",
                        (name,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.mark.backends("postgres", "mysql")
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_threads_that_come_and_go_share_a_bounded_pool(backend: str, db_url: str) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    provider.migrate()
    errors: list[BaseException] = []

    def request(i: int) -> None:  # a thread per request, as many web servers run them
        try:
            checkpoint_id = provider.store_checkpoint(_cp(i))
            assert provider.retrieve_checkpoint(checkpoint_id) is not None
        except BaseException as exc:
            errors.append(exc)

    for wave in range(5):
        threads = [threading.Thread(target=request, args=(wave * 20 + i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    held = _server_connections(backend, db_url)
    # The engine's pool: at most MAX_CONNECTIONS (8), however many threads came and went.
    assert 1 <= held <= 8, held
    provider.close()
    deadline = time.monotonic() + 5
    while _server_connections(backend, db_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _server_connections(backend, db_url) == 0


def test_a_closed_port_is_reported_as_a_connect_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = PeeweeCheckpointProvider(f"postgresql://u:secret@127.0.0.1:{port}/db")
    with pytest.raises(StorageError) as info:
        provider.list_checkpoints()
    message = str(info.value)
    assert message.startswith("could not connect to postgresql://u:***@127.0.0.1")
    assert "migration" not in message and "secret" not in message


# -- the migration lock ----------------------------------------------------------------------


@contextlib.contextmanager
def _lock_held(backend: str, db_url: str) -> Iterator[None]:
    """Hold the migration lock from another connection, the way another process would."""
    if backend == "postgres":
        import psycopg2

        parts = urlparse(db_url)
        conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                                user=parts.username, dbname=parts.path.lstrip("/"))
        with conn.cursor() as cur:  # psycopg2 opens a transaction: the xact lock stays held
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
    elif backend == "mysql":
        import pymysql

        from peewee_checkpoints._profiles import MySQLProfile

        parts = urlparse(db_url)
        name = MySQLProfile(db_url, parts.path.lstrip("/"))._lock_name()
        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                               user=parts.username or "root", password=parts.password or "")
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 5)", (name,))
        try:
            yield
        finally:
            conn.close()
    else:
        import sqlite3

        conn = sqlite3.connect(urlparse(db_url).path[1:], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def test_the_migration_lock_wait_is_bounded_and_says_who_holds_it(
    backend: str, db_url: str
) -> None:
    if backend == "sqlite":
        # The file must exist (in WAL mode, as the provider makes it) to be locked.
        import sqlite3

        sqlite3.connect(urlparse(db_url).path[1:]).execute("PRAGMA journal_mode=wal").close()
    provider = PeeweeCheckpointProvider(db_url, migration_lock_timeout=1.5)
    with _lock_held(backend, db_url):
        started = time.monotonic()
        with pytest.raises(MigrationError, match="another process holds it"):
            provider.migrate()
        waited = time.monotonic() - started
    assert 1.0 <= waited < 10, waited
    # Once the other process is gone, the same provider migrates.
    assert provider.migrate() != []
    provider.close()


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.backends("postgres", "mysql")
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_deadlock_between_two_idempotent_calls_is_run_again(backend: str, db_url: str) -> None:
    engine = Engine(db_url)
    engine.run("setup", lambda: [
        engine.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)"),
        engine.execute("INSERT INTO t VALUES (1, 0), (2, 0)"),
    ])
    barrier = threading.Barrier(2, timeout=10)
    runs = [0, 0]
    errors: list[BaseException] = []
    p = engine.param

    def worker(n: int, first: int, second: int) -> None:
        def transfer() -> None:
            runs[n] += 1
            with engine.transaction():
                engine.execute(f"UPDATE t SET v = v + 1 WHERE k = {p}", (first,))
                if runs[n] == 1:
                    barrier.wait()  # both hold their first row: each now waits for the other
                engine.execute(f"UPDATE t SET v = v + 1 WHERE k = {p}", (second,))

        try:
            engine.run("transfer", transfer)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(0, 1, 2)),
               threading.Thread(target=worker, args=(1, 2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(runs) == [1, 2]  # the deadlock's victim ran once more
    rows = engine.run("read", lambda: engine.execute("SELECT v FROM t ORDER BY k").fetchall())
    assert [r[0] for r in rows] == [2, 2]
    engine.close()


def test_import_racing_a_delete_of_the_same_id_never_raises(backend: str, db_url: str) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    record = StoredCheckpoint(id="01RACE", name="n", agent_id="a", state={"x": 1})
    provider.import_checkpoint(record)
    stop = time.monotonic() + 3
    errors: list[BaseException] = []

    def importer() -> None:
        while time.monotonic() < stop:
            try:
                assert provider.import_checkpoint(record) in (True, False)
            except BaseException as exc:
                errors.append(exc)
                return

    def deleter() -> None:
        while time.monotonic() < stop:
            provider.delete_checkpoint(record.id)

    threads = [threading.Thread(target=importer), threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    provider.close()


# -- generic paging ----------------------------------------------------------------------------


class _CountingMemory(MemoryCheckpointProvider):
    rows_read = 0

    def list_checkpoints(self, **kwargs: Any) -> Any:  # type: ignore[override]
        rows = super().list_checkpoints(**kwargs)
        self.rows_read += len(rows)
        return rows


def test_generic_iteration_reads_a_group_of_tied_rows_once() -> None:
    provider = _CountingMemory()
    for i in range(5_000):
        provider.store_checkpoint(NamedCheckpoint(name=f"n{i}", agent_id="a", state={},
                                                  created_at=1_000))
    for i in range(100):
        provider.store_checkpoint(NamedCheckpoint(name=f"m{i}", agent_id="a", state={},
                                                  created_at=2_000 + i))
    # The interface's own iteration (the memory provider's parent class).
    items = list(super(MemoryCheckpointProvider, provider).iter_checkpoints())
    assert len(items) == 5_100
    assert len({i.id for i in items}) == 5_100
    assert items == provider.list_checkpoints()
    assert provider.rows_read <= 2 * 5_100 + 2 * provider.iter_page_size


# -- unknown outcome -----------------------------------------------------------------------------


class _Proxy:
    """A TCP proxy on 127.0.0.1 that can cut every connection and refuse new ones."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._cut_after_bytes: int | None = None
        self._triggered = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while data := src.recv(65536):
                if not upward and self._triggered:
                    continue  # the server's answer to the big INSERT never reaches the client
                dst.sendall(data)
                if (upward and self._cut_after_bytes is not None and not self._triggered
                        and len(data) >= self._cut_after_bytes):
                    # The big INSERT is going up: let all of it reach the server and commit,
                    # drop the answer, then cut every connection and refuse new ones.
                    self._triggered = True
                    threading.Timer(0.5, self.kill).start()
        except OSError:
            pass

    def cut_after_a_message_of(self, size: int) -> None:
        self._cut_after_bytes = size

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.backends("postgres", "mysql")
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_store_whose_answer_is_lost_reports_its_id_and_the_row_is_there(
    backend: str, db_url: str
) -> None:
    parts = urlparse(db_url)
    default_port = 5432 if backend == "postgres" else 3306
    proxy = _Proxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    proxied = db_url.replace(parts.netloc, parts.netloc.replace(
        f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname),
        f"127.0.0.1:{proxy.port}"))
    provider = PeeweeCheckpointProvider(proxied)
    provider.migrate()
    # An incompressible state of 256 KiB: the INSERT is the only message that large.
    state = {"blob": os.urandom(128 * 1024).hex()}
    proxy.cut_after_a_message_of(64 * 1024)
    with pytest.raises(StorageError) as info:
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state=state))
    error = info.value
    assert error.checkpoint_id is not None
    assert "outcome is unknown" in str(error)
    with PeeweeCheckpointProvider(db_url) as direct:
        got = direct.retrieve_checkpoint(error.checkpoint_id)
    assert got is not None and got.state == state
    provider.close()


def test_a_lost_table_is_migrated_again_by_a_running_provider(db_url: str) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    provider.store_checkpoint(_cp(1))
    other = PeeweeCheckpointProvider(db_url)
    while other.applied_migrations():
        other.rollback_migration()
    other.close()
    assert provider.list_checkpoints() == []
    provider.store_checkpoint(_cp(2))
    assert len(provider.list_checkpoints()) == 1
    provider.close()


@pytest.mark.backends("postgres", "mysql")
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_server_connection_goes_back_to_the_pool_after_each_call(db_url: str) -> None:
    provider = PeeweeCheckpointProvider(db_url)
    provider.store_checkpoint(_cp(1))
    assert provider.database.is_closed()  # this thread's connection went back to the pool
    provider.close()


def test_a_sqlite_thread_keeps_its_connection_and_it_closes_when_the_thread_ends(
    tmp_path: Path,
) -> None:
    import gc

    provider = PeeweeCheckpointProvider(f"sqlite:///{tmp_path / 'a.db'}")
    provider.migrate()
    live = provider.database._pc_live
    before = len(live)

    def request() -> None:
        provider.store_checkpoint(_cp(1))
        assert not provider.database.is_closed()  # kept for this thread's next call

    threads = [threading.Thread(target=request) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert len(live) == before  # each ended thread's connection was closed with it
    provider.close()
    assert len(live) == 0
