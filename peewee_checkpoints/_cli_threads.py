"""``peewee-checkpoints threads``: the LangGraph data in the database, from the command line.

LangGraph threads (``PeeweeSaver``'s three tables) and store items (``PeeweeStore``'s table)
are read and written here with plain SQL through the engine, so ``list``, ``status``,
``delete``, ``export``, ``import`` and ``copy`` work without LangGraph installed; ``show`` and
``prune`` decode checkpoints and import LangGraph when they run.

Rows are moved as they are stored (the serializer's type and bytes), with their keys: a copy
keeps ids, parents and order, and a thread copied to another backend resumes there. Each
thread (and each page of store items) is written in one transaction that keeps rows the
target already has, so an interrupted copy or import is finished by running it again.

:func:`copy_langgraph`, :func:`export_langgraph`, :class:`LangGraphImport` and
:func:`langgraph_status` are the same work for the top-level ``copy`` / ``export`` /
``import`` / ``status`` to call (through :mod:`._cli_kinds`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

import click
import orjson

from .errors import ConfigError, InvalidCheckpointError

if TYPE_CHECKING:  # the engine (and Peewee, and the drivers) load when a command runs
    from ._engine import Engine

__all__ = ["KINDS", "KindCounts", "LangGraphImport", "copy_langgraph", "export_langgraph",
           "langgraph_status", "open_tables", "threads"]

CHECKPOINTS = "peewee_checkpoints_lg_checkpoints"
BLOBS = "peewee_checkpoints_lg_blobs"
WRITES = "peewee_checkpoints_lg_writes"
STORE = "peewee_checkpoints_lg_store"
# A thread's rows besides its checkpoints.
_SIDE_TABLES = (BLOBS, WRITES)

#: kind -> (table, columns, key columns, binary columns)
_TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], frozenset[str]]] = {
    "checkpoint": (
        CHECKPOINTS,
        ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "run_id", "type",
         "checkpoint", "metadata_type", "metadata", "blob_refs", "checkpoint_ns_full"),
        ("thread_id", "checkpoint_ns", "checkpoint_id"),
        frozenset({"checkpoint", "metadata"}),
    ),
    "blob": (
        BLOBS,
        ("thread_id", "checkpoint_ns", "channel", "version", "type", "data"),
        ("thread_id", "checkpoint_ns", "channel", "version"),
        frozenset({"data"}),
    ),
    "write": (
        WRITES,
        ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "idx", "channel",
         "type", "data"),
        ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
        frozenset({"data"}),
    ),
    "store_item": (
        STORE,
        ("prefix", "item_key", "value", "created_at", "updated_at", "expires_at", "ttl_minutes"),
        ("prefix", "item_key"),
        frozenset(),
    ),
}
THREAD_KINDS = ("checkpoint", "blob", "write")
#: Every kind of LangGraph data, in the order they are moved.
KINDS = (*THREAD_KINDS, "store_item")
_PAGE = 500


@dataclass
class KindCounts:
    """Rows written (committed) and skipped (already on the target), per kind."""

    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    threads: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"threads": n, "written": {...}, "skipped": {...}}``."""
        return {"threads": self.threads, "written": dict(self.written),
                "skipped": dict(self.skipped)}

    def summary(self, verb: str) -> str:
        """One line per kind, e.g. ``copied 3 threads: 12 checkpoints (0 skipped), ...``."""
        parts = [f"{self.written[k]} {k}s ({self.skipped[k]} skipped)" for k in KINDS]
        return f"{verb} {self.threads} thread{'s' * (self.threads != 1)}: " + ", ".join(parts)


class Monitor(Protocol):
    """Progress and Ctrl-C (the CLI's Progress fits)."""

    def advance(self, amount: int) -> None: ...

    def stop_requested(self) -> bool: ...


class _Quiet:
    def advance(self, amount: int) -> None:
        pass

    def stop_requested(self) -> bool:
        return False


# -- SQL through the engine --------------------------------------------------------------------


class _Tables:
    """The LangGraph tables of one database, through its engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.p = engine.param
        self.profile = engine.profile
        engine.ensure_ready()

    def run(self, action: str, fn: Any) -> Any:
        return self.engine.run(action, fn)

    def _select_list(self, kind: str) -> str:
        _, columns, _, _ = _TABLES[kind]
        if kind == "store_item":
            return ", ".join(self.profile.json_text(c) if c == "value" else c for c in columns)
        return ", ".join(columns)

    def thread_ids(self, after: str | None, limit: int) -> list[str]:
        p = self.p
        sql = f"SELECT DISTINCT thread_id FROM {CHECKPOINTS}"
        params: list[Any] = []
        if after is not None:
            sql += f" WHERE thread_id > {p}"
            params.append(after)
        sql += f" ORDER BY thread_id LIMIT {p}"
        params.append(limit)
        return [r[0] for r in self.run("list LangGraph threads",
                                       lambda: self.engine.execute(sql, params).fetchall())]

    def thread_rows(self, kind: str, thread_id: str) -> list[tuple[Any, ...]]:
        table, _, keys, _ = _TABLES[kind]
        sql = (f"SELECT {self._select_list(kind)} FROM {table} WHERE thread_id = {self.p} "
               f"ORDER BY {', '.join(keys)}")
        rows = self.run(f"read a LangGraph thread's {kind}s",
                        lambda: self.engine.execute(sql, (thread_id,)).fetchall())
        return [self._plain(kind, row) for row in rows]

    def store_rows(self, after: tuple[str, str] | None, limit: int) -> list[tuple[Any, ...]]:
        p = self.p
        sql = f"SELECT {self._select_list('store_item')} FROM {STORE}"
        params: list[Any] = []
        if after is not None:
            sql += f" WHERE prefix > {p} OR (prefix = {p} AND item_key > {p})"
            params += [after[0], after[0], after[1]]
        sql += f" ORDER BY prefix, item_key LIMIT {p}"
        params.append(limit)
        rows: list[tuple[Any, ...]] = self.run(
            "read LangGraph store items",
            lambda: [tuple(r) for r in self.engine.execute(sql, params).fetchall()])
        return rows

    def _plain(self, kind: str, row: Sequence[Any]) -> tuple[Any, ...]:
        _, columns, _, binary = _TABLES[kind]
        return tuple(
            bytes(v) if name in binary and v is not None else v
            for name, v in zip(columns, row, strict=True)
        )

    def insert_sql(self, kind: str, rows: int) -> str:
        table, columns, keys, _ = _TABLES[kind]
        p = self.p
        one = "(" + ", ".join(
            self.profile.json_param(p) if kind == "store_item" and c == "value" else p
            for c in columns) + ")"
        tail = self.profile.keep_existing(keys[0], keys)
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join([one] * rows) + tail)

    def insert(self, kind: str, rows: Sequence[Sequence[Any]]) -> int:
        """Insert ``rows`` (inside the caller's transaction); returns how many were new."""
        written = 0
        for start in range(0, len(rows), 100):
            chunk = rows[start : start + 100]
            params = [v for row in chunk for v in row]
            sql = self.insert_sql(kind, len(chunk))  # column names from _TABLES, values bound
            cursor = self.engine.execute(sql, params)
            written += max(int(cursor.rowcount or 0), 0)
        return written

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.run("count LangGraph rows",
                            lambda: self.engine.execute(sql, params).fetchone()[0]) or 0)


# -- what other commands call ------------------------------------------------------------------


def _engine(db_url: str) -> Engine:
    from ._engine import Engine

    return Engine(db_url)


def langgraph_status(db_url: str) -> dict[str, int]:
    """Counts of LangGraph data in ``db_url``: threads, checkpoints, blobs, writes, store
    items (migrating the database first, as every command does)."""
    engine = _engine(db_url)
    try:
        tables = _Tables(engine)
        return {
            "threads": tables.count(f"SELECT COUNT(DISTINCT thread_id) FROM {CHECKPOINTS}"),
            "checkpoints": tables.count(f"SELECT COUNT(*) FROM {CHECKPOINTS}"),
            "blobs": tables.count(f"SELECT COUNT(*) FROM {BLOBS}"),
            "writes": tables.count(f"SELECT COUNT(*) FROM {WRITES}"),
            "store_items": tables.count(f"SELECT COUNT(*) FROM {STORE}"),
        }
    finally:
        engine.close()


def _copy_thread(source: _Tables, target: _Tables, thread_id: str, counts: KindCounts) -> None:
    rows = {kind: source.thread_rows(kind, thread_id) for kind in THREAD_KINDS}

    def write() -> dict[str, int]:
        with target.engine.transaction():
            return {kind: target.insert(kind, rows[kind]) for kind in THREAD_KINDS}

    written = target.run("copy a LangGraph thread", write)
    for kind in THREAD_KINDS:
        counts.written[kind] += written[kind]
        counts.skipped[kind] += len(rows[kind]) - written[kind]
    counts.threads += 1


def copy_langgraph(source_url: str, target_url: str, counts: KindCounts | None = None,
                   monitor: Monitor | None = None, *, threads: Sequence[str] | None = None,
                   store: bool = True) -> KindCounts:
    """Copy LangGraph threads (every one, or ``threads``) and store items to ``target_url``.

    Rows keep their keys; rows the target already has are kept and counted as skipped. Each
    thread, and each page of store items, is one transaction on the target. Once ``monitor``
    asks to stop (Ctrl-C), KeyboardInterrupt is raised between two of them: what ``counts``
    says was written is committed, and running the copy again finishes it.
    """
    counts = counts if counts is not None else KindCounts()
    monitor = monitor or _Quiet()
    source_engine, target_engine = _engine(source_url), _engine(target_url)
    try:
        source, target = _Tables(source_engine), _Tables(target_engine)
        for thread_id in (threads if threads is not None else _all_threads(source)):
            if monitor.stop_requested():
                raise KeyboardInterrupt
            _copy_thread(source, target, thread_id, counts)
            monitor.advance(1)
        if store:
            after: tuple[str, str] | None = None
            while rows := source.store_rows(after, _PAGE):
                if monitor.stop_requested():
                    raise KeyboardInterrupt
                page = rows

                def write(page: list[tuple[Any, ...]] = page) -> int:
                    with target.engine.transaction():
                        return target.insert("store_item", page)

                written = target.run("copy LangGraph store items", write)
                counts.written["store_item"] += written
                counts.skipped["store_item"] += len(rows) - written
                after = (rows[-1][0], rows[-1][1])
                monitor.advance(len(rows))
    finally:
        source_engine.close()
        target_engine.close()
    return counts


def _all_threads(tables: _Tables) -> Iterator[str]:
    after: str | None = None
    while page := tables.thread_ids(after, _PAGE):
        yield from page
        after = page[-1]


# -- the command group ---------------------------------------------------------------------------


def _session() -> Any:
    return click.get_current_context().find_root().obj


def _db_url(*, create: bool = False) -> str:
    """The database the global options choose (as the other commands do), as a db_url.

    Unless ``create``, a SQLite file that does not exist is a ConfigError naming it: reading
    commands create nothing.
    """
    url: str = _session().database_url("LangGraph threads", create=create)
    return url


def _wants_json(flag: bool) -> bool:
    return flag or bool(getattr(_session(), "json", False))


def _emit_json(value: Any) -> None:
    out = sys.stdout.buffer
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    out.flush()


def _json_option(f: Any) -> Any:
    return click.option("--json", "json_", is_flag=True, help="Print JSON.")(f)


@contextlib.contextmanager
def _tables(*, create: bool = False) -> Iterator[_Tables]:
    engine = _engine(_db_url(create=create))
    try:
        yield _Tables(engine)
    finally:
        engine.close()


def _uuid6_ms(checkpoint_id: str | None) -> int | None:
    """Epoch ms of a LangGraph checkpoint id (a version-6 UUID), or None."""
    try:
        u = uuid.UUID(str(checkpoint_id))
    except ValueError:
        return None
    if u.version != 6:
        return None
    n = u.int
    ticks = ((n >> 96) << 28) | (((n >> 80) & 0xFFFF) << 12) | ((n >> 64) & 0x0FFF)
    return (ticks - 0x01B21DD213814000) // 10_000


def _local(ms: int | None) -> str:
    if ms is None:
        return "?"
    moment = dt.datetime.fromtimestamp(ms / 1000)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@click.group("threads")
@click.option("--json", "json_", is_flag=True, help="Print JSON (every threads command).")
def threads(json_: bool) -> None:
    """LangGraph threads (PeeweeSaver) and store items (PeeweeStore) in the database."""
    if json_:
        session = _session()
        if session is not None:
            session.json = True


def _thread_page(tables: _Tables, after: str | None, limit: int) -> list[dict[str, Any]]:
    p = tables.p
    where, params = ("", []) if after is None else (f" WHERE thread_id > {p}", [after])
    sql = (f"SELECT thread_id, COUNT(*), COUNT(DISTINCT checkpoint_ns), MAX(checkpoint_id), "
           f"SUM(LENGTH(checkpoint) + LENGTH(metadata) + LENGTH(blob_refs)) FROM {CHECKPOINTS}"
           f"{where} GROUP BY thread_id ORDER BY thread_id LIMIT {p}")

    def run() -> list[dict[str, Any]]:
        rows = tables.engine.execute(sql, [*params, limit]).fetchall()
        found = {
            r[0]: {"thread_id": r[0], "checkpoints": int(r[1]), "namespaces": int(r[2]),
                   "latest_checkpoint_id": r[3], "last_activity_ms": _uuid6_ms(r[3]),
                   "bytes": int(r[4] or 0)}
            for r in rows
        }
        if found:
            marks = ", ".join([p] * len(found))
            for table in (BLOBS, WRITES):
                # Table names are constants; the thread ids travel as parameters.
                statement = (f"SELECT thread_id, SUM(LENGTH(data)) FROM {table} "
                             f"WHERE thread_id IN ({marks}) GROUP BY thread_id")
                for thread_id, size in tables.engine.execute(statement, list(found)).fetchall():
                    found[thread_id]["bytes"] += int(size or 0)
        return list(found.values())

    result: list[dict[str, Any]] = tables.run("list LangGraph threads", run)
    return result


@threads.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Threads per page.")
@click.option("--after", metavar="THREAD_ID", help="Start after this thread (the cursor the "
              "previous page printed).")
@click.option("--all", "all_", is_flag=True, help="Every thread, page after page.")
@_json_option
def list_threads(limit: int, after: str | None, all_: bool, json_: bool) -> None:
    """Threads in thread-id order: checkpoints, namespaces, last activity, bytes stored."""
    as_json = _wants_json(json_)
    with _tables() as tables:
        pages = 0
        rows: list[dict[str, Any]] = []
        while True:
            page = _thread_page(tables, after, limit)
            pages += 1
            next_after = page[-1]["thread_id"] if len(page) == limit else None
            if as_json:
                rows += page
            else:
                if pages == 1:
                    click.echo(f"{'THREAD':<38} {'CHECKPOINTS':>11} {'NS':>3} "
                               f"{'LAST ACTIVITY':<19} {'BYTES':>10}")
                for r in page:
                    click.echo(f"{r['thread_id']:<38} {r['checkpoints']:>11} "
                               f"{r['namespaces']:>3} {_local(r['last_activity_ms']):<19} "
                               f"{r['bytes']:>10}")
            if not all_ or next_after is None:
                break
            after = next_after
    if as_json:
        _emit_json({"threads": rows, "next_after": next_after})
    elif next_after is not None:
        click.echo(f"(more: threads list --after {next_after})", err=True)
    elif pages == 1 and not page:
        click.echo("(no threads)", err=True)


@threads.command("show")
@click.argument("thread_id")
@_json_option
def show_thread(thread_id: str, json_: bool) -> None:
    """A thread's checkpoint history, newest first (needs LangGraph installed)."""
    saver = _saver()
    try:
        history = [
            {
                "checkpoint_id": t.config["configurable"]["checkpoint_id"],
                "checkpoint_ns": t.config["configurable"]["checkpoint_ns"],
                "parent_checkpoint_id": (t.parent_config or {}).get("configurable", {}).get(
                    "checkpoint_id"),
                "time": t.checkpoint.get("ts"),
                "step": t.metadata.get("step"),
                "source": t.metadata.get("source"),
                "channels": sorted(t.checkpoint.get("channel_values", {})),
                "pending_writes": len(t.pending_writes or []),
            }
            for t in saver.list({"configurable": {"thread_id": thread_id}})
        ]
    finally:
        saver.close()
    if not history:
        raise _NotFound(f"no LangGraph thread {thread_id!r}")
    if _wants_json(json_):
        _emit_json({"thread_id": thread_id, "checkpoints": history})
        return
    for h in history:
        ns = f" ns={h['checkpoint_ns']}" if h["checkpoint_ns"] else ""
        click.echo(f"{h['checkpoint_id']}  step={h['step']}  source={h['source']}  "
                   f"{h['time']}{ns}  channels={','.join(h['channels'])}  "
                   f"writes={h['pending_writes']}")


def _saver() -> Any:
    try:
        from .langgraph import PeeweeSaver
    except ImportError as exc:
        raise ConfigError(f"this command decodes checkpoints: {exc}") from None
    return PeeweeSaver(_db_url())


class _NotFound(click.ClickException):
    exit_code = 1


@threads.command("delete")
@click.argument("thread_ids", metavar="THREAD_ID...", nargs=-1, required=True)
@_json_option
def delete_threads(thread_ids: tuple[str, ...], json_: bool) -> None:
    """Delete threads: every checkpoint, value and pending write, in every namespace."""
    deleted: dict[str, int] = {}
    with _tables() as tables:
        param = tables.p
        for thread_id in thread_ids:

            def run(thread_id: str = thread_id) -> int:
                with tables.engine.transaction():
                    n = tables.engine.execute(
                        f"DELETE FROM {CHECKPOINTS} WHERE thread_id = {param}", (thread_id,)
                    ).rowcount
                    for table in _SIDE_TABLES:
                        tables.engine.execute(f"DELETE FROM {table} WHERE thread_id = {param}",
                                              (thread_id,))
                    return max(int(n or 0), 0)

            deleted[thread_id] = tables.run("delete a LangGraph thread", run)
    missing = [t for t, n in deleted.items() if not n]
    if _wants_json(json_):
        _emit_json({"deleted": {t: n for t, n in deleted.items() if n}, "missing": missing})
    else:
        for thread_id, n in deleted.items():
            if n:
                click.echo(f"deleted {thread_id} ({n} checkpoint{'s' * (n != 1)})")
    if missing:
        raise _NotFound("no LangGraph thread " + ", ".join(map(repr, missing)))


@threads.command("prune")
@click.argument("thread_ids", metavar="[THREAD_ID...]", nargs=-1)
@click.option("--keep-latest", is_flag=True, required=True,
              help="Keep each namespace's latest checkpoint (with its writes and values).")
@click.option("--all", "all_", is_flag=True, help="Prune every thread.")
@_json_option
def prune_threads(thread_ids: tuple[str, ...], keep_latest: bool, all_: bool,
                  json_: bool) -> None:
    """Prune threads with PeeweeSaver.prune (DeltaChannel-safe: such threads are refused)."""
    if bool(thread_ids) == all_:
        raise click.UsageError("give THREAD_ID... or --all (not both)")
    with _tables() as tables:
        chosen = list(_all_threads(tables)) if all_ else list(thread_ids)
        before = _checkpoint_counts(tables, chosen)
        saver = _saver()
        try:
            for start in range(0, len(chosen), 100):
                saver.prune(chosen[start : start + 100], strategy="keep_latest")
        finally:
            saver.close()
        after = _checkpoint_counts(tables, chosen)
    removed = sum(before.values()) - sum(after.values())
    if _wants_json(json_):
        _emit_json({"threads": len(chosen), "deleted_checkpoints": removed})
    else:
        click.echo(f"pruned {len(chosen)} thread{'s' * (len(chosen) != 1)}: deleted {removed} "
                   f"checkpoint{'s' * (removed != 1)}")


def _checkpoint_counts(tables: _Tables, thread_ids: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(thread_ids), 200):
        chunk = list(thread_ids[start : start + 200])
        marks = ", ".join([tables.p] * len(chunk))
        sql = (f"SELECT thread_id, COUNT(*) FROM {CHECKPOINTS} WHERE thread_id IN ({marks}) "
               "GROUP BY thread_id")
        counts.update(tables.run("count checkpoints", lambda sql=sql, chunk=chunk: dict(
            tables.engine.execute(sql, chunk).fetchall())))
    return counts


@threads.command("status")
@_json_option
def status_threads(json_: bool) -> None:
    """How much LangGraph data the database holds, per kind."""
    counts = langgraph_status(_db_url())
    if _wants_json(json_):
        _emit_json(counts)
        return
    for key, value in counts.items():
        click.echo(f"{key + ':':<13}{value}")


# -- export / import / copy ----------------------------------------------------------------------


def _line(kind: str, row: Sequence[Any]) -> bytes:
    _, columns, _, binary = _TABLES[kind]
    obj: dict[str, Any] = {"kind": kind}
    for name, value in zip(columns, row, strict=True):
        binary_value = name in binary and value is not None
        obj[name] = base64.b64encode(value).decode() if binary_value else value
    return orjson.dumps(obj) + b"\n"


def _row(obj: dict[str, Any], where: str) -> tuple[str, tuple[Any, ...]]:
    kind = obj.get("kind")
    if kind not in _TABLES:
        raise InvalidCheckpointError(f"{where}: unknown kind {kind!r}; expected one of "
                                     + ", ".join(KINDS))
    _, columns, keys, binary = _TABLES[kind]
    missing = [c for c in keys if not isinstance(obj.get(c), str | int)]
    if missing:
        raise InvalidCheckpointError(f"{where}: a {kind} line lacks {', '.join(missing)}")
    values = []
    for name in columns:
        value = obj.get(name)
        if name in binary and value is not None:
            try:
                value = base64.b64decode(value, validate=True)
            except (ValueError, TypeError) as exc:
                raise InvalidCheckpointError(f"{where}: {name} is not base64") from exc
        values.append(value)
    return kind, tuple(values)


def export_langgraph(tables: _Tables, out: IO[bytes], counts: KindCounts | None = None,
                     monitor: Monitor | None = None, *, threads: Sequence[str] | None = None,
                     store: bool = True) -> KindCounts:
    """Write threads (every one, or ``threads``) and store items as JSON Lines.

    One line per stored row, ``{"kind": "checkpoint" | "blob" | "write" | "store_item", ...}``
    (bytes in base64), a thread's rows together; :class:`LangGraphImport` reads them back.
    Returns ``counts`` with the lines written per kind (``written``) and the threads. Once
    ``monitor`` asks to stop, KeyboardInterrupt is raised between two threads.
    """
    counts = counts if counts is not None else KindCounts()
    monitor = monitor or _Quiet()
    for thread_id in (threads if threads is not None else _all_threads(tables)):
        if monitor.stop_requested():
            raise KeyboardInterrupt
        for kind in THREAD_KINDS:
            for row in tables.thread_rows(kind, thread_id):
                out.write(_line(kind, row))
                counts.written[kind] += 1
        counts.threads += 1
        monitor.advance(1)
    if store:
        after: tuple[str, str] | None = None
        while rows := tables.store_rows(after, _PAGE):
            if monitor.stop_requested():
                raise KeyboardInterrupt
            for row in rows:
                out.write(_line("store_item", row))
            counts.written["store_item"] += len(rows)
            after = (rows[-1][0], rows[-1][1])
            monitor.advance(len(rows))
    return counts


class LangGraphImport:
    """Writes the lines of :func:`export_langgraph` into a database, keeping rows it has.

    Rows are collected and written :data:`_PAGE` at a time, each batch in one transaction
    whose inserts keep the rows the target already has (counted as skipped), so an import
    that stopped part way is finished by running it again. ``counts`` only holds what was
    committed.
    """

    def __init__(self, tables: _Tables, counts: KindCounts | None = None) -> None:
        self.tables = tables
        self.counts = counts if counts is not None else KindCounts()
        self._batch: dict[str, list[tuple[Any, ...]]] = {k: [] for k in KINDS}
        self._threads: set[str] = set()

    @staticmethod
    def accepts(kind: object) -> bool:
        """True for the kinds of line this importer reads."""
        return kind in _TABLES

    def add(self, obj: dict[str, Any], where: str) -> None:
        """Take one parsed line (``where`` names it in an error); writes a full batch."""
        kind, row = _row(obj, where)
        if kind != "store_item":
            self._threads.add(str(row[0]))
        self._batch[kind].append(row)
        if sum(len(v) for v in self._batch.values()) >= _PAGE:
            self.flush()

    def flush(self) -> None:
        """Write the collected rows in one transaction and count them."""
        pending = {k: list(v) for k, v in self._batch.items() if v}
        if not pending:
            return
        tables = self.tables

        def write() -> dict[str, int]:
            with tables.engine.transaction():
                return {k: tables.insert(k, rows) for k, rows in pending.items()}

        for kind, written in tables.run("import LangGraph rows", write).items():
            self.counts.written[kind] += written
            self.counts.skipped[kind] += len(pending[kind]) - written
        for rows in self._batch.values():
            rows.clear()
        self.counts.threads = len(self._threads)


@contextlib.contextmanager
def open_tables(db_url: str) -> Iterator[_Tables]:
    """The LangGraph tables of ``db_url`` (migrated first), closed at the end."""
    engine = _engine(db_url)
    try:
        yield _Tables(engine)
    finally:
        engine.close()


@threads.command("export")
@click.argument("thread_ids", metavar="[THREAD_ID...]", nargs=-1)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE (readable by you only) instead of stdout.")
@click.option("--no-store", is_flag=True, help="Leave out the store items.")
def export_threads(thread_ids: tuple[str, ...], out_path: str | None, no_store: bool) -> None:
    """Write threads (all, or the ones named) and store items as JSON Lines.

    One line per stored row: {"kind": "checkpoint" | "blob" | "write" | "store_item", ...},
    bytes in base64. `threads import` reads it on any backend.
    """
    from ._output import export_output

    with _tables() as tables, export_output(out_path) as out:
        counts = export_langgraph(tables, out, threads=list(thread_ids) if thread_ids else None,
                                  store=not no_store and not thread_ids)
    click.echo("exported " + ", ".join(f"{n} {k}s" for k, n in counts.written.items()), err=True)


@threads.command("import")
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@_json_option
def import_threads(file: IO[bytes], json_: bool) -> None:
    """Import JSON Lines written by `threads export`; rows already present are kept."""
    name = "stdin" if file.name == "<stdin>" else file.name
    with _tables(create=True) as tables:
        importer = LangGraphImport(tables)
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidCheckpointError(f"{name}:{number}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise InvalidCheckpointError(f"{name}:{number}: not a JSON object")
            importer.add(obj, f"{name}:{number}")
        importer.flush()
    _report(importer.counts, "imported", json_)


@threads.command("copy")
@click.option("--to", "target", required=True, metavar="URL", help="The target db_url.")
@click.option("--no-store", is_flag=True, help="Leave out the store items.")
@_json_option
def copy_threads(target: str, no_store: bool, json_: bool) -> None:
    """Copy every thread and store item, with their keys, to another database.

    Rows the target has are kept (counted as skipped), so running it again after an
    interruption copies only what is missing.
    """
    from .cli import Interrupted, Progress

    source = _db_url()
    session = _session()
    if isinstance(getattr(session, "urls", None), list):
        session.urls.append(target)
    counts = KindCounts()
    with Progress("copying threads", None) as progress:
        try:
            copy_langgraph(source, target, counts, progress, store=not no_store)
        except KeyboardInterrupt:
            raise Interrupted(counts.summary("interrupted after copying")
                              + "; each copied thread is complete: run the same copy again "
                              "to finish") from None
    _report(counts, "copied", json_)


def _report(counts: KindCounts, verb: str, json_: bool) -> None:
    if _wants_json(json_):
        _emit_json({verb: counts.as_dict()})
    else:
        click.echo(counts.summary(verb))
