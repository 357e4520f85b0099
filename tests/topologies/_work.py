"""Workloads the topology tests run in forked child processes, and how the parent reads them.

Each child writes one JSON report to its ``out`` path: what it did, how many errors, and the
first few error messages (type and text), so a failing test can say what went wrong where.
"""

from __future__ import annotations

import json
import os
import random
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from peewee_checkpoints import (
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
    StoredCheckpoint,
)

from .._workload import checkpoint

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import Checkpoint

MAX_ERRORS_KEPT = 5


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]


class Report:
    """What one child did; saved as JSON."""

    def __init__(self) -> None:
        self.ops = 0
        self.errors = 0
        self.messages: list[str] = []
        self.extra: dict[str, Any] = {}

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.messages) < MAX_ERRORS_KEPT:
            self.messages.append(describe(exc))

    def save(self, out: str) -> None:
        data = {"ops": self.ops, "errors": self.errors, "messages": self.messages, **self.extra}
        Path(out).write_text(json.dumps(data))


def run_child(target: Callable[..., None], kwargs: dict[str, Any]) -> None:
    """Entry point of a forked child: run ``target(**kwargs)``; a crash goes to stderr."""
    try:
        target(**kwargs)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def read_reports(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The children's reports; a missing one (the child crashed) reads as one error."""
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            reports.append({"ops": 0, "errors": 1, "messages": [f"no report at {path}"]})
    return reports


def wait_for_go(go_at: float) -> None:
    """Sleep until the wall-clock moment every child starts at once."""
    time.sleep(max(0.0, go_at - time.time()))


def first_use(*, db_url: str, use_saver: bool, go_at: float, out: str) -> None:
    """Construct a provider (or a LangGraph saver), wait for the common start, then make the
    first call (which migrates the fresh database) and one more."""
    report = Report()
    try:
        if use_saver:
            from peewee_checkpoints.langgraph import PeeweeSaver

            with PeeweeSaver(db_url) as saver:
                wait_for_go(go_at)
                config = saver_config(f"first-use-{os.getpid()}")
                stored = saver.put(config, saver_checkpoint(1), {"step": 1}, {"a": 1})
                assert saver.get_tuple(stored) is not None
        else:
            with PeeweeCheckpointProvider(db_url) as provider:
                wait_for_go(go_at)
                cid = provider.store_checkpoint(checkpoint(f"p{os.getpid()}", "first"))
                assert provider.retrieve_checkpoint(cid) is not None
        report.ops = 1
    except Exception as exc:
        report.error(exc)
    report.save(out)


def saver_config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    """A LangGraph config naming a thread (and a checkpoint of it)."""
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return cast("RunnableConfig", {"configurable": conf})


def saver_checkpoint(step: int, blob_kib: int = 1) -> Checkpoint:
    """A LangGraph checkpoint (a new id each call) whose channel ``a`` holds a value stored as
    a blob."""
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = {"a": ["x" * 1024 * blob_kib, step], "b": step}
    cp["channel_versions"] = {"a": step, "b": step}
    return cp


def hot_rows(*, db_url: str, worker: int, ops: int, shared: list[StoredCheckpoint], go_at: float,
             out: str) -> None:
    """``ops`` operations on rows other workers (on other nodes) touch at the same moment:
    stores, imports of a shared id set, deletes of shared ids. Counts errors, never stops."""
    report = Report()
    rng = random.Random(worker)
    with PeeweeCheckpointProvider(db_url) as provider:
        provider.migrate()
        wait_for_go(go_at)
        for i in range(ops):
            try:
                kind = i % 3
                if kind == 0:
                    provider.store_checkpoint(checkpoint(f"hot{worker}", f"hot{worker}-{i}"))
                elif kind == 1:
                    provider.import_checkpoint(rng.choice(shared))
                else:
                    provider.delete_checkpoint(rng.choice(shared).id)
            except Exception as exc:
                report.error(exc)
            report.ops += 1
    report.save(out)


def saver_puts(*, db_url: str, worker: int, puts: int, thread_id: str, go_at: float,
               out: str) -> None:
    """``puts`` LangGraph puts (with put_writes every few) on one thread shared with other
    workers on other nodes."""
    from peewee_checkpoints.langgraph import PeeweeSaver

    report = Report()
    with PeeweeSaver(db_url) as saver:
        saver.get_tuple(saver_config(thread_id))
        wait_for_go(go_at)
        parent: str | None = None
        for i in range(puts):
            try:
                stored = saver.put(saver_config(thread_id, parent), saver_checkpoint(i + 1),
                                   {"step": i}, {"a": i + 1, "b": i + 1})
                parent = stored["configurable"]["checkpoint_id"]
                if i % 5 == 0:
                    saver.put_writes(stored, [("a", i)], f"task-{worker}-{i}")
            except Exception as exc:
                report.error(exc)
            report.ops += 1
    report.save(out)


def store_until_error(*, db_url: str, agent: str, fd: int, out: str, seconds: float) -> None:
    """Store in a loop for up to ``seconds``; write each id to ``fd`` once store_checkpoint has
    returned it. Stop at the first error, and report it (with ``checkpoint_id`` if set) and the
    name of the checkpoint that was being stored."""
    report = Report()
    deadline = time.monotonic() + seconds
    with PeeweeCheckpointProvider(db_url) as provider:
        i = 0
        while time.monotonic() < deadline:
            name = f"{agent}-{i}"
            try:
                cid = provider.store_checkpoint(checkpoint(agent, name))
            except Exception as exc:
                report.error(exc)
                report.extra = {
                    "failed_name": name,
                    "storage_error": isinstance(exc, StorageError),
                    "checkpoint_id": getattr(exc, "checkpoint_id", None),
                    "message": str(exc),
                }
                break
            os.write(fd, (cid + "\n").encode())
            report.ops += 1
            i += 1
    report.save(out)


def named(agent: str, name: str) -> NamedCheckpoint:
    return checkpoint(agent, name)
