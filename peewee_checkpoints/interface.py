"""The interface every checkpoint provider implements."""

from __future__ import annotations

import functools
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._cursor import check_order, decode_cursor, encode_cursor
from ._validation import (
    MAX_CREATED_AT,
    check_limit,
    check_page_limit,
    check_prune_rules,
    filter_values,
)
from .errors import CheckpointError
from .records import (
    AppCheckpoint,
    AppCheckpointListItem,
    CheckpointListItem,
    CheckpointPage,
    ImportCounts,
    NamedCheckpoint,
    StoredAppCheckpoint,
    StoredCheckpoint,
    now_ms,
)

if TYPE_CHECKING:
    from .retention import RetentionPolicy, RetentionReport

__all__ = ["CheckpointProvider"]

_P = TypeVar("_P", bound="CheckpointProvider")

_CLAIM_LOCK = threading.Lock()

#: Page size iter_checkpoints and prune use: memory stays bounded by one page.
ITER_PAGE_SIZE = 500


def _takes_order(method: Any) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C callable or the like
        return True
    return "order" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _with_order(method: Any) -> Any:
    """Give a ``list_checkpoints`` written before ``order`` existed the ``order`` argument."""

    @functools.wraps(method)
    def list_checkpoints(self: CheckpointProvider, *, order: str = "desc",
                         limit: int | None = None, **filters: Any) -> list[CheckpointListItem]:
        if check_order(order) == "desc":
            return method(self, limit=limit, **filters)  # type: ignore[no-any-return]
        check_limit(limit)
        items = method(self, **filters)
        items.reverse()
        return items if limit is None else items[:limit]  # type: ignore[no-any-return]

    return list_checkpoints


class CheckpointProvider(ABC):
    """Stores, lists, retrieves and deletes agent checkpoints.

    Implementations must be safe to call from several threads at once. A provider is a context
    manager: leaving the ``with`` block calls :meth:`close`.
    """

    iter_page_size: int = ITER_PAGE_SIZE
    """Checkpoints :meth:`iter_checkpoints` reads per page (its memory bound)."""

    retention_policy: RetentionPolicy | None = None
    """The policy :meth:`apply_retention` applies when given none; ``load_provider`` sets it
    from the provider's ``[checkpoints.providers.<name>.retention]`` table."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("list_checkpoints")
        if own is not None and not _takes_order(own):
            cls.list_checkpoints = _with_order(own)  # type: ignore[method-assign]

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
        order: str = "desc",
    ) -> list[CheckpointListItem]:
        """List checkpoints newest first, without their states.

        Ordered by ``created_at`` descending, ties by ``id`` descending; ``order="asc"`` gives
        the exact reverse (oldest first, ties by ``id`` ascending). Filters combine with AND
        and match exactly; ``before``/``after`` are strict bounds on ``created_at`` (epoch
        ms); ``limit=None`` returns every match.

        A provider written before ``order`` existed (its ``list_checkpoints`` takes no
        ``order``) keeps working: the base class adds the argument, reading the whole match
        and reversing it for ``"asc"``.
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
        order: str = "desc",
    ) -> CheckpointPage:
        """Return one page of the listing, and the cursor of the next one.

        Items come in the order of :meth:`list_checkpoints` (``created_at`` descending, ties by
        id descending; with ``order="asc"`` the exact reverse). Start with ``cursor=None`` and
        pass each page's ``next_cursor`` to get the next page; walking until ``next_cursor``
        is None yields every matching checkpoint exactly once, even when many share a
        ``created_at``. A cursor belongs to the order it was made in: passing it with the
        other order is an error.

        Args:
            limit: most items on the page, a positive int.
            cursor: ``next_cursor`` of the previous page, or None for the first page.
            order: ``"desc"`` (newest first, the default) or ``"asc"`` (oldest first).

        Raises:
            InvalidCheckpointError: a malformed cursor, limit, order or filter, or a cursor
                of the other order.
        """
        check_page_limit(limit)
        ascending = check_order(order) == "asc"
        position = decode_cursor(cursor, order) if cursor is not None else None
        if filter_values(agent_id, session_id, agent_type, before, after) is None:
            return CheckpointPage([], None)
        if position is not None:
            # Everything on the cursor's side of its created_at, then skip the ties before it.
            if ascending:
                edge = position[0] - 1
                after = edge if after is None else max(after, edge)
            else:
                edge = position[0] + 1
                before = edge if before is None else min(before, edge)
        fetch = limit + 1
        while True:
            rows = self.list_checkpoints(agent_id=agent_id, session_id=session_id,
                                         agent_type=agent_type, before=before, after=after,
                                         limit=fetch, order=order)
            items = rows
            if position is not None:
                items = [r for r in rows if ((r.created_at, r.id) > position) == ascending
                         and (r.created_at, r.id) != position]
            # Stop when a page and one more are found, or the listing ran out; otherwise the
            # cursor sat behind many ties: fetch twice as many and look again.
            if len(items) > limit or len(rows) < fetch:
                break
            fetch *= 2
        if len(items) > limit:
            last = items[limit - 1]
            return CheckpointPage(items[:limit], encode_cursor(last.created_at, last.id, order))
        return CheckpointPage(items, None)

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
        """Yield every matching checkpoint in listing order, one page in memory at a time.

        Filters and ``order`` are those of :meth:`list_checkpoints`, checked at the call (a
        bad one raises here, not at the first ``next()``). Checkpoints stored or deleted while
        iterating may or may not be seen, but none is yielded twice.
        """
        check_order(order)
        values = filter_values(agent_id, session_id, agent_type, before, after)
        return self._iterate_generic(values is not None, agent_id=agent_id,
                                     session_id=session_id, agent_type=agent_type,
                                     before=before, after=after, ascending=order == "asc")

    def _iterate_generic(self, matches: bool, *, agent_id: str | None,
                         session_id: str | None, agent_type: str | None, before: int | None,
                         after: int | None, ascending: bool = False
                         ) -> Iterator[CheckpointListItem]:
        # Pages of list_checkpoints bounded by created_at only: where a page ends inside a
        # group of checkpoints sharing one created_at, that whole group is read once, and the
        # next page starts past it. (Seeking by cursor instead would re-read every tied row
        # before the cursor on each page: quadratic in the size of a tie group.)
        if not matches:
            return
        size = self.iter_page_size
        order = "asc" if ascending else "desc"

        def listing(before: int | None, after: int | None, limit: int | None = None
                    ) -> list[CheckpointListItem]:
            return self.list_checkpoints(agent_id=agent_id, session_id=session_id,
                                         agent_type=agent_type, before=before, after=after,
                                         limit=limit, order=order)

        while True:
            rows = listing(before, after, size)
            if len(rows) < size:
                yield from rows
                return
            last = rows[-1].created_at
            if ascending:
                yield from (r for r in rows if r.created_at < last)
            else:
                yield from (r for r in rows if r.created_at > last)
            yield from listing(last + 1, last - 1 if last > 0 else None)
            if ascending:
                if last >= MAX_CREATED_AT or (before is not None and last + 1 >= before):
                    return
                after = last
            else:
                if last == 0 or (after is not None and last - 1 <= after):
                    return
                before = last

    def count_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> int:
        """How many checkpoints match these filters (those of :meth:`list_checkpoints`).

        The generic version walks :meth:`iter_checkpoints`; a database provider runs one
        ``COUNT(*)``, which still reads every matching index entry: paging by cursor stays the
        way to walk a large store (see the README for what a count costs at a million rows).
        """
        return sum(1 for _ in self.iter_checkpoints(
            agent_id=agent_id, session_id=session_id, agent_type=agent_type,
            before=before, after=after))

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

    # -- app checkpoints -----------------------------------------------------------------
    # The state of the whole application rather than of one agent. A provider that does not
    # store them keeps working: storing one is an error, and the readers find nothing.

    @property
    def supports_app_checkpoints(self) -> bool:
        """True if this provider stores app checkpoints (it overrides store_app_checkpoint)."""
        return type(self).store_app_checkpoint is not CheckpointProvider.store_app_checkpoint

    def store_app_checkpoint(self, checkpoint: AppCheckpoint) -> str:
        """Store an app checkpoint; returns its new id (unique, sorting by creation time).

        Raises:
            InvalidCheckpointError: a field or the state breaks the contract of checkpoints.
            CheckpointError: this provider does not store app checkpoints.
        """
        raise CheckpointError(f"{type(self).__name__} does not store app checkpoints")

    def import_app_checkpoint(self, checkpoint: StoredAppCheckpoint) -> bool:
        """Store an app checkpoint under its own id; False (nothing written) if it exists."""
        raise CheckpointError(
            f"{type(self).__name__} cannot import app checkpoints with their ids")

    def retrieve_app_checkpoint(self, checkpoint_id: str) -> StoredAppCheckpoint | None:
        """Return the app checkpoint with this id, or None (also for a malformed id)."""
        return None

    def list_app_checkpoints(self, *, limit: int | None = None) -> list[AppCheckpointListItem]:
        """List app checkpoints newest first (ties by id descending), without their states."""
        check_limit(limit)
        return []

    def latest_app_checkpoint(self) -> StoredAppCheckpoint | None:
        """The newest app checkpoint, with its state; None if there is none.

        The generic version lists one and retrieves it (again, if it was deleted between).
        """
        for _ in range(3):
            newest = self.list_app_checkpoints(limit=1)
            if not newest:
                return None
            found = self.retrieve_app_checkpoint(newest[0].id)
            if found is not None:
                return found
        return None

    def delete_app_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete an app checkpoint; True if one was removed."""
        return False

    def count_app_checkpoints(self) -> int:
        """How many app checkpoints are stored."""
        return len(self.list_app_checkpoints())

    # -- retention ------------------------------------------------------------------------

    def apply_retention(self, dry_run: bool = False, *,
                        policy: RetentionPolicy | None = None) -> RetentionReport:
        """Delete what the retention policy no longer keeps; returns what went, per rule.

        Args:
            dry_run: count only; delete nothing.
            policy: the policy; default :attr:`retention_policy`.

        Rules apply in the order of :data:`~peewee_checkpoints.retention.RULES`; a checkpoint
        several rules remove is counted under the first. Deletion runs in batches of 500, each
        its own short transaction. The generic version walks the listings and deletes by id,
        and reports stored bytes as 0 (only a database provider knows them).

        Raises:
            ConfigError: no policy is given or configured.
        """
        from .retention import RetentionReport, require_policy

        chosen = require_policy(self, policy)
        report = RetentionReport(dry_run=dry_run)
        now = now_ms()
        kept: dict[str, int] = {}
        doomed: list[tuple[str, str]] = []
        cutoff = None if chosen.max_age_ms is None else now - chosen.max_age_ms
        for item in self.iter_checkpoints():
            rank = kept.get(item.agent_id, 0)
            kept[item.agent_id] = rank + 1
            if cutoff is not None and item.created_at < cutoff and not (
                    chosen.keep_latest and rank == 0):
                doomed.append(("max_age", item.id))
            elif chosen.max_per_agent is not None and rank >= chosen.max_per_agent:
                doomed.append(("max_per_agent", item.id))
            if len(doomed) >= self.iter_page_size:
                self._retire(doomed, report, dry_run, self.delete_checkpoint)
        self._retire(doomed, report, dry_run, self.delete_checkpoint)
        cutoff = None if chosen.app_max_age_ms is None else now - chosen.app_max_age_ms
        if cutoff is not None or chosen.app_max_total is not None:
            for rank, app in enumerate(self.list_app_checkpoints()):
                if cutoff is not None and app.created_at < cutoff:
                    doomed.append(("app_max_age", app.id))
                elif chosen.app_max_total is not None and rank >= chosen.app_max_total:
                    doomed.append(("app_max_total", app.id))
            self._retire(doomed, report, dry_run, self.delete_app_checkpoint)
        return report

    @staticmethod
    def _retire(doomed: list[tuple[str, str]], report: RetentionReport, dry_run: bool,
                delete: Callable[[str], bool]) -> None:
        for rule, checkpoint_id in doomed:
            if dry_run or delete(checkpoint_id):
                report.add(rule, 1, 0)
        doomed.clear()

    def claim_retention_run(self, interval_ms: int) -> bool:
        """Claim the current retention interval for this caller; False if it is taken.

        :class:`~peewee_checkpoints.retention.RetentionSweeper` calls it before each run, so
        that many processes sweeping one store do the work once per interval. This version
        holds the claim in the provider object (one process); a database provider holds it
        in the database (the Peewee provider: one conditional UPDATE of a lease row).
        """
        now = now_ms()
        with _CLAIM_LOCK:
            if now < getattr(self, "_retention_claimed_until", 0):
                return False
            self._retention_claimed_until = now + interval_ms
        return True

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
