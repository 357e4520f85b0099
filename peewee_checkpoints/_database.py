"""Turning a ``db_url`` into a configured Peewee database, and keeping its password secret."""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import ParseResult, unquote, urlparse

import peewee as pw
from playhouse import db_url as pw_db_url
from playhouse.pool import (
    MaxConnectionsExceeded,
    PoolConnection,
    PooledDatabase,
    PooledMySQLDatabase,
    PooledPostgresqlDatabase,
    PooledSqliteDatabase,
)

from ._redact import Redactor
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
    # busy_timeout is a pragma: with a pool, Peewee's own ``timeout`` is the wait for a free
    # connection. check_same_thread=False: pooled connections move between threads.
    "sqlite": {
        "pragmas": {"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1,
                    "busy_timeout": SQLITE_BUSY_TIMEOUT * 1000},
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
    temporary: str | None = None
    """The private file behind ``sqlite:///:memory:``, removed when the engine closes."""


class _SafeConnect:
    """Mixin for a Peewee database class: a failed connect never shows the password."""

    _pc_redact: Redactor

    def _connect(self) -> Any:
        failure: BaseException | None = None
        try:
            conn = super()._connect()  # type: ignore[misc]
        except Exception as exc:
            if _is_driver_error(exc) or isinstance(exc, MaxConnectionsExceeded):
                raise  # Peewee wraps it; the engine checks it for the password
            # Not a DB-API error, so Peewee would let it out unwrapped, and it may hold the
            # password: PyMySQL's UnicodeEncodeError for a password outside latin-1 carries
            # it whole in its repr. Replace it, outside this block so nothing chains to it.
            detail = (f"{type(exc).__name__} (details withheld: they contain the password)"
                      if self._pc_redact.exposed_in(exc) else f"{type(exc).__name__}: {exc}")
            failure = pw.OperationalError(f"could not connect: {detail}")
        if failure is not None:
            raise failure
        return conn


class _PoolCheckout:
    """Mixin above playhouse's pool: new connections open outside the pool's lock.

    The pool opens a new connection while holding its lock, so one slow connect (after a
    failover, or a killed connection) held up every thread that only wanted an idle one. Here
    a slot is reserved under the lock, the connection opened without it, then recorded as in
    use, as the pool would have.
    """

    _pc_opening: int = 0

    def _connect(self) -> Any:
        pool: Any = self
        with pool._pool_lock:
            if pool._connections:
                return super()._connect()  # type: ignore[misc]  # the pool's own checkout
            limit = pool._max_connections
            if limit and len(pool._in_use) + self._pc_opening >= limit:
                raise MaxConnectionsExceeded("Exceeded maximum connections.")
            self._pc_opening += 1
        try:
            conn = super(PooledDatabase, self)._connect()  # type: ignore[misc]
        finally:
            with pool._pool_lock:
                self._pc_opening -= 1
        now = time.time()
        with pool._pool_lock:
            pool._in_use[pool.conn_key(conn)] = PoolConnection(now, conn, now)
        return conn


class _ThreadConnections:
    """Mixin for SQLite without a pool: each thread keeps its own connection.

    A SQLite connection is a file handle, not a server's session: keeping one per thread
    spares every call a pool checkout (15 us, a third of a retrieve). Peewee keeps it in a
    thread-local, so it is closed when its thread ends; this set (weak: it keeps none alive)
    lets :meth:`close_all` close the others too.
    """

    _pc_live: weakref.WeakSet[Any]

    def _connect(self) -> Any:
        conn = super()._connect()  # type: ignore[misc]
        self._pc_live.add(conn)
        return conn

    def close_all(self) -> None:
        """Close every connection of every thread (each thread opens a new one on use)."""
        with contextlib.suppress(Exception):
            self.close()  # type: ignore[attr-defined]
        for conn in list(self._pc_live):
            _quietly_close(conn)
        self._pc_live.clear()
        self._state.reset()  # type: ignore[attr-defined]

    def manual_close(self) -> None:
        """Close this thread's connection (the pool's name for it, used by the engine)."""
        conn = self._state.conn  # type: ignore[attr-defined]
        self._state.reset()  # type: ignore[attr-defined]
        if conn is not None:
            _quietly_close(conn)


class _Sqlite3Connection(sqlite3.Connection):
    """sqlite3's connection, weakly referable (for _ThreadConnections)."""


class _OnNewConnection:
    """Mixin placed between the pool and the driver's database class: runs once per new
    connection (a connection the pool hands out again is not set up again)."""

    _pc_read_timeout: Any
    _pc_on_connect: Callable[[Any], None] | None
    _pc_sqlite_path: str | None

    def connect(self, reuse_if_open: bool = False) -> bool:
        # Peewee's Database.connect holds the database-wide lock while it connects, so one
        # slow connect (PyMySQL builds a TLS context for each: 80-100 ms on a busy machine)
        # stalled every other thread's checkout of an idle pooled connection. What it guards
        # is this thread's own connection state (thread-local) and the server version (set
        # once, idempotently); the pool has a lock of its own.
        state = self._state  # type: ignore[attr-defined]
        if not state.closed:
            if reuse_if_open:
                return False
            raise pw.OperationalError("Connection already opened.")
        state.reset()
        with _EXCEPTION_WRAPPER:
            state.set_connection(self._connect())
            if self.server_version is None:  # type: ignore[attr-defined]
                self._set_server_version(state.conn)  # type: ignore[attr-defined]
            self._initialize_connection(state.conn)  # type: ignore[attr-defined]
        return True

    def _connect(self) -> Any:
        if self._pc_sqlite_path is not None:
            _create_private_file(self._pc_sqlite_path)
        conn = super()._connect()  # type: ignore[misc]
        try:
            if self._pc_read_timeout is not _UNSET:
                _set_mysql_read_timeout(conn, self._pc_read_timeout)
            if self._pc_on_connect is not None:
                self._pc_on_connect(conn)
        except BaseException:
            _quietly_close(conn)  # a connection that could not be set up is not used
            raise
        return conn


class _LocalMySQLChecks:
    """Pool checks for PyMySQL that cost no round trip.

    playhouse's pool pings every MySQL connection it hands out and, as PyMySQL has no
    ``in_transaction``, rolls back every connection it takes back: two round trips per call.
    A connection the server closed is found by the call itself, and the engine replaces it and
    runs the call again; whether a transaction is open, PyMySQL knows from the server's last
    status flags.
    """

    def _is_closed(self, conn: Any) -> bool:
        return not conn.open

    def _can_reuse(self, conn: Any) -> bool:
        if not conn.open:
            return False
        if conn.server_status & _SERVER_STATUS_IN_TRANS:
            try:
                conn.rollback()
            except Exception:
                return False
        return True


class _LocalPostgresChecks:
    """Pool checks for psycopg2 without a round trip.

    playhouse's pool sends ``SELECT 1`` on every connection it hands out: a round trip per
    call. A connection the server closed is found by the call itself, which the engine runs
    again on a fresh one; psycopg2 knows locally whether a transaction is open.
    """

    def _is_closed(self, conn: Any) -> bool:
        return bool(conn.closed) or conn.get_transaction_status() == _PG_TRANSACTION_UNKNOWN


# psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN (not imported: drivers load lazily).
_PG_TRANSACTION_UNKNOWN = 4
# PyMySQL's constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS (not imported: drivers load lazily).
_SERVER_STATUS_IN_TRANS = 1


# Pool checks that replace playhouse's, per backend.
_POOL_CHECKS: dict[Backend, tuple[type, ...]] = {
    "mysql": (_LocalMySQLChecks,), "postgres": (_LocalPostgresChecks,),
}


def _quietly_close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


_UNSET = object()
# Peewee's context manager that turns driver errors into its own (module-private name).
_EXCEPTION_WRAPPER: Any = vars(pw)["__exception_wrapper__"]
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
    and never answers hangs the caller forever. The engine connects with
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


def _database_class(backend: Backend, pooled: bool) -> type[pw.Database]:
    key = (backend, pooled)
    if key not in _classes:
        pool, driver = {
            "sqlite": (PooledSqliteDatabase, pw.SqliteDatabase),
            "postgres": (PooledPostgresqlDatabase, pw.PostgresqlDatabase),
            "mysql": (PooledMySQLDatabase, pw.MySQLDatabase),
        }[backend]
        # A subclass of the driver's class with _OnNewConnection first: C3 places it right
        # above the driver's class, below the pool, which calls it only for a new connection
        # (on peewee 3 and 4 alike).
        setup = type(f"_Setup{driver.__name__}", (_OnNewConnection, driver), {})
        if pooled:
            checks = _POOL_CHECKS.get(backend, ())
            bases: tuple[type, ...] = (_SafeConnect, *checks, _PoolCheckout, pool, setup)
        else:
            bases = (_SafeConnect, _ThreadConnections, setup)
        _classes[key] = type(pool.__name__ if pooled else driver.__name__, bases, {})
    return _classes[key]


_classes: dict[tuple[Backend, bool], type[pw.Database]] = {}


def open_database(url: str) -> DatabaseTarget:
    """Parse ``url`` and build (without connecting, or creating any file) the database it names.

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
    rules = _URL_RULES[backend]
    rules.check_form(url, parsed, safe_url)
    parsed, hosts = rules.split_netloc(parsed)
    try:
        kwargs = pw_db_url.parseresult_to_dict(parsed, unquote_password=True)
    except ValueError as exc:
        raise ConfigError(redact(f"db_url {safe_url!r} is malformed: {exc}")) from None
    kwargs.update(hosts)
    if not kwargs.get("database"):
        raise ConfigError(
            f"db_url {safe_url!r} names no database. Local databases take three slashes "
            f"('{base}:///dbname'), remote ones '{base}://user@host/dbname'"
        )
    if "passwd" in kwargs:  # playhouse renames it for MySQLdb; PyMySQL deprecates that name
        kwargs["password"] = kwargs.pop("passwd")
    sqlite_path = rules.local_file(kwargs, safe_url)
    database = kwargs["database"]
    # SQLite keeps a connection per thread unless asked for a pool (sqlite+pool://, or a pool
    # option); the servers are always pooled, so their connections are bounded and reused.
    pooled = rules.pooled(pool == "pool", kwargs)
    options = {**_DEFAULTS[backend], **(_POOL_DEFAULTS if pooled else {}), **kwargs}
    read_timeout = rules.bound_handshake(options)
    cls = _database_class(backend, pooled)
    try:
        db: Any = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(redact(f"db_url {safe_url!r} has a bad option: {exc}")) from None
    db._pc_redact = redact
    db._pc_read_timeout = read_timeout
    db._pc_on_connect = None
    db._pc_sqlite_path = sqlite_path
    db._pc_live = weakref.WeakSet()
    return DatabaseTarget(db, backend, safe_url, redact, str(database),
                          temporary=sqlite_path if url_is_memory(parsed) else None)


class _URLRules:
    """How one backend's URL is read: the base reads a plain ``scheme://user@host/db``."""

    def check_form(self, url: str, parsed: ParseResult, safe_url: str) -> None:
        """Refuse a URL shape this backend cannot mean."""

    def split_netloc(self, parsed: ParseResult) -> tuple[ParseResult, dict[str, str]]:
        """A netloc ``urlparse`` cannot read, as a readable one plus driver options."""
        return parsed, {}

    def local_file(self, kwargs: dict[str, Any], safe_url: str) -> str | None:
        """Check and complete the options; returns the local file to create on connect."""
        return None

    def bound_handshake(self, options: dict[str, Any]) -> Any:
        """Adjust options so that connecting cannot hang; returns the read timeout to
        restore after the handshake (``_UNSET``: nothing to restore)."""
        return _UNSET

    def pooled(self, asked: bool, kwargs: dict[str, Any]) -> bool:
        """Whether this database gets a connection pool (servers: always)."""
        return True


class _SqliteURL(_URLRules):
    def check_form(self, url: str, parsed: ParseResult, safe_url: str) -> None:
        if not url[len(parsed.scheme):].startswith("://"):
            raise ConfigError(
                f"db_url {safe_url!r} is malformed: a SQLite URL is 'sqlite:///relative/path.db' "
                "(three slashes) or 'sqlite:////absolute/path.db' (four)"
            )

    def local_file(self, kwargs: dict[str, Any], safe_url: str) -> str | None:
        return _sqlite_options(kwargs, safe_url)

    def pooled(self, asked: bool, kwargs: dict[str, Any]) -> bool:
        return asked or bool(_POOL_OPTIONS & set(kwargs))


class _PostgresURL(_URLRules):
    def split_netloc(self, parsed: ParseResult) -> tuple[ParseResult, dict[str, str]]:
        return _split_hosts(parsed) if "," in parsed.netloc else (parsed, {})


class _MySQLURL(_URLRules):
    def bound_handshake(self, options: dict[str, Any]) -> Any:
        # Bound the handshake too (see _set_mysql_read_timeout).
        read_timeout = options.get("read_timeout")
        options["read_timeout"] = options["connect_timeout"]
        return read_timeout


_URL_RULES: dict[Backend, _URLRules] = {
    "sqlite": _SqliteURL(), "postgres": _PostgresURL(), "mysql": _MySQLURL(),
}


def url_is_memory(parsed: ParseResult) -> bool:
    """True for ``sqlite:///:memory:``."""
    return parsed.path.lstrip("/") == ":memory:"


def _split_hosts(parsed: ParseResult) -> tuple[ParseResult, dict[str, str]]:
    """libpq's multi-host netloc (``h1:p1,h2:p2``) as ``host``/``port`` lists libpq takes.

    ``urlparse`` cannot read a port out of ``h1:5433,h2:5434``; psycopg2 passes
    ``host="h1,h2", port="5433,5434"`` to libpq, which tries them in order (and with
    ``target_session_attrs=read-write`` skips standbys).
    """
    userinfo, _, hostlist = parsed.netloc.rpartition("@")
    names, ports = [], []
    for item in hostlist.split(","):
        host, colon, port = item.rpartition(":")
        if not colon or "]" in port:  # no port, or an IPv6 address without one
            host, port = item, ""
        names.append(host.strip("[]"))
        ports.append(port or "5432")
    first = "placeholder"
    rest = parsed._replace(netloc=f"{userinfo}@{first}" if userinfo else first)
    return rest, {"host": ",".join(names), "port": ",".join(ports)}


# Keyword arguments sqlite3.connect and Peewee's SqliteDatabase take from a URL's query string.
_SQLITE_OPTIONS = frozenset({
    "database", "timeout", "detect_types", "isolation_level", "check_same_thread",
    "cached_statements", "uri", "pragmas", "max_connections", "stale_timeout",
})
_POOL_OPTIONS = frozenset({"max_connections", "stale_timeout"})
#: Connections one engine keeps at most (in use and idle), unless the URL sets max_connections.
MAX_CONNECTIONS = 8
_POOL_DEFAULTS: dict[str, Any] = {
    "max_connections": MAX_CONNECTIONS,
    # Seconds a call waits for a free connection when all are in use.
    "timeout": 30,
    # Seconds after which an idle connection is closed instead of reused.
    "stale_timeout": 300,
}


def _sqlite_options(kwargs: dict[str, Any], safe_url: str) -> str | None:
    """Check and complete a SQLite URL's options; returns the file to create on connect."""
    unknown = sorted(set(kwargs) - _SQLITE_OPTIONS)
    if unknown:
        raise ConfigError(
            f"db_url {safe_url!r} has unknown option(s) {', '.join(unknown)}; a SQLite URL "
            f"takes {', '.join(sorted(_SQLITE_OPTIONS - {'database'}))}"
        )
    if "timeout" in kwargs:  # sqlite3's busy timeout, in seconds
        pragmas = dict(_DEFAULTS["sqlite"]["pragmas"])
        pragmas["busy_timeout"] = int(float(kwargs.pop("timeout")) * 1000)
        kwargs["pragmas"] = pragmas
    kwargs["factory"] = _Sqlite3Connection
    if kwargs["database"] == ":memory:":
        # Each in-memory connection is its own empty database; a private temporary file
        # gives every pooled connection the same one. It is removed on close().
        kwargs["database"] = _temporary_path()
    path = str(kwargs["database"])
    return None if path.startswith("file:") else path  # a URI filename: SQLite parses it


def _unquoted(password: str | None) -> str | None:
    return unquote(password) if password else None


def _temporary_path() -> str:
    path = os.path.join(tempfile.gettempdir(), f"peewee-checkpoints-{uuid.uuid4().hex}.db")
    atexit.register(remove_sqlite_files, path)
    return path


def remove_sqlite_files(path: str) -> None:
    """Remove a SQLite database file and its WAL and shared-memory files, if present."""
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
