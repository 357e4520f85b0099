"""Costs of the features of issue 15, with their baselines measured in the same run.

- **Encryption**: ``store_checkpoint`` / ``retrieve_checkpoint`` of a 20 KiB chat-like state
  on a provider with ``encryption_keys`` against the same provider without, on the same
  database, the calls alternating one by one (median of ``--repeat``); plus AES-GCM alone on
  the compressed bytes.
- **Encryption of LangGraph threads**: ``PeeweeSaver.put`` of a checkpoint whose changed
  channel holds the same 20 KiB state (one blob and the checkpoint row) and ``get_tuple`` of
  a thread's latest, on a saver with ``encryption_keys`` against one without, alternating
  (median of ``--repeat``). Skipped if LangGraph is not installed.
- **count_checkpoints** at ``--rows`` rows (default 1,000,000): the whole table, one agent
  (1 % of rows), a ``before`` bound (half the rows); median of 5, after one warm-up call.
- **Retention**: ``apply_retention`` with ``max_age`` removing half the rows (each agent's
  newest kept), its dry run first; rows per second. Then ``max_per_agent`` on what is left.

Tables are bulk-loaded through the driver (see run.py) with small chat states (about 600 B
of JSON, stored plain) so that a million rows stay a few hundred MB per backend.

    python benchmarks/features_bench.py --rows 1000000 --backends sqlite,postgres,mysql
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chatdata import chat_state
from run import RESULTS, STATE_SIZE, Raw, bulk_load, fresh_database, paired, report

from peewee_checkpoints import NamedCheckpoint, PeeweeCheckpointProvider, RetentionPolicy
from peewee_checkpoints._codec import pack_state
from peewee_checkpoints._crypto import generate_key, parse_keys, row_aad
from peewee_checkpoints.records import now_ms

START_AT = 1_600_000_000_000  # bulk rows: three per millisecond from here (2020)
AGENTS = 100


def bench_encryption(backend: str, url: str, repeat: int) -> None:
    keys = [f"bench:{generate_key()}"]
    states = [chat_state(STATE_SIZE, seed) for seed in range(32)]
    with PeeweeCheckpointProvider(url) as plain, \
            PeeweeCheckpointProvider(url, encryption_keys=keys) as enc:
        plain.migrate()
        i = [0]

        def cp() -> NamedCheckpoint:
            i[0] += 1
            return NamedCheckpoint(name="bench", agent_id="agent", state=states[i[0] % 32])

        pkg, base = paired(lambda: enc.store_checkpoint(cp()),
                           lambda: plain.store_checkpoint(cp()), repeat)
        report(backend, "20KiB", "store_checkpoint, encrypted", pkg, base, base="plain")
        enc_ids = [enc.store_checkpoint(cp()) for _ in range(32)]
        plain_ids = [plain.store_checkpoint(cp()) for _ in range(32)]
        j = [0]

        def pick(ids: list[str]) -> str:
            j[0] += 1
            return ids[j[0] % 32]

        pkg, base = paired(lambda: enc.retrieve_checkpoint(pick(enc_ids)),
                           lambda: plain.retrieve_checkpoint(pick(plain_ids)), repeat)
        report(backend, "20KiB", "retrieve_checkpoint, encrypted", pkg, base, base="plain")
    if backend == "sqlite":  # the cipher alone, once
        ring = parse_keys(keys)
        codec, data = pack_state(states[0])
        aad = row_aad("t", "id", codec)
        _, blob = ring.encrypt(data, aad)
        times_e, times_d = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            ring.encrypt(data, aad)
            times_e.append(time.perf_counter() - t)
            t = time.perf_counter()
            ring.decrypt("bench", blob, aad)
            times_d.append(time.perf_counter() - t)
        report("(cpu)", f"{len(data)}B", "AES-256-GCM encrypt (compressed state)",
               statistics.median(times_e) * 1e6, None)
        report("(cpu)", f"{len(data)}B", "AES-256-GCM decrypt",
               statistics.median(times_d) * 1e6, None)


def bench_saver_encryption(backend: str, url: str, repeat: int) -> None:
    try:
        from langgraph.checkpoint.base import empty_checkpoint

        from peewee_checkpoints.langgraph import PeeweeSaver
    except ImportError:
        print("    (LangGraph not installed: pip install -e '.[langgraph-test]')")
        return
    keys = [f"bench:{generate_key()}"]
    states = [chat_state(STATE_SIZE, seed) for seed in range(32)]
    with PeeweeSaver(url) as plain, PeeweeSaver(url, encryption_keys=keys) as enc:
        plain.setup()
        made = {id(plain): [0, None], id(enc): [0, None]}

        def put(saver: Any, thread: str) -> None:
            count = made[id(saver)]
            count[0] += 1
            version = saver.get_next_version(count[1], None)
            count[1] = version
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"messages": states[count[0] % 32],
                                            "step": count[0]}
            checkpoint["channel_versions"] = {"messages": version, "step": version}
            saver.put({"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
                      checkpoint, {"source": "loop", "step": count[0]},
                      {"messages": version, "step": version})

        pkg, base = paired(lambda: put(enc, "enc"), lambda: put(plain, "plain"), repeat)
        report(backend, "20KiB", "PeeweeSaver.put, encrypted", pkg, base, base="plain")
        pkg, base = paired(
            lambda: enc.get_tuple({"configurable": {"thread_id": "enc"}}),
            lambda: plain.get_tuple({"configurable": {"thread_id": "plain"}}), repeat)
        report(backend, "20KiB", "PeeweeSaver.get_tuple, encrypted", pkg, base, base="plain")


def timed(fn: Any, repeat: int = 5) -> tuple[float, Any]:
    fn()
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, result


def bench_large(backend: str, url: str, rows: int) -> None:
    with PeeweeCheckpointProvider(url) as p:
        p.migrate()
    raw = Raw(backend, url)
    pool = [pack_state(chat_state(600, seed)) for seed in range(64)]
    t = time.perf_counter()
    bulk_load(backend, raw, rows, pool, start_at=START_AT, agents=AGENTS)
    print(f"    loaded {rows:,} rows in {time.perf_counter() - t:.0f}s", flush=True)
    raw.close()
    with PeeweeCheckpointProvider(url) as p:
        ms, n = timed(p.count_checkpoints)
        assert n == rows, n
        report(backend, rows, "count_checkpoints() all", ms, None, unit="ms")
        ms, n = timed(lambda: p.count_checkpoints(agent_id="agent-7"))
        report(backend, rows, f"count_checkpoints(agent_id) {n:,} rows", ms, None, unit="ms")
        middle = START_AT + rows // 6
        ms, n = timed(lambda: p.count_checkpoints(before=middle))
        report(backend, rows, f"count_checkpoints(before) {n:,} rows", ms, None, unit="ms")
        ms, _ = timed(lambda: p.page_checkpoints(limit=50), 20)
        report(backend, rows, "page_checkpoints(limit=50), for scale", ms, None, unit="ms")
        # Retention: everything older than the middle goes (each agent's newest is recent).
        policy = RetentionPolicy(max_age_ms=now_ms() - middle)
        t = time.perf_counter()
        dry = p.apply_retention(dry_run=True, policy=policy)
        dry_s = time.perf_counter() - t
        report(backend, rows, f"apply_retention dry run ({dry.rows:,} rows)", dry_s * 1000,
               None, unit="ms")
        t = time.perf_counter()
        done = p.apply_retention(policy=policy)
        took = time.perf_counter() - t
        # (max_age counts from "now" at each call, and rows are 3 per ms: the real run's cutoff
        # is a little later than the dry run's, so it removes a few more rows.)
        report(backend, rows, f"apply_retention max_age: {done.rows:,} rows", took * 1000,
               None, unit="ms", note=f"{done.rows / took:,.0f} rows/s, "
               f"{done.bytes / took / 1e6:.1f} MB/s of state")
        keep = (rows - done.rows) // AGENTS // 2
        t = time.perf_counter()
        done = p.apply_retention(policy=RetentionPolicy(max_per_agent=keep))
        took = time.perf_counter() - t
        report(backend, rows, f"apply_retention max_per_agent={keep}: {done.rows:,} rows",
               took * 1000, None, unit="ms", note=f"{done.rows / took:,.0f} rows/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres,mysql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        print(f"{backend}:", flush=True)
        with fresh_database(backend, "enc") as url:
            bench_encryption(backend, url, args.repeat)
            bench_saver_encryption(backend, url, args.repeat)
        if not args.skip_large:
            with fresh_database(backend, "big") as url:
                bench_large(backend, url, args.rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "results": RESULTS,
                                               "load": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
