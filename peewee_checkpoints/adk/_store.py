"""The storage under the ADK session service: rows in, rows out, no ADK import.

:class:`AdkStore` keeps sessions, events and app/user state in the tables of migration 007 on
the package's :class:`~peewee_checkpoints._engine.Engine`. It knows nothing of ADK's classes:
states are JSON objects, events are the JSON text ADK's ``Event`` model dumps. The service
(:mod:`.service`) converts, and the command line (:mod:`peewee_checkpoints._cli_adk`) uses the
store alone, so it runs without ADK installed.

Concurrency: an append is one transaction that locks the session row (SQLite: the write lock),
checks the caller's revision, then writes. App and user state rows are created with
``INSERT ... ON CONFLICT DO NOTHING`` (MySQL: ``ON DUPLICATE KEY UPDATE`` of nothing) before
they are locked, so concurrent first writers never meet a unique violation; locks are taken in
one order (session, app, user), so appends and creations do not deadlock each other (and the
engine runs a transaction again if the server still reports one).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import peewee as pw

from .._codec import (
    CODEC_JSON,
    CODEC_LZ4,
    CODEC_ZSTD,
    compress_json,
    decompress,
    pack_state,
    unpack_state,
)
from .._crypto import SEALED, Keyring, keys_or_env, seal, unseal
from .._engine import Engine
from .._migrations import LOCK_TIMEOUT
from .._profiles import BackendProfile
from .._validation import text_problem
from ..errors import CheckpointError, InvalidCheckpointError, StorageError

__all__ = [
    "MAX_KEY_LENGTH",
    "AdkStore",
    "AppendOutcome",
    "EventRow",
    "SessionExistsError",
    "SessionMissingError",
    "SessionRow",
    "StaleRevisionError",
]

SESSIONS = "peewee_checkpoints_adk_sessions"
EVENTS = "peewee_checkpoints_adk_events"
APP_STATES = "peewee_checkpoints_adk_app_states"
USER_STATES = "peewee_checkpoints_adk_user_states"

#: Longest app name, user id, session id or event id (VARCHAR(128), as in ADK's schema).
MAX_KEY_LENGTH = 128
_CURSOR_VERSION = 1


class SessionExistsError(CheckpointError):
    """create_session with a session id that is already taken."""


class SessionMissingError(CheckpointError):
    """append to a session that does not exist (any more)."""


class StaleRevisionError(CheckpointError):
    """append with a session object older than the stored session."""


class SessionRow(NamedTuple):
    """A stored session, without its events (a tuple: thousands are built per listing)."""

    app_name: str
    user_id: str
    id: str
    #: Events appended so far; the revision a session object was read at.
    revision: int
    create_time: float
    update_time: float
    #: The session's own state (no ``app:``/``user:`` keys).
    state: dict[str, Any]


class EventRow(NamedTuple):
    """A stored event: its place in the session, and ADK's JSON of the whole event."""

    seq: int
    event_id: str
    timestamp: float
    data: bytes


@dataclass(frozen=True)
class AppendOutcome:
    """What an append did: the session's revision and update time afterwards."""

    revision: int
    update_time: float
    #: True when an equal event with the same id was already stored (nothing was written).
    duplicate: bool
    #: For a duplicate: True if it is the session's newest event (a retried append).
    duplicate_is_last: bool = False


def check_key(field: str, value: object) -> str:
    """``value`` if it fits a key column; :class:`InvalidCheckpointError` otherwise."""
    problem = text_problem(value, MAX_KEY_LENGTH)
    if problem is not None:
        raise InvalidCheckpointError(f"{field} {problem}")
    return value  # type: ignore[return-value]  # text_problem checked it is a str


def is_key(value: object) -> bool:
    """True if ``value`` could be stored in a key column (lookups of others match nothing)."""
    return text_problem(value, MAX_KEY_LENGTH) is None


def _unpack_json(codec: int, data: Any) -> bytes:
    # compress_json picks lz4 where it halves the event, zstd otherwise, or none.
    if codec in (CODEC_JSON, CODEC_ZSTD, CODEC_LZ4):
        return decompress(codec, data)
    raise StorageError(
        f"a stored event has encoding {codec}, which this version does not know: it was "
        "written by a newer peewee-checkpoints; upgrade the package to read it"
    )


def payload_aad(table: str, codec: Any, event_id: str = "") -> bytes:
    """The associated data an encrypted state or event is bound to: its table, its codec
    and, for an event, its id (not the session key: the rows stay readable when copied)."""
    return f"{table}\x00{int(codec)}\x00{event_id}".encode()


def encode_cursor(*parts: Any) -> str:
    """An opaque page cursor holding ``parts``."""
    raw = orjson.dumps([_CURSOR_VERSION, *parts])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: object, shape: tuple[type, ...], what: str) -> list[Any]:
    """The parts of a cursor made by :func:`encode_cursor` for ``shape``; ValueError if not."""
    try:
        if type(cursor) is not str or not cursor or len(cursor) > 2048:
            raise ValueError
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if type(value) is not list or len(value) != len(shape) + 1 or value[0] != 1:
            raise ValueError
        parts = value[1:]
        for part, kind in zip(parts, shape, strict=True):
            ok = isinstance(part, (int, float)) if kind is float else type(part) is kind
            if not ok or (kind is str and not is_key(part)):
                raise ValueError
    except (ValueError, binascii.Error):
        shown = repr(cursor)[:80]
        raise InvalidCheckpointError(
            f"cursor {shown} is not a cursor that {what} returned; pass the next_cursor of "
            "the previous page, or None for the first page"
        ) from None
    return [float(p) if kind is float else p for p, kind in zip(parts, shape, strict=True)]


class StoreSQL:
    """Every statement of the store, in one backend's dialect, built once."""

    def __init__(self, profile: BackendProfile, p: str) -> None:
        lock = profile.row_lock
        key = f"app_name = {p} AND user_id = {p} AND id = {p}"
        ekey = f"app_name = {p} AND user_id = {p} AND session_id = {p}"
        self.ekey = ekey

        self.head = (
            "SELECT s.revision, s.create_time, s.update_time, s.state_codec, s.state, "
            "a.state_codec, a.state, u.state_codec, u.state "
            f"FROM {SESSIONS} s "
            f"LEFT JOIN {APP_STATES} a ON a.app_name = s.app_name "
            f"LEFT JOIN {USER_STATES} u ON u.app_name = s.app_name AND u.user_id = s.user_id "
            f"WHERE s.app_name = {p} AND s.user_id = {p} AND s.id = {p}"
        )
        self.exists = f"SELECT revision FROM {SESSIONS} WHERE {key}"
        self.lock_session = (
            f"SELECT revision, update_time, state_codec, state FROM {SESSIONS} WHERE {key}{lock}"
        )
        self.insert_session = (
            f"INSERT INTO {SESSIONS} (app_name, user_id, id, revision, create_time, "
            f"update_time, state_codec, state) VALUES ({', '.join([p] * 8)})"
        )
        self.update_session = (
            f"UPDATE {SESSIONS} SET revision = {p}, update_time = {p} WHERE {key}"
        )
        self.update_session_state = (
            f"UPDATE {SESSIONS} SET revision = {p}, update_time = {p}, state_codec = {p}, "
            f"state = {p} WHERE {key}"
        )
        self.delete_events = f"DELETE FROM {EVENTS} WHERE {ekey}"
        self.delete_session = f"DELETE FROM {SESSIONS} WHERE {key}"

        columns = "seq, event_id, ts, data_codec, data"
        self.insert_event = (
            f"INSERT INTO {EVENTS} (app_name, user_id, session_id, {columns}) "
            f"VALUES ({', '.join([p] * 8)})"
        )
        self.find_event = (
            f"SELECT seq, data_codec, data FROM {EVENTS} WHERE {ekey} AND event_id = {p}"
        )
        self.last_event_id = (
            f"SELECT event_id FROM {EVENTS} WHERE {ekey} ORDER BY seq DESC LIMIT 1"
        )
        # Newest first up to the revision the session row was read at, so the events and
        # the revision a reader gets always agree, even while another process appends.
        base = f"SELECT {columns} FROM {EVENTS} WHERE {ekey} AND seq <= {p}"
        self.events: dict[tuple[bool, bool], str] = {}
        for after in (False, True):
            for limit in (False, True):
                self.events[after, limit] = (
                    base + (f" AND ts >= {p}" if after else "") + " ORDER BY seq DESC"
                    + (f" LIMIT {p}" if limit else "")
                )
        self.events_page = {
            False: f"SELECT {columns} FROM {EVENTS} WHERE {ekey} AND seq > {p} "
                   f"ORDER BY seq LIMIT {p}",
            True: f"SELECT {columns} FROM {EVENTS} WHERE {ekey} AND seq < {p} "
                  f"ORDER BY seq DESC LIMIT {p}",
        }
        self.event_count = f"SELECT COUNT(*) FROM {EVENTS} WHERE {ekey}"

        session_columns = "user_id, id, revision, create_time, update_time, state_codec, state"
        # One user's sessions: user_id is fixed, so (update_time, id) is list order, and the
        # user index gives it without a sort. MariaDB would rather sort the primary key's
        # range (its estimate ignores the lookups it saves), hence the hint there.
        user_idx = profile.index_hint(f"{SESSIONS}_user_idx")
        self.list_user = (
            f"SELECT {session_columns} FROM {SESSIONS}{user_idx} WHERE app_name = {p} "
            f"AND user_id = {p} ORDER BY update_time, id"
        )
        self.list_app = (
            f"SELECT {session_columns} FROM {SESSIONS} WHERE app_name = {p} "
            "ORDER BY update_time, user_id, id"
        )
        self.page_user = (
            f"SELECT {session_columns} FROM {SESSIONS}{user_idx} WHERE app_name = {p} "
            f"AND user_id = {p} "
            f"AND (update_time > {p} OR (update_time = {p} AND id > {p})) "
            f"ORDER BY update_time, id LIMIT {p}"
        )
        self.page_user_first = (
            f"SELECT {session_columns} FROM {SESSIONS}{user_idx} WHERE app_name = {p} "
            f"AND user_id = {p} "
            f"ORDER BY update_time, id LIMIT {p}"
        )
        self.page_app = (
            f"SELECT {session_columns} FROM {SESSIONS} WHERE app_name = {p} "
            f"AND (update_time > {p} OR (update_time = {p} AND (user_id > {p} "
            f"OR (user_id = {p} AND id > {p})))) ORDER BY update_time, user_id, id LIMIT {p}"
        )
        self.page_app_first = (
            f"SELECT {session_columns} FROM {SESSIONS} WHERE app_name = {p} "
            f"ORDER BY update_time, user_id, id LIMIT {p}"
        )
        self.apps = (
            f"SELECT app_name FROM {SESSIONS} GROUP BY app_name "
            f"UNION SELECT app_name FROM {APP_STATES} "
            f"UNION SELECT app_name FROM {USER_STATES}"
        )

        self.app_state = f"SELECT state_codec, state FROM {APP_STATES} WHERE app_name = {p}"
        self.user_state = (
            f"SELECT state_codec, state FROM {USER_STATES} WHERE app_name = {p} "
            f"AND user_id = {p}"
        )
        self.user_states = (
            f"SELECT user_id, state_codec, state FROM {USER_STATES} WHERE app_name = {p}"
        )
        self.lock_app_state = self.app_state + lock
        self.lock_user_state = self.user_state + lock
        ignore = profile.keep_existing("app_name")
        self.insert_app_state = (
            f"INSERT INTO {APP_STATES} (app_name, update_time, state_codec, state) "
            f"VALUES ({p}, {p}, {p}, {p}){ignore}"
        )
        self.insert_user_state = (
            f"INSERT INTO {USER_STATES} (app_name, user_id, update_time, state_codec, state) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}){ignore}"
        )
        self.update_app_state = (
            f"UPDATE {APP_STATES} SET update_time = {p}, state_codec = {p}, state = {p} "
            f"WHERE app_name = {p}"
        )
        self.update_user_state = (
            f"UPDATE {USER_STATES} SET update_time = {p}, state_codec = {p}, state = {p} "
            f"WHERE app_name = {p} AND user_id = {p}"
        )


_EMPTY = pack_state({})


class AdkStore:
    """Sessions, events and scoped state of ADK agents in the package's database.

    Args:
        db_url: as for :class:`~peewee_checkpoints.PeeweeCheckpointProvider`.
        migration_lock_timeout: seconds to wait for another process migrating the database.
        encryption_keys: ``["<key id>:<base64 of 32 bytes>", ...]``: session states, app and
            user states and events are stored encrypted (AES-256-GCM, after compression)
            under the first key, each payload starting with the id of its key; plain rows
            stay readable. Default: ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS``, else none.
    """

    def __init__(self, db_url: str, *, migration_lock_timeout: float = LOCK_TIMEOUT,
                 encryption_keys: str | Sequence[str] | Keyring | None = None) -> None:
        self._keyring = keys_or_env(encryption_keys)
        self.engine = Engine(db_url, migration_lock_timeout=migration_lock_timeout)
        self._sql = StoreSQL(self.engine.profile, self.engine.param)

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self.engine.url

    @property
    def sql(self) -> StoreSQL:
        """The statements this store runs (to EXPLAIN them)."""
        return self._sql

    def close(self) -> None:
        """Close every connection (later calls open new ones)."""
        self.engine.close()

    def __enter__(self) -> AdkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, action: str, fn: Any, *, idempotent: bool = True) -> Any:
        self.engine.ensure_ready()
        return self.engine.run(action, fn, idempotent=idempotent)

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.engine.execute(sql, params)

    def _check_size(self, data: bytes) -> None:
        self.engine.profile.check_value_size(len(data), data, self.engine.database.connection())

    @property
    def keyring(self) -> Keyring:
        """The encryption keys (ids only in its repr)."""
        return self._keyring

    def _open(self, data: Any, aad: bytes) -> Any:
        """A stored payload's plain bytes (a plain payload as it is)."""
        if data is None or bytes(data[:1]) != SEALED:
            return data
        return unseal(self._keyring, data, aad, "an ADK session payload")

    def _state(self, table: str, codec: Any, data: Any) -> dict[str, Any]:
        if data is None:
            return {}
        return unpack_state(int(codec), self._open(data, payload_aad(table, codec)))

    def _pack(self, table: str, state: dict[str, Any]) -> tuple[int, bytes]:
        codec, data = pack_state(state)
        return codec, seal(self._keyring, data, payload_aad(table, codec))

    def _pack_event(self, event_id: str, data: bytes) -> tuple[int, bytes]:
        codec, packed = compress_json(data)
        return codec, seal(self._keyring, packed, payload_aad(EVENTS, codec, event_id))

    def _unpack_event(self, event_id: str, codec: Any, data: Any) -> bytes:
        return _unpack_json(int(codec), self._open(data, payload_aad(EVENTS, codec, event_id)))

    # -- reading ------------------------------------------------------------------------

    def get_session(self, app_name: str, user_id: str, session_id: str, *,
                    num_recent_events: int | None = None, after_timestamp: float | None = None
                    ) -> tuple[SessionRow, dict[str, Any], dict[str, Any], list[EventRow]] | None:
        """The session, the app and user states, and its events (oldest first), or None."""
        if not (is_key(app_name) and is_key(user_id) and is_key(session_id)):
            return None
        sql = self._sql

        def read() -> Any:
            row = self._x(sql.head, (app_name, user_id, session_id)).fetchone()
            if row is None:
                return None
            session = SessionRow(app_name, user_id, session_id, int(row[0]), float(row[1]),
                                 float(row[2]), self._state(SESSIONS, row[3], row[4]))
            app_state = self._state(APP_STATES, row[5], row[6])
            user_state = self._state(USER_STATES, row[7], row[8])
            events: list[EventRow] = []
            if num_recent_events != 0:
                params: list[Any] = [app_name, user_id, session_id, session.revision]
                if after_timestamp is not None:
                    params.append(after_timestamp)
                if num_recent_events is not None:
                    params.append(num_recent_events)
                query = sql.events[after_timestamp is not None, num_recent_events is not None]
                events = [self._event(r) for r in self._x(query, params).fetchall()]
                events.reverse()
            return session, app_state, user_state, events

        return self._run("read an ADK session", read)  # type: ignore[no-any-return]

    def _event(self, row: Sequence[Any]) -> EventRow:
        return EventRow(int(row[0]), row[1], float(row[2]),
                        self._unpack_event(row[1], row[3], row[4]))

    def _session(self, app_name: str, row: Sequence[Any]) -> SessionRow:
        return SessionRow(app_name, row[0], row[1], int(row[2]), float(row[3]), float(row[4]),
                          self._state(SESSIONS, row[5], row[6]))

    def list_sessions(self, app_name: str, user_id: str | None = None
                      ) -> tuple[list[SessionRow], dict[str, Any], dict[str, dict[str, Any]]]:
        """Sessions by (update_time, user_id, id), the app state, and user states by user."""
        if not is_key(app_name) or (user_id is not None and not is_key(user_id)):
            return [], {}, {}
        sql = self._sql

        def read() -> Any:
            if user_id is None:
                rows = self._x(sql.list_app, (app_name,)).fetchall()
                users = {r[0]: self._state(USER_STATES, r[1], r[2])
                         for r in self._x(sql.user_states, (app_name,)).fetchall()}
            else:
                rows = self._x(sql.list_user, (app_name, user_id)).fetchall()
                found = self._x(sql.user_state, (app_name, user_id)).fetchone()
                users = ({user_id: self._state(USER_STATES, found[0], found[1])}
                         if found else {})
            app = self._x(sql.app_state, (app_name,)).fetchone()
            sessions = [self._session(app_name, r) for r in rows]
            return sessions, (self._state(APP_STATES, app[0], app[1]) if app else {}), users

        return self._run("list ADK sessions", read)  # type: ignore[no-any-return]

    def page_sessions(self, app_name: str, user_id: str | None = None, *, limit: int = 100,
                      cursor: str | None = None) -> tuple[list[SessionRow], str | None]:
        """One page of :meth:`list_sessions` (same order, no states merged) and the next
        page's cursor (None after the last page)."""
        if type(limit) is not int or limit < 1:
            raise InvalidCheckpointError(f"limit must be a positive int, got {limit!r}")
        sql = self._sql
        if user_id is None:
            after = (None if cursor is None else
                     decode_cursor(cursor, (float, str, str), "page_sessions"))
            query = sql.page_app_first if after is None else sql.page_app
            params: list[Any] = [app_name]
            if after is not None:
                params += [after[0], after[0], after[1], after[1], after[2]]
        else:
            after = (None if cursor is None else
                     decode_cursor(cursor, (float, str), "page_sessions"))
            query = sql.page_user_first if after is None else sql.page_user
            params = [app_name, user_id]
            if after is not None:
                params += [after[0], after[0], after[1]]
        if not is_key(app_name) or (user_id is not None and not is_key(user_id)):
            return [], None
        params.append(limit + 1)
        rows = self._run("list ADK sessions",
                         lambda: self._x(query, params).fetchall())
        sessions = [self._session(app_name, r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = sessions[-1]
            next_cursor = (encode_cursor(last.update_time, last.user_id, last.id)
                           if user_id is None else encode_cursor(last.update_time, last.id))
        return sessions, next_cursor

    def page_events(self, app_name: str, user_id: str, session_id: str, *, limit: int = 100,
                    cursor: str | None = None, newest_first: bool = False
                    ) -> tuple[list[EventRow], str | None]:
        """One page of a session's events in append order (or newest first) and the next
        page's cursor (None after the last page)."""
        if type(limit) is not int or limit < 1:
            raise InvalidCheckpointError(f"limit must be a positive int, got {limit!r}")
        if cursor is None:
            position = 2**62 if newest_first else 0
        else:
            position = decode_cursor(cursor, (int,), "page_events")[0]
        if not (is_key(app_name) and is_key(user_id) and is_key(session_id)):
            return [], None
        query = self._sql.events_page[newest_first]
        params = (app_name, user_id, session_id, position, limit + 1)
        rows = self._run("read ADK events", lambda: self._x(query, params).fetchall())
        events = [self._event(r) for r in rows[:limit]]
        next_cursor = encode_cursor(events[-1].seq) if len(rows) > limit else None
        return events, next_cursor

    def iter_events(self, app_name: str, user_id: str, session_id: str, *, page: int = 500
                    ) -> Iterator[EventRow]:
        """Every event of a session in append order, one page in memory at a time."""
        cursor: str | None = None
        while True:
            events, cursor = self.page_events(app_name, user_id, session_id, limit=page,
                                              cursor=cursor)
            yield from events
            if cursor is None:
                return

    def iter_sessions(self, app_name: str, user_id: str | None = None, *, page: int = 500
                      ) -> Iterator[SessionRow]:
        """Every session of an app (or of one user), in list order, a page at a time."""
        cursor: str | None = None
        while True:
            sessions, cursor = self.page_sessions(app_name, user_id, limit=page, cursor=cursor)
            yield from sessions
            if cursor is None:
                return

    def app_names(self) -> list[str]:
        """Every app that has sessions or state, sorted."""
        rows = self._run("list ADK apps", lambda: self._x(self._sql.apps).fetchall())
        return sorted(r[0] for r in rows)

    def get_user_state(self, app_name: str, user_id: str) -> dict[str, Any]:
        """The user-scoped state (keys without ``user:``), or ``{}``."""
        if not (is_key(app_name) and is_key(user_id)):
            return {}
        row = self._run("read ADK user state", lambda: self._x(
            self._sql.user_state, (app_name, user_id)).fetchone())
        return self._state(USER_STATES, row[0], row[1]) if row else {}

    def get_app_state(self, app_name: str) -> dict[str, Any]:
        """The app-scoped state (keys without ``app:``), or ``{}``."""
        if not is_key(app_name):
            return {}
        row = self._run("read ADK app state", lambda: self._x(
            self._sql.app_state, (app_name,)).fetchone())
        return self._state(APP_STATES, row[0], row[1]) if row else {}

    def user_states(self, app_name: str) -> dict[str, dict[str, Any]]:
        """Every user state of an app, by user id."""
        if not is_key(app_name):
            return {}
        rows = self._run("read ADK user states", lambda: self._x(
            self._sql.user_states, (app_name,)).fetchall())
        return {r[0]: self._state(USER_STATES, r[1], r[2]) for r in rows}

    def user_states_of(self, app_name: str, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The user states of ``user_ids`` in one app (users without one are left out)."""
        wanted = sorted({u for u in user_ids if is_key(u)})
        if not wanted or not is_key(app_name):
            return {}
        p = self.engine.param
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 200):
            chunk = wanted[start:start + 200]
            query = (f"{self._sql.user_states} AND user_id IN ({', '.join([p] * len(chunk))})")
            rows = self._run("read ADK user states", lambda q=query, c=chunk: self._x(
                q, (app_name, *c)).fetchall())
            found.update({r[0]: self._state(USER_STATES, r[1], r[2]) for r in rows})
        return found

    def count_events(self, app_name: str, user_id: str, session_id: str) -> int:
        """How many events a session holds."""
        row = self._run("count ADK events", lambda: self._x(
            self._sql.event_count, (app_name, user_id, session_id)).fetchone())
        return int(row[0])

    # -- writing ------------------------------------------------------------------------

    def _merge_state(self, key: tuple[str, ...], delta: dict[str, Any], now: float, *,
                     select: str, insert: str, update: str) -> None:
        """Apply ``delta`` to an app or user state row, creating it if needed (in a
        write transaction)."""
        row = self._x(select, key).fetchone()
        if row is None:
            # A concurrent first writer may insert it between these two statements: the
            # insert then does nothing, and the SELECT below waits for and locks its row.
            self._x(insert, (*key, now, *_EMPTY))
            row = self._x(select, key).fetchone()
        table = APP_STATES if len(key) == 1 else USER_STATES
        state = self._state(table, row[0], row[1])
        state.update(delta)
        codec, data = self._pack(table, state)
        self._check_size(data)
        self._x(update, (now, codec, data, *key))

    def _merge_scoped(self, app_name: str, user_id: str, app_delta: dict[str, Any],
                      user_delta: dict[str, Any], now: float) -> None:
        sql = self._sql
        if app_delta:
            self._merge_state((app_name,), app_delta, now, select=sql.lock_app_state,
                              insert=sql.insert_app_state, update=sql.update_app_state)
        if user_delta:
            self._merge_state((app_name, user_id), user_delta, now,
                              select=sql.lock_user_state, insert=sql.insert_user_state,
                              update=sql.update_user_state)

    def create_session(self, app_name: str, user_id: str, session_id: str, *,
                       state: dict[str, Any], app_delta: dict[str, Any],
                       user_delta: dict[str, Any], now: float
                       ) -> tuple[SessionRow, dict[str, Any], dict[str, Any]]:
        """Store a new session (revision 0) and apply the app/user deltas, all or nothing.

        Raises:
            SessionExistsError: the id is taken (nothing was written).
        """
        check_key("app_name", app_name)
        check_key("user_id", user_id)
        check_key("session_id", session_id)
        codec, data = self._pack(SESSIONS, state)
        sql = self._sql

        def write() -> Any:
            with self.engine.transaction(write=True):
                if self._x(sql.exists, (app_name, user_id, session_id)).fetchone():
                    raise SessionExistsError(f"Session with id {session_id} already exists.")
                self._merge_scoped(app_name, user_id, app_delta, user_delta, now)
                self._check_size(data)
                try:
                    self._x(sql.insert_session, (app_name, user_id, session_id, 0, now, now,
                                                 codec, data))
                except pw.IntegrityError:
                    # Created by another process since the check above.
                    raise SessionExistsError(
                        f"Session with id {session_id} already exists.") from None
                app = self._x(sql.app_state, (app_name,)).fetchone()
                user = self._x(sql.user_state, (app_name, user_id)).fetchone()
            return (SessionRow(app_name, user_id, session_id, 0, now, now, dict(state)),
                    self._state(APP_STATES, *app) if app else {},
                    self._state(USER_STATES, *user) if user else {})

        return self._run("create an ADK session", write)  # type: ignore[no-any-return]

    def append_event(self, app_name: str, user_id: str, session_id: str, *,
                     expected_revision: int | None, known_update_time: float,
                     known_last_event_id: str | None, event_id: str, timestamp: float,
                     data: bytes, app_delta: dict[str, Any], user_delta: dict[str, Any],
                     session_delta: dict[str, Any]) -> AppendOutcome:
        """Append one event and apply its state deltas, in one transaction.

        ``expected_revision`` is the revision the caller's session object was read at; the
        append is refused with :class:`StaleRevisionError` if the stored session moved on.
        Without one (a session object this store did not make), the check is ADK's: the
        stored update time may not be newer than ``known_update_time`` unless the newest
        stored event is ``known_last_event_id``.

        An event equal to one already stored under the same id is not stored again
        (``duplicate``): a retried append after a lost connection writes nothing twice.

        Raises:
            SessionMissingError: no such session.
            StaleRevisionError: the caller's session object is out of date.
        """
        check_key("event id", event_id)
        codec, packed = self._pack_event(event_id, data)
        sql = self._sql
        skey = (app_name, user_id, session_id)

        def write() -> AppendOutcome:
            with self.engine.transaction(write=True):
                row = self._x(sql.lock_session, skey).fetchone()
                if row is None:
                    raise SessionMissingError(f"Session {session_id} not found.")
                revision, update_time = int(row[0]), float(row[1])
                for found in self._x(sql.find_event, (*skey, event_id)).fetchall():
                    if _same_event(self._unpack_event(event_id, found[1], found[2]), data):
                        return AppendOutcome(revision, update_time, True,
                                             int(found[0]) == revision)
                if expected_revision is not None:
                    if expected_revision != revision:
                        raise StaleRevisionError(
                            f"session {session_id} is at revision {revision} in storage but "
                            f"the session object was read at revision {expected_revision}")
                elif update_time > known_update_time:
                    last = self._x(sql.last_event_id, skey).fetchone()
                    if (last[0] if last else None) != known_last_event_id:
                        raise StaleRevisionError(
                            f"session {session_id} was updated in storage after the session "
                            "object's last_update_time")
                new_revision = revision + 1
                if session_delta:
                    state = self._state(SESSIONS, row[2], row[3])
                    state.update(session_delta)
                    state_codec, state_data = self._pack(SESSIONS, state)
                    self._check_size(state_data)
                    self._x(sql.update_session_state,
                            (new_revision, timestamp, state_codec, state_data, *skey))
                else:
                    self._x(sql.update_session, (new_revision, timestamp, *skey))
                self._merge_scoped(app_name, user_id, app_delta, user_delta, timestamp)
                self._check_size(packed)
                self._x(sql.insert_event, (*skey, new_revision, event_id, timestamp, codec,
                                           packed))
            return AppendOutcome(new_revision, timestamp, False)

        return self._run("append an ADK event", write)  # type: ignore[no-any-return]

    def delete_session(self, app_name: str, user_id: str, session_id: str) -> bool:
        """Delete a session and its events; True if it existed."""
        if not (is_key(app_name) and is_key(user_id) and is_key(session_id)):
            return False
        sql = self._sql
        skey = (app_name, user_id, session_id)

        def delete() -> bool:
            with self.engine.transaction(write=True):
                self._x(sql.delete_events, skey)
                return bool(self._x(sql.delete_session, skey).rowcount)

        return self._run("delete an ADK session", delete)  # type: ignore[no-any-return]

    # -- moving sessions between stores ---------------------------------------------------

    def import_session(self, session: SessionRow, events: Sequence[EventRow]) -> bool:
        """Store a session with its events as they are (revision, times, seqs kept).

        Returns False, writing nothing, if the target already has a session with that key.
        """
        for field in ("app_name", "user_id", "id"):
            check_key(field, getattr(session, field))
        codec, data = self._pack(SESSIONS, session.state)
        sql = self._sql
        skey = (session.app_name, session.user_id, session.id)
        revision = max([session.revision, *(e.seq for e in events)])

        def write() -> bool:
            with self.engine.transaction(write=True):
                if self._x(sql.exists, skey).fetchone():
                    return False
                self._x(sql.insert_session, (*skey, revision, session.create_time,
                                             session.update_time, codec, data))
                for event in events:
                    check_key("event id", event.event_id)
                    event_codec, packed = self._pack_event(event.event_id, event.data)
                    self._x(sql.insert_event, (*skey, event.seq, event.event_id,
                                               event.timestamp, event_codec, packed))
            return True

        return self._run("import an ADK session", write)  # type: ignore[no-any-return]

    def put_scoped_state(self, app_name: str, user_id: str | None, state: dict[str, Any],
                         now: float) -> None:
        """Merge ``state`` into an app state (``user_id`` None) or a user state."""
        check_key("app_name", app_name)
        if user_id is not None:
            check_key("user_id", user_id)

        def write() -> None:
            with self.engine.transaction(write=True):
                if user_id is None:
                    self._merge_scoped(app_name, "", state, {}, now)
                else:
                    self._merge_scoped(app_name, user_id, {}, state, now)

        self._run("store ADK state", write)


def _same_event(stored: bytes, data: bytes) -> bool:
    if stored == data:
        return True
    try:
        return bool(orjson.loads(stored) == orjson.loads(data))
    except orjson.JSONDecodeError:
        return False
