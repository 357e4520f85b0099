"""PeeweeSaver against LangGraph's own savers on the same backend, measured in the same run.

    python benchmarks/langgraph_bench.py                       # sqlite, postgres, mysql; 300 puts
    python benchmarks/langgraph_bench.py --backends sqlite -n 1000

Each backend gets a fresh database per saver. The workload is a chat-like thread: every step
changes a counter, every 4th step appends to a message history (about 4 KB after a few
steps), so unchanged values are common, as in real graphs. ``put`` stores a chain of
checkpoints with two pending writes each; ``get_tuple`` reads random checkpoints of the chain
by id; ``list`` reads the 10 newest. Figures are medians in microseconds per call; the ratio
is PeeweeSaver / theirs (below 1.0 means PeeweeSaver is faster). The two savers take turns
call by call, so a busy disk slows both alike; ``put`` waits for a durable commit (fsync) on
every backend, so its absolute figures follow the disk.

Servers come from PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL and PEEWEE_CHECKPOINTS_TEST_MYSQL_URL
(defaults: the local test servers); the benchmark creates and drops its own databases there.
Needs the ``langgraph-test`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from peewee_checkpoints.langgraph import PeeweeSaver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _servers import fresh_database


@contextlib.contextmanager
def theirs(backend: str, url: str) -> Iterator[tuple[str, BaseCheckpointSaver[Any]]]:
    """LangGraph's saver for ``backend`` (the community one on MySQL), set up."""
    if backend == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(urlparse(url).path, check_same_thread=False)
        try:
            saver: Any = SqliteSaver(conn)
            saver.setup()
            yield "SqliteSaver", saver
        finally:
            conn.close()
    elif backend == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield "PostgresSaver", saver
    else:
        from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver

        with PyMySQLSaver.from_conn_string(url) as saver:
            saver.setup()
            yield "PyMySQLSaver (langgraph-checkpoint-mysql)", saver


@contextlib.contextmanager
def ours(url: str) -> Iterator[tuple[str, BaseCheckpointSaver[Any]]]:
    with PeeweeSaver(url) as saver:
        saver.setup()
        yield "PeeweeSaver", saver


def run_workload(
    saver: BaseCheckpointSaver[Any], n: int, seed: int, times: dict[str, list[float]]
) -> Iterator[None]:
    """Put a chain of ``n`` checkpoints, read ``n`` of them back, list; append timings.

    A generator that yields after each timed call, so that two savers can take turns call by
    call and meet the same load from the rest of the machine (fsync times vary a lot).
    """
    rng = random.Random(seed)
    thread = f"bench-{uuid.uuid4()}"
    config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    checkpoint: dict[str, Any] = dict(empty_checkpoint())
    messages: list[dict[str, str]] = []
    versions: dict[str, Any] = {}
    ids = []
    for step in range(n):
        changed = ["counter"]
        if step % 4 == 0:
            messages = [*messages[-19:], {"role": "assistant", "content": "word " * 40}]
            changed.append("messages")
        for channel in changed:
            versions[channel] = saver.get_next_version(versions.get(channel), None)
        checkpoint = {
            **checkpoint,
            "id": str(uuid6(clock_seq=step)),
            "channel_values": {"messages": list(messages), "counter": step},
            "channel_versions": dict(versions),
            "versions_seen": {"agent": dict(versions)},
        }
        new_versions = {c: versions[c] for c in changed}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        start = time.perf_counter()
        config = saver.put(config, checkpoint, metadata, new_versions)  # type: ignore[arg-type]
        saver.put_writes(config, [("counter", step), ("messages", "hi")], f"task-{step}")  # type: ignore[arg-type]
        times["put"].append(time.perf_counter() - start)
        ids.append(config["configurable"]["checkpoint_id"])
        yield
    for _ in range(n):
        cid = rng.choice(ids)
        cfg: Any = {
            "configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": cid}
        }
        start = time.perf_counter()
        tup = saver.get_tuple(cfg)
        times["get_tuple"].append(time.perf_counter() - start)
        assert tup is not None and tup.checkpoint["id"] == cid
        yield
    for _ in range(max(n // 10, 5)):
        start = time.perf_counter()
        found = list(saver.list({"configurable": {"thread_id": thread}}, limit=10))
        times["list"].append(time.perf_counter() - start)
        assert len(found) == 10
        yield


OPS = ("put", "get_tuple", "list")


def bench_backend(backend: str, n: int, rounds: int) -> list[str]:
    """Both savers open side by side, taking turns call by call (who goes first alternates
    by round), so that load from elsewhere on the machine hits both alike; medians."""
    with contextlib.ExitStack() as stack:
        their_url = stack.enter_context(fresh_database(backend))
        our_url = stack.enter_context(fresh_database(backend))
        their_name, their_saver = stack.enter_context(theirs(backend, their_url))
        _, our_saver = stack.enter_context(ours(our_url))
        savers = {"theirs": their_saver, "ours": our_saver}
        times: dict[str, dict[str, list[float]]] = {k: {op: [] for op in OPS} for k in savers}
        for saver in savers.values():  # warm up connections and statement caches
            for _ in run_workload(saver, 20, seed=0, times={op: [] for op in OPS}):
                pass
        per_round = max(n // rounds, 10)
        for r in range(rounds):
            order = ("theirs", "ours") if r % 2 == 0 else ("ours", "theirs")
            turns = [run_workload(savers[k], per_round, seed=r, times=times[k]) for k in order]
            for _ in zip(*turns, strict=True):  # one call of each saver in turn
                pass
    lines = []
    for op in OPS:
        mine = statistics.median(times["ours"][op]) * 1e6
        their = statistics.median(times["theirs"][op]) * 1e6
        lines.append(
            f"{backend:8} {op:9} PeeweeSaver {mine:7.0f} us   {their_name} {their:7.0f} us   "
            f"ratio {mine / their:.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres,mysql")
    parser.add_argument("-n", type=int, default=300, help="checkpoints put (and reads made)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per saver")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, n={args.n}; medians per call, ratio = ours/theirs")
    for backend in args.backends.split(","):
        for line in bench_backend(backend.strip(), args.n, args.rounds):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
