"""The memory provider: the contract kit, plus the same answers as the Peewee provider."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from peewee_checkpoints import (
    MemoryCheckpointProvider,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    load_provider,
)
from peewee_checkpoints.testing import CheckpointProviderContract


class TestMemoryProviderContract(CheckpointProviderContract):
    """The whole contract suite, run in-process."""

    @pytest.fixture
    def provider(self) -> Iterator[MemoryCheckpointProvider]:
        with MemoryCheckpointProvider() as p:
            yield p


def test_two_memory_providers_are_independent() -> None:
    one, two = MemoryCheckpointProvider(), MemoryCheckpointProvider()
    cid = one.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
    assert two.retrieve_checkpoint(cid) is None
    assert two.list_checkpoints() == []
    assert len(one.list_checkpoints()) == 1


def test_close_keeps_the_checkpoints_and_the_provider_usable() -> None:
    provider = MemoryCheckpointProvider()
    cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={"x": 1}))
    provider.close()
    got = provider.retrieve_checkpoint(cid)
    assert got is not None and got.state == {"x": 1}
    assert provider.delete_checkpoint(cid) is True


def test_the_memory_type_is_selectable_from_a_config() -> None:
    config = {"checkpoints": {"providers": {"scratch": {"type": "memory"}}}}
    provider = load_provider(config)
    assert type(provider) is MemoryCheckpointProvider
    assert load_provider(config) is not provider  # every load is a new, empty store


def _same_rows() -> list[NamedCheckpoint]:
    """Checkpoints with many created_at ties and filter values that differ only subtly."""
    agents = ["a", "A", "a ", "é", "e\u0301", "%", "_"]
    rows = []
    for n, (agent, session) in enumerate(itertools.product(agents, ["s", "S", ""])):
        rows.append(NamedCheckpoint(name=f"n{n:03d}", agent_id=agent, session_id=session,
                                    agent_type="t" if n % 2 else "", state={"n": n},
                                    created_at=1000 + n % 4))
    return rows


def _listing(provider: Any, **filters: Any) -> list[tuple[str, str, str, str, int]]:
    return [(i.name, i.agent_id, i.session_id, i.agent_type, i.created_at)
            for i in provider.list_checkpoints(**filters)]


def test_memory_and_peewee_list_the_same_rows_in_the_same_order(
    provider: PeeweeCheckpointProvider,
) -> None:
    """Stored in the same order, ids sort the same way, so every listing must be identical."""
    memory = MemoryCheckpointProvider()
    for cp in _same_rows():
        provider.store_checkpoint(cp)
        memory.store_checkpoint(cp)
    queries: list[dict[str, Any]] = [
        {}, {"limit": 5}, {"limit": 0}, {"before": 1002}, {"after": 1001}, {"after": 1000,
        "before": 1003}, {"agent_id": "a"}, {"agent_id": "A"}, {"agent_id": "a "},
        {"agent_id": "é"}, {"agent_id": "%"}, {"session_id": "s", "agent_type": "t"},
        {"session_id": ""}, {"agent_type": ""}, {"agent_id": "_", "limit": 2},
        {"before": 2**70, "after": -5}, {"agent_id": "x" * 300}, {"agent_id": "a\x00"},
    ]
    for query in queries:
        assert _listing(memory, **query) == _listing(provider, **query), query
