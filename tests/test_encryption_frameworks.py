"""Encryption at rest for the LangGraph saver and the agent-framework sessions: every stored
value under AES-256-GCM with the key id recorded per row, old plain rows readable, tampering
and missing keys as errors naming the key, and rekey over these tables. On every backend."""

from __future__ import annotations

import asyncio
import json
import operator
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from peewee_checkpoints import CheckpointError, ConfigError, PeeweeCheckpointProvider
from peewee_checkpoints._crypto import EncryptionError
from tests.test_encryption import NEW, OLD, ROOT, SECRETS, _assert_no_secret, _raw
from tests.test_retention import put_thread

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH"):
    pytest.importorskip("langgraph.checkpoint.conformance",
                        reason="pip install -e '.[langgraph-test]'")

from langgraph.checkpoint.conformance import checkpointer_test, validate

from peewee_checkpoints.langgraph import PeeweeSaver

MARKER = "zebra-marker-4111"
LG_TABLES = {"checkpoints": ("type", "checkpoint"), "blobs": ("type", "data"),
             "writes": ("type", "data")}


def _lg_payloads(db_url: str, thread_id: str) -> list[tuple[str, bytes]]:
    """(type, bytes) of every stored value of a thread, read with plain SQL."""
    found = []
    for table, (type_col, data_col) in LG_TABLES.items():
        for type_, data in _raw(db_url, f"SELECT {type_col}, {data_col} FROM "
                                f"peewee_checkpoints_lg_{table} WHERE thread_id = ?",
                                (thread_id,)):
            found.append((type_, bytes(data)))
    for type_, data in _raw(db_url, "SELECT metadata_type, metadata FROM "
                            "peewee_checkpoints_lg_checkpoints WHERE thread_id = ?",
                            (thread_id,)):
        found.append((type_, bytes(data)))
    return found


def _update(db_url: str, sql: str, params: tuple[Any, ...]) -> None:
    with PeeweeCheckpointProvider(db_url) as p:
        engine = p.engine

        def run() -> None:
            with engine.transaction(write=True):
                engine.execute(sql.replace("?", engine.param), params)

        engine.run("test", run)


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _graph(saver: PeeweeSaver) -> Any:
    from langgraph.graph import END, START, StateGraph

    def draft(state: State) -> dict[str, list[str]]:
        return {"steps": [f"draft of {MARKER}"]}

    def review(state: State) -> dict[str, list[str]]:
        return {"steps": ["review"]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=saver, interrupt_before=["review"])


def test_a_graph_resumes_through_an_encrypted_saver_and_rows_hold_ciphertext(db_url: str
                                                                             ) -> None:
    thread = f"t-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    with PeeweeSaver(db_url, encryption_keys=[NEW, OLD]) as saver:
        graph = _graph(saver)
        graph.invoke({"steps": [f"input {MARKER}"]}, config)
        assert graph.get_state(config).next == ("review",)
    # A new saver (a new process would be the same) resumes it.
    with PeeweeSaver.from_conn_string(db_url, encryption_keys=[NEW]) as saver:
        graph = _graph(saver)
        assert graph.invoke(None, config)["steps"] == [f"input {MARKER}", f"draft of {MARKER}",
                                                        "review"]
        history = list(graph.get_state_history(config))
        assert len(history) >= 4
        put_thread(saver, thread, 1_700_000_000_000, n=2)  # adds pending writes too
    payloads = _lg_payloads(db_url, thread)
    assert len(payloads) >= 10
    for type_, data in payloads:
        assert type_.startswith("aes:new-2026:"), type_
        assert MARKER.encode() not in data and b"secret" not in data
        assert data[:1] == b"\x01"
    # Without encryption the same graph stores the marker in the clear (the check above bites).
    plain = f"p-{uuid.uuid4()}"
    with PeeweeSaver(db_url) as saver:
        _graph(saver).invoke({"steps": [f"input {MARKER}"]}, {"configurable": {"thread_id": plain}})
    assert any(MARKER.encode() in data for _, data in _lg_payloads(db_url, plain))


def test_plain_threads_stay_readable_after_encryption_is_turned_on(db_url: str) -> None:
    with PeeweeSaver(db_url) as saver:
        put_thread(saver, "plain", 1_700_000_000_000, n=2)
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        old = saver.get_tuple({"configurable": {"thread_id": "plain", "checkpoint_ns": ""}})
        assert old is not None
        assert old.checkpoint["channel_values"]["messages"][0].startswith("plain secret 1")
        assert old.pending_writes == [("task-1", "messages", "write 1")]
        put_thread(saver, "plain", 1_700_000_001_000, n=1)
        # Plain and encrypted checkpoints of one thread list together.
        assert len(list(saver.list({"configurable": {"thread_id": "plain"}}))) == 3
    types = {t.split(":")[0] for t, _ in _lg_payloads(db_url, "plain")}
    assert types == {"aes", "msgpack"}


def test_a_value_under_a_removed_key_names_the_key_it_needs(db_url: str) -> None:
    with PeeweeSaver(db_url, encryption_keys=[OLD]) as saver:
        put_thread(saver, "t", 1_700_000_000_000, n=2)
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        with pytest.raises(EncryptionError, match="old-2025") as info:
            saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
        assert isinstance(info.value, CheckpointError)
        _assert_no_secret(str(info.value))
        with pytest.raises(EncryptionError, match="old-2025"):
            list(saver.list({"configurable": {"thread_id": "t"}}))
    with PeeweeSaver(db_url) as saver, pytest.raises(EncryptionError, match="old-2025"):
        saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})


@pytest.mark.parametrize("table", ["checkpoints", "blobs", "writes", "moved"])
def test_a_tampered_value_is_an_error_never_garbage(db_url: str, table: str) -> None:
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        put_thread(saver, "t", 1_700_000_000_000, n=2)
        key = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        assert saver.get_tuple(key) is not None
        if table == "moved":
            # The newest checkpoint's blob replaced by the older one's (both valid ciphertext).
            rows = _raw(db_url, "SELECT version, data FROM peewee_checkpoints_lg_blobs "
                        "WHERE thread_id = ? ORDER BY version", ("t",))
            _update(db_url, "UPDATE peewee_checkpoints_lg_blobs SET data = ? "
                    "WHERE thread_id = ? AND version = ?", (bytes(rows[0][1]), "t", rows[1][0]))
        else:
            column = "checkpoint" if table == "checkpoints" else "data"
            rows = _raw(db_url, f"SELECT {column} FROM peewee_checkpoints_lg_{table} "
                        "WHERE thread_id = ?", ("t",))
            for (data,) in rows:
                flipped = bytearray(bytes(data))
                flipped[-5] ^= 0x01
                _update(db_url, f"UPDATE peewee_checkpoints_lg_{table} SET {column} = ? "
                        f"WHERE thread_id = ? AND {column} = ?", (bytes(flipped), "t", data))
        with pytest.raises(EncryptionError, match="new-2026"):
            saver.get_tuple(key)


def test_a_copied_thread_stays_readable(db_url: str) -> None:
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        put_thread(saver, "src", 1_700_000_000_000, n=2)
        saver.copy_thread("src", "dst")
        copied = saver.get_tuple({"configurable": {"thread_id": "dst", "checkpoint_ns": ""}})
        assert copied is not None
        assert copied.checkpoint["channel_values"]["messages"][0].startswith("src secret 1")
        saver.prune(["dst"])
        assert len(list(saver.list({"configurable": {"thread_id": "dst"}}))) == 1


def test_saver_keys_never_show_and_long_key_ids_are_refused(db_url: str) -> None:
    with PeeweeSaver(db_url, encryption_keys=[NEW, OLD]) as saver:
        _assert_no_secret(repr(saver) + repr(saver.__dict__) + str(vars(saver)))
    long_id = "k" * 41 + ":" + NEW.split(":", 1)[1]
    with pytest.raises(ConfigError, match="40") as info:
        PeeweeSaver(db_url, encryption_keys=[long_id])
    _assert_no_secret(str(info.value))
    with pytest.raises(ConfigError) as info:
        PeeweeSaver(db_url, encryption_keys=["bad:" + SECRETS[2]])
    _assert_no_secret(str(info.value))


def test_langgraph_conformance_suite_passes_encrypted(db_url: str, backend: str) -> None:
    @checkpointer_test(name=f"PeeweeSaver[{backend}, encrypted]")
    async def factory() -> Any:
        s = PeeweeSaver(db_url, encryption_keys=[NEW, OLD])
        try:
            yield s
        finally:
            s.close()

    report = asyncio.run(validate(factory)).to_dict()
    results = report.get("results", report)
    for capability in ("put", "put_writes", "get_tuple", "list", "delete_thread",
                       "delete_for_runs", "copy_thread", "prune"):
        r = results[capability]
        assert r["detected"] and r["tests_passed"] > 0
        assert r["tests_failed"] == 0, r.get("failures")



# -- OpenAI Agents sessions ----------------------------------------------------------------------


def _items(db_url: str, session_id: str) -> list[tuple[int, bytes]]:
    return [(int(seq), bytes(data)) for seq, data in _raw(
        db_url, "SELECT seq, data FROM peewee_checkpoints_oai_items WHERE session_id = ? "
        "ORDER BY seq", (session_id,))]


def test_openai_session_items_are_encrypted_and_round_trip(db_url: str) -> None:
    from peewee_checkpoints.openai_agents import PeeweeSession, PeeweeSessionStore

    items = [{"role": "user", "content": f"{MARKER} {i}"} for i in range(5)]
    session = PeeweeSession("s1", db_url, encryption_keys=[NEW, OLD])
    try:
        asyncio.run(session.add_items(items))
        assert asyncio.run(session.get_items()) == items
        assert asyncio.run(session.get_items(limit=2)) == items[-2:]
        assert asyncio.run(session.pop_item()) == items[-1]
    finally:
        session.close()
    stored = _items(db_url, "s1")
    assert len(stored) == 4
    for _seq, data in stored:
        assert data[:1] == b"\xfe" and b"new-2026" in data[:12]
        assert MARKER.encode() not in data
    with PeeweeSessionStore(db_url, encryption_keys=[NEW]) as store:
        info = store.session_info("s1")
        assert info is not None and info.item_count == 4
        assert info.total_bytes == sum(len(d) for _, d in stored)
        store.fork("s1", "s2", at_item=2)
        assert store.tables.get_items("s2") == items[:3]
    # Items stored before encryption was turned on stay readable next to encrypted ones.
    with PeeweeSessionStore(db_url) as plain:
        plain.tables.add_items("mixed", [{"content": "plain"}])
        assert MARKER.encode() not in b"".join(d for _, d in _items(db_url, "mixed"))
    with PeeweeSessionStore(db_url, encryption_keys=[NEW]) as store:
        store.tables.add_items("mixed", [{"content": MARKER}])
        assert store.tables.get_items("mixed") == [{"content": "plain"}, {"content": MARKER}]
        _assert_no_secret(repr(store) + repr(store.tables.keyring) + str(vars(store)))


def test_openai_items_under_a_removed_key_or_tampered_are_errors(db_url: str) -> None:
    from peewee_checkpoints.openai_agents import PeeweeSessionStore

    with PeeweeSessionStore(db_url, encryption_keys=[OLD]) as store:
        store.tables.add_items("s", [{"content": MARKER}, {"content": "two"}])
    with PeeweeSessionStore(db_url, encryption_keys=[NEW]) as store:
        with pytest.raises(EncryptionError, match="old-2025") as info:
            store.tables.get_items("s")
        _assert_no_secret(str(info.value))
        with pytest.raises(EncryptionError, match="old-2025"):
            store.tables.pop_item("s")
    with PeeweeSessionStore(db_url, encryption_keys=[OLD]) as store:
        stored = _items(db_url, "s")
        # Item 0's ciphertext put in item 1's place: authentic, but not where it was stored.
        _update(db_url, "UPDATE peewee_checkpoints_oai_items SET data = ? "
                "WHERE session_id = ? AND seq = ?", (stored[0][1], "s", 1))
        with pytest.raises(EncryptionError, match="old-2025"):
            store.tables.get_items("s")
        flipped = bytearray(stored[0][1])
        flipped[-3] ^= 0x40
        _update(db_url, "UPDATE peewee_checkpoints_oai_items SET data = ? "
                "WHERE session_id = ? AND seq = ?", (bytes(flipped), "s", 1))
        with pytest.raises(EncryptionError, match="altered"):
            store.tables.get_items("s")


# -- Google ADK sessions -------------------------------------------------------------------------


def _adk_payloads(db_url: str) -> list[bytes]:
    found = []
    for table, column in (("sessions", "state"), ("events", "data"), ("app_states", "state"),
                          ("user_states", "state")):
        found += [bytes(r[0]) for r in _raw(db_url, f"SELECT {column} FROM "
                                            f"peewee_checkpoints_adk_{table}")]
    return found


def test_adk_sessions_are_encrypted_and_round_trip(db_url: str) -> None:
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    from peewee_checkpoints.adk import PeeweeSessionService

    async def scenario(service: PeeweeSessionService) -> Any:
        session = await service.create_session(
            app_name="app", user_id="u", session_id="s",
            state={"topic": MARKER, "app:shared": MARKER, "user:pref": MARKER})
        for i in range(3):
            event = Event(invocation_id="inv", author="user", content=types.Content(
                role="user", parts=[types.Part(text=f"{MARKER} {i} " + "z" * 500)]),
                actions=EventActions(state_delta={"n": i}))
            await service.append_event(session, event)
        return await service.get_session(app_name="app", user_id="u", session_id="s")

    service = PeeweeSessionService(db_url, encryption_keys=[NEW, OLD])
    try:
        got = asyncio.run(scenario(service))
    finally:
        asyncio.run(service.close())
    assert got.state["topic"] == MARKER and got.state["app:shared"] == MARKER
    assert got.state["n"] == 2
    assert [e.content.parts[0].text[:len(MARKER) + 2] for e in got.events] == \
        [f"{MARKER} {i}" for i in range(3)]
    payloads = _adk_payloads(db_url)
    assert len(payloads) == 1 + 3 + 1 + 1
    for data in payloads:
        assert data[:1] == b"\xfe" and MARKER.encode() not in data
    # A reader without the key is told which key it needs.
    service = PeeweeSessionService(db_url, encryption_keys=[OLD])
    try:
        with pytest.raises(EncryptionError, match="new-2026"):
            asyncio.run(service.get_session(app_name="app", user_id="u", session_id="s"))
    finally:
        asyncio.run(service.close())


def test_adk_plain_rows_stay_readable_and_tampering_is_an_error(db_url: str) -> None:
    from peewee_checkpoints.adk._store import AdkStore
    from tests.test_retention import _adk_session

    plain = AdkStore(db_url)
    _adk_session(plain, "app", "u", "old", 2)
    plain.close()
    store = AdkStore(db_url, encryption_keys=[NEW])
    try:
        _adk_session(store, "app", "u", "new", 2)
        for session_id in ("old", "new"):
            found = store.get_session("app", "u", session_id)
            assert found is not None
            assert found[0].state["topic"].startswith("secret")
            assert [e.event_id for e in found[3]] == ["e0", "e1"]
        # An event's ciphertext moved onto another event fails authentication.
        rows = _raw(db_url, "SELECT seq, data FROM peewee_checkpoints_adk_events "
                    "WHERE session_id = ? ORDER BY seq", ("new",))
        _update(db_url, "UPDATE peewee_checkpoints_adk_events SET data = ? "
                "WHERE session_id = ? AND seq = ?", (bytes(rows[0][1]), "new", rows[1][0]))
        with pytest.raises(EncryptionError, match="new-2026"):
            store.get_session("app", "u", "new")
        assert store.get_session("app", "u", "old") is not None
    finally:
        store.close()


# -- rekey over the LangGraph and session tables ---------------------------------------------


def _fill_everything(db_url: str, keys: list[str] | None) -> None:
    from peewee_checkpoints.adk._store import AdkStore
    from peewee_checkpoints.openai_agents import PeeweeSessionStore
    from tests.test_retention import _adk_session

    with PeeweeSaver(db_url, encryption_keys=keys) as saver:
        for t in range(3):
            put_thread(saver, f"lg{t}", 1_700_000_000_000 + t * 10, n=3)
    with PeeweeSessionStore(db_url, encryption_keys=keys) as store:
        for s in range(3):
            store.tables.add_items(f"oai{s}", [{"content": f"{MARKER} {i}"} for i in range(4)])
    adk = AdkStore(db_url, encryption_keys=keys)
    try:
        for s in range(2):
            _adk_session(adk, "app", "u", f"adk{s}", 3)
    finally:
        adk.close()


def _key_ids(db_url: str) -> dict[str, int]:
    """How many stored payloads each key id holds ("" for plain), across the new tables."""
    from peewee_checkpoints._crypto import sealed_key

    found: dict[str, int] = {}
    for thread in ("lg0", "lg1", "lg2"):
        for type_, _data in _lg_payloads(db_url, thread):
            key = type_.split(":")[1] if type_.startswith("aes:") else ""
            found[key] = found.get(key, 0) + 1
    rows = [r[0] for r in _raw(db_url, "SELECT data FROM peewee_checkpoints_oai_items")]
    rows += _adk_payloads(db_url)
    for data in rows:
        key = sealed_key(bytes(data))
        found[key] = found.get(key, 0) + 1
    return found


def _check_readable(db_url: str, keys: list[str] | None) -> None:
    from peewee_checkpoints.adk._store import AdkStore
    from peewee_checkpoints.openai_agents import PeeweeSessionStore

    with PeeweeSaver(db_url, encryption_keys=keys) as saver:
        for t in range(3):
            got = saver.get_tuple({"configurable": {"thread_id": f"lg{t}", "checkpoint_ns": ""}})
            assert got is not None
            assert got.checkpoint["channel_values"]["messages"][0].startswith(f"lg{t} secret 2")
            assert got.pending_writes == [("task-2", "messages", "write 2")]
    with PeeweeSessionStore(db_url, encryption_keys=keys) as store:
        assert store.tables.get_items("oai2")[-1] == {"content": f"{MARKER} 3"}
        info = store.session_info("oai2")
        stored = _items(db_url, "oai2")
        assert info is not None and info.total_bytes == sum(len(d) for _, d in stored)
    adk = AdkStore(db_url, encryption_keys=keys)
    try:
        found = adk.get_session("app", "u", "adk1")
        assert found is not None and found[0].state["n"] == 2 and len(found[3]) == 3
        assert adk.get_app_state("app") == {"app:k": 1}
    finally:
        adk.close()


def test_rekey_moves_langgraph_and_session_payloads_to_the_first_key(db_url: str) -> None:
    from peewee_checkpoints._rekey import rekey

    _fill_everything(db_url, None)  # plain rows from before encryption
    assert set(_key_ids(db_url)) == {""}
    with PeeweeCheckpointProvider(db_url, encryption_keys=[OLD]) as provider:
        provider.rekey()  # encryption turned on: every plain payload under the old key
    before = _key_ids(db_url)
    assert set(before) == {"old-2025"}
    _check_readable(db_url, [OLD])
    # Rows: a LangGraph checkpoint row holds two payloads (checkpoint and metadata).
    rows = sum(before.values()) - 3 * 3
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW, OLD]) as provider:
        # Stopped after the first batches: the rest is left for the next run.
        calls = []
        first = rekey(provider, batch=5, stop=lambda: len(calls) > 0,
                      progress=calls.append)
        assert 0 < first.rewritten < rows
        mixed = _key_ids(db_url)
        assert set(mixed) == {"old-2025", "new-2026"}
        counts = rekey(provider, batch=5)
        assert first.rewritten + counts.rewritten == rows
        assert counts.tables["peewee_checkpoints_lg_blobs"] > 0
        assert counts.tables["peewee_checkpoints_adk_events"] == 6
        assert _key_ids(db_url) == {"new-2026": sum(before.values())}
        assert provider.rekey() == 0
    _check_readable(db_url, [NEW])  # the old key is no longer needed
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW]) as provider:
        assert provider.rekey(decrypt=True) == rows
    assert _key_ids(db_url) == {"": sum(before.values())}
    _check_readable(db_url, None)


def test_rekey_names_a_missing_key(db_url: str) -> None:
    _fill_everything(db_url, [OLD])
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW]) as provider:
        with pytest.raises(EncryptionError, match="old-2025") as info:
            provider.rekey()
        _assert_no_secret(str(info.value))


def test_rekey_of_langgraph_rows_killed_with_sigkill_is_finished_by_running_it_again(
        db_url: str, tmp_path: Path) -> None:
    with PeeweeSaver(db_url, encryption_keys=[OLD]) as saver:
        for t in range(60):
            put_thread(saver, f"k{t:02d}", 1_700_000_000_000, n=2)
    total = 60 * 2 * 3  # checkpoint rows, blobs, writes
    env = {**os.environ, "PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS": f"{NEW},{OLD}"}
    script = tmp_path / "slow_rekey.py"
    script.write_text(
        "import sys, time\n"
        "import peewee_checkpoints._rekey as r\n"
        "from peewee_checkpoints import PeeweeCheckpointProvider\n"
        "p = PeeweeCheckpointProvider(sys.argv[1])\n"
        "def progress(n):\n"
        "    print('batch', n, flush=True)\n"
        "    time.sleep(0.05)\n"
        "r.rekey(p, batch=20, progress=progress)\n"
        "print('done', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script), db_url], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(4):  # a few batches commit, then the process dies mid-run
        line = proc.stdout.readline()
        assert line.startswith("batch"), line
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    types = [t for thread in (f"k{i:02d}" for i in range(60))
             for t, _ in _lg_payloads(db_url, thread)]
    moved = sum(t.startswith("aes:new-2026:") for t in types)
    assert 80 <= moved < len(types)
    out = subprocess.run([sys.executable, "-m", "peewee_checkpoints", "--db-url", db_url,
                          "rekey", "--json"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["complete"] and 0 < report["rewritten"] < total
    _assert_no_secret(out.stdout + out.stderr)
    types = [t for thread in (f"k{i:02d}" for i in range(60))
             for t, _ in _lg_payloads(db_url, thread)]
    assert all(t.startswith("aes:new-2026:") for t in types)
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        got = saver.get_tuple({"configurable": {"thread_id": "k59", "checkpoint_ns": ""}})
        assert got is not None and got.pending_writes == [("task-1", "messages", "write 1")]


def test_the_environment_variable_encrypts_everything_and_the_cli_reads_it(
        db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from peewee_checkpoints.adk._store import AdkStore
    from peewee_checkpoints.cli import main
    from peewee_checkpoints.openai_agents import PeeweeSessionStore
    from tests.test_retention import _adk_session

    monkeypatch.setenv("PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS", f"{NEW},{OLD}")
    with PeeweeSaver(db_url) as saver:
        put_thread(saver, "env", 1_700_000_000_000, n=1)
    with PeeweeSessionStore(db_url) as store:
        store.tables.add_items("env", [{"content": MARKER}])
    adk = AdkStore(db_url)
    try:
        _adk_session(adk, "app", "u", "env", 1)
    finally:
        adk.close()
    assert all(t.startswith("aes:new-2026:") for t, _ in _lg_payloads(db_url, "env"))
    assert all(d[:1] == b"\xfe" for _, d in _items(db_url, "env"))
    assert all(d[:1] == b"\xfe" for d in _adk_payloads(db_url))
    # The session commands of the CLI take the keys from the same variable.
    assert main(["--db-url", db_url, "sessions", "show", "env"]) == 0
    out = capsys.readouterr().out
    assert MARKER in out
    _assert_no_secret(out)
    monkeypatch.delenv("PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS")
    assert main(["--db-url", db_url, "sessions", "show", "env"]) != 0
    err = capsys.readouterr().err
    assert "new-2026" in err
    _assert_no_secret(err)


def test_large_values_are_compressed_before_they_are_encrypted(db_url: str) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    text = " ".join(f"message {i} about the weather and {MARKER}" for i in range(600))
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"notes": [text]}
        checkpoint["channel_versions"] = {"notes": saver.get_next_version(None, None)}
        config = {"configurable": {"thread_id": "big", "checkpoint_ns": ""}}
        saved = saver.put(config, checkpoint, {"step": 1}, checkpoint["channel_versions"])
        saver.put_writes(saved, [("notes", text)], "task")
        got = saver.get_tuple(config)
        assert got is not None
        assert got.checkpoint["channel_values"]["notes"] == [text]
        assert got.pending_writes == [("task", "notes", text)]
    blobs = _raw(db_url, "SELECT type, data FROM peewee_checkpoints_lg_blobs "
                 "WHERE thread_id = ?", ("big",))
    writes = _raw(db_url, "SELECT type, data FROM peewee_checkpoints_lg_writes "
                  "WHERE thread_id = ?", ("big",))
    for type_, data in blobs + writes:
        assert type_ in ("aes:new-2026:zstd+msgpack", "aes:new-2026:lz4+msgpack"), type_
        assert len(bytes(data)) < len(text) / 2


def test_the_cli_reads_with_the_keys_of_the_provider_it_chose(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--config: the chosen provider's encryption_keys serve the sessions, adk and threads
    commands too (no environment variable), and only for that run."""
    from peewee_checkpoints.adk._store import AdkStore
    from peewee_checkpoints.cli import main
    from peewee_checkpoints.openai_agents import PeeweeSessionStore
    from tests.test_retention import _adk_session

    monkeypatch.delenv("PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS", raising=False)
    with PeeweeSessionStore(db_url, encryption_keys=[NEW]) as store:
        store.tables.add_items("cfg", [{"content": MARKER}])
    with PeeweeSaver(db_url, encryption_keys=[NEW]) as saver:
        put_thread(saver, "cfg", 1_700_000_000_000, n=1)
    adk = AdkStore(db_url, encryption_keys=[NEW])
    try:
        _adk_session(adk, "app", "u", "cfg", 1)
    finally:
        adk.close()
    monkeypatch.setenv("SECRET_KEYS", f"{NEW},{OLD}")
    config = tmp_path / "c.toml"
    config.write_text(f'[checkpoints]\nactive = "main"\n[checkpoints.providers.main]\n'
                      f'type = "peewee"\ndb_url = "{db_url}"\n'
                      'encryption_keys = "${SECRET_KEYS}"\n')
    for command in (["sessions", "show", "cfg"], ["threads", "show", "cfg"],
                    ["adk", "show", "--app", "app", "--user", "u", "cfg"]):
        assert main(["--config", str(config), *command]) == 0, capsys.readouterr().err
        out, err = capsys.readouterr()
        _assert_no_secret(out + err)
        if command[0] == "sessions":
            assert MARKER in out
    # The next run without --config has no keys: an error naming the key, never garbage.
    assert main(["--db-url", db_url, "sessions", "show", "cfg"]) != 0
    err = capsys.readouterr().err
    assert "new-2026" in err
    _assert_no_secret(err)
