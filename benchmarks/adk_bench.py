"""PeeweeSessionService against ADK's own DatabaseSessionService, same database, same run.

    python benchmarks/adk_bench.py                                   # sqlite, postgres, mysql
    python benchmarks/adk_bench.py --backends sqlite --sessions 1000 --events 10000

Per backend, one fresh database holds both services' tables (ours are prefixed, ADK's are
``sessions``/``events``/...). Each is loaded with the same data, in bulk through its own
table definitions: one user with ``--sessions`` sessions (plus 10% as many for other users),
and one session of that user with ``--events`` events (chat-like, about 0.6 KB of event JSON
each). Then, taking turns call by call:

- ``list_sessions(app_name, user_id)`` for that user (every session, states merged);
- ``get_session(..., GetSessionConfig(num_recent_events=20))`` on the long session;
- ``append_event`` of one small event to a fresh session, and ``create_session``.

Figures are medians in milliseconds; the ratio is ours / theirs (below 1.0: ours is faster).
ADK's service reaches the servers through its async drivers (aiosqlite, asyncpg, aiomysql);
ours through psycopg2 / PyMySQL in worker threads. Needs the ``adk-test`` extra.

Servers come from PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL and PEEWEE_CHECKPOINTS_TEST_MYSQL_URL
(defaults: the local test servers); the benchmark creates and drops its own databases there.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.genai import types

from peewee_checkpoints.adk import PeeweeSessionService
from peewee_checkpoints.adk._store import EVENTS, SESSIONS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _servers import create_database, drop_database

APP, USER, LONG = "bench_app", "bench_user", "long-session"


def _urls(backend: str, tmp: str) -> tuple[str, str, Callable[[], None]]:
    """(our db_url, ADK's SQLAlchemy URL, cleanup) for one fresh database."""
    if backend == "sqlite":
        path = os.path.join(tmp, "bench.db")
        return f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}", lambda: None
    ours, name = create_database(backend, "adk", charset="utf8mb4")
    driver = "postgresql+asyncpg" if backend == "postgres" else "mysql+aiomysql"
    theirs = driver + ours[ours.index("://"):]
    return ours, theirs, lambda: drop_database(backend, name)


def _event(i: int, timestamp: float) -> Event:
    text = (f"turn {i}: the tool returned {i * 7919 % 1000} rows from table t{i % 13}; "
            "the assistant summarised them and asked which report to open next. ") * 4
    return Event(invocation_id=f"inv-{i // 4}", author="user" if i % 2 else "assistant",
                 timestamp=timestamp,
                 content=types.Content(role="user" if i % 2 else "model",
                                       parts=[types.Part(text=text)]),
                 actions=EventActions(state_delta={"step": i} if i % 4 == 0 else {}))


async def _load_theirs(service: DatabaseSessionService, n_sessions: int, n_events: int) -> None:
    from google.adk.sessions.schemas.v1 import (
        StorageAppState,
        StorageEvent,
        StorageSession,
        StorageUserState,
    )
    from sqlalchemy import insert

    await service.prepare_tables()
    base = time.time() - n_sessions - n_events
    sessions = [{"app_name": APP, "user_id": USER, "id": f"s{i:06d}", "state": {"n": i},
                 "create_time": dt.datetime.fromtimestamp(base + i, dt.timezone.utc)
                 .replace(tzinfo=None),
                 "update_time": dt.datetime.fromtimestamp(base + i, dt.timezone.utc)
                 .replace(tzinfo=None)} for i in range(n_sessions)]
    sessions += [{**s, "user_id": f"other{i}", "id": f"o{i}"}
                 for i, s in enumerate(sessions[: n_sessions // 10])]
    sessions.append({**sessions[0], "id": LONG})
    events = []
    for i in range(n_events):
        event = _event(i, base + n_sessions + i)
        events.append({"id": event.id, "app_name": APP, "user_id": USER, "session_id": LONG,
                       "invocation_id": event.invocation_id,
                       "timestamp": dt.datetime.fromtimestamp(event.timestamp, dt.timezone.utc)
                       .replace(tzinfo=None),
                       "event_data": event.model_dump(exclude_none=True, mode="json")})
    async with service.db_engine.begin() as conn:
        await conn.execute(insert(StorageAppState.__table__), [{"app_name": APP, "state": {}}])
        await conn.execute(insert(StorageUserState.__table__),
                           [{"app_name": APP, "user_id": USER, "state": {}}])
        for start in range(0, len(sessions), 2000):
            await conn.execute(insert(StorageSession.__table__), sessions[start:start + 2000])
        for start in range(0, len(events), 2000):
            await conn.execute(insert(StorageEvent.__table__), events[start:start + 2000])


def _load_ours(service: PeeweeSessionService, n_sessions: int, n_events: int) -> None:
    engine = service.store.engine
    engine.ensure_ready()
    p = engine.param
    base = time.time() - n_sessions - n_events
    state = b'{"n":0}'
    sessions = [(APP, USER, f"s{i:06d}", 0, base + i, base + i, 0, state)
                for i in range(n_sessions)]
    sessions += [(APP, f"other{i}", f"o{i}", 0, base + i, base + i, 0, state)
                 for i in range(n_sessions // 10)]
    sessions.append((APP, USER, LONG, n_events, base, base + n_sessions + n_events, 0, state))
    events = []
    for i in range(n_events):
        event = _event(i, base + n_sessions + i)
        events.append((APP, USER, LONG, i + 1, event.id, event.timestamp, 0,
                       event.model_dump_json(exclude_none=True).encode()))

    def insert(table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        row = "(" + ", ".join([p] * len(rows[0])) + ")"
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            with engine.transaction():
                engine.execute(f"INSERT INTO {table} ({columns}) VALUES "
                               + ", ".join([row] * len(chunk)), [v for r in chunk for v in r])

    engine.run("load", lambda: insert(
        SESSIONS, "app_name, user_id, id, revision, create_time, update_time, state_codec, "
        "state", sessions))
    engine.run("load", lambda: insert(
        EVENTS, "app_name, user_id, session_id, seq, event_id, ts, data_codec, data", events))
    if engine.backend == "postgres":
        engine.run("analyze", lambda: engine.execute("ANALYZE"))


async def _time(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def _bench(backend: str, n_sessions: int, n_events: int, repeat: int
                 ) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="adkbench")
    ours_url, theirs_url, cleanup = _urls(backend, tmp)
    ours = PeeweeSessionService(ours_url)
    theirs = DatabaseSessionService(theirs_url)
    try:
        t0 = time.perf_counter()
        await asyncio.to_thread(_load_ours, ours, n_sessions, n_events)
        t1 = time.perf_counter()
        await _load_theirs(theirs, n_sessions, n_events)
        t2 = time.perf_counter()
        print(f"  {backend}: loaded ours in {t1 - t0:.1f}s, ADK's in {t2 - t1:.1f}s",
              file=sys.stderr)
        services: dict[str, BaseSessionService] = {"ours": ours, "theirs": theirs}
        # Same answers first: the figures compare like with like.
        for name, svc in services.items():
            listed = await svc.list_sessions(app_name=APP, user_id=USER)
            assert len(listed.sessions) == n_sessions + 1, (name, len(listed.sessions))
            got = await svc.get_session(app_name=APP, user_id=USER, session_id=LONG,
                                        config=GetSessionConfig(num_recent_events=20))
            assert got is not None and len(got.events) == 20, name
            assert got.events[-1].content == _event(n_events - 1, 0).content, name

        async def append(svc: BaseSessionService) -> None:
            session = await svc.create_session(app_name=APP, user_id="appender")
            await svc.append_event(session, _event(1, time.time()))

        ops: dict[str, Callable[[BaseSessionService], Awaitable[Any]]] = {
            f"list_sessions ({n_sessions:,} sessions)":
                lambda svc: svc.list_sessions(app_name=APP, user_id=USER),
            f"get_session (last 20 of {n_events:,} events)":
                lambda svc: svc.get_session(app_name=APP, user_id=USER, session_id=LONG,
                                            config=GetSessionConfig(num_recent_events=20)),
            "create_session + append_event": append,
        }
        results: dict[str, Any] = {}
        for label, op in ops.items():
            times: dict[str, list[float]] = {"ours": [], "theirs": []}
            runs = max(3, repeat // 10) if label.startswith("list") else repeat
            for svc in services.values():  # warm up both
                await op(svc)
            for _ in range(runs):
                for name, svc in services.items():
                    times[name].append(await _time(lambda svc=svc, op=op: op(svc)))
            med = {name: statistics.median(t) for name, t in times.items()}
            results[label] = {"ours_ms": med["ours"], "theirs_ms": med["theirs"],
                              "ratio": med["ours"] / med["theirs"], "runs": runs}
        return results
    finally:
        await ours.close()
        await theirs.close()
        cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres,mysql")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    for backend in args.backends.split(","):
        report[backend] = asyncio.run(_bench(backend, args.sessions, args.events, args.repeat))
        print(f"\n{backend}")
        print(f"  {'operation':<44}{'ours ms':>10}{'ADK ms':>10}{'ratio':>8}")
        for label, r in report[backend].items():
            print(f"  {label:<44}{r['ours_ms']:>10.2f}{r['theirs_ms']:>10.2f}{r['ratio']:>8.3f}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
