"""The Peewee provider: one implementation for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import peewee as pw

from ._app_store import AppStore
from ._codec import pack_state, unpack_state
from ._crypto import Keyring, parse_keys, row_aad
from ._cursor import check_order, decode_cursor, encode_cursor
from ._defaults import DEFAULT_DB_URL
from ._engine import Engine
from ._ids import new_id
from ._migrations import LOCK_TIMEOUT
from ._retention_sql import PeeweeRetention
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
from .model import TABLE_NAME, Checkpoint, bind_model
from .records import (
    AppCheckpoint,
    AppCheckpointListItem,
    CheckpointListItem,
    CheckpointPage,
    ImportCounts,
    NamedCheckpoint,
    StoredAppCheckpoint,
    StoredCheckpoint,
    list_items,
)
from .retention import RetentionPolicy, RetentionReport, require_policy

__all__ = ["DEFAULT_DB_URL", "ENCRYPTION_KEYS_ENV", "PeeweeCheckpointProvider"]

#: Where ``encryption_keys`` come from when the option is not given (comma-separated).
ENCRYPTION_KEYS_ENV = "PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS"


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
        encryption_keys: ``["<key id>:<base64 of 32 bytes>", ...]`` (or one string of them
            separated by commas): states are stored encrypted with AES-256-GCM under the
            first key; every key decrypts. Rows written without encryption stay readable.
            Default: ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS``, else no encryption.
        retention: a :class:`~peewee_checkpoints.retention.RetentionPolicy`, or a mapping of
            the ``[...retention]`` table, for :meth:`apply_retention`.

    Raises:
        ConfigError: ``db_url`` is malformed or names an unsupported backend, a key in
            ``encryption_keys`` is malformed (the message names its position and id, never
            the key), or the retention table is.
    """

    prune_batch: int = 500
    """Rows prune deletes per statement. Each DELETE commits on its own, so no lock is held for
    long, and the id list stays under SQLite's oldest limit of 999 bound parameters."""

    def __init__(self, db_url: str = DEFAULT_DB_URL, *,
                 migration_lock_timeout: float = LOCK_TIMEOUT,
                 encryption_keys: str | Sequence[str] | Keyring | None = None,
                 retention: RetentionPolicy | Mapping[str, Any] | None = None) -> None:
        if encryption_keys is None:
            encryption_keys = os.environ.get(ENCRYPTION_KEYS_ENV) or None
        self._keyring = parse_keys(encryption_keys)
        if retention is not None:
            self.retention_policy = (retention if isinstance(retention, RetentionPolicy)
                                     else RetentionPolicy.from_mapping(retention))
        self._engine = Engine(db_url, migration_lock_timeout=migration_lock_timeout)
        self._db: Any = self._engine.database
        self._model = bind_model(self._db)
        self._sql = Statements(self._db, self._model)
        self._apps = AppStore(self._engine, self._keyring)
        self._retention = PeeweeRetention(self._engine)

    # -- introspection --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._engine.url

    @property
    def backend(self) -> str:
        """``"sqlite"``, ``"postgres"`` or ``"mysql"``."""
        return self._engine.backend

    @property
    def database(self) -> pw.Database:
        """The Peewee database this provider uses."""
        return self._engine.database  # type: ignore[no-any-return]

    @property
    def engine(self) -> Engine:
        """The engine under this provider (connections, migrations, retries)."""
        return self._engine

    @property
    def keyring(self) -> Keyring:
        """The encryption keys (their ids only show; the first encrypts)."""
        return self._keyring

    @property
    def model(self) -> type[Checkpoint]:
        """The ``Checkpoint`` model bound (through a DatabaseProxy) to this provider's database."""
        return self._model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- migrations -----------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations now; returns the names this call applied.

        Safe to call from many processes at once, on every topology: a database-wide lock
        serializes them (waiting at most ``migration_lock_timeout`` seconds) and each
        migration is applied exactly once. With nothing pending it only reads, so it also
        succeeds on a read-only standby.

        Raises:
            MigrationError: a migration failed, the lock wait timed out, the server is a
                read-only standby, or the database was migrated by a newer version.
            StorageError: the database could not be reached.
        """
        return self._engine.migrate()

    def pending_migrations(self) -> list[str]:
        """Names of shipped migrations not yet applied to the database."""
        return self._engine.pending_migrations()

    def applied_migrations(self) -> list[str]:
        """Names recorded in the package's migration history table."""
        return self._engine.applied_migrations()

    def rollback_migration(self) -> str:
        """Roll back the newest applied migration (peewee-migrate's rollback); returns its name."""
        return self._engine.rollback_migration()

    # -- the provider interface -----------------------------------------------------------

    def store_checkpoint(self, checkpoint: NamedCheckpoint) -> str:
        """Store ``checkpoint``; returns its new id (a 26-character ULID).

        The id is made here, before the row is sent, so a store whose connection drops is
        run again safely: after reconnecting the provider finds its own row by id. If the
        server stays unreachable, the :class:`StorageError` carries ``checkpoint_id`` and says
        the outcome is unknown.
        """
        check_checkpoint(checkpoint)
        codec, data = pack_state(checkpoint.state)
        checkpoint_id = new_id()
        row = self._row(checkpoint_id, checkpoint, data, codec)
        del data  # the row holds the only reference the driver needs
        self._engine.ensure_ready()
        sent = [False]
        if not self._engine.run("store a checkpoint",
                                lambda: self._insert(row, sent),
                                outcome_id=checkpoint_id):
            raise StorageError(f"id {checkpoint_id} already exists on {self.url}")
        return checkpoint_id

    def import_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store ``checkpoint`` under its own id; False (nothing written) if the id exists."""
        named = check_stored_checkpoint(checkpoint)
        codec, data = pack_state(checkpoint.state)
        row = self._row(checkpoint.id, named, data, codec)
        del data
        self._engine.ensure_ready()
        sent = [False]
        return self._engine.run("import a checkpoint", lambda: self._insert(row, sent),
                                outcome_id=checkpoint.id)

    def import_checkpoints(self, checkpoints: Iterable[StoredCheckpoint]) -> ImportCounts:
        """Import many checkpoints under their own ids in ONE transaction.

        Either all of them are written (or skipped, where the id exists) or, on an error,
        none is; running the same batch again is safe. A dropped connection or a deadlock
        runs the whole batch again. Memory holds the batch's encoded states, so callers pass
        batches (the CLI's copy and import pass 500 rows or one second's worth).
        """
        rows = []
        for checkpoint in checkpoints:
            named = check_stored_checkpoint(checkpoint)
            codec, data = pack_state(checkpoint.state)
            rows.append(self._row(checkpoint.id, named, data, codec))
        self._engine.ensure_ready()

        def run() -> ImportCounts:
            counts = ImportCounts()
            with self._engine.transaction():
                for row in rows:
                    if self._insert(row, [False]):
                        counts.written += 1
                    else:
                        counts.skipped += 1
            return counts

        return self._engine.run("import checkpoints", run)

    def _row(self, checkpoint_id: str, checkpoint: NamedCheckpoint, data: bytes,
             codec: int) -> list[Any]:
        """The INSERT's parameters for one checkpoint (its state encrypted, with keys)."""
        key_id, data = self._keyring.encrypt(data, row_aad(TABLE_NAME, checkpoint_id, codec))
        return self._sql.insert.params({
            "id": checkpoint_id,
            "name": checkpoint.name,
            "agent_id": checkpoint.agent_id,
            "state": data,
            "session_id": checkpoint.session_id,
            "agent_type": checkpoint.agent_type,
            "created_at": checkpoint.created_at,
            "state_codec": codec,
            "state_key": key_id,
        })

    def _insert(self, row: list[Any], sent: list[bool]) -> bool:
        """INSERT one row (inside :meth:`Engine.run`); True if written, False if the id exists.

        ``sent[0]`` records that an earlier run of the same call sent the row: when its
        connection dropped, a row found now under that id is that run's, committed before
        the drop, so the call wrote it.
        """
        engine = self._engine
        data = row[self._sql.insert.names.index("state")]
        engine.profile.check_value_size(len(data), data, engine.database.connection())
        checkpoint_id = row[self._sql.insert.names.index("id")]
        db = self._db
        # A failed INSERT aborts a whole PostgreSQL transaction: inside one (a batch), each
        # row gets a savepoint so that a duplicate id costs that row only.
        savepoint = db.in_transaction() and engine.profile.failed_statement_aborts_transaction
        for _ in range(3):
            was_sent, sent[0] = sent[0], True
            try:
                if savepoint:
                    with db.atomic():
                        db.execute_sql(self._sql.insert.sql, row)
                else:
                    db.execute_sql(self._sql.insert.sql, row)
            except pw.IntegrityError:
                if self._exists(checkpoint_id):
                    return was_sent
                # The row that collided was deleted before we looked: insert again.
                continue
            except pw.PeeweeException as exc:
                if engine.profile.is_busy(exc):
                    sent[0] = was_sent  # SQLite wrote nothing
                raise
            return True
        raise StorageError(
            f"could not write {checkpoint_id} on {self.url}: the id kept colliding with rows "
            "that were deleted right after (another process deletes and writes the same id)"
        )

    def _exists(self, checkpoint_id: str) -> bool:
        cursor = self._db.execute_sql(self._sql.exists.sql, [checkpoint_id])
        return cursor.fetchone() is not None

    def retrieve_checkpoint(self, checkpoint_id: str) -> StoredCheckpoint | None:
        """Return the checkpoint with this id, or None (also for a malformed id)."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return None
        self._engine.ensure_ready()
        row = self._query_one(self._sql.retrieve, {"id": checkpoint_id})
        if row is None:
            return None
        *values, codec, key_id = row
        data = self._keyring.decrypt(key_id, values[3],
                                     row_aad(TABLE_NAME, checkpoint_id, codec),
                                     what=f"checkpoint {checkpoint_id}")
        values[3] = unpack_state(codec, data)
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
        order: str = "desc",
    ) -> list[CheckpointListItem]:
        """List matching checkpoints newest first (ties by id, descending), without states.

        ``order="asc"``: oldest first, ties by id ascending (the same indexes, read backwards).
        """
        check_order(order)
        check_limit(limit)
        values = filter_values(agent_id, session_id, agent_type, before, after)
        if values is None or limit == 0:
            return []
        if limit is not None:
            values["limit"] = limit
        statement = self._sql.list(_filters(values), limited=limit is not None, order=order)
        self._engine.ensure_ready()
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
        order: str = "desc",
    ) -> CheckpointPage:
        """One page of the listing and the cursor of the next (see CheckpointProvider).

        One indexed query that seeks to the cursor: a page costs the same at any depth and
        any table size, unlike OFFSET, which reads every row it skips.
        """
        check_page_limit(limit)
        check_order(order)
        position = decode_cursor(cursor, order) if cursor is not None else None
        values = filter_values(agent_id, session_id, agent_type, before, after)
        if values is None:
            return CheckpointPage([], None)
        self._engine.ensure_ready()
        return self._page(values, limit, position, order)

    def iter_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
        order: str = "desc",
    ) -> Iterator[CheckpointListItem]:
        """Yield every match newest first (or oldest first with ``order="asc"``), reading
        ``iter_page_size`` rows per query."""
        # Checked now, not at the first next(): a bad filter fails where it was passed.
        check_order(order)
        values = filter_values(agent_id, session_id, agent_type, before, after)
        return self._iterate(values, order)

    def _iterate(self, values: dict[str, Any] | None, order: str = "desc"
                 ) -> Iterator[CheckpointListItem]:
        if values is None:
            return
        self._engine.ensure_ready()
        position: tuple[int, str] | None = None
        while True:
            page = self._page(values, self.iter_page_size, position, order)
            yield from page.items
            if page.next_cursor is None:
                return
            last = page.items[-1]
            position = (last.created_at, last.id)

    def _page(
        self, values: dict[str, Any], limit: int, position: tuple[int, str] | None,
        order: str = "desc",
    ) -> CheckpointPage:
        values = dict(values)
        if position is not None:
            values["cursor"] = True
            values["cursor_at"], values["cursor_id"] = position
        # One row more than the page tells whether another page follows.
        values["limit"] = limit + 1
        statement = self._sql.list(_filters(values), limited=True, order=order)
        rows = self._query_all(statement, values)
        items = list_items(rows[:limit])
        if len(rows) > limit:
            last = items[-1]
            return CheckpointPage(items, encode_cursor(last.created_at, last.id, order))
        return CheckpointPage(items, None)

    def count_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> int:
        """How many checkpoints match: one ``SELECT COUNT(*)`` on the filters' index.

        A count still reads every matching index entry (see the README for its cost at a
        million rows); to walk a large store, page by cursor.
        """
        values = filter_values(agent_id, session_id, agent_type, before, after)
        if values is None:
            return 0
        self._engine.ensure_ready()
        row = self._query_one(self._sql.count(_filters(values)), values, "count checkpoints")
        return int(row[0])

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
        self._engine.ensure_ready()
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

            removed += self._engine.run("prune checkpoints", run)
            if len(keys) < self.prune_batch:
                return removed
            position = (keys[-1][0], keys[-1][1])

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete the checkpoint with this id; True if a row was removed."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return False
        self._engine.ensure_ready()
        statement = self._sql.delete

        def run() -> int:
            params = statement.params({"id": checkpoint_id})
            return int(self._db.execute_sql(statement.sql, params).rowcount)

        return self._engine.run("delete a checkpoint", run) > 0

    # -- retention ------------------------------------------------------------------------

    def apply_retention(self, dry_run: bool = False, *,
                        policy: RetentionPolicy | None = None) -> RetentionReport:
        """Delete what the retention policy no longer keeps; returns rows and bytes per rule.

        See :meth:`CheckpointProvider.apply_retention`. Each rule walks an index and deletes
        500 rows per autocommitted statement; bytes are the stored (compressed, possibly
        encrypted) size of the states removed.
        """
        return self._retention.apply(require_policy(self, policy), dry_run)

    def rekey(self, *, decrypt: bool = False) -> int:
        """Re-encrypt every payload not under the first key (``decrypt``: store all plain);
        returns how many rows were rewritten. Covers this provider's states and the LangGraph
        saver's and the agent-framework sessions' tables in the same database. Resumable;
        batches of 500, one short transaction each (the ``rekey`` command runs this)."""
        from ._rekey import rekey

        return rekey(self, decrypt=decrypt).rewritten

    def claim_retention_run(self, interval_ms: int) -> bool:
        """Claim the current retention interval in the database (one conditional UPDATE of
        the lease row): of many processes asking at once, one gets True."""
        return self._retention.claim(interval_ms)

    # -- app checkpoints ------------------------------------------------------------------

    def store_app_checkpoint(self, checkpoint: AppCheckpoint) -> str:
        """Store an app checkpoint; returns its new id (a 26-character ULID)."""
        return self._apps.store(checkpoint)

    def import_app_checkpoint(self, checkpoint: StoredAppCheckpoint) -> bool:
        """Store an app checkpoint under its own id; False (nothing written) if it exists."""
        return self._apps.import_(checkpoint)

    def retrieve_app_checkpoint(self, checkpoint_id: str) -> StoredAppCheckpoint | None:
        """Return the app checkpoint with this id, or None (also for a malformed id)."""
        return self._apps.retrieve(checkpoint_id)

    def list_app_checkpoints(self, *, limit: int | None = None) -> list[AppCheckpointListItem]:
        """App checkpoints newest first (ties by id descending), without their states."""
        return self._apps.list(limit)

    def latest_app_checkpoint(self) -> StoredAppCheckpoint | None:
        """The newest app checkpoint with its state (one query), or None."""
        return self._apps.latest()

    def delete_app_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete an app checkpoint; True if one was removed."""
        return self._apps.delete(checkpoint_id)

    def count_app_checkpoints(self) -> int:
        """How many app checkpoints are stored."""
        return self._apps.count()

    def close(self) -> None:
        """Close every connection this provider opened (later calls reconnect)."""
        self._engine.close()

    # -- execution ------------------------------------------------------------------------

    def _query_one(self, statement: Statement, values: dict[str, Any],
                   action: str = "read") -> Any:
        def run() -> Any:
            return self._db.execute_sql(statement.sql, statement.params(values)).fetchone()

        return self._engine.run(action, run)

    def _query_all(self, statement: Statement, values: dict[str, Any]) -> list[Any]:
        def run() -> list[Any]:
            return list(self._db.execute_sql(statement.sql, statement.params(values)).fetchall())

        return self._engine.run("list checkpoints", run)
