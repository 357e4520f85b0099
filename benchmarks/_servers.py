"""The database servers the benchmarks run on, and a fresh database per run.

Server URLs come from PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL / PEEWEE_CHECKPOINTS_TEST_MYSQL_URL
(a server on which databases may be created), else the local servers the tests use. Each
benchmark creates its own database and drops it at the end.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse, urlunparse

ENV = {"postgres": "PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL",
       "mysql": "PEEWEE_CHECKPOINTS_TEST_MYSQL_URL"}
SERVERS = {
    "postgres": os.environ.get(ENV["postgres"], "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get(ENV["mysql"], "mysql://root@127.0.0.1:3306/test"),
}


def admin(backend: str, url: str, sql: str) -> None:
    """Run one statement on the server of ``url`` outside any transaction (CREATE DATABASE)."""
    parts = urlparse(url)
    if backend == "postgres":
        import psycopg2

        conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                                user=parts.username, password=parts.password or None,
                                dbname=parts.path.lstrip("/") or "postgres")
        conn.autocommit = True
    else:
        import pymysql

        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                               user=parts.username or "root", password=parts.password or "",
                               autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def create_database(backend: str, label: str, *, charset: str | None = None
                    ) -> tuple[str, str]:
    """A new empty database on ``backend``'s server: ``(its URL, its name)``."""
    server = SERVERS[backend]
    name = f"pcbench_{label}_{uuid.uuid4().hex[:10]}"
    admin(backend, server, f"CREATE DATABASE {name}"
          + (f" CHARACTER SET {charset}" if charset and backend == "mysql" else ""))
    return urlunparse(urlparse(server)._replace(path="/" + name)), name


def drop_database(backend: str, name: str) -> None:
    """Drop a database :func:`create_database` made (PostgreSQL: closing its connections)."""
    admin(backend, SERVERS[backend], f"DROP DATABASE IF EXISTS {name}"
          + (" WITH (FORCE)" if backend == "postgres" else ""))


@contextlib.contextmanager
def fresh_database(backend: str, label: str = "db") -> Iterator[str]:
    """The URL of a new empty database (SQLite: a file in a temporary folder, under
    $PCBENCH_TMP if set), dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"pcbench-{label}-",
                                         dir=os.environ.get("PCBENCH_TMP")) as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    url, name = create_database(backend, label)
    try:
        yield url
    finally:
        drop_database(backend, name)
