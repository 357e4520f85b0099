"""What differs between backends and topologies, one class each.

The engine never asks "which backend?": it asks its profile. A profile answers how to tell a
broken connection, which errors are worth running again, how large a value the server takes,
how to hold the migration lock, and what to say when the server is read-only. A profile is
chosen from the URL (:func:`profile_for`) and refined by what a new connection reports
(:meth:`BackendProfile.refine`): a MariaDB node with ``wsrep_on`` is :class:`GaleraProfile`, a
PostgreSQL server in recovery is :class:`PostgresStandbyProfile`. This is peewee's own pattern
(``_PooledPostgresqlDatabase._is_closed`` and its siblings) one level up.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

import peewee as pw

from .errors import MigrationError, StorageError

#: Name of the migration lock, shared by every backend (and the key of PostgreSQL's lock).
LOCK_NAME = "peewee_checkpoints.migrate"
# pg_advisory_xact_lock takes a bigint; derive a fixed one from the lock's name.
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big") >> 1
#: The table Galera's cluster-wide migration lock lives in (one row while a process migrates).
GALERA_LOCK_TABLE = "peewee_checkpoints_lock"

# Bytes a MySQL INSERT needs besides the escaped value: the SQL text and the other columns.
_MYSQL_STATEMENT_OVERHEAD = 16 * 1024
# Bytes that PyMySQL escapes with a backslash when it inlines a bytes parameter.
_MYSQL_ESCAPED = (b"\x00", b"\n", b"\r", b"\x1a", b"'", b'"', b"\\")
# psycopg2 sends bytes as the literal '\x<hex>': 2 characters a byte plus 2, and PostgreSQL's
# scanner holds one literal in at most 2**29 - 1 characters. Measured on PostgreSQL 15:
# 268,435,000 bytes stored, 268,436,000 failed with "invalid memory alloc request size".
POSTGRES_MAX_VALUE = (2**29 - 1 - 2) // 2

_STANDBY_HINT = (
    "the server is a read-only hot standby (pg_is_in_recovery() is true): it serves reads only. "
    "Point db_url at the primary, or list every server and add target_session_attrs=read-write "
    "(postgresql://user@primary:5432,standby:5432/db?target_session_attrs=read-write)"
)


def driver_error(exc: BaseException) -> BaseException:
    """The DB-API exception Peewee wrapped in ``exc`` (``exc`` itself if none)."""
    if exc.args and isinstance(exc.args[0], BaseException):
        return exc.args[0]
    return exc.__cause__ or exc.__context__ or exc if isinstance(exc, pw.PeeweeException) else exc


def _error_code(exc: BaseException) -> Any:
    """MySQL's numeric error code, PostgreSQL's SQLSTATE, or None."""
    original = driver_error(exc)
    pgcode = getattr(original, "pgcode", None)
    if pgcode:
        return pgcode
    if original.args and isinstance(original.args[0], int):
        return original.args[0]
    return None


class BackendProfile:
    """The base profile: what every backend shares. Subclasses override what differs."""

    name: ClassVar[str]
    #: A failed statement aborts the whole transaction (PostgreSQL): batches need savepoints.
    failed_statement_aborts_transaction: ClassVar[bool] = False
    #: The driver returns binary columns as ``bytes`` (psycopg2 gives ``memoryview``).
    binary_is_bytes: ClassVar[bool] = True
    #: ``WITH x AS (INSERT ...) INSERT ...``: several writes in one statement, one round trip.
    writable_cte: ClassVar[bool] = False
    #: Error codes (MySQL numbers, PostgreSQL SQLSTATEs) after which running the same
    #: idempotent operation again may succeed: deadlocks and serialization failures.
    retryable_codes: ClassVar[frozenset[Any]] = frozenset()

    def __init__(self, url: str, database_name: str) -> None:
        self.url = url
        self.database_name = database_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- SQL dialect ----------------------------------------------------------------------
    # The adapters write their own SQL (peewee's query builder cannot say these), and take
    # every difference between backends from here rather than testing the backend's name.

    #: Appended to a SELECT that must lock its rows until the transaction ends. SQLite locks
    #: the whole database on the first write instead, and has no FOR UPDATE.
    row_lock: ClassVar[str] = " FOR UPDATE"

    def keep_existing(self, column: str, keys: Sequence[str] = ()) -> str:
        """The tail that turns an INSERT into a no-op where a row with the same key exists
        (``keys``: the conflict target; empty means any unique key). ``column`` is one of the
        table's columns, for MySQL's no-op update: INSERT IGNORE would also turn real errors,
        like a value too long, into warnings.
        """
        target = f" ({', '.join(keys)})" if keys else ""
        return f" ON CONFLICT{target} DO NOTHING"

    def upsert(self, keys: Sequence[str]) -> str:
        """The head of an INSERT's tail that updates the existing row with the same ``keys``;
        assignments follow, using :meth:`excluded` for the values the INSERT proposed.
        """
        return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "

    def excluded(self, column: str) -> str:
        """In an :meth:`upsert`'s assignments: the value the INSERT proposed for ``column``."""
        return f"excluded.{column}"

    def json_param(self, param: str) -> str:
        """A placeholder for JSON text bound into a JSON column."""
        return param

    def json_text(self, column: str) -> str:
        """A JSON column read back as JSON text."""
        return column

    def json_object_rows(self, column: str, alias: str) -> str | None:
        """A join that gives one row ``alias.key, alias.value`` (text) per member of the JSON
        object in ``column``, or None where the backend has none that serves (MySQL's
        JSON_TABLE needs MySQL 8 / MariaDB 10.6; callers then use two statements).
        """
        return f"CROSS JOIN json_each({column}) AS {alias}"

    def index_hint(self, index: str) -> str:
        """A hint that makes the planner read ``index`` (empty where the planner needs none)."""
        return ""

    # -- connections ----------------------------------------------------------------------

    def refine(self, conn: Any) -> BackendProfile:
        """The profile that fits the server behind a new connection (``self`` by default)."""
        return self

    def prepare(self, conn: Any) -> None:
        """Settings every new connection gets (after :meth:`refine`)."""

    def is_broken(self, conn: Any) -> bool:
        """True if the server or network closed ``conn``."""
        raise NotImplementedError

    # -- errors ---------------------------------------------------------------------------

    def is_busy(self, exc: BaseException) -> bool:
        """True for "locked, nothing done, try again shortly" (SQLite's SQLITE_BUSY)."""
        return False

    def is_retryable(self, exc: BaseException) -> bool:
        """True for a deadlock or serialization failure: an idempotent call may run again."""
        return _error_code(exc) in self.retryable_codes

    #: The error code for "no such table".
    missing_table_code: ClassVar[Any] = None

    def is_missing_table(self, exc: BaseException) -> bool:
        """True if ``exc`` says a table does not exist."""
        return bool(_error_code(exc) == self.missing_table_code)

    def explain(self, exc: BaseException) -> str | None:
        """A sentence naming the cause of ``exc`` when the driver's text would mislead."""
        return None

    def write_transaction(self, database: pw.Database) -> AbstractContextManager[Any]:
        """A transaction that reads, then writes (the default kind here)."""
        return database.atomic()

    # -- limits ---------------------------------------------------------------------------

    def check_value_size(self, size: int, data: bytes, conn: Any) -> None:
        """Raise StorageError before sending a value the server would refuse."""

    # -- migrations -----------------------------------------------------------------------

    def read_only_reason(self, database: pw.Database) -> str | None:
        """Why this server cannot take writes now, or None if it can."""
        return None

    def migration_lock(self, database: pw.Database, timeout: float
                       ) -> AbstractContextManager[None]:
        """Hold the database-wide migration lock (waiting at most ``timeout`` seconds)."""
        raise NotImplementedError

    def lock_timeout_error(self, timeout: float) -> MigrationError:
        """The error for a lock another process held longer than ``timeout`` seconds."""
        return MigrationError(
            f"timed out after {timeout:g}s waiting for the migration lock on {self.url}: another "
            "process holds it while it migrates the same database. Try again when it is done, "
            "or raise migration_lock_timeout"
        )


class SqliteProfile(BackendProfile):
    """SQLite: a file, one writer at a time, DDL inside transactions."""

    name = "sqlite"
    row_lock = ""

    def is_broken(self, conn: Any) -> bool:
        try:
            conn.total_changes  # noqa: B018 - raises once the connection is closed
        except Exception:
            return True
        return False

    def is_busy(self, exc: BaseException) -> bool:
        return "database is locked" in str(exc) or "database is busy" in str(exc)

    def is_missing_table(self, exc: BaseException) -> bool:
        return "no such table" in str(exc)

    def write_transaction(self, database: pw.Database) -> AbstractContextManager[Any]:
        # Take the write lock up front: a deferred transaction that reads first cannot wait
        # for the lock later and fails with "database is locked".
        return database.atomic("IMMEDIATE")

    def check_value_size(self, size: int, data: bytes, conn: Any) -> None:
        getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
        if getlimit is None:
            return  # SQLite's own "string or blob too big" still refuses it, unnamed
        limit = int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_LENGTH", 0)))
        if size > limit:
            raise StorageError(
                f"the encoded value is {size} bytes, more than SQLite's SQLITE_LIMIT_LENGTH "
                f"({limit} bytes) allows on {self.url}; nothing was written. Store a smaller one"
            )

    @contextmanager
    def migration_lock(self, database: pw.Database, timeout: float) -> Iterator[None]:
        # An IMMEDIATE transaction takes SQLite's write lock up front; the others wait (for
        # the lock timeout, as busy timeout) and then see the history this one wrote. DDL is
        # transactional here, so a failure rolls everything back.
        conn = database.connection()
        busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        try:
            failure: MigrationError | None = None
            transaction = database.atomic("IMMEDIATE")
            try:
                transaction.__enter__()
            except pw.OperationalError as exc:
                if not self.is_busy(exc):
                    raise
                failure = self.lock_timeout_error(timeout)
            if failure is not None:
                raise failure
            conn.execute(f"PRAGMA busy_timeout = {int(busy)}")
            try:
                yield
            except BaseException as exc:
                transaction.__exit__(type(exc), exc, exc.__traceback__)
                raise
            transaction.__exit__(None, None, None)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(busy)}")


class PostgresProfile(BackendProfile):
    """PostgreSQL (directly or through PgBouncer)."""

    name = "postgres"
    failed_statement_aborts_transaction = True
    binary_is_bytes = False
    writable_cte = True
    # serialization_failure, deadlock_detected
    retryable_codes = frozenset({"40001", "40P01"})
    missing_table_code = "42P01"  # undefined_table

    def json_param(self, param: str) -> str:
        return f"CAST({param} AS JSONB)"

    def json_text(self, column: str) -> str:
        return f"CAST({column} AS TEXT)"

    def json_object_rows(self, column: str, alias: str) -> str | None:
        return f"CROSS JOIN LATERAL jsonb_each_text({column}::jsonb) AS {alias}(key, value)"

    def refine(self, conn: Any) -> BackendProfile:
        in_recovery = _pg_in_recovery(conn)
        if in_recovery and not isinstance(self, PostgresStandbyProfile):
            return PostgresStandbyProfile(self.url, self.database_name)
        if not in_recovery and isinstance(self, PostgresStandbyProfile):
            return PostgresProfile(self.url, self.database_name)
        return self

    def is_broken(self, conn: Any) -> bool:
        return bool(conn.closed)

    def explain(self, exc: BaseException) -> str | None:
        code = _error_code(exc)
        if code == "25006":  # read_only_sql_transaction
            return _STANDBY_HINT
        if code == "57P01":  # admin_shutdown: the server is going away (failover, restart)
            return "the server shut down the connection (a restart or failover)"
        return None

    def check_value_size(self, size: int, data: bytes, conn: Any) -> None:
        if size > POSTGRES_MAX_VALUE:
            raise StorageError(
                f"the encoded value is {size} bytes, more than PostgreSQL accepts in one value "
                f"({POSTGRES_MAX_VALUE} bytes: psycopg2 sends it as a hex literal, and the "
                f"server parses at most 2**29 - 1 characters of one literal) on {self.url}; "
                "nothing was written. Store a smaller one"
            )

    def read_only_reason(self, database: pw.Database) -> str | None:
        return None

    def migration_lock(self, database: pw.Database, timeout: float
                       ) -> AbstractContextManager[None]:
        return self._xact_lock(database, timeout)

    @contextmanager
    def _xact_lock(self, database: pw.Database, timeout: float) -> Iterator[None]:
        # A transaction-scoped lock taken inside the migration's own transaction: it is
        # released by the COMMIT that also makes the migration visible, on the same server
        # connection. A session lock and its unlock may travel on different server connections
        # behind PgBouncer's transaction pooling, and then the unlock fails and the lock stays.
        # lock_timeout bounds the wait; PostgreSQL's DDL is transactional, so all or nothing.
        with database.atomic():
            database.execute_sql("SELECT set_config('lock_timeout', %s, true)",
                                 (f"{int(timeout * 1000)}ms",))
            failure: MigrationError | None = None
            try:
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
            except pw.PeeweeException as exc:
                if _error_code(exc) != "55P03":  # lock_not_available
                    raise
                failure = self.lock_timeout_error(timeout)
            if failure is not None:
                raise failure  # outside the except block: the driver's error is not the story
            database.execute_sql("SELECT set_config('lock_timeout', '0', true)")
            yield


class PostgresStandbyProfile(PostgresProfile):
    """A PostgreSQL hot standby: reads only; every write names the primary."""

    def read_only_reason(self, database: pw.Database) -> str | None:
        return _STANDBY_HINT

    def migration_lock(self, database: pw.Database, timeout: float
                       ) -> AbstractContextManager[None]:
        raise MigrationError(f"cannot migrate {self.url}: {_STANDBY_HINT}")


def _pg_in_recovery(conn: Any) -> bool:
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        row = cursor.fetchone()
    if conn.get_transaction_status() != 0:  # psycopg2 opened a transaction for the query
        conn.rollback()
    return bool(row and row[0])


class MySQLProfile(BackendProfile):
    """MySQL 8 / MariaDB on a single server."""

    name = "mysql"
    # ER_LOCK_DEADLOCK (also Galera's certification failure), ER_LOCK_WAIT_TIMEOUT
    retryable_codes = frozenset({1213, 1205})
    missing_table_code = 1146  # ER_NO_SUCH_TABLE

    def keep_existing(self, column: str, keys: Sequence[str] = ()) -> str:
        return f" ON DUPLICATE KEY UPDATE {column} = {column}"

    def upsert(self, keys: Sequence[str]) -> str:
        return " ON DUPLICATE KEY UPDATE "

    def excluded(self, column: str) -> str:
        return f"VALUES({column})"

    def json_object_rows(self, column: str, alias: str) -> str | None:
        return None

    def index_hint(self, index: str) -> str:
        # MariaDB would rather sort a primary key range (its estimate ignores the lookups
        # an index saves): the hint keeps the index that gives the order.
        return f" FORCE INDEX ({index})"

    def __init__(self, url: str, database_name: str) -> None:
        super().__init__(url, database_name)
        self._max_packet: int | None = None

    def refine(self, conn: Any) -> BackendProfile:
        with conn.cursor() as cursor:
            cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
            row = cursor.fetchone()
        if row and str(row[1]).upper() == "ON" and not isinstance(self, GaleraProfile):
            return GaleraProfile(self.url, self.database_name)
        return self

    def is_broken(self, conn: Any) -> bool:
        return not conn.open

    def check_value_size(self, size: int, data: bytes, conn: Any) -> None:
        if self._max_packet is None:
            with conn.cursor() as cursor:
                cursor.execute("SELECT @@max_allowed_packet")
                self._max_packet = int(cursor.fetchone()[0])
        limit = self._max_packet - _MYSQL_STATEMENT_OVERHEAD
        if 2 * size <= limit:
            return  # even if every byte were escaped it would fit
        escaped = size + sum(data.count(b) for b in _MYSQL_ESCAPED)
        if escaped > limit:
            raise StorageError(
                f"the encoded value is {escaped} bytes, more than the server's max_allowed_packet "
                f"({self._max_packet} bytes) allows in one statement on {self.url}; nothing was "
                "written. Raise max_allowed_packet on the MySQL/MariaDB server (SET GLOBAL "
                "max_allowed_packet=...; [mysqld] max_allowed_packet in my.cnf) or store a "
                "smaller one"
            )

    def _lock_name(self) -> str:
        # GET_LOCK names are server-wide, so the name includes the database.
        digest = hashlib.sha256(self.database_name.encode()).hexdigest()[:32]
        return f"{LOCK_NAME}.{digest}"

    @contextmanager
    def migration_lock(self, database: pw.Database, timeout: float) -> Iterator[None]:
        name = self._lock_name()
        row = database.execute_sql("SELECT GET_LOCK(%s, %s)", (name, timeout)).fetchone()
        if not row or row[0] != 1:
            raise self.lock_timeout_error(timeout)
        try:
            yield
        finally:
            database.execute_sql("SELECT RELEASE_LOCK(%s)", (name,))


class GaleraProfile(MySQLProfile):
    """A node of a MariaDB Galera cluster (``wsrep_on``).

    Every connection waits for the cluster to catch up before each read
    (``wsrep_sync_wait=1``), so a caller reads its own writes whichever node took them.
    ``GET_LOCK`` holds on one node only, so the migration lock is a row that every node
    agrees on through certification instead.
    """

    #: Seconds after which a lock row is taken as abandoned (its holder died mid-migration).
    lease_seconds = 300

    def refine(self, conn: Any) -> BackendProfile:
        return self

    def prepare(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait = 1")

    def explain(self, exc: BaseException) -> str | None:
        code = _error_code(exc)
        if code == 1047:  # ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node"
            return (
                "this Galera node is not part of the cluster's primary component (it lost "
                "quorum, or is still joining): it refuses reads and writes. Use a node of the "
                "primary component, or restore quorum"
            )
        return None

    @contextmanager
    def migration_lock(self, database: pw.Database, timeout: float) -> Iterator[None]:
        # DDL replicates in total order (TOI), so IF NOT EXISTS is safe on every node at once.
        database.execute_sql(
            f"CREATE TABLE IF NOT EXISTS {GALERA_LOCK_TABLE} ("
            "name VARCHAR(64) NOT NULL PRIMARY KEY, holder VARCHAR(128) NOT NULL, "
            "expires_at BIGINT NOT NULL) ENGINE=InnoDB"
        )
        holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            if self._try_take(database, holder):
                break
            if time.monotonic() >= deadline:
                raise self.lock_timeout_error(timeout)
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        try:
            yield
        finally:
            database.execute_sql(
                f"DELETE FROM {GALERA_LOCK_TABLE} WHERE name = %s AND holder = %s",  # noqa: S608
                (LOCK_NAME, holder),
            )

    def _try_take(self, database: pw.Database, holder: str) -> bool:
        """Insert the lock row (or take over an expired one); True if this process holds it.

        Each attempt is its own autocommitted statement: two nodes inserting the row at once
        both succeed locally, and certification lets exactly one commit (the other gets a
        deadlock error, 1213); a duplicate key (1062) means another process holds it.
        """
        now = int(time.time())
        try:
            database.execute_sql(
                f"DELETE FROM {GALERA_LOCK_TABLE} WHERE name = %s AND expires_at < %s",  # noqa: S608
                (LOCK_NAME, now),
            )
            database.execute_sql(
                f"INSERT INTO {GALERA_LOCK_TABLE} (name, holder, expires_at) "  # noqa: S608
                "VALUES (%s, %s, %s)",
                (LOCK_NAME, holder, now + self.lease_seconds),
            )
        except pw.PeeweeException as exc:
            if _error_code(exc) in (1062, 1213):
                return False
            raise
        return True


_PROFILES: dict[str, type[BackendProfile]] = {
    "sqlite": SqliteProfile,
    "postgres": PostgresProfile,
    "mysql": MySQLProfile,
}


def profile_for(backend: str, url: str, database_name: str) -> BackendProfile:
    """The starting profile for ``backend`` (refined when the first connection opens)."""
    return _PROFILES[backend](url, database_name)
