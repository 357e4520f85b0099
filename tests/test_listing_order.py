"""order="asc" and count_checkpoints on a provider written before they existed.

A third-party provider whose ``list_checkpoints`` takes no ``order`` (and that has no
``count_checkpoints``) gets both from the base class, and passes the conformance kit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from peewee_checkpoints import (
    CheckpointListItem,
    CheckpointProvider,
    MemoryCheckpointProvider,
    NamedCheckpoint,
    StoredCheckpoint,
)
from peewee_checkpoints.testing import CheckpointProviderContract


class LegacyProvider(CheckpointProvider):
    """Only the five abstract methods (and import), with the old list signature."""

    def __init__(self) -> None:
        self._inner = MemoryCheckpointProvider()

    def store_checkpoint(self, checkpoint: NamedCheckpoint) -> str:
        return self._inner.store_checkpoint(checkpoint)

    def import_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        return self._inner.import_checkpoint(checkpoint)

    def retrieve_checkpoint(self, checkpoint_id: str) -> StoredCheckpoint | None:
        return self._inner.retrieve_checkpoint(checkpoint_id)

    def list_checkpoints(  # type: ignore[override]
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        agent_type: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CheckpointListItem]:
        return self._inner.list_checkpoints(agent_id=agent_id, session_id=session_id,
                                            agent_type=agent_type, before=before,
                                            after=after, limit=limit)

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        return self._inner.delete_checkpoint(checkpoint_id)

    def close(self) -> None:
        pass


class TestLegacyProviderContract(CheckpointProviderContract):
    @pytest.fixture
    def provider(self) -> Iterator[CheckpointProvider]:
        with LegacyProvider() as p:
            yield p


def test_the_base_class_adds_order_to_a_legacy_list_checkpoints() -> None:
    p = LegacyProvider()
    for t in (5, 1, 3):
        p.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}, created_at=t))
    assert [i.created_at for i in p.list_checkpoints(order="asc")] == [1, 3, 5]
    assert [i.created_at for i in p.list_checkpoints(order="asc", limit=2)] == [1, 3]
    assert [i.created_at for i in p.list_checkpoints()] == [5, 3, 1]
    assert p.count_checkpoints(after=1) == 2


def test_memory_and_peewee_agree_on_order_and_count(provider: Any) -> None:
    memory = MemoryCheckpointProvider()
    for i in range(40):
        cp = NamedCheckpoint(name=f"n{i}", agent_id=f"a{i % 4}", state={"i": i},
                             created_at=1000 + i // 6)
        stored = StoredCheckpoint(id=f"id{i:03d}", **cp.__dict__)
        memory.import_checkpoint(stored)
        provider.import_checkpoint(stored)
    for filters in ({}, {"agent_id": "a2"}, {"after": 1001, "before": 1005}):
        for order in ("asc", "desc"):
            assert provider.list_checkpoints(order=order, **filters) == \
                memory.list_checkpoints(order=order, **filters)
            assert list(provider.iter_checkpoints(order=order, **filters)) == \
                list(memory.iter_checkpoints(order=order, **filters))
        assert provider.count_checkpoints(**filters) == memory.count_checkpoints(**filters)
