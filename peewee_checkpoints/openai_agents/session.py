"""``PeeweeSession``: the OpenAI Agents SDK's ``Session`` protocol on this package's engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._crypto import keys_or_env
from .._defaults import DEFAULT_DB_URL
from .._engine import Engine
from .._migrations import LOCK_TIMEOUT
from .._sessions import SessionInfo, SessionPage, SessionTables, check_id

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

__all__ = ["PeeweeSession", "PeeweeSessionStore"]

_T = TypeVar("_T")


async def _mutation(fn: Callable[[], _T]) -> _T:
    """Run a write in a worker thread and wait for its outcome even if the caller is cancelled.

    The thread cannot be stopped, so returning early would leave the caller not knowing
    whether its items were written; the cancellation is raised once the outcome is known.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        raise cancelled
    return task.result()


def _settings(value: Any) -> Any:
    """``SessionSettings`` from a dict (through the SDK), anything else unchanged."""
    if isinstance(value, Mapping):
        from agents.memory.session_settings import coerce_session_settings

        return coerce_session_settings(dict(value))
    return value


class PeeweeSessionStore:
    """Sessions sharing one database engine: one store per process, one session per chat.

    Args:
        db_url: ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` or
            ``mysql://user:pass@host:port/db`` (each also ``+pool``; ``max_connections`` and
            the other engine parameters go in the query string).
        migration_lock_timeout: seconds to wait for another process migrating the database.
        encryption_keys: ``["<key id>:<base64 of 32 bytes>", ...]`` to store items
            encrypted (AES-256-GCM): the first key encrypts, all decrypt, each item records
            its key id; plain items stay readable, and ``peewee-checkpoints rekey`` moves
            every item to the first key. An item under a key not given raises
            :class:`~peewee_checkpoints.EncryptionError` naming its key id, an altered one
            too. Session metadata stays plain: it is what sessions are listed by. Default:
            ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS``, else no encryption.

    Raises:
        ConfigError: ``db_url`` is malformed or names an unsupported backend, or an
            encryption key is malformed (the message never shows a key).

    The tables come from the package's migrations, applied on first use under a lock that is
    safe for many processes starting at once. All methods here are synchronous and
    thread-safe; the sessions' protocol methods are coroutines.
    """

    def __init__(self, db_url: str = DEFAULT_DB_URL, *,
                 migration_lock_timeout: float = LOCK_TIMEOUT,
                 encryption_keys: str | Sequence[str] | None = None) -> None:
        keyring = keys_or_env(encryption_keys)
        self._engine = Engine(db_url, migration_lock_timeout=migration_lock_timeout)
        self.tables = SessionTables(self._engine, keyring)
        """The synchronous session operations (what the async session methods run)."""

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._engine.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> PeeweeSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection the store opened (later calls reconnect)."""
        self._engine.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations now (the first call does it anyway); returns their names."""
        return self._engine.migrate()

    def session(self, session_id: str, *,
                session_settings: SessionSettings | Mapping[str, Any] | None = None,
                user_id: str | None = None,
                metadata: Mapping[str, Any] | None = None) -> PeeweeSession:
        """A session on this store's engine (cheap: no connection is opened here).

        ``user_id`` and ``metadata``, when given, are recorded with the session's next write.
        """
        return PeeweeSession._on(self, session_id, session_settings=session_settings,
                                 user_id=user_id, metadata=metadata)

    def session_info(self, session_id: str) -> SessionInfo | None:
        """User, metadata, times, item count and bytes of a session; None if unknown."""
        return self.tables.info(session_id)

    def list_sessions(self, *, user_id: str | None = None,
                      metadata: Mapping[str, Any] | None = None,
                      has_keys: Sequence[str] = (), limit: int = 50,
                      cursor: str | None = None) -> SessionPage:
        """Sessions, most recently active first, keyset paged.

        Args:
            user_id: only this user's sessions.
            metadata: only sessions whose metadata holds each key with exactly this scalar
                value.
            has_keys: only sessions whose metadata has each of these keys.
            limit: sessions per page.
            cursor: ``next_cursor`` of the previous page (``None`` for the first).

        Raises:
            InvalidCheckpointError: a malformed cursor or an unmatchable filter value.
        """
        return self.tables.list_sessions(user_id=user_id, metadata=metadata,
                                         has_keys=has_keys, limit=limit, cursor=cursor)

    def set_metadata(self, session_id: str, metadata: Mapping[str, Any]) -> None:
        """Replace a session's metadata (the session is created if it does not exist)."""
        self.tables.set_metadata(session_id, metadata)

    def delete_session(self, session_id: str) -> bool:
        """Delete a session with its items and metadata; True if it existed."""
        return self.tables.delete_session(session_id)

    def delete_user_sessions(self, user_id: str) -> int:
        """Delete every session of ``user_id`` (for example on an erasure request)."""
        return self.tables.delete_user(user_id)

    def fork(self, session_id: str, new_session_id: str, *, at_item: int | None = None,
             user_id: str | None = None, metadata: Mapping[str, Any] | None = None) -> int:
        """Copy a session's history, up to and including item ``at_item``, into a new one.

        ``at_item`` indexes the history as a list does (negative from the end); None copies
        all of it. Returns the number of items copied.
        """
        return self.tables.fork(session_id, new_session_id, at_item=at_item, user_id=user_id,
                                metadata=metadata)

    def export_session(self, session_id: str) -> dict[str, Any] | None:
        """A session as a JSON-ready dict, items included; None if it does not exist."""
        return self.tables.export_session(session_id)

    def import_session(self, record: Mapping[str, Any], *, replace: bool = False) -> int:
        """Write a session from :meth:`export_session`'s dict; returns the items written."""
        return self.tables.import_session(record, replace=replace)


class PeeweeSession:
    """Conversation history for one session of the OpenAI Agents SDK.

    Implements the SDK's ``Session`` protocol (``get_items``, ``add_items``, ``pop_item``,
    ``clear_session``), so it can be passed as ``Runner.run(..., session=...)`` or wrapped
    in ``EncryptedSession``.

    Args:
        session_id: the conversation's id (1 to 255 characters, no NUL).
        db_url: the database (see :class:`PeeweeSessionStore`); the session opens an engine
            of its own. A server with many conversations should make sessions from one
            :class:`PeeweeSessionStore` instead.
        session_settings: the SDK's ``SessionSettings`` (or a dict of its fields); its
            ``limit`` is what ``get_items()`` returns when no limit is given.
        user_id: the user the session belongs to (recorded with the next write).
        metadata: a JSON object recorded with the next write (it replaces what was there).
        encryption_keys: as for :class:`PeeweeSessionStore`.

    Items are stored as JSON, numbered by a per-session sequence: they come back in the
    order they were added, however many processes add them at once.
    """

    session_settings: SessionSettings | None

    def __init__(self, session_id: str, db_url: str = DEFAULT_DB_URL, *,
                 session_settings: SessionSettings | Mapping[str, Any] | None = None,
                 user_id: str | None = None,
                 metadata: Mapping[str, Any] | None = None,
                 encryption_keys: str | Sequence[str] | None = None) -> None:
        self._setup(PeeweeSessionStore(db_url, encryption_keys=encryption_keys), True,
                    session_id,
                    session_settings=session_settings, user_id=user_id, metadata=metadata)

    @classmethod
    def _on(cls, store: PeeweeSessionStore, session_id: str, *,
            session_settings: SessionSettings | Mapping[str, Any] | None,
            user_id: str | None, metadata: Mapping[str, Any] | None) -> PeeweeSession:
        session = cls.__new__(cls)
        session._setup(store, False, session_id, session_settings=session_settings,
                       user_id=user_id, metadata=metadata)
        return session

    def _setup(self, store: PeeweeSessionStore, owns_store: bool, session_id: str, *,
               session_settings: Any, user_id: str | None,
               metadata: Mapping[str, Any] | None) -> None:
        self.session_id = check_id("session_id", session_id)
        if user_id is not None:
            check_id("user_id", user_id)
        self.session_settings = _settings(session_settings)
        self.store = store
        """The store this session runs on."""
        self._owns_store = owns_store
        self._tables = store.tables
        self._user_id = user_id
        self._metadata = dict(metadata) if metadata is not None else None
        self._identity_pending = user_id is not None or metadata is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.session_id!r}, {self.store.url!r})"

    # -- the Session protocol -------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The history in the order it was added.

        Args:
            limit: ``None``: ``session_settings.limit`` if set, else every item; ``N > 0``:
                the newest N items, oldest first; ``0``: none.

        A stored row that is not a JSON object (written by hand, say) is skipped with a
        warning on the ``peewee_checkpoints.sessions`` logger and does not count toward
        ``limit``.
        """
        if limit is None and self.session_settings is not None:
            limit = getattr(self.session_settings, "limit", None)
        items = await asyncio.to_thread(self._tables.get_items, self.session_id, limit)
        return cast("list[TResponseInputItem]", items)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in order, as one contiguous run, in one transaction.

        Raises:
            InvalidCheckpointError: an item is not a JSON object; nothing was written.
            StorageError: the database refused or could not be reached.
        """
        if not items and not self._identity_pending:
            return
        identity = self._identity_pending
        user_id = self._user_id if identity else None
        metadata = self._metadata if identity else None
        batch = list(items)
        await _mutation(lambda: self._tables.add_items(
            self.session_id, batch, user_id=user_id, metadata=metadata))
        if identity:
            self._identity_pending = False

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None if there is none); atomic across processes."""
        item = await _mutation(lambda: self._tables.pop_item(self.session_id))
        return cast("TResponseInputItem | None", item)

    async def clear_session(self) -> None:
        """Remove every item; the session keeps its user and metadata (see :meth:`delete`)."""
        await _mutation(lambda: self._tables.clear(self.session_id))

    # -- beyond the protocol --------------------------------------------------------------

    async def info(self) -> SessionInfo | None:
        """User, metadata, times, item count and bytes; None before the first write."""
        return await asyncio.to_thread(self._tables.info, self.session_id)

    async def count_items(self) -> int:
        """Items stored in this session."""
        info = await self.info()
        return 0 if info is None else info.item_count

    async def get_metadata(self) -> dict[str, Any]:
        """The session's metadata ({} if none)."""
        info = await self.info()
        return {} if info is None else info.metadata

    async def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace the session's metadata."""
        await _mutation(lambda: self._tables.set_metadata(self.session_id, metadata,
                                                           user_id=self._user_id))

    async def fork(self, new_session_id: str, at_item: int | None = None) -> PeeweeSession:
        """A new session holding this one's history up to and including item ``at_item``.

        ``at_item`` indexes the history as a list does (negative from the end); None copies
        all of it. The new session shares this one's store and settings.

        Raises:
            InvalidCheckpointError: ``new_session_id`` exists, this session does not, or
                ``at_item`` is outside the history.
        """
        await _mutation(lambda: self._tables.fork(self.session_id, new_session_id,
                                                  at_item=at_item))
        return PeeweeSession._on(self.store, new_session_id,
                                 session_settings=self.session_settings, user_id=None,
                                 metadata=None)

    async def delete(self) -> bool:
        """Delete the session with its items and metadata; True if it existed."""
        return await _mutation(lambda: self._tables.delete_session(self.session_id))

    def close(self) -> None:
        """Close the database connections, if this session opened its own engine."""
        if self._owns_store:
            self.store.close()
