"""The top-level ``copy``, ``export``, ``import`` and ``status`` on a database holding every
kind of data: agent and app checkpoints, LangGraph threads (a real graph) and store items,
OpenAI Agents sessions and Google ADK sessions.

Runs ``main(ARGS)`` in this process under click's CliRunner isolation (test_cli's ``cli``).
Ctrl-C is a real SIGINT sent to this process while a command runs, after a chosen number of
units of work, which the command's own handler turns into a clean stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH"):
    pytest.importorskip("langgraph.graph", reason="pip install -e '.[langgraph-test]'")
if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_OPENAI_AGENTS"):
    pytest.importorskip("agents", reason="pip install -e '.[openai-agents-test]'")
if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_ADK"):
    pytest.importorskip("google.adk", reason="pip install -e '.[adk-test]'")

from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.session import Session
from google.genai import types

from peewee_checkpoints import AppCheckpoint, NamedCheckpoint, PeeweeCheckpointProvider
from peewee_checkpoints import cli as cli_module
from peewee_checkpoints.adk import PeeweeSessionService
from peewee_checkpoints.langgraph import PeeweeSaver, PeeweeStore
from peewee_checkpoints.openai_agents import PeeweeSessionStore

from .test_cli import cli, err, out
from .test_cli_threads import _config, _graph, _history
from .test_registry import FakeDistributions

_T = TypeVar("_T")
KIND_KEYS = ("app", "langgraph", "openai_sessions", "adk_sessions")


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coro)


def _msg(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text, "n": 2**70}


def _event(text: str, delta: dict[str, Any]) -> Event:
    return Event(invocation_id="inv-1", author="user",
                 content=types.Content(role="user", parts=[types.Part(text=text)]),
                 actions=EventActions(state_delta=delta))


def seed(url: str, *, threads: int = 2, sessions: int = 2) -> dict[str, Any]:
    """Fill ``url`` with every kind; returns what was made, to compare copies with."""
    with PeeweeCheckpointProvider(url) as provider:
        for i in range(3):
            provider.store_checkpoint(NamedCheckpoint(f"cp-{i}", "agent-1",
                                                      {"i": i, "big": 2**70}, "s", "t"))
        provider.store_app_checkpoint(AppCheckpoint("nightly", {"apps": ["a", "b"]}))
    with PeeweeSaver(url) as saver, PeeweeStore(url) as store:
        graph = _graph(saver)
        for t in range(threads):
            graph.invoke({"steps": [f"input-{t}"]}, _config(f"article-{t}"))  # stops at review
        store.put(("users", "u1"), "prefs", {"tone": "dry", "big": 2**70})
        store.put(("users", "u2"), "prefs", {"tone": "warm"}, ttl=60)
    with PeeweeSessionStore(url) as oai:
        for n in range(sessions):
            run(oai.session(f"c{n}", user_id="ann", metadata={"n": n}).add_items(
                [_msg(f"hi {n}"), _msg("again")]))

    async def adk() -> None:
        async with PeeweeSessionService(url) as svc:
            for n in range(sessions):
                made = await svc.create_session(
                    app_name="notes", user_id=f"u{n % 2}", session_id=f"s{n}",
                    state={"n": n, "app:theme": "dark", "user:lang": "fr"})
                await svc.append_event(made, _event(f"hello {n}", {"count": n}))
                await svc.append_event(made, _event("more", {"user:seen": True}))

    run(adk())
    return {"threads": threads, "sessions": sessions}


def snapshot(url: str, made: dict[str, Any]) -> dict[str, Any]:
    """Everything in ``url``, read through each framework's own API."""
    with PeeweeCheckpointProvider(url) as provider:
        agent = sorted((c.id, c.name, json.dumps(provider.retrieve_checkpoint(c.id).state))  # type: ignore[union-attr]
                       for c in provider.list_checkpoints())
        apps = [(a.id, a.name, provider.retrieve_app_checkpoint(a.id).state)  # type: ignore[union-attr]
                for a in provider.list_app_checkpoints()]
    with PeeweeSaver(url) as saver, PeeweeStore(url) as store:
        histories = {t: _history(saver, f"article-{t}") for t in range(made["threads"])}
        items = {user: store.get(("users", user), "prefs") for user in ("u1", "u2")}
        values = {user: (item.value if item else None) for user, item in items.items()}
    with PeeweeSessionStore(url) as oai:
        infos = oai.list_sessions().items
        conversations = {i.session_id: (i.user_id, i.metadata, i.item_count, i.created_at,
                                        i.updated_at, run(oai.session(i.session_id).get_items()))
                         for i in infos}

    async def adk() -> list[Session | None]:
        async with PeeweeSessionService(url) as svc:
            return [await svc.get_session(app_name="notes", user_id=f"u{n % 2}",
                                          session_id=f"s{n}")
                    for n in range(made["sessions"])]

    return {"agent": agent, "apps": apps, "histories": histories, "store": values,
            "openai": conversations, "adk": run(adk())}


def status(url: str, tmp: Path) -> dict[str, Any]:
    return json.loads(out(cli("--db-url", url, "status", "--json", cwd=tmp)))  # type: ignore[no-any-return]


def kind_counts(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("checkpoints", "app_checkpoints", "langgraph",
                                 "openai_sessions", "adk_sessions")}


# -- status -----------------------------------------------------------------------------------


def test_status_lists_every_kind_even_when_empty(db_url: str, tmp_path: Path) -> None:
    cli("--db-url", db_url, "migrate", cwd=tmp_path)
    empty = status(db_url, tmp_path)
    assert kind_counts(empty) == {
        "checkpoints": 0, "app_checkpoints": 0,
        "langgraph": {"threads": 0, "checkpoints": 0, "blobs": 0, "writes": 0,
                      "store_items": 0},
        "openai_sessions": {"sessions": 0, "items": 0},
        "adk_sessions": {"sessions": 0, "events": 0, "app_states": 0, "user_states": 0},
    }
    text = out(cli("--db-url", db_url, "status", cwd=tmp_path))
    for line in ("app:         0 app checkpoints", "langgraph:   0 threads, 0 checkpoints",
                 "openai:      0 sessions, 0 items", "adk:         0 sessions, 0 events"):
        assert line in text, text

    seed(db_url, threads=2, sessions=3)
    full = status(db_url, tmp_path)
    assert full["checkpoints"] == 3 and full["app_checkpoints"] == 1
    assert full["langgraph"]["threads"] == 2 and full["langgraph"]["store_items"] == 2
    assert full["langgraph"]["checkpoints"] == 6  # input, draft, and the stop before review
    assert full["openai_sessions"] == {"sessions": 3, "items": 6}
    assert full["adk_sessions"] == {"sessions": 3, "events": 6, "app_states": 1,
                                    "user_states": 2}
    text = out(cli("--db-url", db_url, "status", cwd=tmp_path))
    assert "openai:      3 sessions, 6 items" in text
    assert "adk:         3 sessions, 6 events, 1 app states, 2 user states" in text


# -- export / import --------------------------------------------------------------------------


def test_export_then_import_moves_every_kind_and_a_second_import_skips_it_all(
        db_url: str, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    made = seed(source)
    dump = tmp_path / "all.jsonl"
    summary = json.loads(out(cli("--db-url", source, "export", "--out", str(dump), "--json",
                                 cwd=tmp_path)))
    assert summary["exported"] == 3 and summary["app"]["exported"] == 1
    assert summary["langgraph"]["threads"] == 2
    assert summary["langgraph"]["written"]["store_item"] == 2
    assert summary["openai_sessions"]["exported"] == 2
    assert summary["openai_sessions"]["items"] == 4
    assert summary["adk_sessions"]["exported"] == 2
    assert summary["adk_sessions"]["events"] == 4
    kinds = [json.loads(line).get("kind") for line in dump.read_bytes().splitlines()]
    assert kinds.count(None) == 3 and kinds.count("app") == 1
    assert {"checkpoint", "blob", "write", "store_item", "openai_session", "adk_app_state",
            "adk_user_state", "adk_session", "adk_event"} <= set(kinds)
    assert oct(dump.stat().st_mode & 0o777) == "0o600"
    text = err(cli("--db-url", source, "export", cwd=tmp_path))
    assert text.splitlines()[0] == "exported 3 checkpoints"
    assert "OpenAI Agents sessions: exported 2 (4 items)" in text
    assert "ADK sessions: exported 2 (4 events, 3 states)" in text

    first = json.loads(out(cli("--db-url", db_url, "import", str(dump), "--json", cwd=tmp_path)))
    assert (first["imported"], first["skipped"]) == (3, 0)
    assert first["app"]["imported"] == 1
    assert first["langgraph"]["written"]["checkpoint"] == 6
    assert first["langgraph"]["written"]["store_item"] == 2
    assert first["openai_sessions"]["imported"] == 2 and first["openai_sessions"]["items"] == 4
    assert first["adk_sessions"]["imported"] == 2 and first["adk_sessions"]["events"] == 4
    assert snapshot(db_url, made) == snapshot(source, made)
    assert kind_counts(status(db_url, tmp_path)) == kind_counts(status(source, tmp_path))

    again = cli("--db-url", db_url, "import", str(dump), cwd=tmp_path)
    lines = out(again).splitlines()
    assert lines[0] == "imported 0, skipped 3 (id already present)"
    assert "app checkpoints: imported 0, skipped 1 (already present)" in lines
    assert any(line.startswith("LangGraph: imported 2 threads: 0 checkpoints (6 skipped)")
               for line in lines), lines
    assert "OpenAI Agents sessions: imported 0, skipped 2 (already present)" in lines
    assert any(line.startswith("ADK sessions: imported 0 (0 events, 3 states), skipped 2")
               for line in lines), lines
    assert kind_counts(status(db_url, tmp_path)) == kind_counts(status(source, tmp_path))

    # The LangGraph part alone, as `threads export` writes it, imports at the top level too.
    threads_dump = tmp_path / "threads.jsonl"
    cli("--db-url", source, "threads", "export", "--out", str(threads_dump), cwd=tmp_path)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    report = json.loads(out(cli("--db-url", fresh, "import", str(threads_dump), "--json",
                                cwd=tmp_path)))
    assert report["imported"] == 0 and report["langgraph"]["written"]["checkpoint"] == 6
    assert set(report) == {"imported", "skipped", "vanished", "langgraph"}


def test_a_line_of_an_unknown_kind_is_an_error_naming_it(tmp_path: Path) -> None:
    bad = b'{"kind": "telepathy", "id": "x"}\n'
    proc = cli("--db-url", f"sqlite:///{tmp_path / 'a.db'}", "import", "-", input=bad,
               cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert err(proc) == "error: line 1 of stdin: unknown kind 'telepathy'\n"


# -- copy -------------------------------------------------------------------------------------


def test_copy_from_sqlite_moves_every_kind_and_each_resumes_on_the_target(
        db_url: str, tmp_path: Path) -> None:
    """What a user leaving SQLite runs: ``copy --to``, then carries on with every framework."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    made = seed(source)
    before = snapshot(source, made)

    copied = cli("--db-url", source, "copy", "--to", db_url, cwd=tmp_path)
    lines = out(copied).splitlines()
    assert lines[0] == "copied 3, skipped 0 (id already present)"
    assert lines[1] == "app checkpoints: copied 1, skipped 0 (already present)"
    assert lines[2].startswith("LangGraph: copied 2 threads: 6 checkpoints (0 skipped)")
    assert lines[2].endswith("2 store_items (0 skipped)")
    assert lines[3] == "OpenAI Agents sessions: copied 2 (4 items), skipped 0 (already present)"
    assert lines[4] == ("ADK sessions: copied 2 (4 events, 3 states), skipped 0 "
                        "(already present)")
    assert snapshot(db_url, made) == before

    # Same state and history, and every framework carries on where the source stopped.
    with PeeweeSaver(db_url) as saver:
        graph = _graph(saver)
        assert graph.get_state(_config("article-0")).next == ("review",)
        assert graph.invoke(None, _config("article-0"))["steps"] == [
            "input-0", "draft", "review"]
    with PeeweeSessionStore(db_url) as oai:
        session = oai.session("c0")
        run(session.add_items([_msg("after the move")]))
        assert [i["content"] for i in run(session.get_items())] == [
            "hi 0", "again", "after the move"]

    async def adk() -> None:
        async with PeeweeSessionService(db_url) as svc:
            got = await svc.get_session(app_name="notes", user_id="u0", session_id="s0")
            assert got is not None and got == before["adk"][0]
            await svc.append_event(got, _event("after the move", {"moved": True}))
            again = await svc.get_session(app_name="notes", user_id="u0", session_id="s0")
            assert again is not None and again.state["moved"] is True
            assert len(again.events) == 3

    run(adk())

    # Again: nothing is written twice, and each kind says it skipped what was there.
    report = json.loads(out(cli("--db-url", source, "copy", "--to", db_url, "--json",
                                cwd=tmp_path)))
    assert (report["copied"], report["skipped"]) == (0, 3)
    assert report["app"] == {"copied": 0, "skipped": 1, "vanished": 0}
    assert sum(report["langgraph"]["written"].values()) == 0
    assert report["langgraph"]["skipped"]["checkpoint"] == 6
    assert report["openai_sessions"] == {"copied": 0, "skipped": 2, "vanished": 0, "items": 0}
    assert report["adk_sessions"] == {"copied": 0, "skipped": 2, "vanished": 0, "events": 0,
                                      "states": 3}


# -- Ctrl-C, then the same command again ----------------------------------------------------


def _ctrl_c_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """Press Ctrl-C (a real SIGINT to this process) once ``calls`` units of work are done."""
    original = cli_module.Progress.advance
    seen = {"n": 0}

    def advance(self: cli_module.Progress, amount: int) -> None:
        original(self, amount)
        seen["n"] += 1
        if seen["n"] == calls:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli_module.Progress, "advance", advance)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to itself")
@pytest.mark.parametrize("command", ["copy", "import"])
def test_an_interrupted_copy_or_import_is_finished_by_running_it_again(
        command: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    made = seed(source, threads=3, sessions=3)
    dump = tmp_path / "all.jsonl"
    cli("--db-url", source, "export", "--out", str(dump), cwd=tmp_path)
    args = (["--db-url", source, "copy", "--to", db_url] if command == "copy"
            else ["--db-url", db_url, "import", str(dump)])
    verb = "copied" if command == "copy" else "imported"

    # Each run is stopped a little later than the one before (a rerun goes over what is
    # there again), until one finishes: stops fall in every kind on the way.
    interrupted = 0
    for calls in range(2, 200, 2):
        with monkeypatch.context() as patch:
            _ctrl_c_after(patch, calls)
            proc = cli(*args, "--json", cwd=tmp_path, check=False)
        if proc.returncode == 0:
            break
        assert proc.returncode == 130, err(proc)
        assert f"run the same {command} again to finish" in err(proc)
        assert "Traceback" not in err(proc)
        interrupted += 1
    else:
        pytest.fail("the command never finished")
    assert interrupted >= 5
    last = json.loads(out(proc))
    assert last["skipped"] > 0 or last[verb] > 0

    # Nothing twice, nothing missing: the counts and every record are the source's.
    assert kind_counts(status(db_url, tmp_path)) == kind_counts(status(source, tmp_path))
    assert snapshot(db_url, made) == snapshot(source, made)
    final = json.loads(out(cli(*args, "--json", cwd=tmp_path)))
    assert final[verb] == 0 and final["app"][verb] == 0
    assert sum(final["langgraph"]["written"].values()) == 0
    assert final["openai_sessions"][verb] == 0 and final["adk_sessions"][verb] == 0


# -- a kind the target cannot hold ------------------------------------------------------------

ELSEWHERE = """\
from peewee_checkpoints import MemoryCheckpointProvider
from peewee_checkpoints.interface import CheckpointProvider


class Elsewhere(CheckpointProvider):
    '''Agent and app checkpoints only, kept by another provider: no database behind it.'''

    def __init__(self) -> None:
        self._inner = MemoryCheckpointProvider()


def _forward(name):
    def method(self, *args, **kwargs):
        return getattr(self._inner, name)(*args, **kwargs)
    return method


for _name in [n for n, v in vars(CheckpointProvider).items()
              if not n.startswith("_") and callable(v)]:
    setattr(Elsewhere, _name, _forward(_name))
Elsewhere.__abstractmethods__ = frozenset()
"""


@pytest.mark.backends("sqlite")
def test_a_kind_the_target_cannot_hold_is_reported_as_not_moved_and_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    dists = FakeDistributions(tmp_path)
    (tmp_path / f"{dists.module}.py").write_text(ELSEWHERE, encoding="utf-8")
    dists.add("elsewhere-store", "1.0", {"elsewhere": "{m}:Elsewhere"})
    config = tmp_path / "checkpoints.toml"
    config.write_text('[checkpoints.providers.far]\ntype = "elsewhere"\n', encoding="utf-8")
    source = f"sqlite:///{tmp_path / 'source.db'}"
    seed(source)

    proc = cli("--config", str(config), "--db-url", source, "copy", "--to", "far", cwd=tmp_path,
               check=False)
    assert proc.returncode == 2  # --db-url and --config do not mix
    proc = cli("--db-url", source, "copy", "--to", "far", cwd=tmp_path, check=False)
    assert proc.returncode == 1, err(proc)
    lines = out(proc).splitlines()
    assert lines[0] == "copied 3, skipped 0 (id already present)"  # what it could hold
    assert lines[1] == "app checkpoints: copied 1, skipped 0 (already present)"
    assert any(line.startswith("LangGraph: ") and "; NOT copied: 4 (" in line
               for line in lines), lines  # 2 threads and 2 store items
    assert any(line.startswith("OpenAI Agents sessions: ") and "NOT copied: 2" in line
               for line in lines)
    assert any(line.startswith("ADK sessions: ") and "NOT copied: 5" in line
               for line in lines)  # 2 sessions, 1 app state, 2 user states
    assert "not copied: far (Elsewhere) keeps agent and app checkpoints only" in err(proc)

    dump = tmp_path / "all.jsonl"
    cli("--db-url", source, "export", "--out", str(dump), cwd=tmp_path)
    proc = cli("--provider", "far", "import", str(dump), "--json", cwd=tmp_path, check=False)
    assert proc.returncode == 1, err(proc)
    report = json.loads(out(proc))
    assert report["imported"] == 3
    assert report["openai_sessions"]["not_moved"]["count"] == 2
    assert report["adk_sessions"]["not_moved"]["count"] == 5
    assert report["langgraph"]["not_moved"]["count"] > 0
    assert "record(s) not imported" in err(proc)


@pytest.mark.backends("sqlite")
def test_status_export_import_and_copy_of_every_kind_import_no_agent_framework(
        tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    seed(source)
    dump = tmp_path / "all.jsonl"
    script = textwrap.dedent(f"""
        import sys
        for name in ("langgraph", "langchain_core", "agents", "google", "openai"):
            sys.modules[name] = None  # importing it fails, as when it is not installed
        from peewee_checkpoints.cli import main
        source, dump = {source!r}, {str(dump)!r}
        assert main(["--db-url", source, "status"]) == 0
        assert main(["--db-url", source, "export", "--out", dump]) == 0
        assert main(["--db-url", {"sqlite:///" + str(tmp_path / "imported.db")!r},
                     "import", dump]) == 0
        assert main(["--db-url", source, "copy", "--to",
                     {"sqlite:///" + str(tmp_path / "copied.db")!r}]) == 0
        loaded = [m for m in sys.modules if m.split(".")[0] in
                  ("langgraph", "langchain_core", "agents", "google", "openai")
                  and sys.modules[m] is not None]
        assert not loaded, loaded
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
    assert "ADK sessions: copied 2 (4 events, 3 states)" in done.stdout
    made = {"threads": 2, "sessions": 2}
    for url in ("imported.db", "copied.db"):
        assert snapshot(f"sqlite:///{tmp_path / url}", made) == snapshot(source, made)


@pytest.mark.parametrize("group", [["threads", "list"], ["sessions", "list"], ["adk", "apps"]])
def test_command_groups_choose_the_database_like_every_command(tmp_path: Path,
                                                               group: list[str]) -> None:
    """--config wins over $PEEWEE_CHECKPOINTS_DB_URL in every group, as the README says; a
    provider without a database is a usage error naming it; nothing is created for a read."""
    (tmp_path / "c.toml").write_text(textwrap.dedent("""
        [checkpoints]
        active = "main"
        [checkpoints.providers.main]
        type = "peewee"
        db_url = "sqlite:///from-config.db"
        [checkpoints.providers.mem]
        type = "memory"
    """))
    env = {"PEEWEE_CHECKPOINTS_DB_URL": f"sqlite:///{tmp_path / 'from-env.db'}"}
    cli("--config", "c.toml", "migrate", cwd=tmp_path, env=env)
    assert (tmp_path / "from-config.db").exists()

    result = cli("--config", "c.toml", *group, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, err(result)
    assert not (tmp_path / "from-env.db").exists()

    result = cli(*group, cwd=tmp_path, env=env, check=False)  # no --config: the variable
    assert result.returncode in (0, 2)
    if result.returncode == 2:  # read-only groups refuse a missing file, naming it
        assert "from-env.db" in err(result)

    result = cli("--config", "c.toml", "--provider", "mem", *group, cwd=tmp_path, env=env,
                 check=False)
    assert result.returncode == 2
    assert "provider 'mem' (memory) has no database" in err(result)
