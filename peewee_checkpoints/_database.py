"""Turning a ``db_url`` into a configured Peewee database, and keeping its password secret."""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlparse

import peewee as pw
from playhouse import db_url as pw_db_url
from playhouse.pool import PooledDatabase

from ._redact import Redactor
from ._redact import chain as chain  # noqa: PLC0414 - re-exported for its importers
from .errors import ConfigError

Backend = Literal["sqlite", "postgres", "mysql"]
_E = TypeVar("_E", bound=BaseException)

# The schemes the contract promises (psycopg2 and PyMySQL drivers), each also with "+pool".
_SCHEMES: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "postgresext": "postgres",
    "postgresqlext": "postgres",
    "mysql": "mysql",
}

#: Seconds a connection attempt may take before it fails with StorageError instead of hanging.
CONNECT_TIMEOUT = 10
#: Seconds SQLite waits for another writer's lock before reporting "database is locked".
SQLITE_BUSY_TIMEOUT = 30

_DEFAULTS: dict[Backend, dict[str, Any]] = {
    # WAL lets readers run beside a writer; synchronous=FULL keeps every acknowledged commit
    # across power loss, not only across a process crash. check_same_thread=False lets close()
    # close connections that other threads opened.
    "sqlite": {
        "pragmas": {"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1},
        "timeout": SQLITE_BUSY_TIMEOUT,
        "check_same_thread": False,
    },
    "postgres": {"connect_timeout": CONNECT_TIMEOUT, "application_name": "peewee-checkpoints"},
    "mysql": {"connect_timeout": CONNECT_TIMEOUT, "charset": "utf8mb4"},
}


@dataclass(frozen=True)
class DatabaseTarget:
    """A parsed ``db_url``: the open-able database and what is safe to show of it."""

    database: pw.Database
    backend: Backend
    safe_url: str
    """The URL with its password replaced by ``***``."""
    redact: Redactor
    name: str
    """Database name (the file path for SQLite)."""


class _TrackedConnections:
    """Mixin for a Peewee database class: remembers every connection it opens.

    Peewee keeps one connection per thread and ``close()`` closes only the caller's, so a
    provider used from many threads could never release the others. Connections of threads
    that have ended are closed as new ones open.
    """

    _pc_lock: threading.Lock
    _pc_conns: list[tuple[threading.Thread, Any]]
    _pc_redact: Redactor
    _pc_read_timeout: Any

    def _connect(self) -> Any:
        failure: BaseException | None = None
        try:
            conn = super()._connect()  # type: ignore[misc]
        except Exception as exc:
            if _is_driver_error(exc):
                raise  # Peewee wraps it; the provider checks it for the password
            # Not a DB-API error, so Peewee would let it out unwrapped, and it may hold the
            # password: PyMySQL's UnicodeEncodeError for a password outside latin-1 carries
            # it whole in its repr. Replace it, outside this block so nothing chains to it.
            detail = (f"{type(exc).__name__} (details withheld: they contain the password)"
                      if self._pc_redact.exposed_in(exc) else f"{type(exc).__name__}: {exc}")
            failure = pw.OperationalError(f"could not connect: {detail}")
        if failure is not None:
            raise failure
        if isinstance(self, PooledDatabase):
            # The pool hands its connections out again and again and owns their lifecycle;
            # its own close_all() closes every one of them.
            return conn
        with self._pc_lock:
            alive = []
            for thread, other in self._pc_conns:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    _quietly_close(other)
            alive.append((threading.current_thread(), conn))
            self._pc_conns = alive
        return conn

    def _initialize_connection(self, conn: Any) -> None:
        super()._initialize_connection(conn)  # type: ignore[misc]
        if self._pc_read_timeout is not _UNSET:
            _set_mysql_read_timeout(conn, self._pc_read_timeout)

    def close_all(self) -> None:
        """Close every connection this database opened, in every thread."""
        if isinstance(self, PooledDatabase):
            super().close_all()  # type: ignore[misc]
            return
        with self._pc_lock:
            conns, self._pc_conns = self._pc_conns, []
        for _thread, conn in conns:
            _quietly_close(conn)
        # Forget the calling thread's (now closed) connection; other threads find theirs
        # closed on their next call, and the provider replaces it.
        self._state.reset()  # type: ignore[attr-defined]


_UNSET = object()
# Class names of the driver errors Peewee maps to its own (peewee.EXCEPTIONS; not in its stubs).
_DRIVER_ERROR_NAMES = frozenset(vars(pw)["EXCEPTIONS"])


def _is_driver_error(exc: BaseException) -> bool:
    """True for the DB-API errors Peewee turns into its own (by class name, as Peewee does)."""
    names = {type(exc).__name__, type(exc).__bases__[0].__name__}
    return bool(names & _DRIVER_ERROR_NAMES)


def _set_mysql_read_timeout(conn: Any, seconds: float | None) -> None:
    """Give a PyMySQL connection its read timeout back once the handshake is over.

    PyMySQL applies ``connect_timeout`` to the TCP connect only and reads the server's
    greeting with ``read_timeout`` (default: none), so a server that accepts the connection
    and never answers hangs the caller forever. The provider connects with
    ``read_timeout=connect_timeout`` and restores the user's read timeout here. The
    attributes are PyMySQL's private ones (stable since 1.0); without them nothing changes.
    """
    if hasattr(conn, "_read_timeout"):
        conn._read_timeout = seconds
    if hasattr(conn, "_current_timeout"):
        conn._current_timeout = seconds
    sock = getattr(conn, "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _quietly_close(conn: Any) -> None:
    # A connection that fails to close is gone either way.
    with contextlib.suppress(Exception):
        conn.close()


_tracked_classes: dict[type[pw.Database], type[pw.Database]] = {}


def _tracked(cls: type[pw.Database]) -> type[pw.Database]:
    if cls not in _tracked_classes:
        _tracked_classes[cls] = type(cls.__name__, (_TrackedConnections, cls), {})
    return _tracked_classes[cls]


def open_database(url: str) -> DatabaseTarget:
    """Parse ``url`` and build (without connecting) the database it names.

    Raises:
        ConfigError: the URL is malformed or names an unsupported backend.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError("db_url must be a non-empty string such as 'sqlite:///checkpoints.db'")
    try:
        parsed = urlparse(url)
        password = parsed.password
    except ValueError as exc:
        raise ConfigError(f"db_url is not a valid URL: {exc}") from None
    redact = Redactor(password, _unquoted(password))
    safe_url = redact(url)
    scheme = parsed.scheme.lower()
    base, _, pool = scheme.partition("+")
    backend = _SCHEMES.get(base)
    if backend is None or pool not in ("", "pool") or scheme not in pw_db_url.schemes:
        supported = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ConfigError(
            f"unsupported db_url scheme {parsed.scheme + '://' if parsed.scheme else '(none)'} "
            f"in {safe_url!r}; use one of {supported} (each also as scheme+pool://)"
        )
    try:
        kwargs = pw_db_url.parseresult_to_dict(parsed, unquote_password=True)
    except ValueError as exc:
        raise ConfigError(redact(f"db_url {safe_url!r} is malformed: {exc}")) from None
    database = kwargs.get("database")
    if not database:
        raise ConfigError(
            f"db_url {safe_url!r} names no database. Local databases take three slashes "
            f"('{base}:///dbname'), remote ones '{base}://user@host/dbname'"
        )
    if backend == "sqlite":
        if database == ":memory:":
            # Peewee keeps a connection per thread, and each in-memory connection is its own
            # empty database; a private temporary file gives every thread the same one.
            database = kwargs["database"] = _temporary_file()
        _create_private_file(database)
    if "passwd" in kwargs:  # playhouse renames it for MySQLdb; PyMySQL deprecates that name
        kwargs["password"] = kwargs.pop("passwd")
    options = {**_DEFAULTS[backend], **kwargs}
    read_timeout: Any = _UNSET
    if backend == "mysql":
        # Bound the handshake too (see _set_mysql_read_timeout).
        read_timeout = options.get("read_timeout")
        options["read_timeout"] = options["connect_timeout"]
    cls = _tracked(pw_db_url.schemes[scheme])
    try:
        db: Any = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(redact(f"db_url {safe_url!r} has a bad option: {exc}")) from None
    # Peewee keeps the creation kwargs; set the lock and list on the instance.
    db._pc_lock = threading.Lock()
    db._pc_conns = []
    db._pc_redact = redact
    db._pc_read_timeout = read_timeout
    return DatabaseTarget(db, backend, safe_url, redact, str(database))


def _unquoted(password: str | None) -> str | None:
    return unquote(password) if password else None


def _temporary_file() -> str:
    fd, path = tempfile.mkstemp(prefix="peewee-checkpoints-", suffix=".db")
    os.close(fd)
    atexit.register(_remove_sqlite_files, path)
    return path


def _remove_sqlite_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.remove(path + suffix)


def _create_private_file(path: str) -> None:
    """Create the SQLite file readable by its owner only (SQLite would use the umask)."""
    if path.startswith("file:"):
        return  # a URI filename: SQLite parses it, leave it alone
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a missing or read-only directory: SQLite's own error says it on connect
    os.close(fd)
