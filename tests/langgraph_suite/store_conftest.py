"""conftest for LangGraph's store tests run against PeeweeStore (see run_store_suite.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from lgtests.embed_test_utils import CharacterEmbeddings  # LangGraph's modules import it here

from peewee_checkpoints.langgraph import PeeweeStore
from tests.conftest import create_server_database, drop_server_database

BACKEND = os.environ.get("LG_SUITE_BACKEND", "sqlite")
_SERVER_ENV = {"postgres": "PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL",
               "mysql": "PEEWEE_CHECKPOINTS_TEST_MYSQL_URL"}
# What LangGraph's modules import from their conftest.
DEFAULT_URI = os.environ.get("PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL", "postgresql://localhost/x")
DEFAULT_POSTGRES_URI = DEFAULT_URI
VECTOR_TYPES = ["vector", "halfvec"]
# The TTL LangGraph's Postgres tests configure (their module sets TTL_SECONDS = 6).
TTL_CONFIG = {"default_ttl": 0.1, "refresh_on_read": True, "sweep_interval_minutes": 0.05}
_made: list[tuple[str, str]] = []


def _new_url(tmp: str) -> str:
    if BACKEND == "sqlite":
        return f"sqlite:///{tmp}/store-{uuid.uuid4().hex[:8]}.db"
    admin = os.environ[_SERVER_ENV[BACKEND]]
    url = create_server_database(BACKEND, admin)
    _made.append((admin, url))
    return url


def make_peewee_store(**kwargs: Any) -> PeeweeStore:
    """What `InMemoryStore(**kwargs)` becomes: a PeeweeStore on a fresh database."""
    import tempfile

    kwargs.pop("index", None)  # semantic search is refused; such tests fail on their asserts
    return PeeweeStore(_new_url(tempfile.mkdtemp()), ignore_semantic=True, **kwargs)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for admin, url in _made:
        drop_server_database(BACKEND, admin, url)


@pytest.fixture
def store(tmp_path: Any) -> Iterator[PeeweeStore]:
    s = PeeweeStore(_new_url(str(tmp_path)), ttl=dict(TTL_CONFIG), ignore_semantic=True)  # type: ignore[arg-type]
    s.start_ttl_sweeper()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def fake_embeddings() -> Any:
    return CharacterEmbeddings(dims=500)


@pytest.fixture
async def astore(tmp_path: Any) -> AsyncIterator[PeeweeStore]:
    async with PeeweeStore(_new_url(str(tmp_path)), ttl=dict(TTL_CONFIG),  # type: ignore[arg-type]
                           ignore_semantic=True) as s:
        yield s
