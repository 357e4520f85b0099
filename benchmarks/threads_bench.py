"""``peewee-checkpoints threads list`` on 10,000 LangGraph threads, per backend.

    python benchmarks/threads_bench.py                  # 10,000 threads; sqlite, postgres, mysql
    python benchmarks/threads_bench.py -n 2000 --backends sqlite

Each backend gets a fresh database holding ``n`` threads, each a copy (new thread id) of one
real graph thread of 4 checkpoints with their values and writes. Timed, in process through
the CLI's ``main`` (output to /dev/null; the command's own engine, so connecting and checking
the schema are included): the first page (``--limit 50``), a page deep in the keyset
(``--after``), and every thread (``--all --limit 1000 --json``). Medians of ``--repeat`` runs.

Needs the ``langgraph-test`` extra; servers as for ``langgraph_bench.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import operator
import statistics
import sys
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph_bench import fresh_database

from peewee_checkpoints._cli_threads import THREAD_KINDS, _Tables
from peewee_checkpoints._engine import Engine
from peewee_checkpoints.cli import main as cli_main
from peewee_checkpoints.langgraph import PeeweeSaver


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def seed(url: str, n: int) -> None:
    with PeeweeSaver(url) as saver:
        builder = StateGraph(State)
        builder.add_node("draft", lambda s: {"steps": ["draft " * 50]})
        builder.add_node("review", lambda s: {"steps": ["review " * 50]})
        builder.add_edge(START, "draft")
        builder.add_edge("draft", "review")
        builder.add_edge("review", END)
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"steps": ["input"]}, {"configurable": {"thread_id": "template"}})
    engine = Engine(url)
    try:
        tables = _Tables(engine)
        template = {kind: tables.thread_rows(kind, "template") for kind in THREAD_KINDS}
        for start in range(0, n, 500):
            batch = {kind: [(f"thread-{i:06d}", *row[1:]) for i in range(start, min(n, start + 500))
                            for row in rows] for kind, rows in template.items()}

            def write(batch: dict[str, list[Any]] = batch) -> None:
                with engine.transaction():
                    for kind, rows in batch.items():
                        tables.insert(kind, rows)

            engine.run("seed", write)
    finally:
        engine.close()


def timed(args: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        sink = io.TextIOWrapper(io.BytesIO())
        with contextlib.redirect_stdout(sink):
            start = time.perf_counter()
            code = cli_main(args)
            times.append(time.perf_counter() - start)
        assert code == 0, args
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="threads")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres,mysql")
    args = parser.parse_args()
    print(f"| backend | first page (50) | page after thread {args.n // 2} | all {args.n} "
          "(--all --json) |\n|---|---:|---:|---:|")
    for backend in args.backends.split(","):
        with fresh_database(backend) as url:
            seed(url, args.n)
            base = ["--db-url", url, "threads", "list"]
            first = timed([*base, "--limit", "50"], args.repeat)
            middle = timed([*base, "--limit", "50", "--after", f"thread-{args.n // 2:06d}"],
                           args.repeat)
            every = timed([*base, "--all", "--limit", "1000", "--json"], args.repeat)
            print(f"| {backend} | {first:.0f} ms | {middle:.0f} ms | {every:.0f} ms |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
