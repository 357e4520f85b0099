"""asyncio access to any provider, without blocking the event loop."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from ._cursor import check_order
from ._validation import filter_values
from .interface import CheckpointProvider
from .records import (
    AppCheckpoint,
    AppCheckpointListItem,
    CheckpointListItem,
    CheckpointPage,
    NamedCheckpoint,
    StoredAppCheckpoint,
    StoredCheckpoint,
)
from .retention import RetentionPolicy, RetentionReport

__all__ = ["AsyncCheckpointProvider"]

_T = TypeVar("_T")


class AsyncCheckpointProvider:
    """The provider interface as coroutines, for asyncio agent loops.

    Each call runs the wrapped (synchronous) provider in a private, bounded thread pool. The
    Peewee provider keeps one connection per thread, so the pool's size is also the most
    connections this wrapper opens, and its threads live as long as the wrapper, so their
    connections are reused rather than reopened. Database drivers release the GIL while they
    wait on the server, so the event loop keeps running during every call.

    Args:
        provider: any :class:`CheckpointProvider`.
        max_workers: threads (and so connections) at most; default ``min(8, cpu count + 4)``.
    """

    def __init__(self, provider: CheckpointProvider, *, max_workers: int | None = None) -> None:
        self._provider = provider
        workers = max_workers or min(8, (os.cpu_count() or 1) + 4)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="peewee-checkpoints")

    @property
    def provider(self) -> CheckpointProvider:
        """The wrapped synchronous provider."""
        return self._provider

    async def _run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def store_checkpoint(self, checkpoint: NamedCheckpoint) -> str:
        """See :meth:`CheckpointProvider.store_checkpoint`."""
        return await self._run(self._provider.store_checkpoint, checkpoint)

    async def retrieve_checkpoint(self, checkpoint_id: str) -> StoredCheckpoint | None:
        """See :meth:`CheckpointProvider.retrieve_checkpoint`."""
        return await self._run(self._provider.retrieve_checkpoint, checkpoint_id)

    async def list_checkpoints(
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
        """See :meth:`CheckpointProvider.list_checkpoints`."""
        return await self._run(
            self._provider.list_checkpoints, agent_id=agent_id, session_id=session_id,
            agent_type=agent_type, before=before, after=after, limit=limit, order=order,
        )

    async def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """See :meth:`CheckpointProvider.delete_checkpoint`."""
        return await self._run(self._provider.delete_checkpoint, checkpoint_id)

    async def import_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """See :meth:`CheckpointProvider.import_checkpoint`."""
        return await self._run(self._provider.import_checkpoint, checkpoint)

    async def page_checkpoints(
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
        """See :meth:`CheckpointProvider.page_checkpoints`."""
        return await self._run(
            self._provider.page_checkpoints, agent_id=agent_id, session_id=session_id,
            agent_type=agent_type, before=before, after=after, limit=limit, cursor=cursor,
            order=order,
        )

    def iter_checkpoints(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
        order: str = "desc",
    ) -> AsyncIterator[CheckpointListItem]:
        """Yield every match in listing order, fetching one page at a time off the loop.

        ``async for item in ap.iter_checkpoints(agent_id="a"): ...``; memory stays at one page
        (the wrapped provider's ``iter_page_size`` items). As with the synchronous method, the
        filters are checked at the call: a bad one raises here, not at the first item.
        """
        filter_values(agent_id, session_id, agent_type, before, after)
        check_order(order)
        return self._iter_pages(agent_id=agent_id, session_id=session_id,
                                agent_type=agent_type, before=before, after=after, order=order)

    async def _iter_pages(self, **filters: Any) -> AsyncIterator[CheckpointListItem]:
        cursor: str | None = None
        while True:
            page = await self.page_checkpoints(
                **filters, limit=self._provider.iter_page_size, cursor=cursor,
            )
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def prune(
        self,
        *,
        before: int | None = None,
        keep_last_per_agent: int | None = None,
        dry_run: bool = False,
    ) -> int:
        """See :meth:`CheckpointProvider.prune`."""
        return await self._run(
            self._provider.prune, before=before, keep_last_per_agent=keep_last_per_agent,
            dry_run=dry_run,
        )

    async def count_checkpoints(self, **filters: Any) -> int:
        """See :meth:`CheckpointProvider.count_checkpoints`."""
        return await self._run(self._provider.count_checkpoints, **filters)

    async def store_app_checkpoint(self, checkpoint: AppCheckpoint) -> str:
        """See :meth:`CheckpointProvider.store_app_checkpoint`."""
        return await self._run(self._provider.store_app_checkpoint, checkpoint)

    async def retrieve_app_checkpoint(self, checkpoint_id: str) -> StoredAppCheckpoint | None:
        """See :meth:`CheckpointProvider.retrieve_app_checkpoint`."""
        return await self._run(self._provider.retrieve_app_checkpoint, checkpoint_id)

    async def list_app_checkpoints(self, *, limit: int | None = None
                                   ) -> list[AppCheckpointListItem]:
        """See :meth:`CheckpointProvider.list_app_checkpoints`."""
        return await self._run(self._provider.list_app_checkpoints, limit=limit)

    async def latest_app_checkpoint(self) -> StoredAppCheckpoint | None:
        """See :meth:`CheckpointProvider.latest_app_checkpoint`."""
        return await self._run(self._provider.latest_app_checkpoint)

    async def delete_app_checkpoint(self, checkpoint_id: str) -> bool:
        """See :meth:`CheckpointProvider.delete_app_checkpoint`."""
        return await self._run(self._provider.delete_app_checkpoint, checkpoint_id)

    async def apply_retention(self, dry_run: bool = False, *,
                              policy: RetentionPolicy | None = None) -> RetentionReport:
        """See :meth:`CheckpointProvider.apply_retention`."""
        return await self._run(self._provider.apply_retention, dry_run, policy=policy)

    async def close(self) -> None:
        """Close the wrapped provider, then stop the thread pool."""
        try:
            await self._run(self._provider.close)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncCheckpointProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncCheckpointProvider({self._provider!r})"
