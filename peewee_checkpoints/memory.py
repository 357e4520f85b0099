"""The in-memory provider: the same contract as the Peewee one, kept in the process."""

from __future__ import annotations

import bisect
import threading
from typing import NamedTuple

from ._app import check_app_checkpoint, check_stored_app_checkpoint
from ._codec import encode_state, unpack_state
from ._cursor import check_order
from ._ids import new_id
from ._validation import (
    MAX_ID_LENGTH,
    check_checkpoint,
    check_limit,
    check_stored_checkpoint,
    filter_values,
    is_storable_key,
)
from .interface import CheckpointProvider
from .records import (
    AppCheckpoint,
    AppCheckpointListItem,
    CheckpointListItem,
    NamedCheckpoint,
    StoredAppCheckpoint,
    StoredCheckpoint,
)

__all__ = ["MemoryCheckpointProvider"]


class _Row(NamedTuple):
    id: str
    name: str
    agent_id: str
    # (state_codec, encoded JSON): nothing the caller holds can change it, nor it the caller's
    state: tuple[int, bytes]
    session_id: str
    agent_type: str
    created_at: int


_KEY_INDEX = ((2, "agent_id"), (4, "session_id"), (5, "agent_type"))


class MemoryCheckpointProvider(CheckpointProvider):
    """Checkpoints kept in a dict in this process, for tests, scratch work and examples.

    It validates, encodes and orders exactly like :class:`PeeweeCheckpointProvider`: states are
    stored as the same JSON bytes (so what ``retrieve_checkpoint`` returns is a new object,
    equal to what was stored, never the caller's), ids are the same ULIDs, and listings are
    ordered by ``created_at`` then ``id``, both descending. Every instance is an independent,
    initially empty store; its contents live as long as the instance. It takes no options.
    Safe to use from several threads at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        # (created_at, id) ascending, so a listing walks it backwards: newest first.
        self._order: list[tuple[int, str]] = []
        # App checkpoints: id -> (name, (state_codec, encoded state), created_at), and order.
        self._apps: dict[str, tuple[str, tuple[int, bytes], int]] = {}
        self._app_order: list[tuple[int, str]] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{len(self._rows)} checkpoints>)"

    def store_checkpoint(self, checkpoint: NamedCheckpoint) -> str:
        """Store ``checkpoint``; returns its new id (a 26-character ULID)."""
        check_checkpoint(checkpoint)
        checkpoint_id = new_id()
        self._add(checkpoint_id, checkpoint, encode_state(checkpoint.state))
        return checkpoint_id

    def import_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store ``checkpoint`` under its own id; False (nothing written) if the id exists."""
        named = check_stored_checkpoint(checkpoint)
        return self._add(checkpoint.id, named, encode_state(checkpoint.state))

    def _add(
        self, checkpoint_id: str, checkpoint: NamedCheckpoint, data: tuple[int, bytes]
    ) -> bool:
        row = _Row(checkpoint_id, checkpoint.name, checkpoint.agent_id, data,
                   checkpoint.session_id, checkpoint.agent_type, checkpoint.created_at)
        with self._lock:
            if checkpoint_id in self._rows:
                return False
            self._rows[checkpoint_id] = row
            bisect.insort(self._order, (row.created_at, checkpoint_id))
        return True

    def retrieve_checkpoint(self, checkpoint_id: str) -> StoredCheckpoint | None:
        """Return the checkpoint with this id, or None (also for a malformed id)."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return None
        with self._lock:
            row = self._rows.get(checkpoint_id)
        if row is None:
            return None
        return StoredCheckpoint(
            id=row.id, name=row.name, agent_id=row.agent_id, state=unpack_state(*row.state),
            session_id=row.session_id, agent_type=row.agent_type, created_at=row.created_at,
        )

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

        ``order="asc"``: oldest first, ties by id ascending.
        """
        ascending = check_order(order) == "asc"
        values = filter_values(agent_id, session_id, agent_type, before, after)
        check_limit(limit)
        if values is None or limit == 0:
            return []
        # Indexes into _Row, so the loop below compares without attribute lookups by name.
        filters = [(index, values[name]) for index, name in _KEY_INDEX if name in values]
        before, after = values.get("before"), values.get("after")
        items: list[CheckpointListItem] = []
        with self._lock:
            # Walking in listing order lets a bound end the scan early and a limit stop it.
            start = len(self._order)
            if before is not None:
                start = bisect.bisect_left(self._order, (before, ""))
            if ascending:
                first = 0
                if after is not None:
                    first = bisect.bisect_left(self._order, (after + 1, ""))
                positions = range(first, start)
            else:
                positions = range(start - 1, -1, -1)
            for position in positions:
                created_at, checkpoint_id = self._order[position]
                if not ascending and after is not None and created_at <= after:
                    break
                row = self._rows[checkpoint_id]
                if all(row[index] == value for index, value in filters):
                    items.append(CheckpointListItem(
                        id=row.id, name=row.name, agent_id=row.agent_id,
                        session_id=row.session_id, agent_type=row.agent_type,
                        created_at=row.created_at,
                    ))
                    if limit is not None and len(items) >= limit:
                        break
        return items

    def count_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> int:
        """How many checkpoints match (the filters of :meth:`list_checkpoints`)."""
        values = filter_values(agent_id, session_id, agent_type, before, after)
        if values is None:
            return 0
        if set(values) <= {"before", "after"}:
            with self._lock:
                lo = 0 if "after" not in values else bisect.bisect_left(
                    self._order, (values["after"] + 1, ""))
                hi = len(self._order) if "before" not in values else bisect.bisect_left(
                    self._order, (values["before"], ""))
                return max(0, hi - lo)
        return len(self.list_checkpoints(agent_id=agent_id, session_id=session_id,
                                         agent_type=agent_type, before=before, after=after))

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete the checkpoint with this id; True if one was removed."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return False
        with self._lock:
            row = self._rows.pop(checkpoint_id, None)
            if row is None:
                return False
            key = (row.created_at, checkpoint_id)
            del self._order[bisect.bisect_left(self._order, key)]
        return True

    # -- app checkpoints -----------------------------------------------------------------

    def store_app_checkpoint(self, checkpoint: AppCheckpoint) -> str:
        """Store an app checkpoint; returns its new id (a 26-character ULID)."""
        check_app_checkpoint(checkpoint)
        checkpoint_id = new_id()
        self._add_app(checkpoint_id, checkpoint, encode_state(checkpoint.state))
        return checkpoint_id

    def import_app_checkpoint(self, checkpoint: StoredAppCheckpoint) -> bool:
        """Store an app checkpoint under its own id; False (nothing written) if it exists."""
        plain = check_stored_app_checkpoint(checkpoint)
        return self._add_app(checkpoint.id, plain, encode_state(checkpoint.state))

    def _add_app(self, checkpoint_id: str, checkpoint: AppCheckpoint,
                 data: tuple[int, bytes]) -> bool:
        with self._lock:
            if checkpoint_id in self._apps:
                return False
            self._apps[checkpoint_id] = (checkpoint.name, data, checkpoint.created_at)
            bisect.insort(self._app_order, (checkpoint.created_at, checkpoint_id))
        return True

    def retrieve_app_checkpoint(self, checkpoint_id: str) -> StoredAppCheckpoint | None:
        """Return the app checkpoint with this id, or None (also for a malformed id)."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return None
        with self._lock:
            found = self._apps.get(checkpoint_id)
        if found is None:
            return None
        name, data, created_at = found
        return StoredAppCheckpoint(id=checkpoint_id, name=name, state=unpack_state(*data),
                                   created_at=created_at)

    def list_app_checkpoints(self, *, limit: int | None = None) -> list[AppCheckpointListItem]:
        """App checkpoints newest first (ties by id descending), without their states."""
        check_limit(limit)
        with self._lock:
            keys = self._app_order[::-1] if limit is None else (
                self._app_order[: -limit - 1 : -1] if limit else [])
            return [AppCheckpointListItem(id=i, name=self._apps[i][0], created_at=at)
                    for at, i in keys]

    def latest_app_checkpoint(self) -> StoredAppCheckpoint | None:
        """The newest app checkpoint, or None."""
        with self._lock:
            if not self._app_order:
                return None
            checkpoint_id = self._app_order[-1][1]
            name, data, created_at = self._apps[checkpoint_id]
        return StoredAppCheckpoint(id=checkpoint_id, name=name, state=unpack_state(*data),
                                   created_at=created_at)

    def delete_app_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete an app checkpoint; True if one was removed."""
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return False
        with self._lock:
            found = self._apps.pop(checkpoint_id, None)
            if found is None:
                return False
            del self._app_order[bisect.bisect_left(self._app_order, (found[2], checkpoint_id))]
        return True

    def count_app_checkpoints(self) -> int:
        """How many app checkpoints are stored."""
        return len(self._apps)

    def close(self) -> None:
        """Nothing to release: the checkpoints stay, and the provider remains usable."""
