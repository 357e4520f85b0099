"""``PeeweeSessionService``: Google ADK sessions on SQLite, PostgreSQL or MySQL/MariaDB."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.platform import time as platform_time
from google.adk.platform import uuid as platform_uuid
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from pydantic_core import to_jsonable_python

from .._migrations import LOCK_TIMEOUT
from ..peewee_provider import DEFAULT_DB_URL
from ._store import (
    AdkStore,
    EventRow,
    SessionExistsError,
    SessionMissingError,
    SessionRow,
    StaleRevisionError,
)

try:  # ADK exports it from google.adk.errors since 1.2x; the class lives in a private module
    from google.adk.errors import StaleSessionError
except ImportError:  # pragma: no cover - depends on the ADK version
    from google.adk.errors._stale_session_error import StaleSessionError

__all__ = ["EventPage", "PeeweeSessionService", "SessionPage"]

log = logging.getLogger("peewee_checkpoints.adk")

_T = TypeVar("_T")

#: Prefix of the revision marker this service puts on the sessions it returns.
_MARKER = "peewee-checkpoints:"


@dataclass(frozen=True)
class SessionPage:
    """One page of :meth:`PeeweeSessionService.page_sessions`."""

    #: Sessions without events, state merged as in ``list_sessions``.
    sessions: list[Session]
    #: Pass to the next call for the following page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True)
class EventPage:
    """One page of :meth:`PeeweeSessionService.page_events`."""

    events: list[Event]
    #: Pass to the next call for the following page; None on the last page.
    next_cursor: str | None


def _json_safe(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as JSON data, as ADK's database services store it.

    Rich values (datetimes, pydantic models, ...) take their JSON form; a value with none (a
    callable) is stored as its ``repr``, with a warning, rather than failing the write.
    """
    try:
        return to_jsonable_python(state)  # type: ignore[no-any-return]
    except Exception:
        log.warning("session state holds values that are not JSON-serializable; they are "
                    "stored as their repr()", exc_info=True)
        return to_jsonable_python(state, fallback=repr)  # type: ignore[no-any-return]


def _split(state: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any],
                                                  dict[str, Any]]:
    """(app, user, session) parts of a state or delta, prefixes removed, ``temp:`` dropped."""
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in (state or {}).items():
        if key.startswith(State.APP_PREFIX):
            app[key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            user[key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            own[key] = value
    return _json_safe(app), _json_safe(user), _json_safe(own)


def _merge(app: dict[str, Any], user: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = dict(own)
    for key, value in app.items():
        merged[State.APP_PREFIX + key] = value
    for key, value in user.items():
        merged[State.USER_PREFIX + key] = value
    return merged


def _revision(session: Session) -> int | None:
    marker = session._storage_update_marker
    if marker is None or not marker.startswith(_MARKER):
        return None
    try:
        return int(marker[len(_MARKER):])
    except ValueError:
        return None


def _session(row: SessionRow, state: dict[str, Any], events: list[Event] | None = None
             ) -> Session:
    # Every value comes typed from the store: skip pydantic's validation, which costs more
    # than the database read when listing thousands of sessions.
    session = Session.model_construct(id=row.id, app_name=row.app_name, user_id=row.user_id,
                                      state=state, events=events or [],
                                      last_update_time=row.update_time)
    session._storage_update_marker = f"{_MARKER}{row.revision}"
    return session


def _events(rows: list[EventRow]) -> list[Event]:
    return [Event.model_validate_json(row.data) for row in rows]


class PeeweeSessionService(BaseSessionService):
    """An ADK session service that stores sessions in this package's database tables.

    A drop-in for ADK's ``DatabaseSessionService`` with ADK's semantics: state keys starting
    with ``app:`` are shared by every session of the app, ``user:`` keys by every session of
    the user, ``temp:`` keys live in the session object only and are never stored. Events are
    stored whole, as the JSON ADK's ``Event`` model dumps (never pickle), and read back in the
    order they were appended.

    Its tables come from the package's migrations, applied on first use under a
    database-wide lock: any number of replicas may start at once, and a newer version brings
    its own schema changes with it (no ``create_all``, no manual ``ALTER``).

    Concurrency: ``append_event`` is one transaction that locks the session row. A session
    object that another writer (another process, or another object) has moved past is
    refused with ADK's ``StaleSessionError``, nothing written: reload it with
    ``get_session`` and append again. An equal event delivered twice is stored once. App and
    user state take concurrent first writes without unique violations.

    Args:
        db_url: ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` or
            ``mysql://user:pass@host:port/db`` (each also ``+pool``); the same database as
            the checkpoint provider may be used.
        migration_lock_timeout: seconds to wait for another process migrating the database.
        encryption_keys: ``["<key id>:<base64 of 32 bytes>", ...]`` to store session, app
            and user states and events encrypted (AES-256-GCM after compression): the first
            key encrypts, all decrypt, each payload records its key id; plain rows stay
            readable and ``peewee-checkpoints rekey`` moves every row to the first key. A
            payload under a key not given raises :class:`~peewee_checkpoints.EncryptionError`
            naming its key id, an altered one too. Default:
            ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS``, else no encryption.

    Raises:
        ConfigError: ``db_url`` is malformed or unsupported, or an encryption key is.

    Database errors are raised as :class:`~peewee_checkpoints.StorageError`; app names, user
    ids, session ids and event ids longer than 128 characters (or holding NUL) as
    :class:`~peewee_checkpoints.InvalidCheckpointError` (a ``ValueError``).
    """

    def __init__(self, db_url: str = DEFAULT_DB_URL, *,
                 migration_lock_timeout: float = LOCK_TIMEOUT,
                 encryption_keys: str | Sequence[str] | None = None) -> None:
        self._store = AdkStore(db_url, migration_lock_timeout=migration_lock_timeout,
                               encryption_keys=encryption_keys)
        self._locks: weakref.WeakValueDictionary[tuple[int, str, str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary())

    # -- plumbing -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._store.url

    @property
    def store(self) -> AdkStore:
        """The storage layer (rows, no ADK objects), as the command line uses it."""
        return self._store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        # The engine is synchronous; each worker thread keeps its own pooled connection.
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def prepare_tables(self) -> None:
        """Apply pending migrations now (optional: the first call does it anyway)."""
        await self._call(self._store.engine.ensure_ready)

    async def close(self) -> None:
        """Close every connection this service opened (later calls reconnect)."""
        self._store.close()

    async def __aenter__(self) -> PeeweeSessionService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _session_lock(self, key: tuple[str, str, str]) -> AsyncIterator[None]:
        # Appends to one session from this process wait for each other here, so that tasks
        # sharing a session object do not refuse each other as stale; other processes are
        # kept apart by the row lock and the revision check.
        # Keyed by event loop too: an asyncio.Lock belongs to one loop, and a service may be
        # shared by threads that each run their own.
        loop_key = (id(asyncio.get_running_loop()), *key)
        lock = self._locks.get(loop_key)
        if lock is None:
            lock = self._locks[loop_key] = asyncio.Lock()
        async with lock:
            yield

    # -- BaseSessionService ---------------------------------------------------------------

    async def create_session(self, *, app_name: str, user_id: str,
                             state: dict[str, Any] | None = None,
                             session_id: str | None = None) -> Session:
        """Create a session; ``app:``/``user:`` keys of ``state`` go to the shared states.

        Raises:
            AlreadyExistsError: ``session_id`` is taken for this app and user.
        """
        session_id = session_id.strip() if session_id else None
        session_id = session_id or platform_uuid.new_uuid()
        app_delta, user_delta, own = _split(state)
        now = platform_time.get_time()
        try:
            row, app_state, user_state = await self._call(
                self._store.create_session, app_name, user_id, session_id, state=own,
                app_delta=app_delta, user_delta=user_delta, now=now)
        except SessionExistsError as exc:
            raise AlreadyExistsError(str(exc)) from exc
        return _session(row, _merge(app_state, user_state, row.state))

    async def get_session(self, *, app_name: str, user_id: str, session_id: str,
                          config: GetSessionConfig | None = None) -> Session | None:
        """The session with its merged state and events (as ``config`` filters), or None."""
        session_id = session_id.strip() if session_id else session_id
        config = config or GetSessionConfig()
        found = await self._call(
            self._store.get_session, app_name, user_id, session_id,
            num_recent_events=config.num_recent_events, after_timestamp=config.after_timestamp)
        if found is None:
            return None
        row, app_state, user_state, events = found
        return _session(row, _merge(app_state, user_state, row.state), _events(events))

    async def list_sessions(self, *, app_name: str, user_id: str | None = None
                            ) -> ListSessionsResponse:
        """Sessions of a user (or of every user of the app), without events, state merged,
        oldest update first (ties by user id, then session id)."""
        rows, app_state, user_states = await self._call(self._store.list_sessions, app_name,
                                                        user_id)
        return ListSessionsResponse(sessions=[
            _session(row, _merge(app_state, user_states.get(row.user_id, {}), row.state))
            for row in rows
        ])

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session and its events (nothing happens if it does not exist)."""
        session_id = session_id.strip() if session_id else session_id
        await self._call(self._store.delete_session, app_name, user_id, session_id)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user-scoped state, keys without the ``user:`` prefix (``{}`` if none)."""
        return await self._call(self._store.get_user_state, app_name, user_id)

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store ``event`` in the session, apply its state delta, and update ``session``.

        Raises:
            SessionNotFoundError: the session does not exist.
            StaleSessionError: the stored session has moved past ``session`` (another
                writer appended since it was read); nothing was written.
        """
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        app_delta, user_delta, own_delta = _split(event.actions.state_delta
                                                  if event.actions else None)
        data = event.model_dump_json(exclude_none=True).encode()
        key = (session.app_name, session.user_id, session.id)
        async with self._session_lock(key):
            expected = _revision(session)
            try:
                outcome = await self._call(
                    self._store.append_event, *key, expected_revision=expected,
                    known_update_time=session.last_update_time,
                    known_last_event_id=session.events[-1].id if session.events else None,
                    event_id=event.id, timestamp=event.timestamp, data=data,
                    app_delta=app_delta, user_delta=user_delta, session_delta=own_delta)
            except SessionMissingError as exc:
                raise SessionNotFoundError(str(exc)) from exc
            except StaleRevisionError as exc:
                raise StaleSessionError(
                    f"The session has been modified in storage since it was loaded ({exc}). "
                    "Reload it with get_session before appending more events.") from exc
            retried = outcome.duplicate_is_last and expected == outcome.revision - 1
            if outcome.duplicate and not retried:
                return event  # delivered before: stored once, as ADK's in-memory service does
            session.last_update_time = outcome.update_time
            session._storage_update_marker = f"{_MARKER}{outcome.revision}"
        return self._commit_event_to_session(session, event)

    # -- beyond the base class ------------------------------------------------------------

    async def get_app_state(self, *, app_name: str) -> dict[str, Any]:
        """The app-scoped state, keys without the ``app:`` prefix (``{}`` if none)."""
        return await self._call(self._store.get_app_state, app_name)

    async def page_sessions(self, *, app_name: str, user_id: str | None = None,
                            limit: int = 100, cursor: str | None = None) -> SessionPage:
        """One page of ``list_sessions``: same order and content, ``limit`` at a time.

        Walk from ``cursor=None`` until ``next_cursor`` is None; each page is one indexed
        range read, however many sessions the user has.
        """
        rows, next_cursor = await self._call(self._store.page_sessions, app_name, user_id,
                                             limit=limit, cursor=cursor)
        app_state = await self._call(self._store.get_app_state, app_name) if rows else {}
        users = await self._call(self._store.user_states_of, app_name,
                                 [row.user_id for row in rows])
        return SessionPage(
            [_session(row, _merge(app_state, users.get(row.user_id, {}), row.state))
             for row in rows],
            next_cursor)

    async def page_events(self, *, app_name: str, user_id: str, session_id: str,
                          limit: int = 100, cursor: str | None = None,
                          newest_first: bool = False) -> EventPage:
        """One page of a session's events, in append order (or ``newest_first``).

        Walk from ``cursor=None`` until ``next_cursor`` is None; each page is one range read
        of the primary key, however many events the session holds.
        """
        rows, next_cursor = await self._call(self._store.page_events, app_name, user_id,
                                             session_id, limit=limit, cursor=cursor,
                                             newest_first=newest_first)
        return EventPage(_events(rows), next_cursor)

