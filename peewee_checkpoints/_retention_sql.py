"""Retention on the Peewee provider's database: the policy's rules as batched SQL.

Every rule walks an index in keyset order and deletes at most :data:`BATCH` rows per
statement, each batch its own short autocommitted transaction: no lock is held for long, and
memory holds one batch whatever the number of rows removed. The sweeper's claim on an
interval is one conditional UPDATE of a lease row (migration 009), holding no lock either.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from ._app_store import APP_TABLE
from ._engine import Engine
from ._sessions import ITEMS as OAI_ITEMS
from ._sessions import META as OAI_META
from ._sessions import SESSIONS as OAI_SESSIONS
from ._statements import Statement
from .adk._store import EVENTS as ADK_EVENTS
from .adk._store import SESSIONS as ADK_SESSIONS
from .model import TABLE_NAME
from .records import now_ms
from .retention import RetentionPolicy, RetentionReport

__all__ = ["BATCH", "LEASES_TABLE", "PeeweeRetention"]

#: Rows deleted per statement (and the id list stays under SQLite's 999 parameters).
BATCH = 500
#: The table of migration 009 that holds the sweeper's claims.
LEASES_TABLE = "peewee_checkpoints_leases"
#: The lease row of the retention job.
RETENTION_LEASE = "retention"
# How many agents' newest ids keep_latest remembers before it starts over (memory bound).
_NEWEST_CACHE = 100_000
# The LangGraph saver's tables (migration 003); named here so the core never imports LangGraph.
LG_CHECKPOINTS = "peewee_checkpoints_lg_checkpoints"
LG_BLOBS = "peewee_checkpoints_lg_blobs"
LG_WRITES = "peewee_checkpoints_lg_writes"
# (table, bytes of its payloads) of a thread, deleted in this order (children first).
_THREAD_PARTS = (
    (LG_WRITES, "LENGTH(data)"),
    (LG_BLOBS, "COALESCE(LENGTH(data), 0)"),
    (LG_CHECKPOINTS, "LENGTH(checkpoint) + LENGTH(metadata)"),
)
# 100-ns intervals between the Gregorian epoch (UUID time) and the Unix epoch.
_UUID_EPOCH = 0x01B21DD213814000


def uuid6_ms(value: object) -> int | None:
    """The time (epoch ms) in a LangGraph checkpoint id (a UUIDv6); None if it is not one."""
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        return None
    if parsed.version != 6:
        return None
    n = parsed.int
    stamp = ((n >> 80) << 12) | ((n >> 64) & 0xFFF)
    return (stamp - _UUID_EPOCH) // 10_000


def _sql(text: str) -> Statement:
    return Statement(text, ())


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:255]


class PeeweeRetention:
    """Applies a :class:`RetentionPolicy` to one engine's tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        p = engine.param
        t = TABLE_NAME
        # Oldest first, from a keyset position: the rows max_age removes.
        self._old = _sql(
            f"SELECT created_at, id, agent_id, LENGTH(state) FROM {t} "
            f"WHERE created_at < {p} AND created_at >= {p} "
            f"AND (created_at > {p} OR (created_at = {p} AND id > {p})) "
            f"ORDER BY created_at, id LIMIT {BATCH}")
        self._newest_of = _sql(
            f"SELECT id FROM {t} WHERE agent_id = {p} ORDER BY created_at DESC, id DESC LIMIT 1")
        self._agents = _sql(
            f"SELECT agent_id FROM {t} WHERE agent_id > {p} GROUP BY agent_id "
            f"ORDER BY agent_id LIMIT {BATCH}")
        self._rank = _sql(
            f"SELECT created_at, id FROM {t} WHERE agent_id = {p} "
            f"ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {p}")
        # Newest first, after a keyset position: the tail max_per_agent removes.
        self._tail = _sql(
            f"SELECT created_at, id, LENGTH(state) FROM {t} WHERE agent_id = {p} "
            f"AND created_at <= {p} AND (created_at < {p} OR (created_at = {p} AND id < {p})) "
            f"ORDER BY created_at DESC, id DESC LIMIT {BATCH}")
        self._tail_total = _sql(
            f"SELECT COUNT(*), SUM(LENGTH(state)) FROM {t} WHERE agent_id = {p} "
            f"AND created_at >= {p} "
            f"AND created_at <= {p} AND (created_at < {p} OR (created_at = {p} AND id < {p}))")
        a = APP_TABLE
        self._app_old = _sql(
            f"SELECT created_at, id, LENGTH(state) FROM {a} "
            f"WHERE created_at < {p} AND created_at >= {p} "
            f"AND (created_at > {p} OR (created_at = {p} AND id > {p})) "
            f"ORDER BY created_at, id LIMIT {BATCH}")
        self._app_rank = _sql(
            f"SELECT created_at, id FROM {a} ORDER BY created_at DESC, id DESC "
            f"LIMIT 1 OFFSET {p}")
        self._app_tail = _sql(
            f"SELECT created_at, id, LENGTH(state) FROM {a} "
            f"WHERE created_at <= {p} AND (created_at < {p} OR (created_at = {p} AND id < {p})) "
            f"ORDER BY created_at DESC, id DESC LIMIT {BATCH}")
        # Threads in key order with their newest checkpoint id (uuid6: time-ordered).
        self._threads = _sql(
            f"SELECT thread_id, MAX(checkpoint_id) FROM {LG_CHECKPOINTS} WHERE thread_id > {p} "
            f"GROUP BY thread_id ORDER BY thread_id LIMIT {BATCH}")
        self._oai_old = _sql(
            f"SELECT updated_at, session_id, LENGTH(metadata) FROM {OAI_SESSIONS} "
            f"WHERE updated_at < {p} AND updated_at >= {p} "
            f"AND (updated_at > {p} OR (updated_at = {p} AND session_id > {p})) "
            f"ORDER BY updated_at, session_id LIMIT {BATCH}")
        # Deleting the session row first takes the lock its writers take first, and its
        # condition spares a session written to since the scan.
        self._oai_delete = _sql(
            f"DELETE FROM {OAI_SESSIONS} WHERE session_id = {p} AND updated_at < {p}")
        self._oai_items = _sql(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM {OAI_ITEMS} "
            f"WHERE session_id = {p}")
        self._oai_meta = _sql(f"SELECT COUNT(*), 0 FROM {OAI_META} WHERE session_id = {p}")
        self._oai_children = (_sql(f"DELETE FROM {OAI_ITEMS} WHERE session_id = {p}"),
                              _sql(f"DELETE FROM {OAI_META} WHERE session_id = {p}"))
        self._adk_apps = _sql(
            f"SELECT app_name FROM {ADK_SESSIONS} WHERE app_name > {p} GROUP BY app_name "
            f"ORDER BY app_name LIMIT {BATCH}")
        # ADK's app index (app_name, update_time, user_id, id) in keyset order.
        self._adk_old = _sql(
            f"SELECT update_time, user_id, id, LENGTH(state) FROM {ADK_SESSIONS} "
            f"WHERE app_name = {p} AND update_time < {p} AND update_time >= {p} "
            f"AND (update_time > {p} OR (update_time = {p} AND (user_id > {p} "
            f"OR (user_id = {p} AND id > {p})))) "
            f"ORDER BY update_time, user_id, id LIMIT {BATCH}")
        event_key = f"app_name = {p} AND user_id = {p} AND session_id = {p}"
        self._adk_delete = _sql(
            f"DELETE FROM {ADK_SESSIONS} WHERE app_name = {p} AND user_id = {p} AND id = {p} "
            f"AND update_time < {p}")
        self._adk_events = _sql(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM {ADK_EVENTS} WHERE {event_key}")
        self._adk_children = (_sql(f"DELETE FROM {ADK_EVENTS} WHERE {event_key}"),)
        self._claim = _sql(
            f"UPDATE {LEASES_TABLE} SET holder = {p}, expires_at = {p} "
            f"WHERE name = {p} AND expires_at <= {p}")
        self._lease_exists = _sql(f"SELECT 1 FROM {LEASES_TABLE} WHERE name = {p}")
        self._lease_insert = _sql(
            f"INSERT INTO {LEASES_TABLE} (name, holder, expires_at) VALUES ({p}, {p}, {p})")

    # -- helpers ---------------------------------------------------------------------------

    def _all(self, action: str, sql: str, params: list[Any]) -> list[Any]:
        engine = self._engine
        return engine.run(action, lambda: list(engine.execute(sql, params).fetchall()))

    def _one(self, action: str, sql: str, params: list[Any]) -> Any:
        engine = self._engine
        return engine.run(action, lambda: engine.execute(sql, params).fetchone())

    def _delete(self, table: str, ids: list[str]) -> int:
        p = self._engine.param
        sql = f"DELETE FROM {table} WHERE id IN ({', '.join([p] * len(ids))})"
        engine = self._engine
        return engine.run("apply retention",
                          lambda: int(engine.execute(sql, ids).rowcount))

    def _retire(self, report: RetentionReport, rule: str, table: str,
                rows: list[tuple[str, int]], dry_run: bool) -> None:
        """Delete ``rows`` (id, stored bytes) and count them under ``rule``."""
        if not rows:
            return
        size = sum(int(n or 0) for _, n in rows)
        if dry_run:
            report.add(rule, len(rows), size)
            return
        removed = self._delete(table, [i for i, _ in rows])
        # Rows another process removed first are not ours to count.
        report.add(rule, removed, size if removed == len(rows) else
                   size * removed // len(rows))

    # -- the rules -------------------------------------------------------------------------

    def apply(self, policy: RetentionPolicy, dry_run: bool) -> RetentionReport:
        report = RetentionReport(dry_run=dry_run)
        now = now_ms()
        self._engine.ensure_ready()
        cutoff = None if policy.max_age_ms is None else max(now - policy.max_age_ms, 0)
        if cutoff is not None:
            self._max_age(report, cutoff, policy.keep_latest, dry_run)
        if policy.max_per_agent is not None:
            self._max_per_agent(report, policy.max_per_agent, cutoff, dry_run)
        if policy.app_max_age_ms is not None:
            self._app_max_age(report, max(now - policy.app_max_age_ms, 0), dry_run)
        if policy.app_max_total is not None:
            # In a dry run, what app_max_age would remove is left out of this count.
            since = (max(now - policy.app_max_age_ms, 0)
                     if dry_run and policy.app_max_age_ms is not None else None)
            self._app_max_total(report, policy.app_max_total, since, dry_run)
        if policy.thread_max_age_ms is not None:
            self._thread_max_age(report, max(now - policy.thread_max_age_ms, 0), dry_run)
        if policy.session_max_age_ms is not None:
            self._session_max_age(report, max(now - policy.session_max_age_ms, 0), dry_run)
        return report

    def _max_age(self, report: RetentionReport, cutoff: int, keep_latest: bool,
                 dry_run: bool) -> None:
        position: tuple[int, str] = (-1, "")
        newest: dict[str, str] = {}
        while True:
            at, last = position
            rows = self._all("apply retention", self._old.sql, [cutoff, at, at, at, last])
            if not rows:
                return
            doomed = []
            for _at, row_id, agent_id, size in rows:
                if keep_latest:
                    if agent_id not in newest:
                        if len(newest) >= _NEWEST_CACHE:
                            newest.clear()
                        found = self._one("apply retention", self._newest_of.sql, [agent_id])
                        newest[agent_id] = found[0] if found else ""
                    if newest[agent_id] == row_id:
                        continue
                doomed.append((row_id, size))
            self._retire(report, "max_age", TABLE_NAME, doomed, dry_run)
            if len(rows) < BATCH:
                return
            position = (rows[-1][0], rows[-1][1])

    def _max_per_agent(self, report: RetentionReport, keep: int, cutoff: int | None,
                       dry_run: bool) -> None:
        agent = ""  # agent_id is never empty, so every agent sorts after ""
        while True:
            agents = self._all("apply retention", self._agents.sql, [agent])
            for (agent_id,) in agents:
                kept = self._one("apply retention", self._rank.sql, [agent_id, keep - 1])
                if kept is None:
                    continue  # this agent has no more than ``keep``
                at, last = kept
                if dry_run:
                    # Rows max_age removes are counted there (an agent's newest is always
                    # among the ``keep`` >= 1 kept here, so keep_latest changes nothing).
                    total = self._one("apply retention", self._tail_total.sql,
                                      [agent_id, cutoff or 0, at, at, at, last])
                    report.add("max_per_agent", int(total[0]), int(total[1] or 0))
                    continue
                while True:
                    rows = self._all("apply retention", self._tail.sql,
                                     [agent_id, at, at, at, last])
                    self._retire(report, "max_per_agent", TABLE_NAME,
                                 [(r[1], r[2]) for r in rows], dry_run)
                    if len(rows) < BATCH:
                        break
                    at, last = rows[-1][0], rows[-1][1]
            if len(agents) < BATCH:
                return
            agent = agents[-1][0]

    def _app_max_age(self, report: RetentionReport, cutoff: int, dry_run: bool) -> None:
        at, last = -1, ""
        while True:
            rows = self._all("apply retention", self._app_old.sql, [cutoff, at, at, at, last])
            self._retire(report, "app_max_age", APP_TABLE, [(r[1], r[2]) for r in rows],
                         dry_run)
            if len(rows) < BATCH:
                return
            at, last = rows[-1][0], rows[-1][1]

    def _app_max_total(self, report: RetentionReport, keep: int, since: int | None,
                       dry_run: bool) -> None:
        kept = self._one("apply retention", self._app_rank.sql, [keep - 1])
        if kept is None:
            return
        at, last = kept
        while True:
            rows = self._all("apply retention", self._app_tail.sql, [at, at, at, last])
            doomed = [(r[1], r[2]) for r in rows if since is None or r[0] >= since]
            self._retire(report, "app_max_total", APP_TABLE, doomed, dry_run)
            if len(rows) < BATCH:
                return
            at, last = rows[-1][0], rows[-1][1]

    # -- LangGraph threads and agent-framework sessions: deleted whole ----------------------

    def _remove_threads(self, report: RetentionReport, ids: list[str], dry_run: bool) -> None:
        """Count rows and payload bytes of threads ``ids`` in the saver's three tables, and
        delete them unless ``dry_run``: in one transaction, children first."""
        engine = self._engine
        p = engine.param
        marks = ", ".join([p] * len(ids))

        def run() -> tuple[int, int]:
            rows = size = 0
            for table, payload in _THREAD_PARTS:
                statement = (f"SELECT COUNT(*), COALESCE(SUM({payload}), 0) FROM {table} "
                             f"WHERE thread_id IN ({marks})")
                found = engine.execute(statement, ids).fetchone()
                rows += int(found[0])
                size += int(found[1] or 0)
                if not dry_run:
                    statement = f"DELETE FROM {table} WHERE thread_id IN ({marks})"
                    engine.execute(statement, ids)
            return rows, size

        rows, size = self._batch(run, dry_run)
        report.add("thread_max_age", rows, size)

    def _thread_max_age(self, report: RetentionReport, cutoff: int, dry_run: bool) -> None:
        """Delete threads whose newest checkpoint (in any namespace) is older than ``cutoff``.

        A thread that gets a new checkpoint between the scan and its batch's deletion is
        re-checked in the deleting transaction, so only a put landing in that instant is lost
        (as with the saver's own ``prune``).
        """
        p = self._engine.param
        thread = ""
        while True:
            found = self._all("apply retention", self._threads.sql, [thread])
            doomed = [t for t, newest in found
                      if (at := uuid6_ms(newest)) is not None and at < cutoff]
            if doomed and not dry_run:
                marks = ", ".join([p] * len(doomed))
                statement = (f"SELECT thread_id, MAX(checkpoint_id) FROM {LG_CHECKPOINTS} "
                             f"WHERE thread_id IN ({marks}) GROUP BY thread_id")
                again = self._all("apply retention", statement, doomed)
                doomed = [t for t, newest in again
                          if (at := uuid6_ms(newest)) is not None and at < cutoff]
            if doomed:
                self._remove_threads(report, doomed, dry_run)
            if len(found) < BATCH:
                return
            thread = found[-1][0]

    def _remove_sessions(self, report: RetentionReport, found: list[tuple[list[Any], int]],
                         cutoff: float, dry_run: bool, how: tuple[Statement, ...]) -> None:
        """Count (and unless ``dry_run`` delete) sessions, one batch in one transaction.

        ``found``: (key, bytes of the session row) per session; ``how``: the conditional
        delete of the session row, then the queries counting its children, then the
        deletes of its children.
        """
        if not found:
            return
        engine = self._engine
        delete = how[0]
        counts = tuple(s for s in how[1:] if s.sql.startswith("SELECT"))
        children = tuple(s for s in how[1:] if s.sql.startswith("DELETE"))

        def batch() -> tuple[int, int]:
            rows = size = 0
            for key, own in found:
                if not dry_run and engine.execute(delete.sql, [*key, cutoff]).rowcount != 1:
                    continue  # written to (or deleted) since the scan: not ours to remove
                rows += 1
                size += int(own or 0)
                for statement in counts:
                    n, b = engine.execute(statement.sql, key).fetchone()
                    rows += int(n)
                    size += int(b or 0)
                if not dry_run:
                    for statement in children:
                        engine.execute(statement.sql, key)
            return rows, size

        rows, size = self._batch(batch, dry_run)
        report.add("session_max_age", rows, size)

    def _batch(self, fn: Callable[[], tuple[int, int]], dry_run: bool) -> tuple[int, int]:
        """Run one batch of a rule: its reads alone on a dry run, else in one write
        transaction (so a batch is deleted whole or not at all); ``(rows, bytes)``."""
        engine = self._engine
        if dry_run:
            found: tuple[int, int] = engine.run("apply retention", fn)
            return found

        def write() -> tuple[int, int]:
            with engine.transaction(write=True):
                return fn()
        removed: tuple[int, int] = engine.run("apply retention", write)
        return removed

    def _session_max_age(self, report: RetentionReport, cutoff: int, dry_run: bool) -> None:
        """Delete OpenAI Agents and ADK sessions not updated since ``cutoff`` (epoch ms)."""
        oai = (self._oai_delete, self._oai_items, self._oai_meta, *self._oai_children)
        at, last = -1, ""
        while True:
            rows = self._all("apply retention", self._oai_old.sql, [cutoff, at, at, at, last])
            self._remove_sessions(report, [([r[1]], r[2]) for r in rows], cutoff, dry_run, oai)
            if len(rows) < BATCH:
                break
            at, last = rows[-1][0], rows[-1][1]
        # ADK times are epoch seconds (floats).
        adk = (self._adk_delete, self._adk_events, *self._adk_children)
        seconds = cutoff / 1000
        app = ""
        while True:
            apps = self._all("apply retention", self._adk_apps.sql, [app])
            for (app_name,) in apps:
                since: float = -1.0
                user, last = "", ""
                while True:
                    rows = self._all("apply retention", self._adk_old.sql,
                                     [app_name, seconds, since, since, since, user, user, last])
                    self._remove_sessions(report, [([app_name, r[1], r[2]], r[3]) for r in rows],
                                          seconds, dry_run, adk)
                    if len(rows) < BATCH:
                        break
                    since, user, last = rows[-1][0], rows[-1][1], rows[-1][2]
            if len(apps) < BATCH:
                return
            app = apps[-1][0]

    # -- the sweeper's claim ---------------------------------------------------------------

    def claim(self, interval_ms: int, name: str = RETENTION_LEASE) -> bool:
        """Claim the job ``name`` until ``interval_ms`` from now; False if another holds it.

        One autocommitted conditional UPDATE: of many processes asking at once, exactly one
        sees its row change.
        """
        self._engine.ensure_ready()
        engine = self._engine
        now = now_ms()
        params = [_holder(), now + interval_ms, name, now]

        def run() -> bool:
            if engine.execute(self._claim.sql, params).rowcount == 1:
                return True
            if engine.execute(self._lease_exists.sql, [name]).fetchone() is None:
                try:
                    with engine.transaction():
                        engine.execute(self._lease_insert.sql, [name, "", 0])
                except Exception:  # another process inserted it first: fine either way
                    return False
                return bool(engine.execute(self._claim.sql, params).rowcount == 1)
            return False

        return self._engine.run("claim a retention run", run)
