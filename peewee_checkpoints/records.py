"""The records that flow through a provider: frozen dataclasses, compared field by field."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AppCheckpoint",
    "AppCheckpointListItem",
    "CheckpointListItem",
    "CheckpointPage",
    "ImportCounts",
    "NamedCheckpoint",
    "StoredAppCheckpoint",
    "StoredCheckpoint",
    "now_ms",
]


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class NamedCheckpoint:
    """A checkpoint to store: a named snapshot of one agent's state."""

    name: str
    """Human-readable label, for example ``"before-tool-call"``; not unique."""
    agent_id: str
    """The agent whose state this is; ``list_checkpoints(agent_id=...)`` filters on it."""
    state: dict[str, Any]
    """The agent's state: a JSON object (str keys; None, bool, int, float, str, list, dict)."""
    session_id: str = ""
    """The conversation or run the checkpoint belongs to; empty when there is none."""
    agent_type: str = ""
    """The kind of agent (for example ``"coder"``); empty when there is none."""
    created_at: int = field(default_factory=now_ms)
    """Creation time in epoch milliseconds; defaults to now."""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as stored: its id plus every field of :class:`NamedCheckpoint`."""

    id: str
    """Unique id given by ``store_checkpoint``; ids sort by creation time."""
    name: str
    """Human-readable label."""
    agent_id: str
    """The agent whose state this is."""
    state: dict[str, Any]
    """The agent's state, equal (``==``) to what was stored."""
    session_id: str = ""
    """The conversation or run the checkpoint belongs to."""
    agent_type: str = ""
    """The kind of agent."""
    created_at: int = field(default_factory=now_ms)
    """Creation time in epoch milliseconds."""

    def to_named(self) -> NamedCheckpoint:
        """Return the same checkpoint without its id."""
        return NamedCheckpoint(
            name=self.name,
            agent_id=self.agent_id,
            state=self.state,
            session_id=self.session_id,
            agent_type=self.agent_type,
            created_at=self.created_at,
        )


@dataclass(frozen=True, init=False)
class CheckpointListItem:
    """One row of a listing: every field of :class:`StoredCheckpoint` except ``state``."""

    id: str
    """Unique id of the checkpoint."""
    name: str
    """Human-readable label."""
    agent_id: str
    """The agent whose state this is."""
    session_id: str = ""
    """The conversation or run the checkpoint belongs to."""
    agent_type: str = ""
    """The kind of agent."""
    created_at: int = 0
    """Creation time in epoch milliseconds."""

    def __init__(  # noqa: PLR0917 - the dataclass's own signature, positional like it
        self,
        id: str,
        name: str,
        agent_id: str,
        session_id: str = "",
        agent_type: str = "",
        created_at: int = 0,
    ) -> None:
        # The generated __init__ of a frozen dataclass sets each field through
        # object.__setattr__ (2 us a record, more than the database takes to return the row);
        # writing the instance dict is what it amounts to, three times faster. Listings build
        # thousands of these.
        d = self.__dict__
        d["id"], d["name"], d["agent_id"] = id, name, agent_id
        d["session_id"], d["agent_type"], d["created_at"] = session_id, agent_type, created_at


def list_items(rows: Iterable[Sequence[Any]]) -> list[CheckpointListItem]:
    """Build listing records from rows holding the fields in declaration order."""
    return [CheckpointListItem(*row) for row in rows]


@dataclass
class ImportCounts:
    """What :meth:`CheckpointProvider.import_checkpoints` did."""

    written: int = 0
    """Checkpoints written under their own ids."""
    skipped: int = 0
    """Checkpoints whose id already existed (nothing written for them)."""


@dataclass(frozen=True)
class CheckpointPage:
    """One page of a listing, from :meth:`CheckpointProvider.page_checkpoints`."""

    items: list[CheckpointListItem]
    """The page's checkpoints, newest first (``created_at`` descending, ties by id descending)."""
    next_cursor: str | None = None
    """Pass as ``cursor=`` to get the next page; None on the last page."""


@dataclass(frozen=True)
class AppCheckpoint:
    """An app checkpoint to store: a named snapshot of the whole application's state."""

    name: str
    """Human-readable label, for example ``"nightly"``; not unique."""
    state: dict[str, Any]
    """The application's state: a JSON object, under the same rules as a checkpoint's."""
    created_at: int = field(default_factory=now_ms)
    """Creation time in epoch milliseconds; defaults to now."""


@dataclass(frozen=True)
class StoredAppCheckpoint:
    """An app checkpoint as stored: its id plus every field of :class:`AppCheckpoint`."""

    id: str
    """Unique id given by ``store_app_checkpoint``; ids sort by creation time."""
    name: str
    """Human-readable label."""
    state: dict[str, Any]
    """The application's state, equal (``==``) to what was stored."""
    created_at: int = field(default_factory=now_ms)
    """Creation time in epoch milliseconds."""

    def to_app_checkpoint(self) -> AppCheckpoint:
        """Return the same app checkpoint without its id."""
        return AppCheckpoint(name=self.name, state=self.state, created_at=self.created_at)


@dataclass(frozen=True)
class AppCheckpointListItem:
    """One row of ``list_app_checkpoints``: a :class:`StoredAppCheckpoint` without ``state``."""

    id: str
    """Unique id of the app checkpoint."""
    name: str
    """Human-readable label."""
    created_at: int = 0
    """Creation time in epoch milliseconds."""
