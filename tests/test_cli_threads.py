"""``peewee-checkpoints threads``: LangGraph threads and store items from the command line."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH"):
    pytest.importorskip("langgraph.graph", reason="pip install -e '.[langgraph-test]'")

from langgraph.graph import END, START, StateGraph

from peewee_checkpoints.cli import main
from peewee_checkpoints.langgraph import PeeweeSaver, PeeweeStore


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _graph(saver: PeeweeSaver) -> Any:
    builder = StateGraph(State)
    builder.add_node("draft", lambda state: {"steps": ["draft"]})
    builder.add_node("review", lambda state: {"steps": ["review"]})
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=saver, interrupt_before=["review"])


def _config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _history(saver: PeeweeSaver, thread: str) -> list[tuple[Any, ...]]:
    graph = _graph(saver)
    return [(s.config["configurable"]["checkpoint_id"], s.values, s.next, s.metadata.get("step"))
            for s in graph.get_state_history(_config(thread))]


def test_a_thread_copied_from_sqlite_resumes_on_the_target(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with PeeweeSaver(source) as saver, PeeweeStore(source) as store:
        graph = _graph(saver)
        graph.invoke({"steps": ["input"]}, _config("article-1"))  # stops before "review"
        graph.invoke({"steps": ["other"]}, _config("article-2"))
        store.put(("users", "u1"), "prefs", {"tone": "dry"}, ttl=60)
        expected_history = _history(saver, "article-1")
        assert graph.get_state(_config("article-1")).next == ("review",)

    code, out, err = _cli(capsys, "--db-url", source, "threads", "copy", "--to", db_url)
    assert code == 0, err
    assert out.startswith("copied 2 threads: ")
    assert "1 store_items (0 skipped)" in out

    with PeeweeSaver(db_url) as saver, PeeweeStore(db_url) as store:
        assert _history(saver, "article-1") == expected_history  # same ids, values, order
        graph = _graph(saver)
        assert graph.get_state(_config("article-1")).next == ("review",)
        assert graph.invoke(None, _config("article-1"))["steps"] == ["input", "draft", "review"]
        assert graph.invoke(None, _config("article-2"))["steps"] == ["other", "draft", "review"]
        item = store.get(("users", "u1"), "prefs")
        assert item is not None and item.value == {"tone": "dry"}

    # Again: nothing new to copy, and it says so per kind.
    code, out, err = _cli(capsys, "--db-url", source, "--json", "threads", "copy", "--to", db_url)
    assert code == 0, err
    report = json.loads(out)["copied"]
    assert sum(report["written"].values()) == 0
    assert report["skipped"]["checkpoint"] == 6 and report["skipped"]["store_item"] == 1


def _seed(url: str, threads: int) -> None:
    with PeeweeSaver(url) as saver:
        graph = _graph(saver)
        for i in range(threads):
            graph.invoke({"steps": [f"in-{i}"]}, _config(f"t{i}"))
            if i % 2 == 0:
                graph.invoke(None, _config(f"t{i}"))


def test_threads_list_show_prune_delete_status(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url, 5)
    code, out, err = _cli(capsys, "--db-url", db_url, "threads", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [t["thread_id"] for t in listed["threads"]] == [f"t{i}" for i in range(5)]
    assert listed["next_after"] is None
    t0 = listed["threads"][0]
    assert t0["checkpoints"] == 4 and listed["threads"][1]["checkpoints"] == 3
    assert t0["bytes"] > 100 and t0["namespaces"] == 1
    assert abs(t0["last_activity_ms"] - time.time() * 1000) < 600_000

    # Keyset pages.
    code, out, _ = _cli(capsys, "--db-url", db_url, "threads", "list", "--limit", "2", "--json")
    page = json.loads(out)
    assert [t["thread_id"] for t in page["threads"]] == ["t0", "t1"]
    assert page["next_after"] == "t1"
    code, out, _ = _cli(capsys, "--db-url", db_url, "threads", "list", "--limit", "2",
                        "--after", "t1", "--json")
    assert [t["thread_id"] for t in json.loads(out)["threads"]] == ["t2", "t3"]
    code, out, _ = _cli(capsys, "--db-url", db_url, "threads", "list", "--limit", "2", "--all")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == [
        f"t{i}" for i in range(5)]

    code, out, err = _cli(capsys, "--db-url", db_url, "threads", "show", "t0", "--json")
    assert code == 0, err
    shown = json.loads(out)["checkpoints"]
    assert [h["step"] for h in shown] == [2, 1, 0, -1]

    code, out, err = _cli(capsys, "--db-url", db_url, "threads", "prune", "t0", "--keep-latest")
    assert code == 0, err
    assert out.strip() == "pruned 1 thread: deleted 3 checkpoints"
    with PeeweeSaver(db_url) as saver:
        assert _graph(saver).get_state(_config("t0")).values["steps"] == [
            "in-0", "draft", "review"]

    code, out, err = _cli(capsys, "--db-url", db_url, "threads", "delete", "t1", "nope")
    assert code == 1 and "deleted t1 (3 checkpoints)" in out and "'nope'" in err
    code, out, _ = _cli(capsys, "--db-url", db_url, "threads", "status", "--json")
    status = json.loads(out)
    assert status["threads"] == 4 and status["checkpoints"] == 1 + 4 + 3 + 4


def test_threads_export_import_round_trip(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url, 3)
    with PeeweeStore(db_url) as store:
        store.put(("n",), "k", {"big": 2**70, "text": "é"})
    dump = tmp_path / "threads.jsonl"
    code, _, err = _cli(capsys, "--db-url", db_url, "threads", "export", "--out", str(dump))
    assert code == 0, err
    assert "exported 11 checkpoints" in err and "1 store_items" in err
    assert oct(dump.stat().st_mode & 0o777) == "0o600"
    target = f"sqlite:///{tmp_path / 'target.db'}"
    code, out, err = _cli(capsys, "--db-url", target, "threads", "import", str(dump))
    assert code == 0, err
    assert out.startswith("imported 3 threads: 11 checkpoints (0 skipped)")
    code, out, _ = _cli(capsys, "--db-url", target, "threads", "import", str(dump))
    assert "imported 3 threads: 0 checkpoints (11 skipped)" in out
    with PeeweeSaver(target) as saver, PeeweeSaver(db_url) as original:
        for thread in ("t0", "t1", "t2"):
            assert _history(saver, thread) == _history(original, thread)
    with PeeweeStore(target) as store:
        item = store.get(("n",), "k")
        assert item is not None and item.value == {"big": 2**70, "text": "é"}

    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    code, _, err = _cli(capsys, "--db-url", missing, "threads", "list")
    assert code == 2 and "no SQLite database at" in err and not (tmp_path / "missing.db").exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "checkpoint", "thread_id": "x"}\n')
    code, _, err = _cli(capsys, "--db-url", target, "threads", "import", str(bad))
    assert code == 2 and "bad.jsonl:1" in err


@pytest.mark.backends("sqlite")
def test_threads_list_export_and_copy_run_without_langgraph(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lg.db'}"
    _seed(url, 2)
    script = textwrap.dedent(f"""
        import sys
        for name in ("langgraph", "langchain_core"):
            sys.modules[name] = None  # importing it fails, as when it is not installed
        from peewee_checkpoints.cli import main
        assert main(["--db-url", {url!r}, "threads", "list"]) == 0
        assert main(["--db-url", {url!r}, "threads", "copy", "--to",
                     {"sqlite:///" + str(tmp_path / "copy.db")!r}]) == 0
        assert main(["--db-url", {url!r}, "threads", "show", "t0"]) == 2
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
    assert "needs LangGraph" in done.stderr


def test_the_top_level_copy_and_status_cover_langgraph_threads(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What a user leaving SQLite runs first: ``copy --to``, then resume the graph there."""
    source = f"sqlite:///{tmp_path / 'lg.db'}"
    with PeeweeSaver(source) as saver:
        graph = _graph(saver)
        graph.invoke({"steps": ["input"]}, _config("article-1"))  # stops before "review"
        expected_history = _history(saver, "article-1")

    code, out, err = _cli(capsys, "--db-url", source, "status")
    assert code == 0, err
    assert "langgraph:" in out and "1 threads" in out

    code, out, err = _cli(capsys, "--db-url", source, "copy", "--to", db_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "copied 0, skipped 0 (id already present)"  # no agent checkpoints
    assert lines[1].startswith("LangGraph: copied 1 thread: ")

    with PeeweeSaver(db_url) as saver:
        assert _history(saver, "article-1") == expected_history
        graph = _graph(saver)
        assert graph.invoke(None, _config("article-1"))["steps"] == ["input", "draft", "review"]

    code, out, err = _cli(capsys, "--db-url", source, "--json", "copy", "--to", db_url)
    assert code == 0, err
    report = json.loads(out)
    assert report["copied"] == 0 and sum(report["langgraph"]["written"].values()) == 0
    assert report["langgraph"]["skipped"]["checkpoint"] == len(expected_history)
