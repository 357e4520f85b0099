"""Retention: policies from TOML, apply_retention per rule (rows and bytes), the sweeper with
four processes at once, and prune --policy. On every backend, and the memory provider."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import (
    CheckpointProvider,
    ConfigError,
    MemoryCheckpointProvider,
    PeeweeCheckpointProvider,
    RetentionPolicy,
    RetentionSweeper,
    StoredAppCheckpoint,
    StoredCheckpoint,
    load_provider,
)
from peewee_checkpoints.cli import main
from peewee_checkpoints.records import now_ms
from peewee_checkpoints.retention import parse_duration
from tests.conftest import ALL_BACKENDS, make_db_url

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400_000


@pytest.mark.parametrize(("text", "ms"), [("30d", 30 * DAY), ("12h", 12 * 3_600_000),
                                          ("15m", 900_000), ("90s", 90_000), ("1d12h", 1.5 * DAY),
                                          ("2w", 14 * DAY), ("500ms", 500), (60, 60_000)])
def test_durations(text: Any, ms: float) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "30", "d", "3 days", "-1d", "0h", 1.5, True, None, "1d x"])
def test_bad_durations_are_config_errors(bad: Any) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad, "retention.max_age")


def test_policy_from_toml_goes_to_any_provider_type(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[checkpoints]\nactive = 'mem'\n"
        "[checkpoints.providers.mem]\ntype = 'memory'\n"
        "[checkpoints.providers.mem.retention]\n"
        "max_age = '30d'\nmax_per_agent = 10\nkeep_latest = false\n"
        "app_max_age = '${APP_AGE:-90d}'\napp_max_total = 5\ncleanup_interval = '15m'\n"
        f"[checkpoints.providers.db]\ntype = 'peewee'\ndb_url = 'sqlite:///{tmp_path}/x.db'\n"
        "[checkpoints.providers.db.retention]\nmax_age = '12h'\n"
    )
    with load_provider(config) as p:
        assert p.retention_policy == RetentionPolicy(
            max_age_ms=30 * DAY, max_per_agent=10, keep_latest=False, app_max_age_ms=90 * DAY,
            app_max_total=5, cleanup_interval_ms=900_000)
    with load_provider(config, name="db") as p:
        assert p.retention_policy == RetentionPolicy(max_age_ms=12 * 3_600_000)
    config.write_text(config.read_text().replace("max_per_agent = 10", "max_per_agnet = 10"))
    with pytest.raises(ConfigError, match="max_per_agnet"):
        load_provider(config)
    config.write_text(config.read_text().replace("max_per_agnet = 10", "max_per_agent = 0"))
    with pytest.raises(ConfigError, match="max_per_agent"):
        load_provider(config)


def test_apply_retention_without_a_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="retention"):
        MemoryCheckpointProvider().apply_retention()


def _fill(p: CheckpointProvider, now: int) -> dict[str, int]:
    """Agents with old and new checkpoints, and app checkpoints; returns what each rule takes
    under POLICY."""
    rows = []
    for agent in range(4):
        for i in range(30):
            # 10 recent (one a minute), then 20 older than 30 days.
            age = i * 60_000 if i < 10 else 31 * DAY + i * 60_000
            rows.append(StoredCheckpoint(id=f"c{agent}-{i:03d}", name="n", agent_id=f"a{agent}",
                                         state={"i": i, "pad": "x" * 50}, created_at=now - age))
    # An agent whose every checkpoint is old: keep_latest spares its newest.
    rows += [StoredCheckpoint(id=f"o-{i}", name="n", agent_id="old", state={},
                              created_at=now - 40 * DAY - i) for i in range(3)]
    p.import_checkpoints(rows)
    for i in range(12):
        age = i * DAY * 10 + DAY // 2  # 0.5, 10.5, ..., 110.5 days
        p.import_app_checkpoint(StoredAppCheckpoint(id=f"app{i:02d}", name="a", state={"i": i},
                                                    created_at=now - age))
    # max_age: 4 x 20 + 2 (old's newest kept); max_per_agent 6: 4 x 4 of the recent ones;
    # app_max_age 60d: ages 60.5..110.5 -> 6; app_max_total 4: of the 6 left, 2 more.
    # No LangGraph thread or session: those rules find nothing.
    return {"max_age": 82, "max_per_agent": 16, "app_max_age": 6, "app_max_total": 2,
            "thread_max_age": 0, "session_max_age": 0}


POLICY = RetentionPolicy(max_age_ms=30 * DAY, max_per_agent=6, app_max_age_ms=60 * DAY,
                         app_max_total=4)


@pytest.fixture(params=["memory", *ALL_BACKENDS])
def store(request: pytest.FixtureRequest, servers: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "memory":
        yield MemoryCheckpointProvider()
        return
    for url in make_db_url(request.param, servers, tmp_path_factory):
        with PeeweeCheckpointProvider(url) as p:
            yield p


def test_apply_retention_reports_each_rule_and_a_dry_run_matches(store: CheckpointProvider
                                                                 ) -> None:
    now = now_ms()
    expected = _fill(store, now)
    dry = store.apply_retention(dry_run=True, policy=POLICY)
    assert dry.dry_run
    assert {k: v.rows for k, v in dry.rules.items()} == expected
    assert store.count_checkpoints() == 123
    real = store.apply_retention(policy=POLICY)
    assert {k: v.rows for k, v in real.rules.items()} == expected
    if isinstance(store, PeeweeCheckpointProvider):
        assert all(real.rules[rule].bytes > 0 for rule, rows in expected.items() if rows)
        assert {k: v.bytes for k, v in dry.rules.items()} == \
            {k: v.bytes for k, v in real.rules.items()}
    assert real.rows == sum(expected.values())
    assert store.count_checkpoints() == 123 - 82 - 16
    for agent in range(4):
        assert [i.id for i in store.list_checkpoints(agent_id=f"a{agent}")] == \
            [f"c{agent}-{i:03d}" for i in range(6)]
    assert [i.id for i in store.list_checkpoints(agent_id="old")] == ["o-0"]
    assert [i.id for i in store.list_app_checkpoints()] == ["app00", "app01", "app02", "app03"]
    again = store.apply_retention(policy=POLICY)
    assert again.rows == 0
    assert again.to_dict()["rules"]["max_age"] == {"rows": 0, "bytes": 0}


def test_keep_latest_false_lets_max_age_remove_an_agents_last_checkpoint(
        store: CheckpointProvider) -> None:
    _fill(store, now_ms())
    store.apply_retention(policy=RetentionPolicy(max_age_ms=30 * DAY, keep_latest=False))
    assert store.list_checkpoints(agent_id="old") == []
    assert store.count_checkpoints() == 40


def test_deletes_go_in_batches_of_500(provider: PeeweeCheckpointProvider) -> None:
    now = now_ms()
    provider.import_checkpoints(
        [StoredCheckpoint(id=f"r{i:05d}", name="n", agent_id=f"a{i % 2}", state={},
                          created_at=now - 2 * DAY - i) for i in range(1300)])
    from tests.conftest import captured_sql

    with captured_sql() as statements:
        report = provider.apply_retention(policy=RetentionPolicy(max_age_ms=DAY))
    assert report.rules["max_age"].rows == 1298  # each agent keeps its newest
    deletes = [s for s in statements if s.startswith("DELETE")]
    assert len(deletes) == 3
    assert all(s.count(provider.engine.param) <= 500 for s in deletes)


def test_the_provider_takes_a_policy_option(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url, retention={"max_age": "1d"}) as p:
        assert p.retention_policy == RetentionPolicy(max_age_ms=DAY)
        assert p.apply_retention().rows == 0


# -- the sweeper -------------------------------------------------------------------------------

SWEEPER = """
import json, sys, time
from peewee_checkpoints import PeeweeCheckpointProvider, RetentionPolicy, RetentionSweeper
url, start, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
p = PeeweeCheckpointProvider(url, retention=RetentionPolicy(max_age_ms=86_400_000,
                             cleanup_interval_ms=int(sys.argv[4])))
p.migrate()
time.sleep(max(0.0, start - time.time()))
if mode == "once":
    report = RetentionSweeper(p).run_once()
    print(json.dumps(None if report is None else report.to_dict()))
else:
    sweeper = RetentionSweeper(p, poll=0.05).start()
    time.sleep(float(sys.argv[5]))
    sweeper.stop()
    print(json.dumps({"runs": sweeper.runs}))
"""


def _sweepers(db_url: str, tmp_path: Path, mode: str, interval_ms: int,
              duration: float = 0.0) -> list[Any]:
    script = tmp_path / "sweep.py"
    script.write_text(SWEEPER)
    start = time.time() + 3.0  # every process imported and connected before it starts
    procs = [subprocess.Popen([sys.executable, str(script), db_url, str(start), mode,
                               str(interval_ms), str(duration)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_four_sweepers_at_once_do_the_work_once(provider: PeeweeCheckpointProvider,
                                                db_url: str, tmp_path: Path) -> None:
    now = now_ms()
    provider.import_checkpoints(
        [StoredCheckpoint(id=f"r{i:05d}", name="n", agent_id=f"a{i % 5}", state={"i": i},
                          created_at=now - 2 * DAY - i) for i in range(1200)])
    results = _sweepers(db_url, tmp_path, "once", 3_600_000)
    reports = [r for r in results if r is not None]
    assert len(reports) == 1, results  # one process claimed the interval, three skipped it
    assert reports[0]["rules"]["max_age"]["rows"] == 1195  # each agent keeps its newest
    assert provider.count_checkpoints() == 5
    # The interval is claimed until it ends: asking again now gets nothing.
    assert provider.claim_retention_run(3_600_000) is False


def test_four_sweeper_threads_run_once_per_interval(provider: PeeweeCheckpointProvider,
                                                    db_url: str, tmp_path: Path) -> None:
    provider.migrate()
    results = _sweepers(db_url, tmp_path, "loop", 1_000, duration=3.5)
    runs = sum(r["runs"] for r in results)
    # 3.5 s of 1 s intervals: 3 or 4 runs in all, whatever the number of processes.
    assert 3 <= runs <= 5, results


def test_a_sweeper_thread_in_process(store: CheckpointProvider) -> None:
    _fill(store, now_ms())
    policy = RetentionPolicy(max_age_ms=30 * DAY, cleanup_interval_ms=60_000)
    with RetentionSweeper(store, policy, poll=0.05) as sweeper:
        deadline = time.time() + 20
        while sweeper.runs == 0 and time.time() < deadline:
            time.sleep(0.05)
    assert sweeper.runs == 1  # the next interval is a minute away
    assert sweeper.last_report is not None and sweeper.last_report.rules["max_age"].rows == 82


def test_a_sweeper_needs_a_policy() -> None:
    with pytest.raises(ConfigError):
        RetentionSweeper(MemoryCheckpointProvider())


# -- prune --policy ----------------------------------------------------------------------------


def test_prune_policy_is_a_dry_run_unless_yes(db_url: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[checkpoints.providers.main]\ntype = 'peewee'\ndb_url = '{db_url}'\n"
                      "[checkpoints.providers.main.retention]\nmax_age = '30d'\n"
                      "max_per_agent = 6\napp_max_age = '60d'\napp_max_total = 4\n")
    with PeeweeCheckpointProvider(db_url) as p:
        expected = _fill(p, now_ms())
    assert main(["--config", str(config), "prune", "--policy", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True
    assert {k: v["rows"] for k, v in dry["rules"].items()} == expected
    assert main(["--config", str(config), "prune", "--policy", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"total            deleted {sum(expected.values())}" in out
    with PeeweeCheckpointProvider(db_url) as p:
        assert p.count_checkpoints() == 25 and p.count_app_checkpoints() == 4
    assert main(["--db-url", db_url, "prune", "--policy"]) == 2  # no policy configured
    assert "retention" in capsys.readouterr().err


# -- LangGraph threads and agent-framework sessions ----------------------------------------------


def uuid6_at(ms: int, seq: int = 0) -> str:
    """A LangGraph-style checkpoint id (UUIDv6) made at ``ms`` (epoch milliseconds)."""
    import uuid

    stamp = ms * 10_000 + 0x01B21DD213814000
    n = ((stamp >> 12) & 0xFFFFFFFFFFFF) << 80 | (stamp & 0xFFF) << 64 | (seq & 0x3FFF) << 48
    # Version 6 and the RFC 4122 variant (Python 3.11's UUID() refuses version=6).
    return str(uuid.UUID(int=n | 6 << 76 | 0x8000 << 48 | 0x1234))


def test_uuid6_times_read_back() -> None:
    from peewee_checkpoints._retention_sql import uuid6_ms

    now = now_ms()
    assert uuid6_ms(uuid6_at(now, 7)) == now
    assert uuid6_ms("not-a-uuid") is None
    assert uuid6_ms("6ba7b810-9dad-11d1-80b4-00c04fd430c8") is None  # v1: not LangGraph's
    pytest.importorskip("langgraph")
    from langgraph.checkpoint.base.id import uuid6

    assert abs(uuid6_ms(str(uuid6(clock_seq=3))) - now_ms()) < 5_000  # type: ignore[operator]


def put_thread(saver: Any, thread_id: str, ms: int, *, n: int = 3, ns: str = "") -> None:
    """``n`` checkpoints made at ``ms`` (+1 ms each) with a channel blob and a pending write."""
    from langgraph.checkpoint.base import empty_checkpoint

    version = None
    parent = None
    for i in range(n):
        version = saver.get_next_version(version, None)
        checkpoint = empty_checkpoint()
        checkpoint["id"] = uuid6_at(ms + i, i)
        checkpoint["channel_values"] = {"messages": [f"{thread_id} secret {i} " + "x" * 300]}
        checkpoint["channel_versions"] = {"messages": version}
        conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
        if parent:
            conf["checkpoint_id"] = parent
        saved = saver.put({"configurable": conf}, checkpoint, {"source": "loop", "step": i},
                          {"messages": version})
        saver.put_writes(saved, [("messages", f"write {i}")], f"task-{i}")
        parent = checkpoint["id"]


def _lg_rows(db_url: str, thread_id: str) -> int:
    from tests.test_encryption import _raw

    return sum(_raw(db_url, f"SELECT COUNT(*) FROM peewee_checkpoints_lg_{t} WHERE thread_id = ?",
                    (thread_id,))[0][0] for t in ("checkpoints", "blobs", "writes"))


def test_thread_max_age_deletes_whole_old_threads_only(db_url: str) -> None:
    pytest.importorskip("langgraph")
    from peewee_checkpoints.langgraph import PeeweeSaver

    now = now_ms()
    with PeeweeSaver(db_url) as saver, PeeweeCheckpointProvider(db_url) as provider:
        put_thread(saver, "old", now - 40 * DAY)
        put_thread(saver, "old", now - 40 * DAY, n=2, ns="sub:1")
        put_thread(saver, "recent", now - 3_600_000)
        # Old in its root namespace, but its newest checkpoint (a subgraph's) is recent.
        put_thread(saver, "mixed", now - 50 * DAY)
        put_thread(saver, "mixed", now - 60_000, n=1, ns="sub:2")
        old_rows = _lg_rows(db_url, "old")
        assert old_rows == 3 * 3 + 2 * 3
        policy = RetentionPolicy(thread_max_age_ms=30 * DAY)
        dry = provider.apply_retention(dry_run=True, policy=policy)
        assert dry.rules["thread_max_age"].rows == old_rows
        assert dry.rules["thread_max_age"].bytes > 5 * 300
        assert _lg_rows(db_url, "old") == old_rows  # a dry run deletes nothing
        real = provider.apply_retention(policy=policy)
        assert real.to_dict()["rules"]["thread_max_age"] == \
            dry.to_dict()["rules"]["thread_max_age"]
        assert real.rows == old_rows
        assert _lg_rows(db_url, "old") == 0
        for ns in ("", "sub:1"):
            assert saver.get_tuple({"configurable": {"thread_id": "old",
                                                     "checkpoint_ns": ns}}) is None
        recent = saver.get_tuple({"configurable": {"thread_id": "recent", "checkpoint_ns": ""}})
        assert recent is not None
        assert recent.checkpoint["channel_values"]["messages"][0].startswith("recent secret 2")
        assert len(list(saver.list({"configurable": {"thread_id": "mixed"}}))) == 4
        assert provider.apply_retention(policy=policy).rows == 0


def test_thread_deletes_go_in_batches_of_500(db_url: str) -> None:
    pytest.importorskip("langgraph")
    from peewee_checkpoints.langgraph import PeeweeSaver
    from tests.conftest import captured_sql

    old = now_ms() - 40 * DAY
    with PeeweeSaver(db_url) as saver, PeeweeCheckpointProvider(db_url) as provider:
        for i in range(520):
            put_thread(saver, f"t{i:04d}", old, n=1)
        with captured_sql() as statements:
            report = provider.apply_retention(policy=RetentionPolicy(thread_max_age_ms=DAY))
        assert report.rules["thread_max_age"].rows == 520 * 3
        deletes = [s for s in statements if s.startswith("DELETE")]
        assert len(deletes) == 2 * 3  # two batches (500 and 20 threads), three tables each
        assert all(s.count(provider.engine.param) <= 500 for s in deletes)
        assert _lg_rows(db_url, "t0519") == 0


def _oai(db_url: str) -> Any:
    from peewee_checkpoints._engine import Engine
    from peewee_checkpoints._sessions import SessionTables

    return SessionTables(Engine(db_url))


def _adk_session(store: Any, app: str, user: str, session_id: str, events: int) -> None:
    import time as _time

    import orjson

    store.create_session(app, user, session_id, state={"topic": "secret " + "s" * 100},
                         app_delta={"app:k": 1}, user_delta={"user:k": 2}, now=_time.time())
    for i in range(events):
        store.append_event(app, user, session_id, expected_revision=i,
                           known_update_time=0.0, known_last_event_id=None, event_id=f"e{i}",
                           timestamp=_time.time(),
                           data=orjson.dumps({"id": f"e{i}", "text": "secret " + "e" * 200}),
                           app_delta={}, user_delta={}, session_delta={"n": i})


def test_session_max_age_deletes_idle_openai_and_adk_sessions(db_url: str) -> None:
    from peewee_checkpoints.adk._store import AdkStore

    now = now_ms()
    tables = _oai(db_url)
    adk = AdkStore(db_url)
    try:
        for session_id in ("idle", "busy"):
            tables.add_items(session_id, [{"role": "user", "content": "hi " + "x" * 100}] * 3,
                             metadata={"team": "a"})
        for session_id in ("idle", "busy"):
            _adk_session(adk, "app", "u1", session_id, 4)
        _adk_session(adk, "other-app", "u2", "idle2", 1)
        with PeeweeCheckpointProvider(db_url) as provider:
            for app, session_id in (("app", "idle"), ("other-app", "idle2")):
                _update(provider, "UPDATE peewee_checkpoints_adk_sessions SET update_time = ? "
                        "WHERE app_name = ? AND id = ?", ((now - 40 * DAY) / 1000, app, session_id))
            _update(provider, "UPDATE peewee_checkpoints_oai_sessions SET updated_at = ? "
                    "WHERE session_id = ?", (now - 40 * DAY, "idle"))
            policy = RetentionPolicy(session_max_age_ms=30 * DAY)
            dry = provider.apply_retention(dry_run=True, policy=policy)
            # OpenAI: the session row, 3 items, 1 metadata row; ADK: 2 sessions, 4 + 1 events.
            assert dry.rules["session_max_age"].rows == (1 + 3 + 1) + (1 + 4) + (1 + 1)
            assert dry.rules["session_max_age"].bytes > 3 * 100 + 5 * 200
            assert tables.info("idle") is not None
            assert adk.count_events("app", "u1", "idle") == 4
            real = provider.apply_retention(policy=policy)
            assert real.to_dict()["rules"] == dry.to_dict()["rules"]
            assert tables.info("idle") is None
            assert tables.get_items("idle") == []
            page = tables.list_sessions(metadata={"team": "a"})
            assert [i.session_id for i in page.items] == ["busy"]
            assert len(tables.get_items("busy")) == 3
            assert adk.get_session("app", "u1", "idle") is None
            assert adk.count_events("app", "u1", "idle") == 0
            assert adk.get_session("app", "u1", "busy") is not None
            assert adk.count_events("app", "u1", "busy") == 4
            # The state ADK shares between an app's (or a user's) sessions stays.
            assert adk.get_app_state("other-app") == {"app:k": 1}
            assert provider.apply_retention(policy=policy).rows == 0
    finally:
        adk.close()
        tables.engine.close()


def _update(provider: PeeweeCheckpointProvider, sql: str, params: tuple[Any, ...]) -> None:
    engine = provider.engine

    def run() -> None:
        with engine.transaction(write=True):
            engine.execute(sql.replace("?", engine.param), params)

    engine.run("test", run)


def test_thread_and_session_keys_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f"[checkpoints.providers.db]\ntype = 'peewee'\ndb_url = 'sqlite:///{tmp_path}/x.db'\n"
        "[checkpoints.providers.db.retention]\nthread_max_age = '14d'\n"
        "session_max_age = '2w'\n")
    with load_provider(config, name="db") as p:
        assert p.retention_policy == RetentionPolicy(thread_max_age_ms=14 * DAY,
                                                     session_max_age_ms=14 * DAY)
        assert not p.retention_policy.is_empty
    config.write_text(config.read_text().replace("'2w'", "'soon'"))
    with pytest.raises(ConfigError, match="session_max_age"):
        load_provider(config, name="db")
