"""Behaviour specific to the Peewee provider: the SQL it runs, schema details per backend,
independent databases in one process, and very large states."""

from __future__ import annotations

import random
from typing import Any

import pytest

from peewee_checkpoints import (
    Checkpoint,
    ConfigError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
)
from tests.conftest import captured_sql


def chat_state(approx_bytes: int, seed: int = 7) -> dict[str, Any]:
    """A chat history of varied words (realistic for compression), about ``approx_bytes``."""
    rng = random.Random(seed)
    words = ["agent", "tool", "result", "the", "a", "checkpoint", "function", "call", "user",
             "because", "database", "error", "retry", "token", "context", "plan", "step",
             "file", "line", "value", "json", "model", "answer", "question", "why", "how"]
    messages = []
    size = 0
    while size < approx_bytes:
        text = " ".join(rng.choice(words) + str(rng.randint(0, 999)) for _ in range(60))
        messages.append({"role": rng.choice(["user", "assistant", "tool"]), "content": text})
        size += len(text) + 40
    return {"messages": messages}


def test_list_never_reads_the_state_column(provider: PeeweeCheckpointProvider) -> None:
    for i in range(3):
        provider.store_checkpoint(NamedCheckpoint(name=f"n{i}", agent_id="a", state={"i": i}))
    with captured_sql() as statements:
        provider.list_checkpoints()
        provider.list_checkpoints(agent_id="a", session_id="", agent_type="", before=2**40,
                                  after=0, limit=2)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2
    for sql in selects:
        assert "state" not in sql.lower(), sql
    # The same capture does see the state when a checkpoint is retrieved.
    with captured_sql() as statements:
        provider.retrieve_checkpoint(provider.list_checkpoints()[0].id)
    assert any("state" in s.lower() for s in statements)


def test_list_uses_an_index_for_the_filtered_newest_first_order(
    provider: PeeweeCheckpointProvider, backend: str
) -> None:
    for i in range(50):
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id=f"a{i % 5}", state={}))
    statement = provider._sql.list(["agent_id"], limited=True)
    params = statement.params({"agent_id": "a1", "limit": 10})
    explain = {"sqlite": "EXPLAIN QUERY PLAN ", "postgres": "EXPLAIN ", "mysql": "EXPLAIN "}
    if backend == "postgres":
        provider.database.execute_sql("SET enable_seqscan = off")  # tiny table: force the choice
    rows = provider.database.execute_sql(explain[backend] + statement.sql, params).fetchall()
    plan = " ".join(str(c) for row in rows for c in row)
    assert "peewee_checkpoints_agent_idx" in plan, plan
    assert "TEMP B-TREE" not in plan.upper() and "filesort" not in plan, plan


def test_providers_with_different_urls_in_one_process_are_independent(
    servers: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.conftest import make_db_url

    sqlite_urls = make_db_url("sqlite", servers, tmp_path_factory)
    pg_urls = make_db_url("postgres", servers, tmp_path_factory)
    lite = PeeweeCheckpointProvider(next(sqlite_urls))
    pg = PeeweeCheckpointProvider(next(pg_urls))
    try:
        mine: dict[str, list[str]] = {"lite": [], "pg": []}
        for i in range(10):
            for label, p in (("lite", lite), ("pg", pg)):
                mine[label].append(p.store_checkpoint(
                    NamedCheckpoint(name=f"{label}{i}", agent_id=label, state={"i": i})))
        for label, p in (("lite", lite), ("pg", pg)):
            items = p.list_checkpoints()
            assert sorted(i.id for i in items) == sorted(mine[label])
            assert {i.agent_id for i in items} == {label}
        assert lite.retrieve_checkpoint(mine["pg"][0]) is None
        assert pg.retrieve_checkpoint(mine["lite"][0]) is None
        assert lite.model.select().count() == 10 and pg.model.select().count() == 10
    finally:
        lite.close()
        pg.close()
        for urls in (sqlite_urls, pg_urls):
            for _ in urls:  # run the generator's cleanup (drop the database)
                pass


test_providers_with_different_urls_in_one_process_are_independent = pytest.mark.backends(
    "sqlite", "postgres")(test_providers_with_different_urls_in_one_process_are_independent)


def test_the_bound_model_queries_the_providers_own_database(
    provider: PeeweeCheckpointProvider,
) -> None:
    cid = provider.store_checkpoint(NamedCheckpoint(name="orm", agent_id="a", state={"k": 1}))
    model = provider.model
    assert issubclass(model, Checkpoint)
    row = model.get(model.id == cid)
    assert (row.name, row.agent_id) == ("orm", "a")


def test_a_20_mib_state_round_trips_or_fails_naming_the_server_limit(
    provider: PeeweeCheckpointProvider, backend: str
) -> None:
    state = chat_state(20 * 1024 * 1024)
    try:
        cid = provider.store_checkpoint(NamedCheckpoint(name="huge", agent_id="a", state=state))
    except StorageError as exc:
        # Only MySQL/MariaDB has a per-statement limit below 20 MiB (max_allowed_packet).
        assert backend == "mysql", exc
        assert "max_allowed_packet" in str(exc)
        assert provider.list_checkpoints() == []
        return
    got = provider.retrieve_checkpoint(cid)
    assert got is not None and got.state == state


@pytest.mark.parametrize("backend", ["mysql"])
def test_mysql_tables_are_utf8mb4_with_an_exact_collation_in_a_latin1_database(
    provider: PeeweeCheckpointProvider,
) -> None:
    provider.migrate()
    db = provider.database
    charset = db.execute_sql(
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
        "WHERE SCHEMA_NAME = DATABASE()").fetchone()[0]
    assert charset == "latin1"  # conftest creates test databases latin1 on purpose
    columns = db.execute_sql(
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'peewee_checkpoints' "
        "AND CHARACTER_SET_NAME IS NOT NULL").fetchall()
    assert {c[0] for c in columns} == {"id", "name", "agent_id", "session_id", "agent_type",
                                       "state_key"}
    columns += db.execute_sql(
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('peewee_checkpoints_app', "
        "'peewee_checkpoints_leases') AND CHARACTER_SET_NAME IS NOT NULL").fetchall()
    assert len(columns) == 6 + 3 + 2
    for _name, charset, collation in columns:
        assert charset == "utf8mb4"
        assert collation in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")


@pytest.mark.parametrize(
    "url",
    ["", "nosuchscheme://x/y", "postgresql:///", "mysql://root@127.0.0.1", "postgresql://host", "cockroachdb://u@h/db",
     "mysqlconnector://u@h/db", "http://example.invalid/db"],
)
def test_a_bad_db_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        PeeweeCheckpointProvider(url)


def test_an_in_memory_sqlite_database_is_shared_by_the_providers_threads() -> None:
    import threading

    with PeeweeCheckpointProvider("sqlite:///:memory:") as provider:
        cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(provider.retrieve_checkpoint(cid)))
        thread.start()
        thread.join()
        assert seen and seen[0] is not None


def test_the_repr_and_url_hide_the_password() -> None:
    provider = PeeweeCheckpointProvider("postgresql://user:s3cr3t-pw@127.0.0.1:1/db")
    assert "s3cr3t-pw" not in repr(provider)
    assert "s3cr3t-pw" not in provider.url
    assert "***" in provider.url
