"""Real databases for the tests: a fresh SQLite file, PostgreSQL database or MariaDB database
per test.

Server URLs come from the environment first (``PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL``,
``PEEWEE_CHECKPOINTS_TEST_MYSQL_URL``: a server on which the tests may create databases); where
one is unset and a Docker engine answers, testcontainers starts postgres:16 / mysql:8.4;
otherwise that backend is skipped, unless ``PEEWEE_CHECKPOINTS_REQUIRE_BACKENDS`` (or
``--require-backends``) names it, which turns the skip into a failure.
``--backends`` / ``PEEWEE_CHECKPOINTS_TEST_BACKENDS`` chooses which backends run at all.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse, urlunparse

import pytest

from peewee_checkpoints import PeeweeCheckpointProvider

ALL_BACKENDS = ("sqlite", "postgres", "mysql")
SERVER_BACKENDS = ("postgres", "mysql")
_ENV_URL = {
    "postgres": "PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL",
    "mysql": "PEEWEE_CHECKPOINTS_TEST_MYSQL_URL",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peewee-checkpoints")
    group.addoption(
        "--backends",
        default=os.environ.get("PEEWEE_CHECKPOINTS_TEST_BACKENDS", ",".join(ALL_BACKENDS)),
        help="comma-separated backends to run: sqlite,postgres,mysql (default: all)",
    )
    group.addoption(
        "--require-backends",
        default=os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_BACKENDS", ""),
        help="comma-separated backends (or 'all') that must not be skipped",
    )


def _split(value: str) -> set[str]:
    names = {v.strip() for v in value.split(",") if v.strip()}
    return set(ALL_BACKENDS) if "all" in names else names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests parameterized on a backend that was not chosen with --backends."""
    chosen = _split(config.getoption("--backends"))
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        backends = {backend} if backend else set(_marked_backends(item))
        (drop if backends and not backends & chosen else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _marked_backends(item: pytest.Item) -> list[str]:
    marker = item.get_closest_marker("backends")
    return list(marker.args) if marker else []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): the backends a test needs")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


class _Servers:
    """Resolves each server backend's admin URL once per session."""

    def __init__(self, config: pytest.Config) -> None:
        self.required = _split(config.getoption("--require-backends"))
        self._urls: dict[str, str | None] = {}
        self._reasons: dict[str, str] = {}
        self._containers: list[object] = []

    def url(self, backend: str) -> str:
        if backend not in self._urls:
            self._urls[backend] = self._resolve(backend)
        url = self._urls[backend]
        if url is None:
            reason = self._reasons[backend]
            if backend in self.required:
                pytest.fail(f"backend {backend} is required but unavailable: {reason}")
            pytest.skip(reason)
        return url

    def _resolve(self, backend: str) -> str | None:
        env = _ENV_URL[backend]
        if os.environ.get(env):
            return os.environ[env]
        if not _docker_answers():
            self._reasons[backend] = (
                f"{backend}: set {env} to a server URL on which the tests may create "
                "databases, or run a Docker engine for testcontainers"
            )
            return None
        return self._start_container(backend)

    def _start_container(self, backend: str) -> str:
        if backend == "postgres":
            from testcontainers.postgres import PostgresContainer

            pg = PostgresContainer("postgres:16", driver=None)
            pg.start()
            self._containers.append(pg)
            return pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
        from testcontainers.mysql import MySqlContainer

        my = MySqlContainer("mysql:8.4", username="root", password="test")
        my.start()
        self._containers.append(my)
        host, port = my.get_container_host_ip(), my.get_exposed_port(3306)
        return f"mysql://root:test@{host}:{port}/test"

    def stop(self) -> None:
        for container in self._containers:
            container.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[_Servers]:
    s = _Servers(request.config)
    yield s
    s.stop()


def with_database(url: str, name: str) -> str:
    """The same server URL naming another database."""
    parts = urlparse(url)
    return urlunparse(parts._replace(path="/" + name))


def create_server_database(backend: str, admin_url: str) -> str:
    """Create a uniquely named database; returns its URL.

    MariaDB databases are created latin1 on purpose: the package must make utf8mb4 tables
    whatever the database default is.
    """
    name = f"pc_test_{uuid.uuid4().hex[:12]}"
    _admin(backend, admin_url, f"CREATE DATABASE {name}"
           + (" CHARACTER SET latin1" if backend == "mysql" else ""))
    return with_database(admin_url, name)


def drop_server_database(backend: str, admin_url: str, url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    force = " WITH (FORCE)" if backend == "postgres" else ""
    _admin(backend, admin_url, f"DROP DATABASE IF EXISTS {name}{force}")


def _admin(backend: str, admin_url: str, sql: str) -> None:
    parts = urlparse(admin_url)
    if backend == "postgres":
        import psycopg2

        conn = psycopg2.connect(
            host=parts.hostname, port=parts.port or 5432, user=parts.username,
            password=parts.password or None, dbname=parts.path.lstrip("/") or "postgres",
            connect_timeout=10,
        )
        conn.autocommit = True
    else:
        import pymysql

        conn = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
            password=parts.password or "", connect_timeout=10, autocommit=True,
        )
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def make_db_url(backend: str, servers: _Servers, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    """Yield the URL of a fresh, empty database on ``backend`` and drop it afterwards."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "checkpoints.db"
        yield f"sqlite:///{path}"
        return
    admin = servers.url(backend)
    url = create_server_database(backend, admin)
    try:
        yield url
    finally:
        drop_server_database(backend, admin, url)


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, servers: _Servers, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    """URL of a fresh, empty database on the current backend."""
    yield from make_db_url(backend, servers, tmp_path_factory)


@pytest.fixture
def provider(db_url: str) -> Iterator[PeeweeCheckpointProvider]:
    """A PeeweeCheckpointProvider on a fresh database; closed afterwards."""
    p = PeeweeCheckpointProvider(db_url)
    try:
        yield p
    finally:
        p.close()


@contextmanager
def captured_sql() -> Iterator[list[str]]:
    """Every SQL statement Peewee sends while the block runs (Peewee logs each at DEBUG)."""
    statements: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.msg
            if isinstance(msg, tuple) and msg and isinstance(msg[0], str):
                statements.append(msg[0])

    logger = logging.getLogger("peewee")
    handler = Handler(logging.DEBUG)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
