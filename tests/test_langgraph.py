"""The LangGraph checkpointer: LangGraph's own conformance suite and a real graph, per backend.

Needs the ``langgraph-test`` extra. Every LangGraph package used here supports Python 3.10+,
like this package, so these tests run wherever the rest does; the module is skipped only when
LangGraph is not installed at all (``pip install -e '.[test,langgraph-test]'`` installs it),
and not even then when ``PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH`` is set (CI sets it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import peewee as pw
import pytest

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH"):
    # CI sets the variable, so a failed install fails there instead of skipping quietly.
    pytest.importorskip(
        "langgraph.checkpoint.conformance", reason="pip install -e '.[langgraph-test]'"
    )

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from peewee_checkpoints import ConfigError, InvalidCheckpointError, PeeweeCheckpointProvider
from peewee_checkpoints.langgraph import PeeweeSaver
from peewee_checkpoints.langgraph._sql import BLOBS, CHECKPOINTS, WRITES

CAPABILITIES = (
    "put", "put_writes", "get_tuple", "list", "delete_thread",
    "delete_for_runs", "copy_thread", "prune",
)


@pytest.fixture
def saver(db_url: str) -> Iterator[PeeweeSaver]:
    s = PeeweeSaver(db_url)
    try:
        yield s
    finally:
        s.close()


def _config(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _checkpoint(values: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    from langgraph.checkpoint.conformance.test_utils import generate_checkpoint

    return dict(generate_checkpoint(channel_values=values, channel_versions=versions))


def _count(saver: PeeweeSaver, table: str, thread_id: str) -> int:
    sql = f"SELECT COUNT(*) FROM {table} WHERE thread_id = {saver._db.param}"
    return int(saver._db.execute_sql(sql, (thread_id,)).fetchone()[0])


def test_langgraph_conformance_suite_passes_every_capability(db_url: str, backend: str) -> None:
    @checkpointer_test(name=f"PeeweeSaver[{backend}]")
    async def factory() -> AsyncIterator[PeeweeSaver]:
        s = PeeweeSaver(db_url)
        try:
            yield s
        finally:
            s.close()

    report = asyncio.run(validate(factory)).to_dict()
    results = report.get("results", report)
    lines = []
    for capability in CAPABILITIES:
        r = results[capability]
        lines.append(
            f"{backend} {capability}: detected={r['detected']} passed={r['tests_passed']} "
            f"failed={r['tests_failed']} skipped={r['tests_skipped']}"
        )
    print("\n".join(lines))
    for capability in CAPABILITIES:
        r = results[capability]
        assert r["detected"], f"{capability} not detected"
        assert r["tests_failed"] == 0, r.get("failures")
        assert r["tests_skipped"] == 0
        assert r["tests_passed"] > 0
    assert sum(results[c]["tests_passed"] for c in CAPABILITIES[:5]) == 58


def test_unchanged_channel_values_are_stored_once(saver: PeeweeSaver) -> None:
    thread = str(uuid.uuid4())
    big = ["x" * 100] * 50
    parent = None
    for step in range(1, 4):
        doc = "long text " * 100
        cp = _checkpoint(
            {"history": big, "doc": doc, "counter": step},
            {"history": 1, "doc": 1, "counter": step},
        )
        new = {"history": 1, "doc": 1, "counter": step} if step == 1 else {"counter": step}
        config = _config(thread, parent)
        parent = saver.put(config, cp, {"source": "loop", "step": step}, new)[  # type: ignore[arg-type]
            "configurable"
        ]["checkpoint_id"]
    # history and doc once each; the counter, a small scalar, rides inline in each row
    assert _count(saver, BLOBS, thread) == 2
    latest = saver.get_tuple(_config(thread))
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"history": big, "doc": doc, "counter": 3}
    oldest = list(saver.list(_config(thread)))[-1]
    assert oldest.checkpoint["channel_values"] == {"history": big, "doc": doc, "counter": 1}


def test_a_serializer_with_pickle_fallback_is_refused(db_url: str) -> None:
    with pytest.raises(ConfigError, match="pickle"):
        PeeweeSaver(db_url, serde=JsonPlusSerializer(pickle_fallback=True))

    class NoCipher:
        def encrypt(self, data: bytes) -> tuple[str, bytes]:
            return "none", data

        def decrypt(self, name: str, data: bytes) -> bytes:
            return data

    wrapped = EncryptedSerializer(NoCipher(), JsonPlusSerializer(pickle_fallback=True))
    with pytest.raises(ConfigError, match="pickle"):
        PeeweeSaver(db_url, serde=wrapped)


def test_an_encrypting_serializer_round_trips(db_url: str) -> None:
    class XorCipher:  # a stand-in cipher: the saver only sees type names and bytes
        def encrypt(self, data: bytes) -> tuple[str, bytes]:
            return "xor", bytes(b ^ 0x5A for b in data)

        def decrypt(self, name: str, data: bytes) -> bytes:
            assert name == "xor"
            return bytes(b ^ 0x5A for b in data)

    with PeeweeSaver(db_url, serde=EncryptedSerializer(XorCipher(), JsonPlusSerializer())) as s:
        thread = str(uuid.uuid4())
        values = {"messages": [{"role": "user", "content": "secret"}]}
        stored = s.put(_config(thread), _checkpoint(values, {"messages": 1}), {"step": 1},  # type: ignore[arg-type]
                       {"messages": 1})
        s.put_writes(stored, [("messages", "pending secret")], "task-1")  # type: ignore[arg-type]
        raw = s._db.execute_sql(f"SELECT type, data FROM {BLOBS}").fetchall()
        assert raw and all(t.endswith("+xor") for t, _ in raw)
        assert b"secret" not in b"".join(bytes(d) for _, d in raw)
        tup = s.get_tuple(stored)  # type: ignore[arg-type]
        assert tup is not None
        assert tup.checkpoint["channel_values"] == values
        assert tup.pending_writes == [("task-1", "messages", "pending secret")]


def test_stored_pickle_bytes_are_never_unpickled(saver: PeeweeSaver) -> None:
    import pickle

    thread = str(uuid.uuid4())
    stored = saver.put(_config(thread), _checkpoint({}, {}), {}, {})  # type: ignore[arg-type]
    saver.put_writes(stored, [("ch", 1)], "task-1")  # type: ignore[arg-type]
    # Someone with write access to the database plants a pickle in a write.
    payload = pickle.dumps(("planted",))
    saver._db.execute_sql(
        f"UPDATE {WRITES} SET type = 'pickle', data = {saver._db.param} "
        f"WHERE thread_id = {saver._db.param}",
        (payload, thread),
    )
    with pytest.raises(InvalidCheckpointError, match="unpickle"):
        saver.get_tuple(stored)  # type: ignore[arg-type]


def test_keys_longer_than_the_columns_are_refused_on_every_backend(saver: PeeweeSaver) -> None:
    with pytest.raises(InvalidCheckpointError, match="thread_id"):
        saver.put(_config("t" * 256), _checkpoint({}, {}), {}, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidCheckpointError, match="channel"):
        saver.put(_config("t"), _checkpoint({"c" * 192: 1}, {"c" * 192: 1}), {}, {"c" * 192: 1})  # type: ignore[arg-type]
    assert saver.get_tuple(_config("t" * 256)) is None  # type: ignore[arg-type]
    assert list(saver.list(_config("t" * 256))) == []  # type: ignore[arg-type]


def test_prune_and_delete_for_runs_free_blobs_no_checkpoint_uses(saver: PeeweeSaver) -> None:
    thread = str(uuid.uuid4())
    parent = None
    for step in range(1, 5):
        cp = _checkpoint({"a": [f"v{step}"], "b": ["same"]}, {"a": step, "b": 1})
        new = {"a": step, "b": 1} if step == 1 else {"a": step}
        md = {"source": "loop", "step": step, "run_id": f"run-{step}"}
        parent = saver.put(_config(thread, parent), cp, md, new)["configurable"][  # type: ignore[arg-type]
            "checkpoint_id"
        ]
        saver.put_writes(_config(thread, parent), [("a", step)], f"task-{step}")  # type: ignore[arg-type]
    assert _count(saver, BLOBS, thread) == 5
    saver.delete_for_runs(["run-1"])
    # a@1 is gone; b@1 is still used by the other checkpoints
    assert _count(saver, BLOBS, thread) == 4
    assert _count(saver, WRITES, thread) == 3
    second = list(saver.list(_config(thread)))[-1]
    assert second.metadata["run_id"] == "run-2" and second.parent_config is None
    assert second.checkpoint["channel_values"] == {"a": ["v2"], "b": ["same"]}
    saver.prune([thread], strategy="keep_latest")
    assert _count(saver, CHECKPOINTS, thread) == 1
    assert _count(saver, BLOBS, thread) == 2
    latest = saver.get_tuple(_config(thread))
    assert latest is not None and latest.parent_config is None
    assert latest.checkpoint["channel_values"] == {"a": ["v4"], "b": ["same"]}
    assert latest.pending_writes == [("task-4", "a", 4)]


def test_keep_latest_refuses_a_thread_with_a_delta_channel(saver: PeeweeSaver) -> None:
    thread = str(uuid.uuid4())
    first = saver.put(_config(thread), _checkpoint({}, {}), {"step": 0}, {})  # type: ignore[arg-type]
    md = {"step": 1, "counters_since_delta_snapshot": {"messages": [1, 1]}}
    saver.put(_config(thread, first["configurable"]["checkpoint_id"]), _checkpoint({}, {}), md, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidCheckpointError, match="DeltaChannel"):
        saver.prune([thread])
    assert _count(saver, CHECKPOINTS, thread) == 2
    saver.prune([thread], strategy="delete")
    assert _count(saver, CHECKPOINTS, thread) == 0


def test_list_filters_metadata_and_stops_at_the_limit(saver: PeeweeSaver) -> None:
    thread = str(uuid.uuid4())
    for step in range(6):
        md = {"source": "loop" if step % 2 else "input", "step": step, "tags": {"k": step % 3}}
        saver.put(_config(thread), _checkpoint({}, {}), md, {})  # type: ignore[arg-type]
    loops = list(saver.list(_config(thread), filter={"source": "loop"}, limit=2))
    assert [t.metadata["step"] for t in loops] == [5, 3]
    nested = list(saver.list(None, filter={"tags": {"k": 0}}))
    assert sorted(t.metadata["step"] for t in nested) == [0, 3]


def test_the_core_package_does_not_import_langgraph() -> None:
    code = (
        "import sys, peewee_checkpoints, peewee_checkpoints.peewee_provider\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('langgraph', 'langchain_core')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# A graph that stops before its "review" node; run as a script in separate processes.
_GRAPH = textwrap.dedent(
    """
    import sys
    from typing import Annotated, TypedDict
    import operator
    from langgraph.graph import END, START, StateGraph
    from peewee_checkpoints.langgraph import PeeweeSaver

    class State(TypedDict):
        steps: Annotated[list, operator.add]

    def draft(state):
        return {"steps": ["draft"]}

    def review(state):
        return {"steps": ["review"]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)

    db_url, thread, phase = sys.argv[1:4]
    with PeeweeSaver(db_url) as saver:
        graph = builder.compile(checkpointer=saver, interrupt_before=["review"])
        config = {"configurable": {"thread_id": thread}}
        if phase == "start":
            graph.invoke({"steps": ["input"]}, config)
            print(sorted(graph.get_state(config).next))
        else:
            print(graph.invoke(None, config)["steps"])
    """
)


@pytest.mark.slow
def test_a_graph_interrupted_in_one_process_resumes_in_another(
    db_url: str, tmp_path: Any
) -> None:
    script = tmp_path / "graph.py"
    script.write_text(_GRAPH)
    thread = f"thread-{uuid.uuid4()}"

    def run(phase: str) -> str:
        done = subprocess.run(
            [sys.executable, str(script), db_url, thread, phase],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run("start") == "['review']"
    assert run("resume") == "['input', 'draft', 'review']"

    with PeeweeSaver(db_url) as saver:
        history = list(saver.list({"configurable": {"thread_id": thread}}))
        steps = [t.metadata["step"] for t in history]
        assert steps == sorted(steps, reverse=True) and len(history) == 4
        assert history[0].checkpoint["channel_values"]["steps"] == ["input", "draft", "review"]
        assert history[-1].metadata["source"] == "input"


_WORKER = textwrap.dedent(
    """
    import sys, time
    from peewee_checkpoints.langgraph import PeeweeSaver
    from langgraph.checkpoint.base import empty_checkpoint

    db_url, start, name = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    saver = PeeweeSaver(db_url)
    time.sleep(max(0.0, start - time.time()))
    config = {"configurable": {"thread_id": name, "checkpoint_ns": ""}}
    saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    print(saver.get_tuple(config).config["configurable"]["thread_id"])
    """
)


@pytest.mark.slow
def test_workers_starting_at_once_on_a_fresh_database_all_succeed(
    db_url: str, tmp_path: Any
) -> None:
    import time

    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    start = time.time() + 4  # after every interpreter has imported LangGraph
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), db_url, str(start), f"worker-{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(3)
    ]
    for i, worker in enumerate(workers):
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.strip() == f"worker-{i}"
    with PeeweeCheckpointProvider(db_url) as provider:
        applied = provider.applied_migrations()
    assert applied.count("003_langgraph") == 1


def test_migration_003_rolls_back_and_reapplies(saver: PeeweeSaver, db_url: str) -> None:
    thread = str(uuid.uuid4())
    saver.put(_config(thread), _checkpoint({}, {}), {}, {})  # type: ignore[arg-type]
    provider = PeeweeCheckpointProvider(db_url)
    assert "003_langgraph" in provider.applied_migrations()
    rolled_back = [provider.rollback_migration()]  # the newest first: later ones, then 003
    while rolled_back[-1] != "003_langgraph":
        rolled_back.append(provider.rollback_migration())
    assert "003_langgraph" not in provider.applied_migrations()
    with pytest.raises(pw.DatabaseError):  # the table is gone
        saver._db.execute_sql(f"SELECT 1 FROM {CHECKPOINTS}")
    saver.close()
    # The next call finds its table gone and applies the migration again, on the same saver.
    assert saver.get_tuple(_config(thread)) is None  # type: ignore[arg-type]
    assert "003_langgraph" in provider.applied_migrations()
    provider.close()
