"""SQL of the LangGraph saver, written once per backend and cached per shape.

The saver's queries are fixed except for how many values an ``IN`` list or a multi-row
``VALUES`` holds, so each shape is built once as a string with the driver's placeholder and
reused; no Peewee query is built on a hot path (building one costs several times what SQLite
takes to run it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from .._profiles import BackendProfile

CHECKPOINTS = "peewee_checkpoints_lg_checkpoints"
BLOBS = "peewee_checkpoints_lg_blobs"
WRITES = "peewee_checkpoints_lg_writes"

#: Largest number of keys put in one IN list or VALUES list: well under SQLite's 999-variable
#: floor of old builds, and short enough for every planner to use the primary key.
CHUNK = 200

#: Columns of a checkpoint row as the saver reads them.
#: ``checkpoint_ns`` is the namespace's key form (see migration 008); ``checkpoint_ns_full``
#: the namespace itself when that is longer than the key (else NULL).
CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "type, checkpoint, metadata_type, metadata, checkpoint_ns_full"
)
_CHECKPOINT_INSERT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, "
    "type, checkpoint, metadata_type, metadata, blob_refs, checkpoint_ns_full"
)
_BLOB_COLUMNS = "thread_id, checkpoint_ns, channel, version, type, data"
_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, data"
)


def _row(param: str, n: int) -> str:
    return "(" + ", ".join([param] * n) + ")"


class SaverSQL:
    """Every statement the saver runs, in one backend's dialect."""

    def __init__(self, profile: BackendProfile, param: str) -> None:
        self.profile = profile
        p = self._p = param
        self.key = f"thread_id = {p} AND checkpoint_ns = {p}"

        # Re-putting a checkpoint replaces it (LangGraph's savers agree); its parent stays.
        upsert = profile.upsert(("thread_id", "checkpoint_ns", "checkpoint_id")) + ", ".join(
            f"{c} = {profile.excluded(c)}"
            for c in ("run_id", "type", "checkpoint", "metadata_type", "metadata", "blob_refs")
        )
        self.put_checkpoint = (
            f"INSERT INTO {CHECKPOINTS} ({_CHECKPOINT_INSERT_COLUMNS}) VALUES {_row(p, 11)}{upsert}"
        )
        self.get_checkpoint = (
            f"SELECT {CHECKPOINT_COLUMNS} FROM {CHECKPOINTS} "
            f"WHERE {self.key} AND checkpoint_id = {p}"
        )
        # SQLite and PostgreSQL: the checkpoint, its blobs (joined through blob_refs) and its
        # writes in one statement. MySQL keeps two (see json_object_rows).
        self.get_one: dict[bool, str] = {}
        if profile.json_object_rows("c.blob_refs", "j") is not None:
            for latest in (False, True):
                self.get_one[latest] = self._get_one(latest)
        self.get_latest = (
            f"SELECT {CHECKPOINT_COLUMNS} FROM {CHECKPOINTS} "
            f"WHERE {self.key} ORDER BY checkpoint_id DESC LIMIT 1"
        )
        # A blob keyed by (channel, version) never changes, so a second insert is a no-op. MySQL's
        # INSERT IGNORE would also turn real errors (a too-long value) into warnings; a no-op
        # update does not.
        self._blob_conflict = profile.keep_existing("type")
        self._write_ignore = self._blob_conflict
        self._write_replace = profile.upsert(
            ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx")
        ) + ", ".join(f"{c} = {profile.excluded(c)}" for c in ("channel", "type", "data"))
        self.delete_thread = tuple(
            f"DELETE FROM {table} WHERE thread_id = {p}" for table in (WRITES, BLOBS, CHECKPOINTS)
        )
        self.thread_checkpoints = (
            f"SELECT {CHECKPOINT_COLUMNS} FROM {CHECKPOINTS} WHERE thread_id = {p}"
        )
        self.namespace_checkpoints = (
            f"SELECT type, checkpoint, checkpoint_id FROM {CHECKPOINTS} WHERE {self.key}"
        )
        # Copies carry every column but the thread; a row already on the target is kept, so a
        # copy retried after a dropped connection does not fail.
        self.copy_thread = tuple(
            self._copy(table, columns)
            for table, columns in (
                (CHECKPOINTS, _CHECKPOINT_INSERT_COLUMNS),
                (BLOBS, _BLOB_COLUMNS),
                (WRITES, _WRITE_COLUMNS),
            )
        )
        self.insert_blobs: Callable[[int], str] = lru_cache(maxsize=64)(self._insert_blobs)
        self.put_with_blobs: Callable[[int], str] = lru_cache(maxsize=64)(self._put_with_blobs)
        self.insert_writes: Callable[[int, bool], str] = lru_cache(maxsize=64)(
            self._insert_writes
        )
        self.values: Callable[[int, int], str] = lru_cache(maxsize=256)(self._values)
        self.list: Callable[[bool, bool, bool, bool, bool], str] = lru_cache(maxsize=64)(
            self._list
        )
        self.in_list: Callable[[str, int], str] = lru_cache(maxsize=256)(self._in_list)
        self.delete_blobs: Callable[[int], str] = lru_cache(maxsize=64)(self._delete_blobs)

    def _copy(self, table: str, columns: str) -> str:
        rest = columns.removeprefix("thread_id, ")
        # SQLite needs the WHERE clause before ON CONFLICT to parse an INSERT ... SELECT; MySQL
        # needs the source aliased to tell the target's columns from the source's.
        tail = self.profile.keep_existing(f"{table}.thread_id")
        return (
            f"INSERT INTO {table} ({columns}) SELECT {self._p}, {rest} FROM {table} AS src "
            f"WHERE src.thread_id = {self._p}{tail}"
        )

    def _get_one(self, latest: bool) -> str:
        """Rows ``(kind, a, b, c, d, e, f, g)`` for one checkpoint: kind 2 is the checkpoint
        (id, parent, type, checkpoint, metadata_type, metadata), kind 0 a blob (channel,
        version, type, data), kind 1 a write (task_id, task_path, type, data, channel, -, idx).
        Parameters: the namespace key and the checkpoint id (``latest``: the key twice) for
        each of the three parts.
        """
        p = self._p
        if latest:
            # ORDER BY ... LIMIT 1 rather than MAX(): PostgreSQL read every checkpoint id of
            # the thread for MAX() (300 index entries and heap fetches at 300 checkpoints).
            which = (
                f"(SELECT checkpoint_id FROM {CHECKPOINTS} "
                f"WHERE thread_id = {p} AND checkpoint_ns = {p} "
                "ORDER BY checkpoint_id DESC LIMIT 1)"
            )
        else:
            which = p
        refs = self.profile.json_object_rows("c.blob_refs", "j")
        # CROSS JOIN fixes the join order: SQLite would otherwise scan the thread's blobs.
        return (
            # PostgreSQL types a UNION column from its first branches: the NULL needs a type.
            "SELECT 2, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata_type, "
            f"metadata, CAST(NULL AS INTEGER) FROM {CHECKPOINTS} "
            f"WHERE {self.key} AND checkpoint_id = {which} "
            "UNION ALL "
            "SELECT 0, b.channel, b.version, b.type, b.data, NULL, NULL, NULL "
            f"FROM {CHECKPOINTS} c {refs} CROSS JOIN {BLOBS} b "
            "WHERE b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns "
            "AND b.channel = j.key AND b.version = j.value "
            f"AND c.thread_id = {p} AND c.checkpoint_ns = {p} AND c.checkpoint_id = {which} "
            "UNION ALL "
            "SELECT 1, task_id, task_path, type, data, channel, NULL, idx "
            f"FROM {WRITES} WHERE {self.key} AND checkpoint_id = {which}"
        )

    def _put_with_blobs(self, rows: int) -> str:
        """PostgreSQL: the blobs and the checkpoint in one statement (one round trip, atomic).

        Parameters: ``rows`` blob rows, then the checkpoint row.
        """
        return f"WITH blobs AS ({self._insert_blobs(rows)}) {self.put_checkpoint}"

    def _insert_blobs(self, rows: int) -> str:
        values = ", ".join([_row(self._p, 6)] * rows)
        return f"INSERT INTO {BLOBS} ({_BLOB_COLUMNS}) VALUES {values}{self._blob_conflict}"

    def _insert_writes(self, rows: int, replace: bool) -> str:
        values = ", ".join([_row(self._p, 9)] * rows)
        tail = self._write_replace if replace else self._write_ignore
        return f"INSERT INTO {WRITES} ({_WRITE_COLUMNS}) VALUES {values}{tail}"

    def _pairs(self, pairs: int) -> str:
        p = self._p
        return " OR ".join([f"(channel = {p} AND version = {p})"] * pairs)

    def _values(self, pairs: int, checkpoints: int) -> str:
        """Channel blobs and pending writes of checkpoints in one namespace, in one round trip.

        Rows are ``(kind, ref, task_id, task_path, idx, channel, type, data)``: kind 0 is a blob
        (ref = version), kind 1 a write (ref = checkpoint id). Parameters: the namespace key and
        ``pairs`` (channel, version) pairs, then the key again and ``checkpoints`` ids.
        """
        parts = []
        if pairs:
            parts.append(
                f"SELECT 0, version, '', '', 0, channel, type, data FROM {BLOBS} "
                f"WHERE {self.key} AND ({self._pairs(pairs)})"
            )
        if checkpoints:
            parts.append(
                "SELECT 1, checkpoint_id, task_id, task_path, idx, channel, type, data "
                f"FROM {WRITES} WHERE {self.key} AND checkpoint_id IN {_row(self._p, checkpoints)}"
            )
        return " UNION ALL ".join(parts)

    def _list(
        self, thread: bool, namespace: bool, checkpoint: bool, before: bool, limited: bool
    ) -> str:
        p = self._p
        where = []
        if thread:
            where.append(f"thread_id = {p}")
        if namespace:
            where.append(f"checkpoint_ns = {p}")
        if checkpoint:
            where.append(f"checkpoint_id = {p}")
        if before:
            where.append(f"checkpoint_id < {p}")
        sql = f"SELECT {CHECKPOINT_COLUMNS} FROM {CHECKPOINTS}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY checkpoint_id DESC"
        if limited:
            sql += f" LIMIT {p}"
        return sql

    def _in_list(self, statement: str, n: int) -> str:
        """``statement`` (ending in ``IN``) completed with ``n`` placeholders."""
        return f"{statement} {_row(self._p, n)}"

    def _delete_blobs(self, pairs: int) -> str:
        return f"DELETE FROM {BLOBS} WHERE {self.key} AND ({self._pairs(pairs)})"

    # Statements completed by in_list(statement, n).
    @property
    def checkpoints_of_runs(self) -> str:
        """The checkpoints whose metadata ``run_id`` is in a list."""
        return (
            f"SELECT {CHECKPOINT_COLUMNS} FROM {CHECKPOINTS} WHERE run_id IN"
        )

    @property
    def delete_writes_of(self) -> str:
        """Delete the pending writes of listed checkpoints of one thread and namespace."""
        return f"DELETE FROM {WRITES} WHERE {self.key} AND checkpoint_id IN"

    @property
    def delete_checkpoints_of(self) -> str:
        """Delete listed checkpoints of one thread and namespace."""
        return f"DELETE FROM {CHECKPOINTS} WHERE {self.key} AND checkpoint_id IN"

    @property
    def orphan_children_of(self) -> str:
        """Unlink the children of listed checkpoints from their deleted parent."""
        return (
            f"UPDATE {CHECKPOINTS} SET parent_checkpoint_id = NULL "
            f"WHERE {self.key} AND parent_checkpoint_id IN"
        )

    def delete_threads(self, table: str) -> str:
        """Delete the rows of listed threads from ``table``."""
        return f"DELETE FROM {table} WHERE thread_id IN"

    TABLES = (WRITES, BLOBS, CHECKPOINTS)
