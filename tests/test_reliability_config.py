"""Bad configuration fails fast with a clear CheckpointError, and the password never leaks.

"Never leaks" is checked by searching, for the password, every message, ``repr``, chained
exception (``__cause__``, ``__context__``, ``args``, attributes), formatted traceback and log
record the failure produced.

PostgreSQL on the test machine trusts 127.0.0.1 (pg_hba.conf: ``host all all 127.0.0.1 trust``),
so a wrong password is accepted there: wrong passwords are tested on MariaDB; PostgreSQL gets a
database that does not exist, a closed port and an unknown host, each with a password in the URL.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

import pymysql
import pytest

from peewee_checkpoints import (
    CheckpointError,
    ConfigError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
)

SECRET = "S3cr3t-pw-7f1e"
# A password with characters a URL must quote; the quoted and the plain form must both stay out.
ODD_SECRET = "p@ss:w/rd%;'\"-9c2d"
# Label longer than 63 characters: refused by the resolver before any packet leaves the machine.
UNKNOWN_HOST = "x" * 70 + ".invalid"
BOUND_SECONDS = 15


def _texts(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield str(e)
        yield repr(e)
        yield repr(e.args)
        yield repr(getattr(e, "__dict__", {}))
        todo += [x for x in (e.__cause__, e.__context__, *e.args) if isinstance(x, BaseException)]
    yield "".join(traceback.format_exception(exc))


def assert_no_secret(secret: str, exc: BaseException, caplog: pytest.LogCaptureFixture,
                     *extra: str) -> None:
    forms = {secret, quote(secret, safe="")}
    texts = [*_texts(exc), *extra]
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            texts += list(_texts(record.exc_info[1]))
    for text in texts:
        for form in forms:
            assert form not in text, f"password found in: {text[:300]}"


def _fail(url: str, caplog: pytest.LogCaptureFixture, secret: str = SECRET,
          expected: type[CheckpointError] = StorageError) -> CheckpointError:
    """Open ``url`` and make one call: it must fail with ``expected``, fast, and not leak."""
    caplog.set_level(logging.DEBUG)
    start = time.monotonic()
    provider_repr = ""
    with pytest.raises(CheckpointError) as info:
        provider = PeeweeCheckpointProvider(url)
        provider_repr = f"{provider!r} {provider.url}"
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
    assert time.monotonic() - start < BOUND_SECONDS
    assert isinstance(info.value, expected), repr(info.value)
    assert_no_secret(secret, info.value, caplog, provider_repr)
    return info.value


# -- malformed URLs (no server involved) ------------------------------------------------------


@pytest.mark.parametrize("url", [
    "",
    "checkpoints.db",
    "oracle://scott:" + SECRET + "@127.0.0.1/orcl",
    "mongodb://u:" + SECRET + "@127.0.0.1/db",
    "postgresql+psycopg3://u:" + SECRET + "@127.0.0.1/db",
    "postgresql://u:" + SECRET + "@127.0.0.1:notaport/db",
    "mysql://u:" + SECRET + "@[::1/db",
    "postgresql://u:" + SECRET + "@127.0.0.1:5432",
])
def test_a_malformed_or_unsupported_db_url_is_a_config_error_without_the_password(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = _fail(url, caplog, expected=ConfigError)
    assert "db_url" in str(error)


# -- servers --------------------------------------------------------------------------------


def _url(base: str, user: str, password: str, *, database: str | None = None,
         host: str | None = None, port: int | None = None) -> str:
    parts = urlparse(base)
    netloc = f"{user}:{quote(password, safe='')}@{host or parts.hostname}:{port or parts.port}"
    return parts._replace(netloc=netloc, path="/" + (database or parts.path.lstrip("/")),
                          query="connect_timeout=5").geturl()


@pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)
@pytest.mark.parametrize("case", ["missing database", "closed port", "unknown host"])
def test_an_unreachable_server_or_database_is_a_storage_error_without_the_password(
    backend: str, db_url: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = urlparse(db_url).username or "root"
    url = {
        "missing database": _url(db_url, user, SECRET, database="pc_no_such_db"),
        "closed port": _url(db_url, user, SECRET, port=1),
        "unknown host": _url(db_url, user, SECRET, host=UNKNOWN_HOST),
    }[case]
    error = _fail(url, caplog)
    if case == "missing database":
        assert "pc_no_such_db" in str(error)


@pytest.fixture
def mysql_user(backend: str, db_url: str) -> Iterator[tuple[str, str]]:
    """A MariaDB user with password ODD_SECRET on the test database."""
    parts = urlparse(db_url)
    user = f"pc_rel_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                            user=parts.username or "root", password=parts.password or "",
                            autocommit=True)
    with admin.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, ODD_SECRET))
        cur.execute(f"GRANT ALL ON `{parts.path.lstrip('/')}`.* TO %s@'%%'", (user,))
    try:
        yield user, db_url
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP USER %s@'%%'", (user,))
        admin.close()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_the_right_odd_password_works_and_a_wrong_one_is_a_storage_error_without_it(
    mysql_user: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    user, db_url = mysql_user
    with PeeweeCheckpointProvider(_url(db_url, user, ODD_SECRET)) as provider:
        cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
        assert provider.retrieve_checkpoint(cid) is not None
        assert ODD_SECRET not in repr(provider) and quote(ODD_SECRET, safe="") not in repr(provider)
    error = _fail(_url(db_url, user, SECRET), caplog)
    assert "Access denied" in str(error)
    # A password PyMySQL cannot encode (outside latin-1) fails cleanly too: PyMySQL's own
    # UnicodeEncodeError carries the whole password in its repr.
    _fail(_url(db_url, user, "pw-\u20ac-" + SECRET), caplog, secret="pw-\u20ac-" + SECRET)


# -- SQLite files -----------------------------------------------------------------------------


def test_an_sqlite_path_in_a_missing_directory_or_on_a_directory_is_a_storage_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    error = _fail(f"sqlite:///{tmp_path}/no/such/dir/cp.db", caplog)
    assert "unable to open" in str(error)
    _fail(f"sqlite:///{tmp_path}", caplog)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` read-only even for root (who ignores mode bits): chmod, and as root the
    immutable attribute (chattr +i, ext2/3/4 and similar); undone afterwards."""
    path.chmod(0o500 if path.is_dir() else 0o400)
    immutable = os.geteuid() == 0
    if immutable:
        done = subprocess.run(
            ["chattr", "+i", str(path)], check=False, capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o700)


def test_a_read_only_sqlite_file_or_directory_is_a_storage_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cp.db"
    with PeeweeCheckpointProvider(f"sqlite:///{path}") as provider:
        provider.migrate()
    for name in ("cp.db-wal", "cp.db-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).unlink()
    with read_only(path):
        _fail(f"sqlite:///{path}", caplog)
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        _fail(f"sqlite:///{folder}/cp.db", caplog)


def test_the_sqlite_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    old = os.umask(0o022)
    try:
        with PeeweeCheckpointProvider(f"sqlite:///{path}") as provider:
            provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
