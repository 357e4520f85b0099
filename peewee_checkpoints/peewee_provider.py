"""The Peewee provider: one implementation for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase

from ._codec import pack_state, unpack_state
from ._cursor import decode_cursor, encode_cursor
from ._database import SQLITE_BUSY_TIMEOUT, DatabaseTarget, chain, open_database
from ._defaults import DEFAULT_DB_URL
from ._ids import new_id
from ._migrations import MigrationRunner
from ._statements import FILTERS, KEY_COLUMNS, Statement, Statements
from ._validation import (
    MAX_CREATED_AT,
    MAX_ID_LENGTH,
    check_checkpoint,
    check_limit,
    check_page_limit,
    check_prune_rules,
    check_stored_checkpoint,
    filter_values,
    is_storable_key,
)
from .errors import StorageError
from .interface import CheckpointProvider
from .model import Checkpoint, bind_model
from .records import (
    CheckpointListItem,
    CheckpointPage,
    NamedCheckpoint,
    StoredCheckpoint,
    list_items,
)

__all__ = ["DEFAULT_DB_URL", "PeeweeCheckpointProvider"]


_T = TypeVar("_T")

# Bytes a MySQL INSERT needs besides the escaped state: the SQL text and the other columns
# (name up to 1024 characters of 4 bytes, keys, id), with room to spare.
_MYSQL_STATEMENT_OVERHEAD = 16 * 1024
# psycopg2 sends bytes as the literal '\x<hex>': 2 characters a byte plus 2, and PostgreSQL's
# scanner holds one literal in at most 2**29 - 1 characters (a doubling buffer that may not reach
# 1 GiB). Measured on PostgreSQL 15: 268,435,000 bytes stored, 268,436,000 failed with "invalid
# memory alloc request size 1073741824".
_POSTGRES_MAX_STATE = (2**29 - 1 - 2) // 2
# Bytes that PyMySQL escapes with a backslash when it inlines a bytes parameter.
_MYSQL_ESCAPED = (b"\x00", b"\n", b"\r", b"\x1a", b"'", b'"', b"\\")
# Agents prune reads per query when applying keep_last_per_agent.
_AGENT_BATCH = 500


def _filters(values: dict[str, Any]) -> list[str]:
    """The filter names present in ``values``, in the order statements are cached under."""
    return [name for name in FILTERS if name in values]


class PeeweeCheckpointProvider(CheckpointProvider):
    """Checkpoint storage on SQLite, PostgreSQL or MySQL/MariaDB, chosen by ``db_url``.

    The database is not touched until the first call; that call applies any pending
    migrations (one query when there are none). Each thread uses its own connection.

    Args:
        db_url: ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` or
            ``mysql://user:pass@host:port/db`` (each also ``+pool``); query-string parameters
            are passed to the driver.

    Raises:
        ConfigError: ``db_url`` is malformed or names an unsupported backend.
    """

    prune_batch: int = 500
    """Rows prune deletes per statement. Each DELETE commits on its own, so no lock is held for
    long, and the id list stays under SQLite's oldest limit of 999 bound parameters."""

    def __init__(self, db_url: str = DEFAULT_DB_URL) -> None:
        self._target: DatabaseTarget = open_database(db_url)
        # The class db_url picked, with _database._TrackedConnections mixed in (close_all);
        # Any, because the provider also reaches Peewee's per-thread state (_state).
        self._db: Any = self._target.database
        self._model = bind_model(self._db)
        self._sql = Statements(self._db, self._model)
        self._migrations = MigrationRunner(self._target)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._max_packet: int | None = None
        self._pooled = isinstance(self._db, PooledDatabase)

    # -- introspection --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._target.safe_url

    @property
    def backend(self) -> str:
        """``"sqlite"``, ``"postgres"`` or ``"mysql"``."""
        return self._target.backend

    @property
    def database(self) -> pw.Database:
        """The Peewee database this provider uses."""
        return self._target.database

    @property
    def model(self) -> type[Checkpoint]:
        """The ``Checkpoint`` model bound (through a DatabaseProxy) to this provider's database."""
        return self._model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- migrations -----------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations now; returns the names this call applied.

        Safe to call from many processes at once: a database-level lock serializes them and
        each migration is applied exactly once.

        Raises:
            MigrationError: a migration failed, or the database was migrated by a newer version.
            StorageError: the database could not be reached.
        """
        with self._ready_lock:
            done = self._guard("migrate", self._migrations.migrate, retry=True)
            self._ready = True
        return done

    def pending_migrations(self) -> list[str]:
        """Names of shipped migrations not yet applied to the database."""
        return self._guard("check migrations", self._migrations.pending, retry=True)

    def applied_migrations(self) -> list[str]:
        """Names recorded in the package's migration history table."""
        return self._guard("check migrations", self._migrations.applied, retry=True) or []

    def rollback_migration(self) -> str:
        """Roll back the newest applied migration (peewee-migrate's rollback); returns its name."""
        with self._ready_lock:
            self._ready = False
            return self._guard("roll back", self._migrations.rollback)

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                # Both are safe to repeat on a fresh connection: the check only reads, and
                # the migration runs under a lock and skips what the history records.
                if not self._guard("check migrations", self._migrations.is_current, retry=True):
                    self._guard("migrate", self._migrations.migrate, retry=True)
                self._ready = True

    # -- the provider interface -----------------------------------------------------------

    def store_checkpoint(self, checkpoint: NamedCheckpoint) -> str:
        """Store ``checkpoint``; returns its new id (a 26-character ULID)."""
        check_checkpoint(checkpoint)
        codec, data = pack_state(checkpoint.state)
        checkpoint_id = new_id()
        if not self._insert(checkpoint_id, checkpoint, data, codec):
            raise StorageError(f"id {checkpoint_id} already exists on {self.url}")
        return checkpoint_id

    def import_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store ``checkpoint`` under its own id; False (nothing written) if the id exists."""
        named = check_stored_checkpoint(checkpoint)
        codec, data = pack_state(checkpoint.state)
        return self._insert(checkpoint.id, named, data, codec)

    def _insert(
        self, checkpoint_id: str, checkpoint: NamedCheckpoint, data: bytes, codec: int
    ) -> bool:
        """INSERT one row; True if written, False if a row with this id already existed."""
        self._ensure_ready()
        if self._target.backend == "mysql":
            self._check_packet_size(data)
        elif self._target.backend == "sqlite":
            self._check_sqlite_length(data)
        elif len(data) > _POSTGRES_MAX_STATE:
            raise StorageError(
                f"the encoded state is {len(data)} bytes, more than PostgreSQL accepts in one "
                f"value ({_POSTGRES_MAX_STATE} bytes: psycopg2 sends it as a hex literal, and "
                f"the server parses at most 2**29 - 1 characters of one literal) on {self.url}; "
                "nothing was written. Store a smaller state"
            )
        params = self._sql.insert.params(
            {
                "id": checkpoint_id,
                "name": checkpoint.name,
                "agent_id": checkpoint.agent_id,
                "state": data,
                "session_id": checkpoint.session_id,
                "agent_type": checkpoint.agent_type,
                "created_at": checkpoint.created_at,
                "state_codec": codec,
            }
        )
        del data  # the parameter list holds the only reference the driver needs
        maybe_written = False

        def run() -> bool:
            nonlocal maybe_written
            try:
                self._db.execute_sql(self._sql.insert.sql, params)
            except pw.IntegrityError:
                if not self._exists(checkpoint_id):
                    raise
                # After a dropped connection, the row is the earlier attempt's: it committed
                # before the connection went. Otherwise the id was already taken.
                return maybe_written
            except pw.PeeweeException as exc:
                if not self._is_sqlite_busy(exc):
                    maybe_written = True  # a connection lost mid-statement may have committed
                raise
            return True

        return self._guard("store a checkpoint", run, retry=True)

    def _exists(self, checkpoint_id: str) -> bool:
        cursor = self._db.execute_sql(self._sql.exists.sql, [checkpoint_id])
        return cursor.fetchone() is not None

    def retrieve_checkpoint(self, checkpoint_id: str) -> StoredCheckpoint | None:
        """Return the checkpoint with this id, or None (also for a malformed id)."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return None
        self._ensure_ready()
        row = self._query_one(self._sql.retrieve, {"id": checkpoint_id})
        if row is None:
            return None
        *values, codec = row
        values[3] = unpack_state(codec, values[3])
        return StoredCheckpoint(*values)

    def list_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CheckpointListItem]:
        """List matching checkpoints newest first (ties by id, descending), without states."""
        check_limit(limit)
        values = filter_values(agent_id, session_id, agent_type, before, after)
        if values is None or limit == 0:
            return []
        if limit is not None:
            values["limit"] = limit
        statement = self._sql.list(_filters(values), limited=limit is not None)
        self._ensure_ready()
        rows = self._query_all(statement, values)
        return list_items(rows)

    def page_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CheckpointPage:
        """One page of the listing and the cursor of the next (see CheckpointProvider).

        One indexed query that seeks to the cursor: a page costs the same at any depth and
        any table size, unlike OFFSET, which reads every row it skips.
        """
        check_page_limit(limit)
        position = decode_cursor(cursor) if cursor is not None else None
        values = filter_values(agent_id, session_id, agent_type, before, after)
        if values is None:
            return CheckpointPage([], None)
        self._ensure_ready()
        return self._page(values, limit, position)

    def iter_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> Iterator[CheckpointListItem]:
        """Yield every match newest first, reading ``iter_page_size`` rows per query."""
        # Checked now, not at the first next(): a bad filter fails where it was passed.
        values = filter_values(agent_id, session_id, agent_type, before, after)
        return self._iterate(values)

    def _iterate(self, values: dict[str, Any] | None) -> Iterator[CheckpointListItem]:
        if values is None:
            return
        self._ensure_ready()
        position: tuple[int, str] | None = None
        while True:
            page = self._page(values, self.iter_page_size, position)
            yield from page.items
            if page.next_cursor is None:
                return
            last = page.items[-1]
            position = (last.created_at, last.id)

    def _page(
        self, values: dict[str, Any], limit: int, position: tuple[int, str] | None
    ) -> CheckpointPage:
        values = dict(values)
        if position is not None:
            values["cursor"] = True
            values["cursor_at"], values["cursor_id"] = position
        # One row more than the page tells whether another page follows.
        values["limit"] = limit + 1
        statement = self._sql.list(_filters(values), limited=True)
        rows = self._query_all(statement, values)
        items = list_items(rows[:limit])
        if len(rows) > limit:
            last = items[-1]
            return CheckpointPage(items, encode_cursor(last.created_at, last.id))
        return CheckpointPage(items, None)

    def prune(
        self,
        *,
        before: int | None = None,
        keep_last_per_agent: int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete old checkpoints in batches; returns how many were (or would be) deleted.

        See :meth:`CheckpointProvider.prune`. Rows go in batches of ``prune_batch`` ids, one
        autocommitted DELETE each, found by walking the listing indexes with a keyset, so
        neither the lock held nor the memory used grows with the number of rows removed.
        """
        check_prune_rules(before, keep_last_per_agent)
        self._ensure_ready()
        # Bounds past the column's range: every row is before it; none is before 0.
        old: dict[str, Any] | None = None
        if before is not None and before > 0:
            old = {"before": before} if before <= MAX_CREATED_AT else {}
        count = 0
        # A before past every created_at removes everything: the keep rule adds nothing.
        if keep_last_per_agent is not None and old != {}:
            # In a dry run the rows both rules remove are counted once, with the before rule.
            since = {"since": before} if dry_run and old and before is not None else {}
            count += self._prune_per_agent(keep_last_per_agent, since, dry_run)
        if old is not None:
            count += self._remove(old, None, dry_run)
        return count

    def _prune_per_agent(self, keep: int, extra: dict[str, Any], dry_run: bool) -> int:
        count = 0
        agent = ""  # agent_id is never empty, so every agent sorts after ""
        while True:
            rows = self._query_all(self._sql.agents, {"agent": agent, "limit": _AGENT_BATCH})
            for (agent_id,) in rows:
                values = {"agent_id": agent_id, **extra}
                position: tuple[int, str] | None = None
                if keep > 0:
                    # The last checkpoint kept; everything after it in listing order goes.
                    kept = self._query_one(self._sql.agent_rank,
                                           {"agent_id": agent_id, "one": 1, "offset": keep - 1})
                    if kept is None:
                        continue
                    position = (kept[0], kept[1])
                count += self._remove(values, position, dry_run)
            if len(rows) < _AGENT_BATCH:
                return count
            agent = rows[-1][0]

    def _remove(
        self, values: dict[str, Any], position: tuple[int, str] | None, dry_run: bool
    ) -> int:
        """Delete (or count) the rows matching ``values`` after ``position`` in listing order."""
        if dry_run:
            values = dict(values)
            if position is not None:
                values["cursor"] = True
                values["cursor_at"], values["cursor_id"] = position
            row = self._query_one(self._sql.count(_filters(values)), values)
            return int(row[0])
        removed = 0
        while True:
            batch = dict(values, limit=self.prune_batch)
            if position is not None:
                batch["cursor"] = True
                batch["cursor_at"], batch["cursor_id"] = position
            statement = self._sql.list(_filters(batch), limited=True, columns=KEY_COLUMNS)
            keys = self._query_all(statement, batch)
            if not keys:
                return removed
            delete = self._sql.delete_ids(len(keys))
            params = delete.params({f"id{i}": key[1] for i, key in enumerate(keys)})

            def run(statement: Statement = delete, params: list[Any] = params) -> int:
                return int(self._db.execute_sql(statement.sql, params).rowcount)

            removed += self._guard("prune checkpoints", run, retry=True)
            if len(keys) < self.prune_batch:
                return removed
            position = (keys[-1][0], keys[-1][1])

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete the checkpoint with this id; True if a row was removed."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return False
        self._ensure_ready()
        statement = self._sql.delete

        def run() -> int:
            params = statement.params({"id": checkpoint_id})
            return int(self._db.execute_sql(statement.sql, params).rowcount)

        return self._guard("delete a checkpoint", run, retry=True) > 0

    def close(self) -> None:
        """Close every connection this provider opened (later calls reconnect)."""
        self._db.close_all()

    # -- execution ------------------------------------------------------------------------

    def _query_one(self, statement: Statement, values: dict[str, Any]) -> Any:
        def run() -> Any:
            return self._db.execute_sql(statement.sql, statement.params(values)).fetchone()

        return self._guard("read", run, retry=True)

    def _query_all(self, statement: Statement, values: dict[str, Any]) -> list[Any]:
        def run() -> list[Any]:
            return list(self._db.execute_sql(statement.sql, statement.params(values)).fetchall())

        return self._guard("list checkpoints", run, retry=True)

    def _guard(self, action: str, run: Callable[[], _T], *, retry: bool = False) -> _T:
        """Run ``run``; driver errors become StorageError, a dropped connection is replaced.

        With ``retry``, an operation whose connection turned out to be dead is run once more
        on a fresh connection (reads, and writes that are idempotent by id).
        """
        try:
            reconnects = 1 if retry else 0
            busy_deadline: float | None = None
            pause = 0.005
            while True:
                try:
                    return run()
                except (pw.PeeweeException, MaxConnectionsExceeded) as exc:
                    failure: BaseException = exc
                if self._is_sqlite_busy(failure):
                    # SQLite's busy timeout does not cover every lock (a connection opening
                    # while another switches the file to WAL or recovers it gets SQLITE_BUSY
                    # at once); nothing was written, so wait a little and run it again.
                    now = time.monotonic()
                    busy_deadline = busy_deadline or now + SQLITE_BUSY_TIMEOUT
                    if now < busy_deadline:
                        self._discard_if_broken()
                        time.sleep(pause)
                        pause = min(pause * 2, 0.2)
                        continue
                if reconnects and self._discard_if_broken():
                    reconnects -= 1
                    continue
                break
            self._discard_if_broken()
            # Raised here, outside the except blocks, so that the driver's error is chained
            # only when it is safe to show (chain() checks it for the password).
            raise self._storage_error(action, failure)
        finally:
            if self._pooled:
                self._release()

    def _is_sqlite_busy(self, exc: BaseException) -> bool:
        return self._target.backend == "sqlite" and "database is locked" in str(exc)

    def _release(self) -> None:
        """Give a pooled connection back after each operation.

        Threads that end (a thread per request) would otherwise keep theirs until the pool
        ran out; checking one out and in costs no round trip.
        """
        try:
            self._db.close()
        except Exception:  # a connection that fails to close is gone either way: forget it
            self._db._state.reset()

    def _storage_error(self, action: str, exc: BaseException) -> StorageError:
        message = f"could not {action} on {self.url}: {type(exc).__name__}: {exc}"
        redact = self._target.redact
        return chain(StorageError(redact(message)), exc, redact)

    def _discard_if_broken(self) -> bool:
        """Drop this thread's connection if the server closed it; True if one was dropped."""
        state = self._db._state
        conn = state.conn
        if conn is None or state.closed:
            return False
        backend = self._target.backend
        if backend == "postgres":
            broken = bool(conn.closed)
        elif backend == "mysql":
            broken = not conn.open
        else:
            try:
                conn.total_changes  # noqa: B018 - raises once the connection is closed
                broken = False
            except Exception:
                broken = True
        if broken:
            try:
                self._db.close()
            except Exception:
                state.reset()
        return broken

    def _check_sqlite_length(self, data: bytes) -> None:
        """Refuse a state longer than this SQLite connection's SQLITE_LIMIT_LENGTH."""
        conn = self._guard("connect", self._db.connection)
        getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
        if getlimit is None:
            return  # SQLite's own "string or blob too big" still refuses it, unnamed
        limit = int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_LENGTH", 0)))
        if len(data) > limit:
            raise StorageError(
                f"the encoded state is {len(data)} bytes, more than SQLite's "
                f"SQLITE_LIMIT_LENGTH ({limit} bytes) allows on {self.url}; nothing was "
                "written. Store a smaller state"
            )

    def _check_packet_size(self, data: bytes) -> None:
        """Refuse a state MySQL would reject as too large, before sending any of it."""
        if self._max_packet is None:
            row = self._guard(
                "read max_allowed_packet",
                lambda: self._db.execute_sql("SELECT @@max_allowed_packet").fetchone(),
                retry=True,
            )
            self._max_packet = int(row[0])
        limit = self._max_packet - _MYSQL_STATEMENT_OVERHEAD
        if 2 * len(data) <= limit:
            return  # even if every byte were escaped it would fit
        size = len(data) + sum(data.count(b) for b in _MYSQL_ESCAPED)
        if size > limit:
            raise StorageError(
                f"the encoded state is {size} bytes, more than the server's max_allowed_packet "
                f"({self._max_packet} bytes) allows in one statement on {self.url}; nothing was "
                "written. Raise max_allowed_packet on the MySQL/MariaDB server (SET GLOBAL "
                "max_allowed_packet=...; [mysqld] max_allowed_packet in my.cnf) or store a "
                "smaller state"
            )
