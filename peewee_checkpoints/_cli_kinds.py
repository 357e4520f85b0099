"""The kinds of data besides agent checkpoints, in the top-level ``copy``, ``export``,
``import`` and ``status``.

Next to the agent checkpoints, a database of this package can hold:

- ``app``: app checkpoints (the provider's own API moves them, :mod:`._app_transfer`);
- ``langgraph``: LangGraph threads (checkpoints, blobs, pending writes) and store items,
  moved as rows with their keys by :mod:`._cli_threads`;
- ``openai_sessions``: OpenAI Agents SDK sessions with their items (:mod:`._sessions`);
- ``adk_sessions``: Google ADK sessions with their events, and app/user state
  (:mod:`.adk._store`, records of :mod:`._cli_adk`).

None of it imports an agent framework: each kind is read and written with plain SQL through
the engine, in the format of its own command group (``threads``, ``sessions``, ``adk``), and
what the target already has is kept, so an interrupted command is finished by running it
again. In an export file every line of these kinds carries a ``"kind"``: ``checkpoint``,
``blob``, ``write``, ``store_item`` (LangGraph rows, as ``threads export`` writes them),
``openai_session`` (a session with its items, as ``sessions export`` writes it), and
``adk_app_state``, ``adk_user_state``, ``adk_session``, ``adk_event`` (``adk export``'s
records, their kind prefixed with ``adk_``). A file without such lines (an older export)
imports as before.

A kind that cannot be moved (the other end is not a database) is reported as not moved, and
the command exits non-zero: it never reports success for data it left behind.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from .errors import InvalidCheckpointError

if TYPE_CHECKING:  # the engine, Peewee and the drivers load when a command runs
    from ._cli_adk import AdkCounts, AdkImport
    from ._cli_threads import KindCounts, LangGraphImport
    from ._engine import Engine
    from ._sessions import SessionTables
    from ._transfer import Monitor, TransferCounts
    from .adk._store import AdkStore
    from .interface import CheckpointProvider

__all__ = [
    "ADK",
    "APP",
    "KINDS",
    "LANGGRAPH",
    "OPENAI",
    "ImportSink",
    "Moved",
    "Report",
    "copy_others",
    "export_others",
    "status_counts",
]

APP = "app"
LANGGRAPH = "langgraph"
OPENAI = "openai_sessions"
ADK = "adk_sessions"
#: Every kind besides agent checkpoints, in the order the commands move them.
KINDS = (APP, LANGGRAPH, OPENAI, ADK)
LABELS = {APP: "app checkpoints", LANGGRAPH: "LangGraph", OPENAI: "OpenAI Agents sessions",
          ADK: "ADK sessions"}

#: The ``kind`` of an OpenAI Agents session line; ADK records' kinds start with ADK_PREFIX.
OPENAI_LINE = "openai_session"
ADK_PREFIX = "adk_"
_ADK_LINES = frozenset(ADK_PREFIX + k for k in ("app_state", "user_state", "session", "event"))


# -- what a command did, per kind ------------------------------------------------------------


@dataclass
class Moved:
    """What a command did with one kind of data (only committed writes are counted)."""

    kind: str
    written: int = 0
    """Records written (app checkpoints, sessions); LangGraph counts rows in ``langgraph``."""
    skipped: int = 0
    """Records the target already had (nothing written)."""
    vanished: int = 0
    """Records listed by the source but deleted before they could be read."""
    parts: dict[str, int] = field(default_factory=dict)
    """What came with the records: ``items`` of sessions, ``events``, ``states``."""
    langgraph: KindCounts | None = None
    """LangGraph's rows per kind, and threads."""
    not_moved: str | None = None
    """Why (some of) this kind's data was not moved; the command then fails."""
    left: int = 0
    """Records or lines not moved for that reason."""

    def touched(self) -> bool:
        """True if the command met data of this kind."""
        lg = self.langgraph
        rows = (sum(lg.written.values()) + sum(lg.skipped.values())) if lg is not None else 0
        return bool(self.written or self.skipped or self.vanished or any(self.parts.values())
                    or rows or self.not_moved)

    def as_dict(self, verb: str) -> dict[str, Any]:
        """JSON-ready; LangGraph's is ``{"threads", "written", "skipped"}`` per row kind."""
        if self.langgraph is not None:
            out = self.langgraph.as_dict()
        else:
            out = {verb: self.written, "skipped": self.skipped, "vanished": self.vanished,
                   **self.parts}
        if self.not_moved is not None:
            out["not_moved"] = {"count": self.left, "reason": self.not_moved}
        return out

    def summary(self, verb: str) -> str:
        """One line, e.g. ``OpenAI Agents sessions: copied 2 (5 items), skipped 0 (...)``."""
        label = LABELS[self.kind]
        lg = self.langgraph
        if lg is not None and verb == "exported":  # nothing is skipped by an export
            text = (f"{label}: {verb} {lg.threads} thread{'s' * (lg.threads != 1)}: "
                    + ", ".join(f"{n} {kind}s" for kind, n in lg.written.items()))
        elif lg is not None:
            text = f"{label}: {lg.summary(verb)}"
        else:
            parts = ", ".join(f"{n} {name}" for name, n in self.parts.items())
            text = f"{label}: {verb} {self.written}" + (f" ({parts})" if parts else "")
            if verb != "exported" or self.skipped:
                text += f", skipped {self.skipped} (already present)"
            if self.vanished:
                text += f", {self.vanished} deleted from the source meanwhile"
        if self.not_moved is not None:
            text += f"; NOT {verb}: {self.left} ({self.not_moved})"
        return text


@dataclass
class Report:
    """Per kind, what a copy, export or import did."""

    moved: dict[str, Moved] = field(default_factory=lambda: {k: Moved(k) for k in KINDS})

    def __getitem__(self, kind: str) -> Moved:
        return self.moved[kind]

    def touched(self) -> list[Moved]:
        """The kinds the command met, in :data:`KINDS` order."""
        return [m for m in self.moved.values() if m.touched()]

    def failures(self) -> list[Moved]:
        """The kinds with data that was not moved."""
        return [m for m in self.moved.values() if m.not_moved is not None]

    def take_apps(self, counts: TransferCounts) -> None:
        """Record the app checkpoints' counts."""
        app = self.moved[APP]
        app.written, app.skipped, app.vanished = counts.written, counts.skipped, counts.vanished

    def add_to(self, report: dict[str, Any], verb: str) -> None:
        """Add the kinds met to a JSON report."""
        for moved in self.touched():
            report[moved.kind] = moved.as_dict(verb)

    def lines(self, verb: str) -> list[str]:
        """One summary line per kind met."""
        return [m.summary(verb) for m in self.touched()]

    def failure_message(self, verb: str) -> str:
        """The error of a command that left data behind."""
        return "; ".join(f"{m.left} {LABELS[m.kind]} record(s) not {verb}: {m.not_moved}"
                         for m in self.failures())


# -- status ----------------------------------------------------------------------------------


def _count(engine: Engine, sql: str) -> int:
    row = engine.run("count rows", lambda: engine.execute(sql).fetchone())
    return int(row[0] or 0) if row else 0


def status_counts(engine: Engine, db_url: str) -> dict[str, dict[str, int]]:
    """What the database holds of each kind besides checkpoints: LangGraph rows, OpenAI
    Agents sessions and items, ADK sessions, events and states (the tables must exist)."""
    from . import _sessions
    from ._cli_threads import langgraph_status
    from .adk import _store as adk

    return {
        LANGGRAPH: langgraph_status(db_url),
        OPENAI: {
            "sessions": _count(engine, f"SELECT COUNT(*) FROM {_sessions.SESSIONS}"),
            "items": _count(engine, f"SELECT COUNT(*) FROM {_sessions.ITEMS}"),
        },
        ADK: {
            "sessions": _count(engine, f"SELECT COUNT(*) FROM {adk.SESSIONS}"),
            "events": _count(engine, f"SELECT COUNT(*) FROM {adk.EVENTS}"),
            "app_states": _count(engine, f"SELECT COUNT(*) FROM {adk.APP_STATES}"),
            "user_states": _count(engine, f"SELECT COUNT(*) FROM {adk.USER_STATES}"),
        },
    }


def _holds(counts: dict[str, int]) -> int:
    """The records a kind's status counts stand for (threads, store items, sessions...)."""
    return sum(v for k, v in counts.items()
               if k in ("threads", "store_items", "sessions", "app_states", "user_states"))


def _not_movable(engine: Engine, db_url: str, report: Report, reason: str) -> None:
    """Mark every kind the source holds as not moved, for ``reason``."""
    for kind, counts in status_counts(engine, db_url).items():
        held = _holds(counts)
        if held:
            report[kind].not_moved, report[kind].left = reason, held


# -- copy ------------------------------------------------------------------------------------


def copy_others(source: CheckpointProvider, source_url: str, target_url: str | None,
                report: Report, monitor: Monitor, *, target_reason: str = "") -> None:
    """Copy LangGraph threads and store items, OpenAI Agents and ADK sessions.

    ``target_url`` None: the target is not a database; every kind the source holds is then
    reported as not moved, for ``target_reason``. Once ``monitor`` asks to stop,
    KeyboardInterrupt is raised between two threads or sessions (``report`` holds what was
    committed, and running the copy again finishes it).
    """
    from .peewee_provider import PeeweeCheckpointProvider

    if not isinstance(source, PeeweeCheckpointProvider):
        return  # no table of these kinds behind it
    if target_url is None:
        _not_movable(source.engine, source_url, report, target_reason)
        return
    from ._cli_threads import KindCounts, copy_langgraph

    report[LANGGRAPH].langgraph = report[LANGGRAPH].langgraph or KindCounts()
    copy_langgraph(source_url, target_url, report[LANGGRAPH].langgraph, monitor)
    _copy_openai(source_url, target_url, report[OPENAI], monitor)
    _copy_adk(source_url, target_url, report[ADK], monitor)


def _session_tables(db_url: str) -> contextlib.AbstractContextManager[SessionTables]:
    from ._sessions import open_session_tables

    return open_session_tables(db_url)


def _adk_store(db_url: str) -> AdkStore:
    from .adk._store import AdkStore

    return AdkStore(db_url)


def _import_openai(tables: SessionTables, record: dict[str, Any], moved: Moved) -> None:
    """Write one exported session unless the target has it (then count it as skipped)."""
    from ._sessions import import_unless_present

    items = import_unless_present(tables, record)
    if items is None:
        moved.skipped += 1
        return
    moved.written += 1
    moved.parts["items"] = moved.parts.get("items", 0) + items


def _copy_openai(source_url: str, target_url: str, moved: Moved, monitor: Monitor) -> None:
    moved.parts.setdefault("items", 0)
    with _session_tables(source_url) as source, _session_tables(target_url) as target:
        for info in source.iter_sessions():
            if monitor.stop_requested():
                raise KeyboardInterrupt
            if target.info(info.session_id) is not None:
                moved.skipped += 1
            else:
                record = source.export_session(info.session_id)
                if record is None:
                    moved.vanished += 1
                else:
                    _import_openai(target, record, moved)
            monitor.advance(1)


def _sync_adk(counts: AdkCounts, moved: Moved) -> None:
    moved.written, moved.skipped = counts.written, counts.kept
    moved.parts["events"], moved.parts["states"] = counts.events, counts.states


def _copy_adk(source_url: str, target_url: str, moved: Moved, monitor: Monitor) -> None:
    from ._cli_adk import AdkCounts, AdkImport, records

    counts = AdkCounts()
    with _adk_store(source_url) as source, _adk_store(target_url) as target:
        importer = AdkImport(target, counts)
        try:
            for number, record in enumerate(records(source), 1):
                if not importer.continues(record["kind"]):
                    if monitor.stop_requested():
                        importer.flush()  # the session before is whole: keep it
                        raise KeyboardInterrupt
                    monitor.advance(1)
                importer.add(record, f"ADK record {number} of the source")
            importer.flush()
        finally:
            _sync_adk(counts, moved)


# -- export ----------------------------------------------------------------------------------


def export_others(source: CheckpointProvider, source_url: str, out: IO[bytes],
                  report: Report, monitor: Monitor) -> None:
    """Write LangGraph rows, OpenAI Agents sessions and ADK records as JSON Lines, each line
    with its ``kind`` (see the module docstring); counts go to ``report``."""
    from .peewee_provider import PeeweeCheckpointProvider

    if not isinstance(source, PeeweeCheckpointProvider):
        return
    from ._cli_threads import KindCounts, export_langgraph, open_tables
    from ._codec import dumps_json

    lg = report[LANGGRAPH].langgraph = report[LANGGRAPH].langgraph or KindCounts()
    with open_tables(source_url) as tables:
        export_langgraph(tables, out, lg, monitor)

    moved = report[OPENAI]
    moved.parts.setdefault("items", 0)
    with _session_tables(source_url) as sessions:
        for info in sessions.iter_sessions():
            if monitor.stop_requested():
                raise KeyboardInterrupt
            record = sessions.export_session(info.session_id)
            if record is None:
                moved.vanished += 1
                continue
            out.write(dumps_json({"kind": OPENAI_LINE, **record}) + b"\n")
            moved.written += 1
            moved.parts["items"] += len(record["items"])
            monitor.advance(1)

    from ._cli_adk import records

    moved = report[ADK]
    moved.parts.update(events=0, states=0)
    with _adk_store(source_url) as store:
        for record in records(store, prefix=ADK_PREFIX):
            kind = record["kind"]
            if kind == ADK_PREFIX + "session":
                if monitor.stop_requested():
                    raise KeyboardInterrupt
                moved.written += 1
                monitor.advance(1)
            else:
                moved.parts["events" if kind == ADK_PREFIX + "event" else "states"] += 1
            out.write(dumps_json(record) + b"\n")


# -- import ----------------------------------------------------------------------------------


class ImportSink:
    """The lines of the other kinds in an import (a :class:`~._transfer.LineSink`).

    Each kind's storage is opened on ``target_url`` when its first line comes, so an old
    export file (agent and app checkpoints only) opens nothing more. With ``target_url``
    None (the store is not a database), the lines are counted as not imported, for
    ``reason``.
    """

    def __init__(self, target_url: str | None, report: Report, reason: str = "") -> None:
        self.target_url = target_url
        self.report = report
        self.reason = reason
        self._stack = contextlib.ExitStack()
        self._langgraph: LangGraphImport | None = None
        self._openai: SessionTables | None = None
        self._adk: AdkImport | None = None
        self._adk_counts: AdkCounts | None = None

    def __enter__(self) -> ImportSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @staticmethod
    def kind_of(line_kind: object) -> str | None:
        """The kind of data (:data:`KINDS`) a line's ``kind`` belongs to, or None."""
        from ._cli_threads import LangGraphImport

        if LangGraphImport.accepts(line_kind):
            return LANGGRAPH
        if line_kind == OPENAI_LINE:
            return OPENAI
        if line_kind in _ADK_LINES:
            return ADK
        return None

    def accepts(self, kind: object) -> bool:
        """True for the line kinds of LangGraph rows, OpenAI and ADK sessions."""
        return self.kind_of(kind) is not None

    def continues(self, kind: object) -> bool:
        """True for an ADK event (it belongs to the session line before it)."""
        return kind == ADK_PREFIX + "event"

    def add(self, obj: dict[str, Any], what: str) -> None:
        """Take one line; LangGraph rows and ADK sessions are written a batch at a time."""
        kind = self.kind_of(obj.get("kind"))
        if kind is None:  # pragma: no cover - import_lines asks accepts() first
            raise InvalidCheckpointError(f"{what}: unknown kind {obj.get('kind')!r}")
        moved, url = self.report[kind], self.target_url
        if url is None:
            moved.not_moved = self.reason
            if not self.continues(obj.get("kind")):
                moved.left += 1
            return
        if kind == LANGGRAPH:
            self._langgraph_import(url).add(obj, what)
        elif kind == OPENAI:
            if self._openai is None:
                self._openai = self._stack.enter_context(_session_tables(url))
            try:
                _import_openai(self._openai, obj, moved)
            except InvalidCheckpointError as exc:
                raise InvalidCheckpointError(f"{what}: {exc}") from exc
        else:
            importer, counts = self._adk_import(url)
            try:
                importer.add(obj, what)
            finally:
                _sync_adk(counts, moved)

    def _langgraph_import(self, url: str) -> LangGraphImport:
        if self._langgraph is None:
            from ._cli_threads import KindCounts, LangGraphImport, open_tables

            tables = self._stack.enter_context(open_tables(url))
            counts = self.report[LANGGRAPH].langgraph = KindCounts()
            self._langgraph = LangGraphImport(tables, counts)
        return self._langgraph

    def _adk_import(self, url: str) -> tuple[AdkImport, AdkCounts]:
        if self._adk is None or self._adk_counts is None:
            from ._cli_adk import AdkCounts, AdkImport

            store: AdkStore = self._stack.enter_context(_adk_store(url))
            self._adk_counts = AdkCounts()
            self._adk = AdkImport(store, self._adk_counts, prefix=ADK_PREFIX)
        return self._adk, self._adk_counts

    def flush(self) -> None:
        """Write the LangGraph rows and the ADK session taken and not yet written."""
        if self._langgraph is not None:
            self._langgraph.flush()
        if self._adk is not None and self._adk_counts is not None:
            try:
                self._adk.flush()
            finally:
                _sync_adk(self._adk_counts, self.report[ADK])

