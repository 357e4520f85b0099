"""The OpenAI Agents SDK session (peewee_checkpoints.openai_agents) on every backend.

Needs the ``openai-agents-test`` extra; the module is skipped without it, unless
``PEEWEE_CHECKPOINTS_REQUIRE_OPENAI_AGENTS`` is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_OPENAI_AGENTS"):
    # Set it in CI, so that a failed install fails there instead of skipping quietly.
    pytest.importorskip("agents", reason="the openai-agents-test extra is not installed")

from peewee_checkpoints import InvalidCheckpointError
from peewee_checkpoints.openai_agents import PeeweeSession, PeeweeSessionStore
from peewee_checkpoints.testing import SessionContract

ROOT = Path(__file__).resolve().parent.parent
#: Processes in the concurrency tests.
PROCESSES = 8


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _msg(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _worker(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests._openai_agents_worker", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 180) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


@pytest.fixture
def store(db_url: str) -> Iterator[PeeweeSessionStore]:
    s = PeeweeSessionStore(db_url)
    try:
        yield s
    finally:
        s.close()


# -- the conformance kit, on ours and on the SDK's SQLiteSession ----------------------------


class TestPeeweeSessionContract(SessionContract):
    """PeeweeSession passes the whole kit on every backend."""

    @pytest.fixture
    def make_session(self, store: PeeweeSessionStore) -> Callable[[str], Any]:
        return store.session


class TestSQLiteSessionContract(SessionContract):
    """The SDK's own SQLiteSession, on a file, run through the same kit."""

    @pytest.fixture
    def make_session(self, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
        from agents import SQLiteSession

        made: list[Any] = []

        def make(session_id: str) -> Any:
            made.append(SQLiteSession(session_id, tmp_path / "sdk.db"))
            return made[-1]

        yield make
        for session in made:
            session.close()


# -- a real agent run across two processes -------------------------------------------------


@pytest.mark.slow
def test_a_second_process_resumes_the_conversation_of_a_real_runner(db_url: str) -> None:
    first = json.loads(_finish(_worker("run", db_url, "chat-1", "my name is Ada")))
    assert first == "Nice to meet you, Ada"
    # A new process knows nothing but the session id: the name comes from the database.
    second = json.loads(_finish(_worker("run", db_url, "chat-1", "what is my name?")))
    assert second == "Your name is Ada"
    with PeeweeSessionStore(db_url) as store:
        items = _run(store.session("chat-1").get_items())
        info = store.session_info("chat-1")
    kinds = [item.get("type", "message") for item in items]
    assert kinds == ["message", "message", "message", "function_call",
                     "function_call_output", "message"]
    assert items[0] == {"content": "my name is Ada", "role": "user"}
    assert info is not None
    assert info.user_id == "worker"
    assert info.item_count == 6


def test_an_encrypted_session_wraps_it(store: PeeweeSessionStore) -> None:
    if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_OPENAI_AGENTS"):
        pytest.importorskip("cryptography", reason="EncryptedSession needs openai-agents[encrypt]")
    from agents.extensions.memory import EncryptedSession
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    inner = store.session("secret")
    session = EncryptedSession("secret", inner, encryption_key=key)
    items = [_msg("my password is hunter2"), _msg("second")]
    _run(session.add_items(items))
    assert _run(session.get_items()) == items
    assert _run(session.get_items(1)) == items[1:]
    stored = _run(inner.get_items())
    assert "hunter2" not in json.dumps(stored), "the underlying rows hold plain text"
    assert _run(session.pop_item()) == items[1]
    # A new wrapper (another process, same key) reads what is left.
    again = EncryptedSession("secret", store.session("secret"), encryption_key=key)
    assert _run(again.get_items()) == items[:1]


# -- concurrency across processes ----------------------------------------------------------


@pytest.mark.slow
def test_concurrent_processes_adding_to_one_new_session_lose_nothing(db_url: str) -> None:
    batches, size = 25, 4
    with PeeweeSessionStore(db_url) as store:
        store.migrate()  # so the workers race on the first writes, not on the migration
    start_at = time.time() + 3
    procs = [_worker("add", db_url, "crowd", str(w), str(batches), str(size), str(start_at))
             for w in range(PROCESSES)]
    for proc in procs:
        _finish(proc)
    with PeeweeSessionStore(db_url) as store:
        items = _run(store.session("crowd").get_items())
        info = store.session_info("crowd")
    contents = [item["content"] for item in items]
    assert len(contents) == PROCESSES * batches * size
    assert len(set(contents)) == len(contents)
    last_batch: dict[str, int] = {}
    for start in range(0, len(contents), size):
        w, b, _ = contents[start].split("-")
        assert contents[start:start + size] == [f"{w}-{b}-{i}" for i in range(size)], (
            "an add_items call was interleaved with another")
        assert int(b) > last_batch.get(w, -1), "a worker's calls came back out of order"
        last_batch[w] = int(b)
    assert info is not None
    assert info.item_count == len(contents)


@pytest.mark.slow
def test_concurrent_processes_popping_never_share_an_item(db_url: str) -> None:
    total, pops = 400, 60  # 480 pops for 400 items: some find the session empty
    with PeeweeSessionStore(db_url) as store:
        _run(store.session("pops").add_items([_msg(f"m{i}") for i in range(total)]))
    start_at = time.time() + 3
    procs = [_worker("pop", db_url, "pops", str(pops), str(start_at))
             for _ in range(PROCESSES)]
    popped = [item for proc in procs for item in json.loads(_finish(proc))]
    got = [item["content"] for item in popped if item is not None]
    assert len(got) == len(set(got)), "an item was popped twice"
    assert sorted(got) == sorted(f"m{i}" for i in range(total))
    assert popped.count(None) == PROCESSES * pops - total
    with PeeweeSessionStore(db_url) as store:
        assert _run(store.session("pops").get_items()) == []
        info = store.session_info("pops")
        assert info is not None
        assert (info.item_count, info.total_bytes) == (0, 0)


@pytest.mark.slow
def test_processes_adding_and_popping_at_once_lose_and_duplicate_nothing(db_url: str) -> None:
    with PeeweeSessionStore(db_url) as store:
        _run(store.session("mixed").add_items([_msg(f"seed-{i}") for i in range(100)]))
    start_at = time.time() + 3
    adders = [_worker("add", db_url, "mixed", str(w), "20", "3", str(start_at))
              for w in range(PROCESSES // 2)]
    poppers = [_worker("pop", db_url, "mixed", "40", str(start_at))
               for _ in range(PROCESSES // 2)]
    for proc in adders:
        _finish(proc)
    popped = [item["content"] for proc in poppers for item in json.loads(_finish(proc))
              if item is not None]
    with PeeweeSessionStore(db_url) as store:
        left = [item["content"] for item in _run(store.session("mixed").get_items())]
        info = store.session_info("mixed")
    added = [f"seed-{i}" for i in range(100)] + [
        f"{w}-{b}-{i}" for w in range(PROCESSES // 2) for b in range(20) for i in range(3)]
    assert len(popped) == len(set(popped)), "an item was popped twice"
    assert sorted(popped + left) == sorted(added), "an item was lost or invented"
    assert info is not None
    assert info.item_count == len(left)


@pytest.mark.slow
def test_the_sdks_sqlite_session_across_processes(tmp_path: Path) -> None:
    """The same 8-process adds and pops on the SDK's SQLiteSession, for comparison.

    Its lock is per process, so across processes it relies on SQLite's own locking.
    """
    url = f"sdk-sqlite:{tmp_path / 'sdk.db'}"
    start_at = time.time() + 3
    procs = [_worker("add", url, "crowd", str(w), "25", "4", str(start_at))
             for w in range(PROCESSES)]
    for proc in procs:
        _finish(proc)
    from agents import SQLiteSession

    session = SQLiteSession("crowd", tmp_path / "sdk.db")
    contents = [item["content"] for item in _run(session.get_items())]
    assert len(contents) == PROCESSES * 100
    for start in range(0, len(contents), 4):
        w, b, _ = contents[start].split("-")
        assert contents[start:start + 4] == [f"{w}-{b}-{i}" for i in range(4)]
    start_at = time.time() + 3
    procs = [_worker("pop", url, "crowd", "110", str(start_at)) for _ in range(PROCESSES)]
    popped = [item for proc in procs for item in json.loads(_finish(proc))]
    got = [item["content"] for item in popped if item is not None]
    assert len(got) == len(set(got)) == PROCESSES * 100
    session.close()


# -- behaviour beyond the kit --------------------------------------------------------------


def _write_raw(store: PeeweeSessionStore, session_id: str, seq: int, data: bytes) -> None:
    engine = store.tables.engine
    p = engine.param
    engine.run("write a raw row", lambda: engine.execute(
        f"INSERT INTO peewee_checkpoints_oai_items (session_id, seq, data, created_at) "
        f"VALUES ({p}, {p}, {p}, 0)", (session_id, seq, data)))


def test_malformed_stored_items_are_skipped_with_a_warning_and_do_not_count(
        store: PeeweeSessionStore, caplog: pytest.LogCaptureFixture) -> None:
    session = store.session("broken")
    _run(session.add_items([_msg("a"), _msg("b")]))
    _write_raw(store, "broken", 100, b"{not json")
    _write_raw(store, "broken", 101, b"[1, 2]")
    with caplog.at_level(logging.WARNING, logger="peewee_checkpoints.sessions"):
        assert _run(session.get_items()) == [_msg("a"), _msg("b")]
        assert _run(session.get_items(2)) == [_msg("a"), _msg("b")]
        assert _run(session.get_items(1)) == [_msg("b")]
        assert _run(session.pop_item()) == _msg("b")
    assert "malformed" in caplog.text
    # The bad rows stay for someone to look at; new items still come after them.
    _run(session.add_items([_msg("c")]))
    assert _run(session.get_items()) == [_msg("a"), _msg("c")]


def test_items_that_are_not_json_objects_are_refused_before_anything_is_written(
        store: PeeweeSessionStore) -> None:
    session = store.session("refuse")
    for bad in ([_msg("ok"), "text"], [_msg("ok"), {"x": {1, 2}}], [{"x": float("nan")}]):
        with pytest.raises(InvalidCheckpointError):
            _run(session.add_items(bad))  # type: ignore[arg-type]
    assert _run(session.get_items()) == []
    with pytest.raises(ValueError, match="limit"):
        _run(session.get_items(-1))


def test_session_settings_given_as_a_dict(store: PeeweeSessionStore) -> None:
    session = store.session("dict-settings", session_settings={"limit": 1})
    _run(session.add_items([_msg("a"), _msg("b")]))
    assert _run(session.get_items()) == [_msg("b")]


def test_sessions_are_listed_by_user_and_metadata_newest_activity_first(
        store: PeeweeSessionStore) -> None:
    for i in range(7):
        user = "alice" if i % 2 == 0 else "bob"
        session = store.session(f"s{i}", user_id=user,
                                metadata={"topic": "billing" if i < 3 else "support", "n": i})
        _run(session.add_items([_msg(f"hello {i}")]))
        time.sleep(0.003)
    _run(store.session("s0").add_items([_msg("again")]))  # now the most recent
    pages, cursor = [], None
    while True:
        page = store.list_sessions(user_id="alice", limit=2, cursor=cursor)
        pages.append([info.session_id for info in page.items])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [["s0", "s6"], ["s4", "s2"]]
    billing = store.list_sessions(metadata={"topic": "billing"})
    assert [i.session_id for i in billing.items] == ["s0", "s2", "s1"]
    assert [i.session_id for i in store.list_sessions(metadata={"n": 3}).items] == ["s3"]
    assert len(store.list_sessions(has_keys=["topic"], limit=100).items) == 7
    assert store.list_sessions(has_keys=["nope"]).items == []
    info = store.session_info("s0")
    assert info is not None
    assert (info.user_id, info.metadata, info.item_count) == (
        "alice", {"topic": "billing", "n": 0}, 2)
    assert info.total_bytes == len(b'{"role":"user","content":"hello 0"}') + len(
        b'{"role":"user","content":"again"}')
    with pytest.raises(InvalidCheckpointError):
        store.list_sessions(cursor="not a cursor")


def test_deleting_a_users_sessions(store: PeeweeSessionStore) -> None:
    for sid, user in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
        _run(store.session(sid, user_id=user).add_items([_msg(sid)]))
    assert store.delete_user_sessions("alice") == 2
    assert [i.session_id for i in store.list_sessions().items] == ["b1"]
    assert _run(store.session("a1").get_items()) == []
    assert store.delete_session("b1") is True
    assert store.delete_session("b1") is False


def test_metadata_can_be_replaced(store: PeeweeSessionStore) -> None:
    session = store.session("meta", metadata={"a": 1})
    _run(session.add_items([_msg("x")]))
    _run(session.set_metadata({"b": "two"}))
    assert _run(session.get_metadata()) == {"b": "two"}
    assert store.list_sessions(metadata={"a": 1}).items == []
    assert [i.session_id for i in store.list_sessions(metadata={"b": "two"}).items] == ["meta"]


def test_fork_copies_history_up_to_an_item(store: PeeweeSessionStore) -> None:
    session = store.session("main", user_id="alice", metadata={"k": "v"})
    items = [_msg(f"m{i}") for i in range(5)]
    _run(session.add_items(items))
    branch = _run(session.fork("branch", at_item=2))
    assert _run(branch.get_items()) == items[:3]
    _run(branch.add_items([_msg("alt")]))
    assert _run(branch.get_items()) == [*items[:3], _msg("alt")]
    assert _run(session.get_items()) == items, "the source is unchanged"
    assert _run(session.fork("tail", at_item=-2)) is not None
    assert _run(store.session("tail").get_items()) == items[:4]
    info = store.session_info("branch")
    assert info is not None
    assert (info.user_id, info.metadata, info.item_count) == ("alice", {"k": "v"}, 4)
    with pytest.raises(InvalidCheckpointError, match="already exists"):
        _run(session.fork("branch"))
    with pytest.raises(InvalidCheckpointError, match="outside"):
        _run(session.fork("far", at_item=5))


def test_export_and_import_move_a_session(store: PeeweeSessionStore, tmp_path: Path) -> None:
    session = store.session("moving", user_id="u", metadata={"x": [1, 2]})
    _run(session.add_items(list(map(_msg, "abc"))))
    record = store.export_session("moving")
    assert record is not None
    with PeeweeSessionStore(f"sqlite:///{tmp_path / 'other.db'}") as other:
        assert other.import_session(record) == 3
        assert _run(other.session("moving").get_items()) == list(map(_msg, "abc"))
        with pytest.raises(InvalidCheckpointError, match="exists"):
            other.import_session(record)
        assert other.import_session({**record, "items": []}, replace=True) == 0
        info = other.session_info("moving")
        assert info is not None
        assert (info.user_id, info.metadata, info.item_count) == ("u", {"x": [1, 2]}, 0)


def test_it_is_a_session_to_the_sdk(store: PeeweeSessionStore) -> None:
    from agents.memory import Session

    assert isinstance(store.session("typed"), Session)


def test_a_session_on_its_own_url(db_url: str) -> None:
    session = PeeweeSession("own", db_url)
    try:
        _run(session.add_items([_msg("x")]))
        assert _run(session.count_items()) == 1
        assert "own" in repr(session)
    finally:
        session.close()


# -- the command line ----------------------------------------------------------------------


def _cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, str, str]:
    from peewee_checkpoints.cli import main

    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out.decode(), err.decode()


def test_the_sessions_command_lists_shows_exports_imports_copies_and_deletes(
        store: PeeweeSessionStore, db_url: str, tmp_path: Path,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    _run(store.session("c1", user_id="ann", metadata={"t": "x"}).add_items(
        [_msg("hi"), _msg("again")]))
    _run(store.session("c2", user_id="bob").add_items([_msg("yo")]))
    code, out, _ = _cli(capsysbinary, "--db-url", db_url, "sessions", "list")
    assert code == 0
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["c2", "c1"]
    code, out, _ = _cli(capsysbinary, "--db-url", db_url, "sessions", "list", "--meta", "t=x",
                        "--json")
    assert [json.loads(line)["session_id"] for line in out.splitlines()] == ["c1"]
    code, out, _ = _cli(capsysbinary, "--db-url", db_url, "sessions", "show", "c1")
    shown = json.loads(out)
    assert (shown["user_id"], shown["item_count"], shown["items"]) == (
        "ann", 2, [_msg("hi"), _msg("again")])
    code, out, err = _cli(capsysbinary, "--db-url", db_url, "sessions", "show", "nope")
    assert code == 1
    assert "no session 'nope'" in err

    exported = tmp_path / "sessions.jsonl"
    code, _, _ = _cli(capsysbinary, "--db-url", db_url, "sessions", "export", "-o",
                      str(exported))
    assert code == 0
    assert len(exported.read_text().splitlines()) == 2
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, _, err = _cli(capsysbinary, "--db-url", other, "sessions", "import", str(exported))
    assert (code, err.strip()) == (0, "imported 2 session(s), 3 item(s)")
    # Again: what is there is kept, so an interrupted import is finished by a rerun.
    code, _, err = _cli(capsysbinary, "--db-url", other, "sessions", "import", str(exported))
    assert (code, err.strip()) == (0, "imported 0 session(s), 0 item(s); skipped 2 already there")
    third = f"sqlite:///{tmp_path / 'third.db'}"
    code, _, _ = _cli(capsysbinary, "--db-url", db_url, "sessions", "copy", "--to", third,
                      "--user", "ann")
    assert code == 0
    with PeeweeSessionStore(third) as copied:
        assert [i.session_id for i in copied.list_sessions().items] == ["c1"]
        assert _run(copied.session("c1").get_items()) == [_msg("hi"), _msg("again")]
    code, _, err = _cli(capsysbinary, "--db-url", db_url, "sessions", "copy", "--to", third)
    assert (code, err.strip()) == (0, "copied 1 session(s); skipped 1 already there")

    code, _, err = _cli(capsysbinary, "--db-url", db_url, "sessions", "delete", "--user", "bob")
    assert (code, err.strip()) == (0, "deleted 1 session(s)")
    code, _, err = _cli(capsysbinary, "--db-url", db_url, "sessions", "delete", "c1", "gone")
    assert code == 1
    assert "not found: gone" in err
    assert store.list_sessions().items == []
