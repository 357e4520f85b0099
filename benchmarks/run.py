"""Benchmarks of peewee-checkpoints against the raw DB-API driver, on every backend.

    python benchmarks/run.py                 # quick: 10,000 rows, a few minutes on 2 cores
    python benchmarks/run.py --full          # adds 1,000,000 rows (SQLite and PostgreSQL)
    python benchmarks/run.py --backends sqlite --json results.json

Server URLs come from PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL / PEEWEE_CHECKPOINTS_TEST_MYSQL_URL
(a server on which databases may be created; each run creates its own and drops it). The raw
driver (sqlite3, psycopg2, PyMySQL) uses the same serializer (orjson, and zstd above the same
threshold, through the package's codec), the same table (made by the package's migrations) and
the same durability settings (SQLite WAL with synchronous=FULL; autocommit on the servers),
and stores orjson's JSON uncompressed. Store and retrieve are also timed against LangGraph's own
saver for the backend (SqliteSaver, PostgresSaver, PyMySQLSaver from langgraph-checkpoint-mysql;
the ``langgraph-test`` extra) holding the same state as a channel value, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lz4
import orjson
import peewee
import psycopg2
import pymysql
import zstandard
from psycopg2.extras import execute_values

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import ENV, fresh_database
from chatdata import chat_state

from peewee_checkpoints import NamedCheckpoint, PeeweeCheckpointProvider
from peewee_checkpoints._codec import pack_state
from peewee_checkpoints._cursor import encode_cursor
from peewee_checkpoints._ids import new_id

TABLE = "peewee_checkpoints"
STATE_SIZE = 20 * 1024
POOL = 128  # distinct 20 KiB states; bulk-loaded rows cycle through them
KIB, MIB = 1024, 1024 * 1024
RESULTS: list[dict[str, Any]] = []


# -- databases ----------------------------------------------------------------------------

def raw_connect(backend: str, url: str) -> Any:
    """A DB-API connection with the provider's durability settings, in autocommit mode."""
    parts = urlparse(url)
    if backend == "sqlite":
        conn = sqlite3.connect(parts.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=full")
        return conn
    if backend == "postgres":
        conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                                user=parts.username, password=parts.password or None,
                                dbname=parts.path.lstrip("/"))
        conn.autocommit = True
        return conn
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=parts.username or "root", password=parts.password or "",
                           database=parts.path.lstrip("/"), autocommit=True, charset="utf8mb4")


class Raw:
    """The same operations as the provider, on the bare driver."""

    def __init__(self, backend: str, url: str, compress: bool = False) -> None:
        self.backend = backend
        self.compress = compress
        self.conn = raw_connect(backend, url)
        p = "?" if backend == "sqlite" else "%s"
        self.p = p
        cols = "id, name, agent_id, session_id, agent_type, created_at, state, state_codec"
        self.insert_sql = f"INSERT INTO {TABLE} ({cols}) VALUES ({', '.join([p] * 8)})"
        self.select_sql = (f"SELECT id, name, agent_id, state, session_id, agent_type, "
                           f"created_at, state_codec FROM {TABLE} WHERE id = {p}")
        listing = f"SELECT id, name, agent_id, session_id, agent_type, created_at FROM {TABLE}"
        order = " ORDER BY created_at DESC, id DESC LIMIT "
        self.first_sql = listing + order + p
        self.keyset_sql = (listing + f" WHERE created_at <= {p} AND (created_at < {p} OR "
                           f"(created_at = {p} AND id < {p}))" + order + p)
        self.offset_sql = listing + order + f"{p} OFFSET {p}"

    def cursor(self) -> Any:
        return self.conn.cursor()

    def store(self, state: dict[str, Any], created_at: int) -> str:
        codec, data = pack_state_raw(state)
        if self.compress:  # only for the 20 MiB state: MariaDB's 16 MiB packet limit
            codec, data = 1, _ZSTD_C.compress(data)
        cid = new_id()
        cur = self.cursor()
        cur.execute(self.insert_sql, (cid, "bench", "agent-raw", "", "", created_at, data, codec))
        return cid

    def retrieve(self, cid: str) -> dict[str, Any]:
        cur = self.cursor()
        cur.execute(self.select_sql, (cid,))
        row = cur.fetchone()
        data = row[3] if row[7] == 0 else _ZSTD_D.decompress(row[3])  # 1: the huge state
        return orjson.loads(data)  # type: ignore[no-any-return]

    def page(self, limit: int, at: tuple[int, str] | None) -> list[Any]:
        cur = self.cursor()
        if at is None:
            cur.execute(self.first_sql, (limit + 1,))
        else:
            cur.execute(self.keyset_sql, (at[0], at[0], at[0], at[1], limit + 1))
        return list(cur.fetchall())

    def offset_page(self, limit: int, offset: int) -> list[Any]:
        cur = self.cursor()
        cur.execute(self.offset_sql, (limit, offset))
        return list(cur.fetchall())

    def close(self) -> None:
        self.conn.close()


_ZSTD_C = zstandard.ZstdCompressor(level=3)
_ZSTD_D = zstandard.ZstdDecompressor()


def pack_state_raw(state: dict[str, Any]) -> tuple[int, bytes]:
    """orjson's JSON as it is: no round-trip check, no compression (state_codec 0)."""
    return 0, orjson.dumps(state)


class LangGraphSide:
    """LangGraph's saver for the backend storing the same state as one channel value: ``put``
    a new checkpoint (a new channel version each time, so the value is written) and
    ``get_tuple`` one back by id."""

    def __init__(self, saver: Any) -> None:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.base.id import uuid6

        self.saver = saver
        self._empty = empty_checkpoint
        self._uuid6 = uuid6
        self.thread = f"bench-{uuid.uuid4().hex[:8]}"
        self.version: Any = None
        self.ids: list[str] = []

    def store(self, state: dict[str, Any]) -> None:
        self.version = self.saver.get_next_version(self.version, None)
        checkpoint: Any = {**self._empty(), "id": str(self._uuid6()),
                           "channel_values": {"state": state},
                           "channel_versions": {"state": self.version}}
        config: Any = {"configurable": {"thread_id": self.thread, "checkpoint_ns": ""}}
        out = self.saver.put(config, checkpoint, {"source": "loop", "step": len(self.ids)},
                             {"state": self.version})
        self.ids.append(out["configurable"]["checkpoint_id"])

    def retrieve(self, cid: str) -> dict[str, Any]:
        config: Any = {"configurable": {"thread_id": self.thread, "checkpoint_ns": "",
                                        "checkpoint_id": cid}}
        got = self.saver.get_tuple(config)
        return got.checkpoint["channel_values"]["state"]  # type: ignore[no-any-return]


@contextmanager
def langgraph_saver(backend: str) -> Iterator[tuple[str, LangGraphSide] | None]:
    """LangGraph's saver on a fresh database of its own, or None without the extra."""
    try:
        from langgraph_bench import fresh_database as lg_database
        from langgraph_bench import theirs
    except ImportError:
        yield None
        return
    with lg_database(backend) as url, theirs(backend, url) as (name, saver):
        yield name.split(" ")[0], LangGraphSide(saver)


# -- loading ------------------------------------------------------------------------------

def bulk_load(backend: str, raw: Raw, rows: int, pool: list[tuple[int, bytes]],
              start_at: int = 1_600_000_000_000, agents: int = 100) -> None:
    """Insert ``rows`` rows fast (executemany / execute_values), three per millisecond."""
    cur = raw.cursor()
    chunk = 2000 if backend != "mysql" else 500
    done = 0
    t0 = time.perf_counter()
    while done < rows:
        n = min(chunk, rows - done)
        batch = []
        for i in range(done, done + n):
            codec, data = pool[i % len(pool)]
            batch.append((new_id(), f"checkpoint {i}", f"agent-{i % agents}", f"s{i // 50}",
                          "chat", start_at + i // 3, data, codec))
        if backend == "postgres":
            cur.execute("BEGIN")
            execute_values(cur, raw.insert_sql.split("VALUES")[0] + "VALUES %s", batch,
                           page_size=500)
            cur.execute("COMMIT")
        elif backend == "sqlite":
            cur.execute("BEGIN")
            cur.executemany(raw.insert_sql, batch)
            cur.execute("COMMIT")
        else:
            raw.conn.begin()
            cur.executemany(raw.insert_sql, batch)
            raw.conn.commit()
        done += n
        if rows >= 100_000 and done % 100_000 == 0:
            print(f"    loaded {done:,} rows in {time.perf_counter() - t0:.0f}s", flush=True)
    if backend == "postgres":
        cur.execute(f"ANALYZE {TABLE}")
    elif backend == "mysql":
        cur.execute(f"ANALYZE TABLE {TABLE}")
        cur.fetchall()
    else:
        cur.execute("ANALYZE")


# -- measuring ----------------------------------------------------------------------------

def median_us(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def interleaved(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Medians in microseconds, the calls taking turns one by one (who goes first rotates)
    so that load from other processes (fsync latency above all) hits each alike."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for i in range(repeat):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            t = time.perf_counter()
            fns[j]()
            times[j].append(time.perf_counter() - t)
    return [statistics.median(ts) * 1e6 for ts in times]


def paired(fn_pkg: Callable[[], Any], fn_raw: Callable[[], Any], repeat: int
           ) -> tuple[float, float]:
    """Medians of both, the calls alternating one by one."""
    pkg, raw = interleaved([fn_pkg, fn_raw], repeat)
    return pkg, raw


def report(backend: str, rows: int | str, what: str, pkg: float, raw: float | None,
           unit: str = "us", note: str = "", base: str = "raw") -> None:
    ratio = f"{pkg / raw:5.2f}x {base}" if raw else ""
    raw_s = f"{base} {raw:10.1f} {unit}" if raw is not None else ""
    print(f"  {backend:8} {rows!s:>9} {what:38} {pkg:10.1f} {unit}  {raw_s:22} {ratio} {note}",
          flush=True)
    RESULTS.append({"backend": backend, "rows": rows, "what": what, "package": pkg,
                    "raw": raw, "base": base, "unit": unit, "ratio": (pkg / raw) if raw else None,
                    "note": note})


def table_bytes(backend: str, raw: Raw, url: str) -> int:
    cur = raw.cursor()
    if backend == "postgres":
        cur.execute(f"SELECT pg_total_relation_size('{TABLE}')")
        return int(cur.fetchone()[0])
    if backend == "mysql":
        cur.execute(f"ANALYZE TABLE {TABLE}")
        cur.fetchall()
        cur.execute("SELECT data_length + index_length FROM information_schema.TABLES "
                    "WHERE table_schema = DATABASE() AND table_name = %s", (TABLE,))
        return int(cur.fetchone()[0])
    if backend == "mysql-allocated":
        # What the tablespace file takes on disk (st_blocks): with PAGE_COMPRESSED (migration
        # 005) less than data_length, which counts uncompressed pages. Pages are compressed
        # when flushed, so flush the table first.
        cur.execute(f"FLUSH TABLES {TABLE} FOR EXPORT")
        cur.execute("UNLOCK TABLES")
        cur.execute("SELECT ALLOCATED_SIZE FROM information_schema.INNODB_SYS_TABLESPACES "
                    "WHERE NAME = CONCAT(DATABASE(), '/', %s)", (TABLE,))
        row = cur.fetchone()
        return int(row[0]) if row else 0
    cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(urlparse(url).path)


# -- the benchmarks -----------------------------------------------------------------------

def bench_store_retrieve(backend: str, rows: int, repeat: int, states: list[dict[str, Any]],
                         provider: PeeweeCheckpointProvider, raw: Raw) -> dict[str, float]:
    """Store and retrieve: the package against the raw driver and, on tables of up to 100,000
    rows, LangGraph's saver for the backend, the calls taking turns."""
    figures: dict[str, float] = {}
    rng = random.Random(7)
    clock = [1_900_000_000_000]

    def pkg_store() -> None:
        clock[0] += 1
        provider.store_checkpoint(NamedCheckpoint(
            name="bench", agent_id="agent-pkg", state=rng.choice(states),
            created_at=clock[0]))

    def raw_store() -> None:
        clock[0] += 1
        raw.store(rng.choice(states), clock[0])

    cur = raw.cursor()
    cur.execute(f"SELECT id FROM {TABLE} WHERE created_at < 1800000000000 AND "
                f"created_at % 997 = 0")
    ids = [r[0] for r in cur.fetchall()]
    # The raw driver reads rows it stored itself (uncompressed), as many as the ids above.
    raw_ids = [raw.store(states[i % len(states)], 1_850_000_000_000 + i)
               for i in range(len(ids))]
    with langgraph_saver(backend) as lg:
        if lg is None or rows > 100_000:
            pkg, base = paired(pkg_store, raw_store, repeat)
            report(backend, rows, "store 20 KiB", pkg, base)
        else:
            name, side = lg
            pkg, base, theirs = interleaved(
                [pkg_store, raw_store, lambda: side.store(rng.choice(states))], repeat)
            report(backend, rows, "store 20 KiB", pkg, base)
            report(backend, rows, "store 20 KiB", pkg, theirs, base=name)
        figures["store"] = pkg
        if lg is None or rows > 100_000:
            pkg, base = paired(lambda: provider.retrieve_checkpoint(rng.choice(ids)),
                               lambda: raw.retrieve(rng.choice(raw_ids)), repeat)
            report(backend, rows, "retrieve 20 KiB", pkg, base)
        else:
            name, side = lg
            pkg, base, theirs = interleaved(
                [lambda: provider.retrieve_checkpoint(rng.choice(ids)),
                 lambda: raw.retrieve(rng.choice(raw_ids)),
                 lambda: side.retrieve(rng.choice(side.ids))], repeat)
            report(backend, rows, "retrieve 20 KiB", pkg, base)
            report(backend, rows, "retrieve 20 KiB", pkg, theirs, base=name)
        figures["retrieve"] = pkg
    return figures


def bench_table(backend: str, rows: int, repeat: int, states: list[dict[str, Any]],
                pool: list[tuple[int, bytes]], json_sizes: list[int]) -> dict[str, float]:
    figures: dict[str, float] = {}
    with fresh_database(backend, f"t{rows}") as url:
        provider = PeeweeCheckpointProvider(url)
        provider.migrate()
        raw = Raw(backend, url)
        t = time.perf_counter()
        bulk_load(backend, raw, rows, pool)
        print(f"    {backend}: {rows:,} rows of 20 KiB chat states loaded in "
              f"{time.perf_counter() - t:.0f}s", flush=True)
        if rows <= 100_000:
            size = table_bytes(backend, raw, url)
            per_row = size / rows
            mean_json = statistics.mean(json_sizes)
            report(backend, rows, "bytes on disk per 20 KiB checkpoint", per_row, mean_json,
                   "B", base="JSON")
            if backend == "mysql":
                allocated = table_bytes("mysql-allocated", raw, url) / rows
                report(backend, rows, "  allocated in the .ibd file", allocated, mean_json,
                       "B", base="JSON")
        figures.update(bench_store_retrieve(backend, rows, repeat, states, provider, raw))
        cur = raw.cursor()
        # Pages: drop the rows the store benchmark added so the listing is the loaded table.
        cur.execute(f"DELETE FROM {TABLE} WHERE created_at >= 1800000000000")
        pkg, base = paired(lambda: provider.page_checkpoints(limit=50),
                           lambda: raw.page(50, None), repeat)
        report(backend, rows, "page of 50: first", pkg, base)
        figures["page_first"] = pkg
        page_no = min(1000, rows // 50)
        offset = (page_no - 1) * 50 - 1
        cur.execute(raw.offset_sql, (1, offset))
        at = cur.fetchone()
        at = (int(at[5]), str(at[0]))
        cursor = encode_cursor(*at)
        got = provider.page_checkpoints(limit=50, cursor=cursor)
        assert len(got.items) == 50
        pkg, base = paired(lambda: provider.page_checkpoints(limit=50, cursor=cursor),
                           lambda: raw.page(50, at), repeat)
        report(backend, rows, f"page of 50: page {page_no}", pkg, base)
        figures["page_deep"] = pkg
        off = median_us(lambda: raw.offset_page(50, offset + 1), max(5, repeat // 10))
        report(backend, rows, f"  (raw OFFSET for page {page_no})", off, None)
        provider.close()
        raw.close()
    return figures


def bench_big_list(backend: str, items: int, repeat: int) -> None:
    states = [chat_state(MIB, seed=10_000 + i) for i in range(4)]
    pool = [pack_state(s) for s in states]
    with fresh_database(backend, "big") as url:
        provider = PeeweeCheckpointProvider(url)
        provider.migrate()
        raw = Raw(backend, url)
        bulk_load(backend, raw, items, pool)
        pkg, base = paired(lambda: provider.list_checkpoints(limit=items),
                           lambda: raw.page(items - 1, None), repeat)
        report(backend, items, f"list {items:,} items, 1 MiB states", pkg / 1000, base / 1000,
               "ms")
        provider.close()
        raw.close()


def bench_huge_state(backend: str) -> None:
    """Store and retrieve a 20 MiB state in a child process, for clean peak-memory figures."""
    with fresh_database(backend, "huge") as url:
        PeeweeCheckpointProvider(url).migrate()
        for mode in ("package", "raw"):
            out = subprocess.run(
                [sys.executable, __file__, "--child-huge", backend, url, mode],
                capture_output=True, text=True, check=False)
            if out.returncode:
                print(out.stderr)
                raise SystemExit(f"child failed on {backend}")
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            if mode == "package":
                pkg = figures
            else:
                raw = figures
    size = pkg["json_bytes"] / MIB
    report(backend, "20 MiB", "store 20 MiB state", pkg["store_ms"], raw["store_ms"], "ms")
    report(backend, "20 MiB", "retrieve 20 MiB state", pkg["retrieve_ms"], raw["retrieve_ms"],
           "ms")
    report(backend, "20 MiB", "peak memory storing (MiB)", pkg["store_peak"] / MIB,
           raw["store_peak"] / MIB, "MiB", f"= {pkg['store_peak'] / MIB / size:.2f}x the JSON")
    report(backend, "20 MiB", "peak memory retrieving (MiB)", pkg["retrieve_peak"] / MIB,
           raw["retrieve_peak"] / MIB, "MiB",
           f"= {pkg['retrieve_peak'] / MIB / size:.2f}x the JSON")
    report(backend, "20 MiB", "stored bytes of a 20 MiB state", pkg["stored_bytes"] / MIB,
           pkg["json_bytes"] / MIB, "MiB", base="JSON")


def _rss() -> tuple[int, int]:
    """(current RSS, peak RSS since the last reset) in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return _rss()[0]


def child_huge(backend: str, url: str, mode: str) -> None:
    state = chat_state(20 * MIB, seed=99)
    json_bytes = len(orjson.dumps(state))
    result: dict[str, Any] = {"json_bytes": json_bytes}
    if mode == "package":
        provider = PeeweeCheckpointProvider(url)
        provider.list_checkpoints(limit=1)  # connect and check migrations outside the timing
        store = lambda: provider.store_checkpoint(  # noqa: E731
            NamedCheckpoint(name="huge", agent_id="a", state=state))
        retrieve: Callable[[str], Any] = provider.retrieve_checkpoint
    else:
        raw = Raw(backend, url, compress=True)
        store = lambda: raw.store(state, 1)  # noqa: E731
        retrieve = raw.retrieve
    # Times are medians of three calls; peaks are the largest of the three.
    times, peaks, cids = [], [], []
    for _ in range(3):
        base = _reset_peak()
        t = time.perf_counter()
        cids.append(store())
        times.append((time.perf_counter() - t) * 1000)
        peaks.append(_rss()[1] - base)
    result["store_ms"], result["store_peak"] = statistics.median(times), max(peaks)
    cid = cids[0]
    times, peaks = [], []
    for _ in range(3):
        base = _reset_peak()
        t = time.perf_counter()
        got = retrieve(cid)
        times.append((time.perf_counter() - t) * 1000)
        peaks.append(_rss()[1] - base)
        got = got.state if hasattr(got, "state") else got
        assert got == state
        del got
    result["retrieve_ms"], result["retrieve_peak"] = statistics.median(times), max(peaks)
    conn = raw_connect(backend, url)
    cur = conn.cursor()
    cur.execute(f"SELECT LENGTH(state) FROM {TABLE} WHERE id = " + (
        "?" if backend == "sqlite" else "%s"), (cid,))
    result["stored_bytes"] = int(cur.fetchone()[0])
    print(json.dumps(result))


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory_gib": f"{int(mem) / 2**20:.1f}",
            "os": platform.platform(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "peewee": peewee.__version__,
            "orjson": orjson.__version__, "zstandard": zstandard.__version__,
            "lz4": lz4.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="also 1,000,000-row tables and 1,000 items of 1 MiB")
    parser.add_argument("--backends", default="sqlite,postgres,mysql")
    parser.add_argument("--million-backends", default="sqlite,postgres",
                        help="backends that get the 1,000,000-row table with --full")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per figure")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--child-huge", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_huge:
        child_huge(*args.child_huge)
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        if backend != "sqlite" and not os.environ.get(ENV[backend]):
            parser.error(f"set {ENV[backend]} to run the {backend} benchmarks")
    info = machine()
    print("machine:", json.dumps(info), flush=True)
    states = [chat_state(STATE_SIZE, seed=i) for i in range(POOL)]
    pool = [pack_state(s) for s in states]
    json_sizes = [len(orjson.dumps(s)) for s in states]
    print(f"20 KiB chat states: mean JSON {statistics.mean(json_sizes):.0f} B, stored "
          f"{statistics.mean(len(p[1]) for p in pool):.0f} B", flush=True)
    million = {b.strip() for b in args.million_backends.split(",")} if args.full else set()
    for backend in backends:
        print(f"== {backend}", flush=True)
        small = bench_table(backend, 10_000, args.repeat, states, pool, json_sizes)
        if backend in million:
            big = bench_table(backend, 1_000_000, args.repeat, states, pool, json_sizes)
            for key in ("page_first", "page_deep", "store", "retrieve"):
                report(backend, "1M/10k", f"{key}: 1,000,000 rows vs 10,000", big[key],
                       small[key], "us", base="10k")
        bench_big_list(backend, 1000 if args.full else 200, max(20, args.repeat // 5))
        bench_huge_state(backend)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": RESULTS}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
