"""The interface every checkpoint provider implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TypeVar

from .errors import CheckpointError
from .records import CheckpointListItem, NamedCheckpoint, StoredCheckpoint

__all__ = ["CheckpointProvider"]

_P = TypeVar("_P", bound="CheckpointProvider")


class CheckpointProvider(ABC):
    """Stores, lists, retrieves and deletes agent checkpoints.

    Implementations must be safe to call from several threads at once. A provider is a context
    manager: leaving the ``with`` block calls :meth:`close`.
    """

    @abstractmethod
    def store_checkpoint(self, checkpoint: NamedCheckpoint) -> str:
        """Store ``checkpoint`` and return its new id.

        The id is unique across databases and sorts by creation time.

        Raises:
            InvalidCheckpointError: a field or the state breaks the contract; nothing is written.
            StorageError: the backend refused the write or could not be reached.
        """

    @abstractmethod
    def retrieve_checkpoint(self, checkpoint_id: str) -> StoredCheckpoint | None:
        """Return the checkpoint stored under ``checkpoint_id``, or None.

        A malformed id is not an error: it matches nothing, so the result is None.
        """

    @abstractmethod
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
        """List checkpoints newest first, without their states.

        Ordered by ``created_at`` descending, ties by ``id`` descending. Filters combine with
        AND and match exactly; ``before``/``after`` are strict bounds on ``created_at`` (epoch
        ms); ``limit=None`` returns every match.
        """

    @abstractmethod
    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete a checkpoint; True if a row was removed."""

    def import_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store ``checkpoint`` under its own id (for copies between stores).

        Returns False, writing nothing, if a checkpoint with that id already exists, so an
        interrupted copy can simply be run again. Providers that cannot keep foreign ids
        raise :class:`CheckpointError`.
        """
        raise CheckpointError(f"{type(self).__name__} cannot import checkpoints with their ids")

    @abstractmethod
    def close(self) -> None:
        """Release connections and other resources."""

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
