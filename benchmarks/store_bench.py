"""PeeweeStore's filtered search against LangGraph's own stores, on the same data, same run.

    python benchmarks/store_bench.py               # 100,000 items; sqlite, postgres, mysql
    python benchmarks/store_bench.py -n 20000 --backends sqlite

Each store gets a fresh database holding the same ``n`` items in 100 namespaces
``("bench", "u<k>")``: ``{"kind": one of 10 kinds, "score": 0-999, "user": ..., "text": ~200
characters}``. Then ``search(("bench",), filter=..., limit=10)`` runs for each filter below,
the stores taking turns call by call; figures are medians in milliseconds, the ratio
PeeweeStore / theirs (below 1.0: PeeweeStore is faster). Theirs: ``SqliteStore`` on SQLite,
``PostgresStore`` on PostgreSQL (both langgraph's), ``PyMySQLStore`` (the community
langgraph-checkpoint-mysql) on MySQL/MariaDB. Loading is timed too (``batch`` of 1,000 puts).

Needs the ``langgraph-test`` extra; servers as for ``langgraph_bench.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from langgraph.store.base import BaseStore, PutOp
from langgraph_bench import fresh_database

from peewee_checkpoints.langgraph import PeeweeStore

FILTERS: dict[str, dict[str, Any]] = {
    "kind = note (10%)": {"kind": "note"},
    "score >= 990 (1%)": {"score": {"$gte": 990}},
    "kind = note AND score >= 990 (0.1%)": {"kind": "note", "score": {"$gte": 990}},
    "user = nobody (no match)": {"user": "nobody"},
}
KINDS = ["note", "pref", "fact", "task", "event", "contact", "place", "quote", "idea", "todo"]


def items(n: int) -> list[PutOp]:
    rng = random.Random(14)
    return [
        PutOp(("bench", f"u{i % 100}"), f"item-{i}", {
            "kind": KINDS[rng.randrange(10)], "score": rng.randrange(1000),
            "user": f"user-{i % 100}",
            "text": " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "memory"])
                             for _ in range(35)),
        })
        for i in range(n)
    ]


@contextlib.contextmanager
def theirs(backend: str, url: str) -> Iterator[tuple[str, BaseStore]]:
    if backend == "sqlite":
        from langgraph.store.sqlite import SqliteStore

        with SqliteStore.from_conn_string(urlparse(url).path) as store:
            store.setup()
            yield "SqliteStore", store
    elif backend == "postgres":
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(url) as store:
            store.setup()
            yield "PostgresStore", store
    else:
        from langgraph.store.mysql.pymysql import PyMySQLStore

        with PyMySQLStore.from_conn_string(url) as store:
            store.setup()
            yield "PyMySQLStore (langgraph-checkpoint-mysql)", store


def analyze(backend: str, url: str) -> None:
    from peewee_checkpoints._engine import Engine

    engine = Engine(url)
    try:
        sql = {"sqlite": "ANALYZE", "postgres": "ANALYZE"}.get(backend)
        if sql is None:
            tables = engine.run("list tables", lambda: engine.execute("SHOW TABLES").fetchall())
            for (table,) in tables:
                engine.run("analyze", lambda t=table: engine.execute(
                    f"ANALYZE TABLE `{t}`").fetchall())
        else:
            engine.run("analyze", lambda: engine.execute(sql))
    finally:
        engine.close()


def load(store: BaseStore, ops: list[PutOp]) -> float:
    start = time.perf_counter()
    for i in range(0, len(ops), 1000):
        store.batch(ops[i : i + 1000])
    return time.perf_counter() - start


def bench(backend: str, n: int, repeat: int) -> None:
    ops = items(n)
    with fresh_database(backend) as ours_url, fresh_database(backend) as their_url, \
            PeeweeStore(ours_url) as ours, theirs(backend, their_url) as (name, other):
        ours.setup()
        loaded = (load(ours, ops), load(other, ops))
        # Fresh statistics for both, as autovacuum / InnoDB's auto-recalculation give a
        # loaded table soon after: without them a planner guesses.
        analyze(backend, ours_url)
        analyze(backend, their_url)
        print(f"\n{backend}: {n} items; load {loaded[0]:.1f} s (PeeweeStore) vs "
              f"{loaded[1]:.1f} s ({name})", flush=True)
        print(f"| filter | PeeweeStore | {name} | ratio |\n|---|---:|---:|---:|")
        for label, filter_ in FILTERS.items():
            times: tuple[list[float], list[float]] = ([], [])
            found = (0, 0)
            for _ in range(repeat):
                for k, store in enumerate((ours, other)):
                    start = time.perf_counter()
                    result = store.search(("bench",), filter=filter_, limit=10)
                    times[k].append(time.perf_counter() - start)
                    found = (len(result), found[1]) if k == 0 else (found[0], len(result))
            assert found[0] == found[1], (label, found)
            a, b = (statistics.median(t) * 1000 for t in times)
            print(f"| {label} | {a:.2f} ms | {b:.2f} ms | {a / b:.3f}x |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="items per store")
    parser.add_argument("--repeat", type=int, default=25, help="searches per filter and store")
    parser.add_argument("--backends", default="sqlite,postgres,mysql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        try:
            bench(backend, args.n, args.repeat)
        except ImportError as exc:
            # langgraph-checkpoint-mysql's store package imports aiomysql and asyncmy.
            print(f"\n{backend}: skipped, LangGraph's store is not importable ({exc}); for "
                  "MySQL: pip install aiomysql asyncmy", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
