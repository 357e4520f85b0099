"""PeeweeSaver beyond the conformance suite: issue 14's findings, each on every backend.

Namespaces of any depth, dotted metadata filters, ``asetup``, connections shared by worker
threads, and the saver used the way LangGraph's own are (``from_conn_string``, ``with`` /
``async with``).
"""

from __future__ import annotations

import asyncio
import gc
import operator
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH"):
    pytest.importorskip("langgraph.checkpoint.conformance",
                        reason="pip install -e '.[langgraph-test]'")

from langgraph.checkpoint.conformance.test_utils import generate_checkpoint

from peewee_checkpoints.langgraph import PeeweeSaver
from peewee_checkpoints.langgraph._sql import BLOBS, CHECKPOINTS


def open_connections(database: Any) -> int:
    """Connections the engine's database holds open: pooled (in use or idle), or on SQLite
    (a connection per thread, closed when its thread ends) the live ones."""
    if hasattr(database, "_in_use"):
        return len(database._in_use) + len(database._connections)
    gc.collect()
    return sum(1 for _ in database._pc_live)


@pytest.fixture
def saver(db_url: str) -> Iterator[PeeweeSaver]:
    s = PeeweeSaver(db_url)
    try:
        yield s
    finally:
        s.close()


def _config(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _put(saver: PeeweeSaver, thread: str, ns: str, values: dict[str, Any], *,
         metadata: dict[str, Any] | None = None, parent: str | None = None) -> str:
    versions = {channel: saver.get_next_version(None, None) for channel in values}
    checkpoint = generate_checkpoint(channel_values=values, channel_versions=versions)
    saver.put(_config(thread, ns, parent), checkpoint, metadata or {}, versions)  # type: ignore[arg-type]
    return str(checkpoint["id"])


# -- namespaces of any depth ---------------------------------------------------------------------


def _deep_ns(levels: int) -> str:
    # What LangGraph makes: "node:task-uuid" per level, joined with "|".
    return "|".join(f"level_{i}:{uuid.uuid4()}" for i in range(levels))


@pytest.mark.parametrize("levels", [1, 5, 7, 40, 400])
def test_checkpoint_namespaces_of_any_depth_round_trip(saver: PeeweeSaver, levels: int) -> None:
    thread, ns = str(uuid.uuid4()), _deep_ns(levels)
    first = _put(saver, thread, ns, {"messages": ["x" * 300], "n": 1})
    second = _put(saver, thread, ns, {"messages": ["y" * 300], "n": 2}, parent=first)
    saver.put_writes(_config(thread, ns, second), [("messages", "w")], "task-1")

    latest = saver.get_tuple(_config(thread, ns))
    assert latest is not None
    assert latest.config["configurable"]["checkpoint_ns"] == ns
    assert latest.checkpoint["id"] == second
    assert latest.checkpoint["channel_values"] == {"messages": ["y" * 300], "n": 2}
    assert latest.parent_config is not None
    assert latest.parent_config["configurable"]["checkpoint_ns"] == ns
    assert latest.pending_writes == [("task-1", "messages", "w")]
    by_id = saver.get_tuple(_config(thread, ns, first))
    assert by_id is not None and by_id.checkpoint["channel_values"]["messages"] == ["x" * 300]

    listed = list(saver.list(_config(thread, ns)))
    assert [t.checkpoint["id"] for t in listed] == [second, first]
    assert {t.config["configurable"]["checkpoint_ns"] for t in listed} == {ns}
    # No namespace given: rows come back with their whole namespace.
    everything = list(saver.list({"configurable": {"thread_id": thread}}))
    assert [t.config["configurable"]["checkpoint_ns"] for t in everything] == [ns, ns]
    # A sibling namespace with the same first 190 characters is another namespace.
    sibling = ns[:-1] + ("0" if ns[-1] != "0" else "1")
    assert saver.get_tuple(_config(thread, sibling)) is None

    saver.copy_thread(thread, thread + "-copy")
    copied = saver.get_tuple(_config(thread + "-copy", ns))
    assert copied is not None and copied.config["configurable"]["checkpoint_ns"] == ns
    saver.prune([thread], strategy="keep_latest")
    assert [t.checkpoint["id"] for t in saver.list(_config(thread, ns))] == [second]
    saver.delete_thread(thread)
    assert saver.get_tuple(_config(thread, ns)) is None


def test_namespaces_written_before_migration_008_are_found_after_it(saver: PeeweeSaver) -> None:
    thread, ns = str(uuid.uuid4()), "n" * 200  # fits 003's 255 characters, not 008's raw 190
    checkpoint_id = _put(saver, thread, ns, {"messages": ["kept" * 100]})
    engine = saver._engine
    # Back to 003: the row gets its plain namespace again, as 003 stored it.
    rolled_back = [engine.rollback_migration()]  # the newest first: later ones, then 008
    while rolled_back[-1] != "008_langgraph_store":
        rolled_back.append(engine.rollback_migration())
    p = engine.param
    for table in (CHECKPOINTS, BLOBS):
        rows = engine.run("read", lambda table=table: engine.execute(
            f"SELECT checkpoint_ns FROM {table} WHERE thread_id = {p}", (thread,)).fetchall())
        assert {row[0] for row in rows} == {ns}
    # The next call applies 008 again, which rewrites it to the key form.
    found = saver.get_tuple(_config(thread, ns))
    assert found is not None and found.checkpoint["id"] == checkpoint_id
    assert found.checkpoint["channel_values"] == {"messages": ["kept" * 100]}
    assert found.config["configurable"]["checkpoint_ns"] == ns


class _Deep(TypedDict):
    trail: Annotated[list[str], operator.add]


def _nested_graph(depth: int, checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def leaf(state: _Deep) -> dict[str, Any]:
        answer = interrupt("continue?")
        return {"trail": [f"leaf:{answer}"]}

    builder = StateGraph(_Deep)
    builder.add_node("leaf_node_with_a_long_descriptive_name", leaf)
    builder.add_edge(START, "leaf_node_with_a_long_descriptive_name")
    builder.add_edge("leaf_node_with_a_long_descriptive_name", END)
    graph = builder.compile()
    for level in range(depth):
        outer = StateGraph(_Deep)
        outer.add_node(f"subgraph_level_{level}", graph)
        outer.add_edge(START, f"subgraph_level_{level}")
        outer.add_edge(f"subgraph_level_{level}", END)
        graph = outer.compile(checkpointer=checkpointer) if level == depth - 1 else outer.compile()
    return graph


def test_a_graph_nested_eight_levels_deep_interrupts_and_resumes(saver: PeeweeSaver) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    reference = _nested_graph(8, InMemorySaver())
    reference.invoke({"trail": ["start"]}, {"configurable": {"thread_id": "ref"}})
    expected = reference.invoke(Command(resume="yes"), {"configurable": {"thread_id": "ref"}})

    graph = _nested_graph(8, saver)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"trail": ["start"]}, config)
    state = graph.get_state(config, subgraphs=True)
    assert state.tasks and state.tasks[0].interrupts
    # The deepest namespace is longer than 003's 255 characters.
    deepest = state
    while deepest.tasks and deepest.tasks[0].state is not None:
        deepest = deepest.tasks[0].state
    assert len(deepest.config["configurable"]["checkpoint_ns"]) > 255
    result = graph.invoke(Command(resume="yes"), config)
    assert result == expected
    assert result["trail"].count("leaf:yes") >= 1


# -- dotted metadata filters ---------------------------------------------------------------------


def test_list_filters_on_dotted_metadata_paths_like_sqlite_saver(saver: PeeweeSaver) -> None:
    thread = str(uuid.uuid4())
    admin = _put(saver, thread, "", {"n": 1}, metadata={"user": {"access-level": "admin", "id": 7}})
    _put(saver, thread, "", {"n": 2}, metadata={"user": {"access-level": "guest", "id": 8}})
    literal = _put(saver, thread, "", {"n": 3}, metadata={"user.access-level": "admin"})

    def ids(filter_: dict[str, Any]) -> set[str]:
        return {t.checkpoint["id"] for t in saver.list(_config(thread), filter=filter_)}

    assert ids({"user.access-level": "admin"}) == {admin, literal}
    assert ids({"user.id": 7}) == {admin}
    assert ids({"user.access-level": "admin", "user.id": 7}) == {admin}
    assert ids({"user.missing": "admin"}) == set()
    assert ids({"user": {"access-level": "guest"}}) != set()  # nested dicts still work


# -- asetup, context managers, from_conn_string --------------------------------------------------


def test_asetup_applies_the_migrations(db_url: str) -> None:
    saver = PeeweeSaver(db_url)
    try:
        asyncio.run(saver.asetup())
        assert "008_langgraph_store" in saver._engine.applied_migrations()
        assert saver._engine.pending_migrations() == []
    finally:
        saver.close()


def test_from_conn_string_sync_and_async_context_managers_close_connections(db_url: str) -> None:
    thread = str(uuid.uuid4())
    with PeeweeSaver.from_conn_string(db_url) as saver:
        _put(saver, thread, "", {"n": 1})
        database = saver._engine.database
    assert open_connections(database) == 0  # every connection closed

    async def main() -> None:
        async with PeeweeSaver.from_conn_string(db_url) as saver:
            assert await saver.aget_tuple(_config(thread)) is not None
            inner = saver._engine.database
        assert open_connections(inner) == 0
        async with PeeweeSaver(db_url) as same:
            assert await same.aget_tuple(_config(thread)) is not None

    asyncio.run(main())


# -- connections shared by worker threads --------------------------------------------------------


def _server_connections(saver: PeeweeSaver) -> int | None:
    engine = saver._engine
    if engine.backend == "postgres":
        sql = ("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
               "AND pid <> pg_backend_pid()")
    elif engine.backend == "mysql":
        sql = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
               "AND ID <> CONNECTION_ID()")
    else:
        return None
    return int(engine.run("count connections", lambda: engine.execute(sql).fetchone()[0]))


def test_short_lived_worker_threads_share_the_pooled_connections(saver: PeeweeSaver) -> None:
    # LangGraph's sync runner calls the saver from new worker threads: they must not each open
    # (and leave open) a connection of their own.
    _put(saver, "warm-up", "", {"n": 0})  # migrations done, one connection in the pool
    opened: dict[int, Any] = {}  # the driver connections handed out (kept: ids stay unique)
    database = saver._engine.database
    hook = database._pc_on_connect

    def counting_hook(conn: Any) -> None:
        opened[id(conn)] = conn
        hook(conn)

    database._pc_on_connect = counting_hook
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            _put(saver, f"thread-{i}", "", {"n": i})
            assert saver.get_tuple(_config(f"thread-{i}")) is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for _ in range(2):  # 2 waves of 20 short-lived threads
        threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    if saver._engine.backend == "sqlite":
        # SQLite keeps a connection (a file handle) per thread, closed when the thread ends.
        opened.clear()
        assert open_connections(database) <= 2
        return
    assert len(opened) <= 8, f"{len(opened)} connections opened for 40 threads"
    on_server = _server_connections(saver)
    assert on_server is not None and on_server <= 8
    assert len(database._connections) <= 8  # idle in the pool, ready for the next thread
