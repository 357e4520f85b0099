"""AsyncCheckpointProvider on every backend: same results as the sync API, loop never blocked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import (
    CheckpointProvider,
    InvalidCheckpointError,
    MemoryCheckpointProvider,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StoredCheckpoint,
)
from peewee_checkpoints.aio import AsyncCheckpointProvider


def _cp(i: int) -> NamedCheckpoint:
    return NamedCheckpoint(name=f"n{i}", agent_id=f"agent{i % 4}", state={"i": i, "msg": "x" * 200},
                           created_at=1_000 + i)


def test_every_method_works_as_a_coroutine(db_url: str) -> None:
    async def scenario() -> None:
        async with AsyncCheckpointProvider(PeeweeCheckpointProvider(db_url)) as ap:
            cid = await ap.store_checkpoint(_cp(1))
            got = await ap.retrieve_checkpoint(cid)
            assert got is not None and got.state == {"i": 1, "msg": "x" * 200}
            assert [i.id for i in await ap.list_checkpoints(agent_id="agent1")] == [cid]
            copied = StoredCheckpoint(**{**got.__dict__, "id": "01HAAAAAAAAAAAAAAAAAAAAAAA"})
            assert await ap.import_checkpoint(copied) is True
            assert await ap.delete_checkpoint(cid) is True
            assert await ap.retrieve_checkpoint(cid) is None
            for i in range(2, 12):
                await ap.store_checkpoint(_cp(i))
            page = await ap.page_checkpoints(limit=4)
            assert [i.created_at for i in page.items] == [1011, 1010, 1009, 1008]
            rest = await ap.page_checkpoints(limit=100, cursor=page.next_cursor)
            assert rest.next_cursor is None and len(rest.items) == 7
            ap.provider.iter_page_size = 3  # many pages
            walked = [item async for item in ap.iter_checkpoints()]
            assert walked == await ap.list_checkpoints()
            assert [i.id async for i in ap.iter_checkpoints(agent_id="agent1")] == [
                i.id for i in await ap.list_checkpoints(agent_id="agent1")]
            assert await ap.prune(before=1005, dry_run=True) == 4
            assert await ap.prune(keep_last_per_agent=1) == 7
            assert len(await ap.list_checkpoints()) == 4

    asyncio.run(scenario())


def test_200_concurrent_tasks_while_the_event_loop_keeps_ticking(db_url: str) -> None:
    async def scenario() -> None:
        ticks = 0
        running = True

        async def ticker() -> None:
            nonlocal ticks
            while running:
                ticks += 1
                await asyncio.sleep(0.001)

        async with AsyncCheckpointProvider(PeeweeCheckpointProvider(db_url)) as ap:
            await ap.list_checkpoints()  # migrations out of the way
            tick_task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            start = ticks

            async def one(i: int) -> str:
                cid = await ap.store_checkpoint(_cp(i))
                assert await ap.retrieve_checkpoint(cid) is not None
                await ap.list_checkpoints(agent_id=f"agent{i % 4}", limit=5)
                return cid

            ids = await asyncio.gather(*(one(i) for i in range(200)))
            during = ticks - start
            running = False
            await tick_task
            assert len(set(ids)) == 200
            assert len(await ap.list_checkpoints()) == 200
            # A wrapper that blocked the loop would let the ticker run only between calls.
            assert during >= 20, during

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["sqlite"])
def test_close_releases_the_connections_of_the_pool_threads(db_url: str) -> None:
    provider = PeeweeCheckpointProvider(db_url)

    async def scenario() -> None:
        ap = AsyncCheckpointProvider(provider, max_workers=4)
        await asyncio.gather(*(ap.store_checkpoint(_cp(i)) for i in range(20)))
        db = provider.database
        # At most one connection per worker, whether pooled (servers: returned after each
        # call) or kept per thread (SQLite).
        assert 1 <= _open_connections(db) <= 4
        await ap.close()
        assert _open_connections(db) == 0

    asyncio.run(scenario())


def test_iter_checkpoints_checks_its_filters_at_the_call_like_the_sync_one(tmp_path: Path) -> None:
    bad: dict[str, Any] = {"agent_id": 5}

    async def scenario(provider: CheckpointProvider) -> None:
        with pytest.raises(InvalidCheckpointError, match="agent_id"):
            provider.iter_checkpoints(**bad)  # not at the first next()
        async with AsyncCheckpointProvider(provider) as ap:
            with pytest.raises(InvalidCheckpointError, match="agent_id"):
                ap.iter_checkpoints(**bad)  # not at the first __anext__()
            with pytest.raises(InvalidCheckpointError, match="before"):
                ap.iter_checkpoints(before="yesterday")  # type: ignore[arg-type]
            assert [i.id async for i in ap.iter_checkpoints(agent_id="a")] == []

    asyncio.run(scenario(PeeweeCheckpointProvider(f"sqlite:///{tmp_path / 'c.db'}")))
    asyncio.run(scenario(MemoryCheckpointProvider()))


def _open_connections(db: Any) -> int:
    if hasattr(db, "_in_use"):  # playhouse's pool: idle plus checked out
        return len(db._connections) + len(db._in_use)
    return len(db._pc_live)  # SQLite's connection per thread
