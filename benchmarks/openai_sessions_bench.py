"""PeeweeSession against the OpenAI Agents SDK's own SQLiteSession, in the same run.

    python benchmarks/openai_sessions_bench.py                        # sqlite; 100,000 items
    python benchmarks/openai_sessions_bench.py --backends sqlite,postgres,mysql -n 100000

One session of ``-n`` chat-like items (messages, tool calls and outputs, 150-600 bytes of
JSON) is loaded into each store with ``add_items`` in batches of 1,000. Then the two take
turns call by call: ``get_items(limit=50)`` (the newest 50, what a run with a session limit
reads every turn), ``add_items`` of one item followed by ``pop_item`` (a durable commit
each), and once ``get_items()`` of the whole history. Figures are medians in microseconds;
the ratio is PeeweeSession / SQLiteSession (below 1.0: PeeweeSession is faster). The SDK
session always runs on a SQLite file, so the PostgreSQL and MySQL rows compare a server
round trip with a local file.

Servers come from PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL and PEEWEE_CHECKPOINTS_TEST_MYSQL_URL
(defaults: the local test servers); the benchmark creates and drops its own databases there.
Needs the ``openai-agents-test`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from typing import Any

from agents import SQLiteSession

from peewee_checkpoints.openai_agents import PeeweeSessionStore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _servers import fresh_database

WORDS = ["the", "agent", "tool", "call", "result", "user", "assistant", "weather", "paris",
         "order", "refund", "invoice", "shipping", "status", "account", "password", "reset",
         "error", "retry", "timeout", "latency"]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_items(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            items.append({"role": "user", "content": _text(rng, rng.randint(10, 60))})
        elif kind == 1:
            items.append({"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}",
                          "name": "lookup", "arguments": f'{{"q": "{_text(rng, 4)}"}}',
                          "status": "completed"})
        elif kind == 2:
            items.append({"type": "function_call_output", "call_id": f"call_{i - 1}",
                          "output": _text(rng, rng.randint(10, 80))})
        else:
            items.append({"id": f"msg_{i}", "type": "message", "role": "assistant",
                          "status": "completed", "content": [
                              {"type": "output_text", "text": _text(rng, rng.randint(20, 90)),
                               "annotations": []}]})
    return items


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def _timed(call: Coroutine[Any, Any, Any]) -> float:
    start = time.perf_counter()
    await call
    return time.perf_counter() - start


def bench(backend: str, url: str, n: int, repeat: int, workdir: str) -> list[tuple[str, float,
                                                                                 float]]:
    items = make_items(n)
    store = PeeweeSessionStore(url)
    ours = store.session("bench")
    theirs = SQLiteSession("bench", os.path.join(workdir, f"sdk-{backend}.db"))
    try:
        for session in (ours, theirs):
            start = time.perf_counter()
            for i in range(0, n, 1000):
                asyncio.run(session.add_items(items[i:i + 1000]))
            print(f"  {backend}: loaded {n:,} items into {type(session).__name__} in "
                  f"{time.perf_counter() - start:.1f}s", file=sys.stderr)
        assert asyncio.run(ours.get_items(50)) == asyncio.run(theirs.get_items(50))
        one = [{"role": "user", "content": "one more"}]
        figures: dict[str, tuple[list[float], list[float]]] = {
            "get_items(limit=50)": ([], []), "add_items(1 item)": ([], []),
            "pop_item()": ([], [])}

        async def measure() -> None:
            # One event loop for every call: its start-up cost is not part of the figures.
            for _ in range(repeat):
                for session, side in ((ours, 0), (theirs, 1)):
                    figures["get_items(limit=50)"][side].append(
                        await _timed(session.get_items(50)))
                    figures["add_items(1 item)"][side].append(
                        await _timed(session.add_items(one)))
                    figures["pop_item()"][side].append(await _timed(session.pop_item()))
            figures[f"get_items() all {n:,}"] = (
                [await _timed(ours.get_items())], [await _timed(theirs.get_items())])

        asyncio.run(measure())
        return [(name, _median_us(a), _median_us(b)) for name, (a, b) in figures.items()]
    finally:
        theirs.close()
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("-n", type=int, default=100_000, help="items in the session")
    parser.add_argument("--repeat", type=int, default=200, help="calls of each operation")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            with fresh_database(backend, "oai") as url:
                for name, a, b in bench(backend, url, args.n, args.repeat, workdir):
                    rows.append((backend, name, a, b))
    print(f"{'backend':9} {'operation':26} {'PeeweeSession us':>17} {'SQLiteSession us':>17} "
          f"{'ratio':>6}")
    for backend, name, a, b in rows:
        print(f"{backend:9} {name:26} {a:17.0f} {b:17.0f} {a / b:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
