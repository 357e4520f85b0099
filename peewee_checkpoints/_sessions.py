"""Conversation sessions on the engine: the SQL and the operations, without any agent SDK.

The OpenAI Agents adapter (:mod:`peewee_checkpoints.openai_agents`) and the ``sessions``
command line are thin layers on :class:`SessionTables`. Items are JSON objects stored as
bytes, numbered by a per-session sequence (``next_seq`` on the session row). Every write to
a session locks its row first (``SELECT ... FOR UPDATE`` on PostgreSQL and MySQL, an
``IMMEDIATE`` transaction on SQLite), so writers of one session take turns: each
``add_items`` gets a contiguous run of numbers and two pops never take the same item.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import orjson

from ._codec import dumps_json
from ._crypto import SEALED, Keyring, keys_or_env, seal, unseal
from ._engine import Engine
from ._profiles import BackendProfile
from ._validation import text_problem
from .errors import InvalidCheckpointError, StorageError
from .records import now_ms

__all__ = ["SessionInfo", "SessionPage", "SessionTables"]

log = logging.getLogger("peewee_checkpoints.sessions")

_T = TypeVar("_T")

SESSIONS = "peewee_checkpoints_oai_sessions"
ITEMS = "peewee_checkpoints_oai_items"
META = "peewee_checkpoints_oai_meta"

#: Column sizes of migration 006, the same on every backend.
MAX_SESSION_ID = 255
MAX_USER_ID = 255
MAX_META_KEY = 191
MAX_META_VALUE = 255
#: Items per INSERT statement, and bytes per statement before a new one starts.
_ROWS_PER_INSERT = 200
_BYTES_PER_INSERT = 4 * 1024 * 1024
#: Newest rows read per step while looking for well-formed items.
_POP_WINDOW = 16
#: Runs of a write after a deadlock (the transaction was rolled back: safe to run again).
_DEADLOCK_ATTEMPTS = 8

_SESSION_COLUMNS = (
    "session_id, user_id, metadata, created_at, updated_at, item_count, total_bytes"
)


@dataclass(frozen=True)
class SessionInfo:
    """What is known about one session, without its items."""

    session_id: str
    """The conversation's id."""
    user_id: str | None
    """The user the session belongs to, if one was given."""
    metadata: dict[str, Any]
    """A JSON object attached to the session."""
    created_at: int
    """When the session row was created, epoch milliseconds."""
    updated_at: int
    """When items were last added, popped or cleared (or metadata set), epoch milliseconds."""
    item_count: int
    """Items stored."""
    total_bytes: int
    """Bytes of JSON those items take."""


@dataclass(frozen=True)
class SessionPage:
    """One page of :meth:`SessionTables.list_sessions`."""

    items: list[SessionInfo] = field(default_factory=list)
    """Sessions, most recently active first."""
    next_cursor: str | None = None
    """Pass it back for the next page; ``None`` on the last page."""


def check_id(what: str, value: object, max_length: int = MAX_SESSION_ID) -> str:
    """``value`` if it can be a session or user id, else InvalidCheckpointError."""
    problem = text_problem(value, max_length)
    if problem is None and value == "":
        problem = "must not be empty"
    if problem is not None:
        raise InvalidCheckpointError(f"{what} {problem}")
    return value  # type: ignore[return-value]  # text_problem checked it is a str


#: Leads the JSON of an item the standard library encoded (JSON allows leading whitespace):
#: on read it says "orjson must not decode this", as it would read a big integer as a float.
_STDLIB_MARK = b" "


def item_aad(seq: int) -> bytes:
    """What an encrypted item is bound to: its table and sequence number (not the session:
    a fork copies items as they are)."""
    return f"{ITEMS}\x00{seq}".encode()


def encode_item(item: object) -> bytes:
    """An item's JSON bytes; InvalidCheckpointError unless it is a JSON object."""
    if not isinstance(item, Mapping):
        raise InvalidCheckpointError(
            f"a session item must be a JSON object (a dict), not {type(item).__name__}"
        )
    value = item if isinstance(item, dict) else dict(item)
    try:
        data = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        data = _stdlib_encode(value)
    else:
        # orjson writes NaN and infinities as null; only then is the item walked to find them.
        if b"null" in data and _has_nonfinite(value):
            raise InvalidCheckpointError(
                "a session item holds NaN or an infinity, which JSON cannot")
    return data


def _stdlib_encode(value: dict[str, Any]) -> bytes:
    # What orjson refuses but JSON holds: integers beyond 64 bits, lone surrogates, nesting
    # past 254 levels. Anything else it refused (a non-str key, a set) must not be changed
    # into something else on the way, so the text has to read back equal.
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        same = json.loads(text) == value
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidCheckpointError(f"a session item is not JSON: {exc}") from exc
    if not same:
        raise InvalidCheckpointError(
            "a session item is not JSON: it holds values JSON would change (a non-str key, "
            "a tuple)")
    return _STDLIB_MARK + text.encode()


def decode_item(data: Any) -> dict[str, Any] | None:
    """A stored item, or None if the stored bytes are not a JSON object."""
    if type(data) is not bytes:
        data = data.encode() if isinstance(data, str) else bytes(data)
    try:
        value = json.loads(data) if data[:1] == _STDLIB_MARK else orjson.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _has_nonfinite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nonfinite(v) for v in value)
    return False


def encode_metadata(metadata: object) -> tuple[bytes, list[tuple[str, str]]]:
    """Metadata JSON and its (key, indexed value) rows; InvalidCheckpointError if invalid."""
    if not isinstance(metadata, Mapping):
        raise InvalidCheckpointError(
            f"session metadata must be a dict, not {type(metadata).__name__}"
        )
    rows = []
    for key, value in metadata.items():
        problem = text_problem(key, MAX_META_KEY)
        if problem is not None or key == "":
            raise InvalidCheckpointError(f"metadata key {key!r} {problem or 'is empty'}")
        rows.append((key, meta_value(value) or ""))
    try:
        data = encode_item(metadata)
    except InvalidCheckpointError as exc:
        raise InvalidCheckpointError(str(exc).replace("a session item", "session metadata")
                                     ) from exc
    return data, rows


def meta_value(value: object) -> str | None:
    """The indexed text of a metadata value (its JSON), or None if it cannot be indexed.

    Scalars whose JSON fits the column are indexed; other values are recorded with an empty
    text, which no JSON text equals, so their key is still listed.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        try:
            text = dumps_json({"v": value})[5:-1].decode()
        except (TypeError, ValueError):
            return None
        if len(text) <= MAX_META_VALUE and "\x00" not in text:
            return text
    return None


def _encode_cursor(updated_at: int, session_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([updated_at, session_id])).decode()


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        updated_at, session_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidCheckpointError(f"malformed session cursor {cursor!r}") from exc
    if type(updated_at) is not int or type(session_id) is not str:
        raise InvalidCheckpointError(f"malformed session cursor {cursor!r}")
    return updated_at, session_id


def _row(param: str, n: int) -> str:
    return "(" + ", ".join([param] * n) + ")"


class SessionSQL:
    """Every statement on the session tables, in one backend's dialect."""

    def __init__(self, profile: BackendProfile, param: str) -> None:
        p = self._p = param
        self.lock_session = (
            f"SELECT next_seq FROM {SESSIONS} WHERE session_id = {p}{profile.row_lock}"
        )
        self.create_session = (
            f"INSERT INTO {SESSIONS} (session_id, user_id, metadata, next_seq, item_count, "
            f"total_bytes, created_at, updated_at) VALUES {_row(p, 8)}"
        )
        # Two first writers of a session: the second waits for the first's row, then does
        # nothing (MySQL's no-op update rather than INSERT IGNORE, which hides real errors).
        self.create_session_if_absent = self.create_session + profile.keep_existing(
            "session_id", ("session_id",)
        )
        self.grow_session = (
            f"UPDATE {SESSIONS} SET next_seq = {p}, item_count = item_count + {p}, "
            f"total_bytes = total_bytes + {p}, updated_at = {p} WHERE session_id = {p}"
        )
        self.shrink_session = (
            f"UPDATE {SESSIONS} SET item_count = item_count - 1, "
            f"total_bytes = total_bytes - {p}, updated_at = {p} WHERE session_id = {p}"
        )
        self.set_user = f"UPDATE {SESSIONS} SET user_id = {p} WHERE session_id = {p}"
        self.set_metadata = (
            f"UPDATE {SESSIONS} SET metadata = {p}, updated_at = {p} WHERE session_id = {p}"
        )
        self.reset_counts = (
            f"UPDATE {SESSIONS} SET item_count = 0, total_bytes = 0, updated_at = {p} "
            f"WHERE session_id = {p}"
        )
        self.recount = (
            f"UPDATE {SESSIONS} SET item_count = {p}, total_bytes = {p}, next_seq = {p}, "
            f"updated_at = {p} WHERE session_id = {p}"
        )
        self.all_items = (
            f"SELECT seq, data FROM {ITEMS} WHERE session_id = {p} ORDER BY seq"
        )
        self.newest_items = (
            f"SELECT seq, data FROM {ITEMS} WHERE session_id = {p} ORDER BY seq DESC LIMIT {p}"
        )
        self.newest_items_before = (
            f"SELECT seq, data FROM {ITEMS} WHERE session_id = {p} AND seq < {p} "
            f"ORDER BY seq DESC LIMIT {p}"
        )
        self.items_with_time = (
            f"SELECT seq, data, created_at FROM {ITEMS} WHERE session_id = {p} ORDER BY seq"
        )
        self.delete_item = f"DELETE FROM {ITEMS} WHERE session_id = {p} AND seq = {p}"
        self.delete_items = f"DELETE FROM {ITEMS} WHERE session_id = {p}"
        self.delete_session = f"DELETE FROM {SESSIONS} WHERE session_id = {p}"
        self.delete_meta = f"DELETE FROM {META} WHERE session_id = {p}"
        self.info = f"SELECT {_SESSION_COLUMNS} FROM {SESSIONS} WHERE session_id = {p}"
        self.user_sessions = f"SELECT session_id FROM {SESSIONS} WHERE user_id = {p}"
        self.seq_at = (
            f"SELECT seq FROM {ITEMS} WHERE session_id = {p} ORDER BY seq LIMIT 1 OFFSET {p}"
        )
        self.seq_from_end = (
            f"SELECT seq FROM {ITEMS} WHERE session_id = {p} ORDER BY seq DESC LIMIT 1 OFFSET {p}"
        )
        self.copy_items = (
            f"INSERT INTO {ITEMS} (session_id, seq, data, created_at) "
            f"SELECT {p}, seq, data, created_at FROM {ITEMS} WHERE session_id = {p} AND seq <= {p}"
        )
        self.copy_meta = (
            f"INSERT INTO {META} (meta_key, meta_value, session_id) "
            f"SELECT meta_key, meta_value, {p} FROM {META} WHERE session_id = {p}"
        )
        self.measure = (
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0), COALESCE(MAX(seq), -1) "
            f"FROM {ITEMS} WHERE session_id = {p}"
        )
        self.insert_items: Callable[[int], str] = lru_cache(maxsize=64)(self._insert_items)
        self.insert_meta: Callable[[int], str] = lru_cache(maxsize=64)(self._insert_meta)
        self.list: Callable[[bool, int, bool], str] = lru_cache(maxsize=64)(self._list)

    def _insert_items(self, rows: int) -> str:
        values = ", ".join([_row(self._p, 4)] * rows)
        return f"INSERT INTO {ITEMS} (session_id, seq, data, created_at) VALUES {values}"

    def _insert_meta(self, rows: int) -> str:
        values = ", ".join([_row(self._p, 3)] * rows)
        return f"INSERT INTO {META} (meta_key, meta_value, session_id) VALUES {values}"

    def _list(self, user: bool, meta_filters: int, after: bool) -> str:
        p = self._p
        where = []
        if user:
            where.append(f"s.user_id = {p}")
        for _ in range(meta_filters):
            # Parameters: key, then value (an exact match) or None (any value of the key).
            where.append(
                f"EXISTS (SELECT 1 FROM {META} m WHERE m.session_id = s.session_id "
                f"AND m.meta_key = {p} AND ({p} IS NULL OR m.meta_value = {p}))"
            )
        if after:
            where.append(
                f"(s.updated_at < {p} OR (s.updated_at = {p} AND s.session_id < {p}))"
            )
        columns = ", ".join(f"s.{c.strip()}" for c in _SESSION_COLUMNS.split(","))
        sql = f"SELECT {columns} FROM {SESSIONS} s"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql + f" ORDER BY s.updated_at DESC, s.session_id DESC LIMIT {p}"


_Rows = list[tuple[Any, ...]]


class SessionTables:
    """The session operations on one :class:`Engine` (thread-safe, synchronous).

    Args:
        engine: the engine whose migrations created the session tables (migration 006).
        keyring: the encryption keys (default: ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS``);
            items are stored sealed under the first
            (:func:`~peewee_checkpoints._crypto.seal`: the key id leads the payload, so no
            column records it), bound to their table and sequence number.
    """

    def __init__(self, engine: Engine, keyring: Keyring | None = None) -> None:
        self.engine = engine
        # Default: the keys of $PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS, as the provider reads them
        # (what lets the command line's session commands read encrypted items).
        self.keyring = keyring if keyring is not None else keys_or_env(None)
        self._sql = SessionSQL(engine.profile, engine.param)

    def _seal(self, data: bytes, seq: int) -> bytes:
        return seal(self.keyring, data, item_aad(seq)) if self.keyring else data

    def _unseal(self, data: Any, seq: Any) -> Any:
        if bytes(data[:1]) != SEALED:
            return data  # plain JSON (the common case, and every row before encryption)
        return unseal(self.keyring, data, item_aad(int(seq)), "a session item")

    # -- plumbing -------------------------------------------------------------------------

    def _read(self, action: str, fn: Callable[[], _T]) -> _T:
        self.engine.ensure_ready()
        return self.engine.run(action, fn)

    def _write(self, action: str, fn: Callable[[], _T]) -> _T:
        """Run a write transaction, again after a deadlock, never after a lost connection.

        A connection lost during the commit leaves the outcome unknown: running the write
        again could add a batch twice or pop a second item, so that is an error instead.
        """
        self.engine.ensure_ready()
        engine = self.engine

        def transaction() -> _T:
            with engine.transaction(write=True):
                return fn()

        for attempt in range(_DEADLOCK_ATTEMPTS):
            try:
                return engine.run(action, transaction, idempotent=False)
            except StorageError as exc:
                cause = exc.__cause__
                last = attempt == _DEADLOCK_ATTEMPTS - 1
                if last or cause is None or not engine.profile.is_retryable(cause):
                    raise
            time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.engine.execute(sql, params)

    def _lock(self, session_id: str) -> int | None:
        """Lock the session row for this transaction; its next_seq, or None if absent."""
        row = self._x(self._sql.lock_session, (session_id,)).fetchone()
        return None if row is None else int(row[0])

    def _check_size(self, data: bytes) -> None:
        self.engine.profile.check_value_size(len(data), data, self.engine.database.connection())

    def _info(self, row: Sequence[Any]) -> SessionInfo:
        text = row[2]
        metadata = decode_item(text.encode() if isinstance(text, str) else text)
        return SessionInfo(
            session_id=row[0], user_id=row[1],
            metadata=metadata if metadata is not None else {},
            created_at=int(row[3]), updated_at=int(row[4]),
            item_count=int(row[5]), total_bytes=int(row[6]),
        )

    def _meta_text(self, data: bytes) -> Any:
        # The metadata column is text on every backend.
        return data.decode()

    def _replace_meta(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        self._x(self._sql.delete_meta, (session_id,))
        if rows:
            params = [v for key, value in rows for v in (key, value, session_id)]
            self._x(self._sql.insert_meta(len(rows)), params)

    def _ensure(self, session_id: str, user_id: str | None, metadata: Mapping[str, Any] | None,
                now: int) -> int:
        """Lock the session row, creating it if needed; returns its next_seq."""
        next_seq = self._lock(session_id)
        if next_seq is None:
            self._x(self._sql.create_session_if_absent,
                    (session_id, None, "{}", 0, 0, 0, now, now))
            next_seq = self._lock(session_id) or 0
        if user_id is not None:
            self._x(self._sql.set_user, (user_id, session_id))
        if metadata is not None:
            data, rows = encode_metadata(metadata)
            self._x(self._sql.set_metadata, (self._meta_text(data), now, session_id))
            self._replace_meta(session_id, rows)
        return next_seq

    def _decode_rows(self, session_id: str, rows: Iterable[Sequence[Any]]
                     ) -> list[dict[str, Any]]:
        items = []
        for row in rows:
            item = decode_item(self._unseal(row[1], row[0]))
            if item is None:
                log.warning("session %r: skipped malformed item seq=%s (not a JSON object)",
                            session_id, row[0])
                continue
            items.append(item)
        return items

    # -- items ----------------------------------------------------------------------------

    def add_items(self, session_id: str, items: Sequence[object], *,
                  user_id: str | None = None,
                  metadata: Mapping[str, Any] | None = None) -> None:
        """Append ``items`` (JSON objects) in order, as one contiguous run.

        ``user_id`` / ``metadata``, when given, are recorded on the session in the same
        transaction (metadata replaces what was there).
        """
        check_id("session_id", session_id)
        if user_id is not None:
            check_id("user_id", user_id, MAX_USER_ID)
        encoded = [encode_item(item) for item in items]
        if metadata is not None:
            encode_metadata(metadata)  # refused before anything is written
        if not encoded and user_id is None and metadata is None:
            return

        def add() -> None:
            now = now_ms()
            seq = self._ensure(session_id, user_id, metadata, now)
            # Sealed here: each item is bound to the sequence number it gets.
            stored = [self._seal(data, seq + i) for i, data in enumerate(encoded)]
            total = sum(len(data) for data in stored)
            for data in stored:
                self._check_size(data)
            start = 0
            while start < len(stored):
                end, size = start, 0
                while end < len(stored) and end - start < _ROWS_PER_INSERT and (
                        end == start or size + len(stored[end]) <= _BYTES_PER_INSERT):
                    size += len(stored[end])
                    end += 1
                params: list[Any] = []
                for offset, data in enumerate(stored[start:end]):
                    params += (session_id, seq + start + offset, data, now)
                self._x(self._sql.insert_items(end - start), params)
                start = end
            self._x(self._sql.grow_session,
                    (seq + len(stored), len(stored), total, now, session_id))

        self._write("add session items", add)

    def get_items(self, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The items in the order they were added; ``limit``: only the newest ``limit``.

        Malformed stored rows are skipped with a warning and do not count toward ``limit``.
        """
        if limit is not None:
            if type(limit) is not int and not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
            if limit < 0:
                raise ValueError(f"limit must be None or >= 0, not {limit}")
            if limit == 0:
                return []
        if text_problem(session_id, MAX_SESSION_ID) is not None:
            return []
        sql = self._sql

        def read_all() -> list[dict[str, Any]]:
            return self._decode_rows(session_id, self._x(sql.all_items, (session_id,)))

        if limit is None:
            return self._read("read session items", read_all)
        wanted: int = limit

        def read_newest() -> list[dict[str, Any]]:
            rows = self._x(sql.newest_items, (session_id, wanted)).fetchall()
            found = self._decode_rows(session_id, reversed(rows))
            while len(found) < wanted and len(rows) == wanted:
                # Malformed rows were among the newest: read older ones for the rest.
                rows = self._x(sql.newest_items_before,
                               (session_id, rows[-1][0], wanted)).fetchall()
                found = self._decode_rows(session_id, reversed(rows)) + found
            return found[-wanted:]

        return self._read("read session items", read_newest)

    def pop_item(self, session_id: str) -> dict[str, Any] | None:
        """Remove and return the newest well-formed item, or None if there is none.

        Atomic: concurrent pops of one session take turns on its row lock.
        """
        if text_problem(session_id, MAX_SESSION_ID) is not None:
            return None
        sql = self._sql

        def pop() -> dict[str, Any] | None:
            self._lock(session_id)
            # The newest row is almost always well-formed: read one, more only if it is not.
            rows = self._x(sql.newest_items, (session_id, 1)).fetchall()
            while rows:
                for seq, data in rows:
                    item = decode_item(self._unseal(data, seq))
                    if item is None:
                        log.warning("session %r: pop skipped malformed item seq=%s",
                                    session_id, seq)
                        continue
                    self._x(sql.delete_item, (session_id, seq))
                    self._x(sql.shrink_session, (len(bytes(data)), now_ms(), session_id))
                    return item
                rows = self._x(sql.newest_items_before,
                               (session_id, rows[-1][0], _POP_WINDOW)).fetchall()
            return None

        return self._write("pop a session item", pop)

    def clear(self, session_id: str) -> None:
        """Remove every item of the session; the session, its user and metadata stay."""
        if text_problem(session_id, MAX_SESSION_ID) is not None:
            return

        def clear() -> None:
            self._lock(session_id)
            self._x(self._sql.delete_items, (session_id,))
            self._x(self._sql.reset_counts, (now_ms(), session_id))

        self._write("clear a session", clear)

    # -- sessions -------------------------------------------------------------------------

    def info(self, session_id: str) -> SessionInfo | None:
        """The session's user, metadata, times, item count and size; None if unknown."""
        if text_problem(session_id, MAX_SESSION_ID) is not None:
            return None

        def read() -> SessionInfo | None:
            row = self._x(self._sql.info, (session_id,)).fetchone()
            return None if row is None else self._info(row)

        return self._read("read a session", read)

    def set_metadata(self, session_id: str, metadata: Mapping[str, Any], *,
                     user_id: str | None = None) -> None:
        """Replace the session's metadata (creating the session if needed)."""
        check_id("session_id", session_id)
        self.add_items(session_id, [], user_id=user_id, metadata=metadata)

    def delete_session(self, session_id: str) -> bool:
        """Delete the session, its items and metadata; True if it existed."""
        if text_problem(session_id, MAX_SESSION_ID) is not None:
            return False

        def delete() -> bool:
            self._lock(session_id)
            self._x(self._sql.delete_items, (session_id,))
            self._x(self._sql.delete_meta, (session_id,))
            return bool(self._x(self._sql.delete_session, (session_id,)).rowcount)

        return self._write("delete a session", delete)

    def delete_user(self, user_id: str) -> int:
        """Delete every session of ``user_id``; returns how many were deleted."""
        if text_problem(user_id, MAX_USER_ID) is not None:
            return 0

        def ids() -> list[str]:
            return [r[0] for r in self._x(self._sql.user_sessions, (user_id,)).fetchall()]

        return sum(self.delete_session(sid) for sid in self._read("list sessions", ids))

    def list_sessions(self, *, user_id: str | None = None,
                      metadata: Mapping[str, Any] | None = None,
                      has_keys: Sequence[str] = (), limit: int = 50,
                      cursor: str | None = None) -> SessionPage:
        """Sessions, most recently active first (ties by session id, descending).

        Args:
            user_id: only this user's sessions.
            metadata: only sessions whose metadata has each of these keys with exactly
                this value (scalar values: str, int, float, bool, None).
            has_keys: only sessions whose metadata has each of these keys.
            limit: sessions per page (at least 1).
            cursor: ``next_cursor`` of the previous page.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        filters: list[tuple[str, str | None]] = [(k, None) for k in has_keys]
        for key, value in (metadata or {}).items():
            text = meta_value(value)
            if text is None:
                raise InvalidCheckpointError(
                    f"metadata filter {key!r}: only scalar values whose JSON is at most "
                    f"{MAX_META_VALUE} characters can be matched"
                )
            filters.append((key, text))
        after = _decode_cursor(cursor) if cursor is not None else None
        if user_id is not None and text_problem(user_id, MAX_USER_ID) is not None:
            return SessionPage()
        params: list[Any] = []
        if user_id is not None:
            params.append(user_id)
        for key, text in filters:
            params += (key, text, text)
        if after is not None:
            params += (after[0], after[0], after[1])
        params.append(limit + 1)
        sql = self._sql.list(user_id is not None, len(filters), after is not None)

        def read() -> _Rows:
            return list(self._x(sql, params).fetchall())

        rows = self._read("list sessions", read)
        infos = [self._info(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = infos[-1]
            next_cursor = _encode_cursor(last.updated_at, last.session_id)
        return SessionPage(infos, next_cursor)

    def iter_sessions(self, **filters: Any) -> Iterator[SessionInfo]:
        """Every session :meth:`list_sessions` would page through, in its order."""
        cursor = None
        while True:
            page = self.list_sessions(cursor=cursor, limit=200, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def fork(self, session_id: str, new_session_id: str, *, at_item: int | None = None,
             user_id: str | None = None, metadata: Mapping[str, Any] | None = None) -> int:
        """Copy the session's history into a new session; returns the items copied.

        Args:
            at_item: index of the last item copied (0 is the first item; negative counts from
                the end, as in Python); None copies everything.
            user_id, metadata: of the new session; by default the source's.

        Raises:
            InvalidCheckpointError: the new session already exists, the source does not, or
                ``at_item`` is outside the history.
        """
        check_id("session_id", session_id)
        check_id("new_session_id", new_session_id)
        if user_id is not None:
            check_id("user_id", user_id, MAX_USER_ID)
        if metadata is not None:
            encode_metadata(metadata)
        sql = self._sql

        def fork() -> int:
            source_next = self._lock(session_id)
            if source_next is None:
                raise InvalidCheckpointError(f"session {session_id!r} does not exist")
            if self._lock(new_session_id) is not None:
                raise InvalidCheckpointError(f"session {new_session_id!r} already exists")
            source = self._info(self._x(sql.info, (session_id,)).fetchone())
            now = now_ms()
            self._x(sql.create_session, (
                new_session_id, user_id if user_id is not None else source.user_id,
                self._meta_text(encode_metadata(
                    metadata if metadata is not None else source.metadata)[0]),
                0, 0, 0, now, now))
            if metadata is not None:
                self._replace_meta(new_session_id, encode_metadata(metadata)[1])
            else:
                self._x(sql.copy_meta, (new_session_id, session_id))
            if at_item is None:
                last: int | None = source_next
            elif at_item >= 0:
                row = self._x(sql.seq_at, (session_id, at_item)).fetchone()
                last = None if row is None else int(row[0])
            else:
                row = self._x(sql.seq_from_end, (session_id, -at_item - 1)).fetchone()
                last = None if row is None else int(row[0])
            if last is None:
                raise InvalidCheckpointError(
                    f"at_item={at_item} is outside the history of session {session_id!r}")
            self._x(sql.copy_items, (new_session_id, session_id, last))
            count, size, top = self._x(sql.measure, (new_session_id,)).fetchone()
            self._x(sql.recount, (int(count), int(size), int(top) + 1, now, new_session_id))
            return int(count)

        return self._write("fork a session", fork)

    # -- moving sessions ------------------------------------------------------------------

    def export_session(self, session_id: str) -> dict[str, Any] | None:
        """The session as one JSON-ready dict (items included); None if it does not exist."""
        if text_problem(session_id, MAX_SESSION_ID) is not None:
            return None

        def read() -> dict[str, Any] | None:
            with self.engine.transaction():
                row = self._x(self._sql.info, (session_id,)).fetchone()
                if row is None:
                    return None
                info = self._info(row)
                rows = self._x(self._sql.all_items, (session_id,)).fetchall()
            return {
                "session_id": info.session_id, "user_id": info.user_id,
                "metadata": info.metadata, "created_at": info.created_at,
                "updated_at": info.updated_at,
                "items": self._decode_rows(session_id, rows),
            }

        return self._read("export a session", read)

    def import_session(self, record: Mapping[str, Any], *, replace: bool = False) -> int:
        """Create a session from :meth:`export_session`'s dict; returns the items written.

        Raises:
            InvalidCheckpointError: the record is malformed, or the session exists and
                ``replace`` is false.
        """
        session_id = check_id("session_id", record.get("session_id"))
        user_id = record.get("user_id")
        if user_id is not None:
            check_id("user_id", user_id, MAX_USER_ID)
        metadata = record.get("metadata") or {}
        items = record.get("items") or []
        if not isinstance(items, list):
            raise InvalidCheckpointError("'items' must be a list of JSON objects")
        encoded = [self._seal(encode_item(item), seq) for seq, item in enumerate(items)]
        meta_data, meta_rows = encode_metadata(metadata)
        created = record.get("created_at")
        updated = record.get("updated_at")
        sql = self._sql

        def write() -> int:
            now = now_ms()
            if self._lock(session_id) is not None:
                if not replace:
                    raise InvalidCheckpointError(
                        f"session {session_id!r} already exists (replace it with --replace)")
                self._x(sql.delete_items, (session_id,))
                self._x(sql.delete_meta, (session_id,))
                self._x(sql.delete_session, (session_id,))
            self._x(sql.create_session, (
                session_id, user_id, self._meta_text(meta_data), len(encoded), len(encoded),
                sum(map(len, encoded)),
                created if type(created) is int else now,
                updated if type(updated) is int else now))
            self._replace_meta(session_id, meta_rows)
            for start in range(0, len(encoded), _ROWS_PER_INSERT):
                chunk = encoded[start:start + _ROWS_PER_INSERT]
                params: list[Any] = []
                for offset, data in enumerate(chunk):
                    self._check_size(data)
                    params += (session_id, start + offset, data, now)
                self._x(sql.insert_items(len(chunk)), params)
            return len(encoded)

        return self._write("import a session", write)


def import_unless_present(tables: SessionTables, record: Mapping[str, Any]) -> int | None:
    """:meth:`SessionTables.import_session`, keeping a session the target already has.

    Returns the items written, or None if the session was there (also when another writer
    created it meanwhile): what lets an interrupted copy or import be finished by running it
    again.
    """
    session_id = record.get("session_id")
    if isinstance(session_id, str) and tables.info(session_id) is not None:
        return None
    try:
        return tables.import_session(record)
    except InvalidCheckpointError:
        if isinstance(session_id, str) and tables.info(session_id) is not None:
            return None
        raise


@contextlib.contextmanager
def open_session_tables(db_url: str) -> Iterator[SessionTables]:
    """The session tables of ``db_url`` on an engine of their own, closed at the end."""
    engine = Engine(db_url)
    try:
        yield SessionTables(engine)
    finally:
        engine.close()
