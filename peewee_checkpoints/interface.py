"""The interface every checkpoint provider implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from ._cursor import decode_cursor, encode_cursor
from ._validation import check_page_limit, check_prune_rules, filter_values
from .errors import CheckpointError
from .records import (
    CheckpointListItem,
    CheckpointPage,
    ImportCounts,
    NamedCheckpoint,
    StoredCheckpoint,
)

__all__ = ["CheckpointProvider"]

_P = TypeVar("_P", bound="CheckpointProvider")

#: Page size iter_checkpoints and prune use: memory stays bounded by one page.
ITER_PAGE_SIZE = 500


class CheckpointProvider(ABC):
    """Stores, lists, retrieves and deletes agent checkpoints.

    Implementations must be safe to call from several threads at once. A provider is a context
    manager: leaving the ``with`` block calls :meth:`close`.
    """

    iter_page_size: int = ITER_PAGE_SIZE
    """Checkpoints :meth:`iter_checkpoints` reads per page (its memory bound)."""

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

    def import_checkpoints(self, checkpoints: Iterable[StoredCheckpoint]) -> ImportCounts:
        """Import many checkpoints under their own ids; returns how many were written/skipped.

        The generic version calls :meth:`import_checkpoint` for each. A provider with a
        database behind it writes them in one transaction (the Peewee provider does), so a
        failure leaves none of them written and running it again is safe.
        """
        counts = ImportCounts()
        for checkpoint in checkpoints:
            if self.import_checkpoint(checkpoint):
                counts.written += 1
            else:
                counts.skipped += 1
        return counts

    @abstractmethod
    def close(self) -> None:
        """Release connections and other resources."""

    # -- paging and retention -------------------------------------------------------------
    # Generic versions built on list_checkpoints and delete_checkpoint, so that every provider
    # has them; a provider with a database behind it should override them with queries that
    # seek to the cursor (see PeeweeCheckpointProvider).

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
        """Return one page of the listing, and the cursor of the next one.

        Items come in the order of :meth:`list_checkpoints` (``created_at`` descending, ties by
        id descending). Start with ``cursor=None`` and pass each page's ``next_cursor`` to get
        the next page; walking until ``next_cursor`` is None yields every matching checkpoint
        exactly once, even when many share a ``created_at``.

        Args:
            limit: most items on the page, a positive int.
            cursor: ``next_cursor`` of the previous page, or None for the first page.

        Raises:
            InvalidCheckpointError: a malformed cursor, limit or filter.
        """
        check_page_limit(limit)
        position = decode_cursor(cursor) if cursor is not None else None
        if filter_values(agent_id, session_id, agent_type, before, after) is None:
            return CheckpointPage([], None)
        bound = before
        if position is not None:
            # Everything at or below the cursor's created_at, then skip the ties at or above it.
            bound = position[0] + 1 if before is None else min(before, position[0] + 1)
        fetch = limit + 1
        while True:
            rows = self.list_checkpoints(agent_id=agent_id, session_id=session_id,
                                         agent_type=agent_type, before=bound, after=after,
                                         limit=fetch)
            items = rows
            if position is not None:
                items = [r for r in rows if (r.created_at, r.id) < position]
            # Stop when a page and one more are found, or the listing ran out; otherwise the
            # cursor sat behind many ties: fetch twice as many and look again.
            if len(items) > limit or len(rows) < fetch:
                break
            fetch *= 2
        if len(items) > limit:
            last = items[limit - 1]
            return CheckpointPage(items[:limit], encode_cursor(last.created_at, last.id))
        return CheckpointPage(items, None)

    def iter_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> Iterator[CheckpointListItem]:
        """Yield every matching checkpoint in listing order, one page in memory at a time.

        Filters are those of :meth:`list_checkpoints`, checked at the call (a bad one raises
        here, not at the first ``next()``). Checkpoints stored or deleted while iterating may
        or may not be seen, but none is yielded twice.
        """
        values = filter_values(agent_id, session_id, agent_type, before, after)
        return self._iterate_generic(values is not None, agent_id=agent_id,
                                     session_id=session_id, agent_type=agent_type,
                                     before=before, after=after)

    def _iterate_generic(self, matches: bool, *, agent_id: str | None,
                         session_id: str | None, agent_type: str | None, before: int | None,
                         after: int | None) -> Iterator[CheckpointListItem]:
        # Pages of list_checkpoints bounded by created_at only: where a page ends inside a
        # group of checkpoints sharing one created_at, that whole group is read once, and the
        # next page starts below it. (Seeking by cursor instead would re-read every tied row
        # above the cursor on each page: quadratic in the size of a tie group.)
        if not matches:
            return
        size = self.iter_page_size
        bound = before

        def listing(before: int | None, after: int | None, limit: int | None = None
                    ) -> list[CheckpointListItem]:
            return self.list_checkpoints(agent_id=agent_id, session_id=session_id,
                                         agent_type=agent_type, before=before, after=after,
                                         limit=limit)

        while True:
            rows = listing(bound, after, size)
            if len(rows) < size:
                yield from rows
                return
            last = rows[-1].created_at
            yield from (r for r in rows if r.created_at > last)
            yield from listing(last + 1, last - 1 if last > 0 else None)
            if last == 0 or (after is not None and last - 1 <= after):
                return
            bound = last

    def prune(
        self,
        *,
        before: int | None = None,
        keep_last_per_agent: int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete old checkpoints; returns how many were (with ``dry_run``, would be) deleted.

        Args:
            before: delete checkpoints with ``created_at`` strictly before this (epoch ms).
            keep_last_per_agent: delete all but the newest this many of each ``agent_id``.
            dry_run: count only; delete nothing.

        When both rules are given a checkpoint goes if either rule removes it. Deletion runs
        in small batches, so other writers are never locked out for long.

        Raises:
            InvalidCheckpointError: neither rule is given, or one is not a valid value.
        """
        check_prune_rules(before, keep_last_per_agent)
        seen: dict[str, int] = {}
        count = 0
        batch: list[str] = []
        for item in self.iter_checkpoints():
            rank = seen.get(item.agent_id, 0)
            seen[item.agent_id] = rank + 1
            if (before is not None and item.created_at < before) or (
                keep_last_per_agent is not None and rank >= keep_last_per_agent
            ):
                if dry_run:
                    count += 1
                else:
                    batch.append(item.id)
            if len(batch) >= self.iter_page_size:
                count += sum(self.delete_checkpoint(i) for i in batch)
                batch.clear()
        return count + sum(self.delete_checkpoint(i) for i in batch)

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
