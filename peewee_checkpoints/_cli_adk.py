"""``peewee-checkpoints adk ...``: the Google ADK sessions in the same database.

Works without ADK installed: it reads and writes the rows of migration 007 through
:class:`~peewee_checkpoints.adk._store.AdkStore`. The database is the one the main command
selects, in the same order as every command: ``--db-url``, ``--config``/``--provider``,
``$PEEWEE_CHECKPOINTS_DB_URL``, the config file's provider ``db_url``, else
``sqlite:///checkpoints.db``.

Export format (JSON Lines, one object a line, each with a ``kind``): ``app_state`` and
``user_state`` lines, then per session one ``session`` line followed by its ``event`` lines
in append order. ``import`` reads the same lines; a session already in the target is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click
import orjson

from .errors import InvalidCheckpointError

if TYPE_CHECKING:
    from .adk._store import AdkStore, EventRow, SessionRow


def dumps_json(value: Any) -> bytes:
    """The package's exact JSON (the codec loads with the first command that needs it)."""
    from ._codec import dumps_json as dumps

    return dumps(value)


def loads_json(data: bytes) -> Any:
    """Parse JSON as the package writes it."""
    from ._codec import loads_json as loads

    return loads(data)


__all__ = ["AdkCounts", "AdkImport", "adk", "records"]



class _NotFound(click.ClickException):
    exit_code = 1


def _db_url(ctx: click.Context) -> str:
    """The database the main command's options select (see the module docstring)."""
    url: str = ctx.find_root().obj.database_url("ADK sessions")
    return url


def _store(ctx: click.Context, url: str | None = None) -> AdkStore:
    from .adk._store import AdkStore  # Peewee and the drivers load only when a command runs

    return AdkStore(url or _db_url(ctx))


def _emit(value: Any) -> None:
    try:
        data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, lone surrogates
        data = json.dumps(value, ensure_ascii=True, allow_nan=False, indent=2).encode()
    out = sys.stdout.buffer
    out.write(data + b"\n")
    out.flush()


def _time(seconds: float) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _session_dict(row: SessionRow) -> dict[str, Any]:
    return {"kind": "session", "app_name": row.app_name, "user_id": row.user_id, "id": row.id,
            "revision": row.revision, "create_time": row.create_time,
            "update_time": row.update_time, "state": row.state}


def _event_dict(row: SessionRow, event: EventRow) -> dict[str, Any]:
    return {"kind": "event", "app_name": row.app_name, "user_id": row.user_id,
            "session_id": row.id, "seq": event.seq, "id": event.event_id,
            "timestamp": event.timestamp, "event": loads_json(event.data)}


@click.group("adk")
@click.option("--json", "json_", is_flag=True, help="Print JSON (every adk command).")
@click.pass_context
def adk(ctx: click.Context, json_: bool) -> None:
    """Google ADK sessions (peewee_checkpoints.adk) in the same database."""
    root = ctx.find_root().obj
    if json_ and root is not None:
        root.json = True


def _as_json(ctx: click.Context, flag: bool) -> bool:
    """``--json`` after the command, after ``adk``, or before every command."""
    return flag or bool(getattr(ctx.find_root().obj, "json", False))


@adk.command("apps")
@click.option("--json", "json_", is_flag=True, help="Print JSON.")
@click.pass_context
def apps(ctx: click.Context, json_: bool) -> None:
    """List the apps that have sessions or state."""
    with _store(ctx) as store:
        names = store.app_names()
    if _as_json(ctx, json_):
        _emit(names)
    else:
        for name in names:
            click.echo(name)


@adk.command("list")
@click.option("--app", "app_name", required=True, help="The app name.")
@click.option("--user", "user_id", help="Only this user's sessions.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "json_", is_flag=True, help="Print JSON.")
@click.pass_context
def list_(ctx: click.Context, app_name: str, user_id: str | None, limit: int | None,
          json_: bool) -> None:
    """List sessions, oldest update first (ADK's list_sessions order), without state."""
    with _store(ctx) as store:
        rows: list[SessionRow] = []
        for row in store.iter_sessions(app_name, user_id):
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    if _as_json(ctx, json_):
        _emit([{k: v for k, v in _session_dict(r).items() if k not in ("kind", "state")}
               for r in rows])
        return
    for r in rows:
        click.echo(f"{r.user_id}\t{r.id}\tevents={r.revision}\tupdated={_time(r.update_time)}")


@adk.command("show")
@click.option("--app", "app_name", required=True, help="The app name.")
@click.option("--user", "user_id", required=True, help="The user id.")
@click.option("--events", "num_events", type=click.IntRange(min=0),
              help="Only the newest N events.")
@click.argument("session_id")
@click.pass_context
def show(ctx: click.Context, app_name: str, user_id: str, num_events: int | None,
         session_id: str) -> None:
    """Print one session as JSON: its state, the app and user state, and its events."""
    with _store(ctx) as store:
        found = store.get_session(app_name, user_id, session_id, num_recent_events=num_events)
    if found is None:
        raise _NotFound(f"no session {session_id!r} for app {app_name!r} and user {user_id!r}")
    row, app_state, user_state, events = found
    out = _session_dict(row)
    del out["kind"]
    out.update(app_state=app_state, user_state=user_state,
               events=[{k: v for k, v in _event_dict(row, e).items()
                        if k in ("seq", "id", "timestamp", "event")} for e in events])
    _emit(out)


@adk.command("delete")
@click.option("--app", "app_name", required=True, help="The app name.")
@click.option("--user", "user_id", required=True, help="The user id.")
@click.argument("session_ids", metavar="SESSION_ID...", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, app_name: str, user_id: str, session_ids: tuple[str, ...]
           ) -> None:
    """Delete sessions and their events."""
    missing = []
    with _store(ctx) as store:
        for session_id in session_ids:
            if store.delete_session(app_name, user_id, session_id):
                click.echo(f"deleted {session_id}")
            else:
                missing.append(session_id)
    if missing:
        raise _NotFound(f"no session {', '.join(map(repr, missing))} for app {app_name!r} and "
                        f"user {user_id!r}")


def records(store: AdkStore, app_name: str | None = None, user_id: str | None = None, *,
            prefix: str = "") -> Iterator[dict[str, Any]]:
    """The records of the export format, one dict a line, each ``kind`` led by ``prefix``.

    Events are read a page at a time, when the caller gets to them.
    """
    for app in [app_name] if app_name is not None else store.app_names():
        if user_id is None:
            app_state = store.get_app_state(app)
            if app_state:
                yield {"kind": prefix + "app_state", "app_name": app, "state": app_state}
            users = store.user_states(app)
        else:
            users = {user_id: store.get_user_state(app, user_id)}
        for uid, state in sorted(users.items()):
            if state:
                yield {"kind": prefix + "user_state", "app_name": app, "user_id": uid,
                       "state": state}
        for row in store.iter_sessions(app, user_id):
            yield {**_session_dict(row), "kind": prefix + "session"}
            for event in store.iter_events(row.app_name, row.user_id, row.id):
                yield {**_event_dict(row, event), "kind": prefix + "event"}


def _export(store: AdkStore, app_name: str | None, user_id: str | None) -> Iterator[bytes]:
    """The JSON Lines of the export format, one line (without newline) at a time."""
    for record in records(store, app_name, user_id):
        yield dumps_json(record)


@dataclass
class AdkCounts:
    """What an import of ADK records did (only what was committed)."""

    written: int = 0
    """Sessions written, with their events."""
    kept: int = 0
    """Sessions the target already had (nothing written)."""
    events: int = 0
    """Events written with the sessions written."""
    states: int = 0
    """App and user state records merged into the target's."""


class AdkImport:
    """Stores the records of the export format (their ``kind`` led by ``prefix``).

    A session is written, with the event records that follow it, in one transaction when the
    next session or state record comes or at :meth:`flush`; a session the target already has
    is kept as it is. App and user states are merged into the target's (merging again is
    harmless), so an import or copy that stopped part way is finished by running it again.
    """

    def __init__(self, store: AdkStore, counts: AdkCounts | None = None, *,
                 prefix: str = "") -> None:
        self.store = store
        self.counts = counts if counts is not None else AdkCounts()
        self.prefix = prefix
        self._pending: tuple[SessionRow, list[EventRow]] | None = None

    def continues(self, kind: object) -> bool:
        """True for a record that belongs to the session before it (an event)."""
        return kind == self.prefix + "event"

    def add(self, obj: dict[str, Any], where: str) -> None:
        """Take one record; ``where`` names it in an error."""
        from .adk._store import EventRow, SessionRow

        try:
            kind = obj["kind"]
            if kind == self.prefix + "session":
                self.flush()
                self._pending = (SessionRow(obj["app_name"], obj["user_id"], obj["id"],
                                            int(obj["revision"]), float(obj["create_time"]),
                                            float(obj["update_time"]), dict(obj["state"])), [])
            elif kind == self.prefix + "event":
                pending = self._pending
                if pending is None or (obj["app_name"], obj["user_id"], obj["session_id"]) != (
                        pending[0].app_name, pending[0].user_id, pending[0].id):
                    raise ValueError("an event line that does not follow its session line")
                pending[1].append(EventRow(int(obj["seq"]), obj["id"], float(obj["timestamp"]),
                                           dumps_json(obj["event"])))
            elif kind in (self.prefix + "app_state", self.prefix + "user_state"):
                self.flush()
                self.store.put_scoped_state(
                    obj["app_name"], obj.get("user_id") if kind.endswith("user_state") else None,
                    dict(obj["state"]), dt.datetime.now().timestamp())
                self.counts.states += 1
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCheckpointError(f"{where} is not an ADK export line: {exc}") from None

    def flush(self) -> None:
        """Write the session read last, with its events, unless the target has it."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if self.store.import_session(*pending):
            self.counts.written += 1
            self.counts.events += len(pending[1])
        else:
            self.counts.kept += 1


def _import(store: AdkStore, lines: Iterable[bytes]) -> tuple[int, int]:
    """Store what export lines describe; returns (sessions written, sessions kept)."""
    importer = AdkImport(store)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except ValueError as exc:
            raise InvalidCheckpointError(
                f"line {number} is not an ADK export line: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidCheckpointError(f"line {number} is not an ADK export line: not an "
                                         "object")
        importer.add(obj, f"line {number}")
    importer.flush()
    return importer.counts.written, importer.counts.kept


@adk.command("export")
@click.option("--app", "app_name", help="Only this app.")
@click.option("--user", "user_id", help="Only this user (with --app).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE (readable by you only) [default: stdout].")
@click.pass_context
def export(ctx: click.Context, app_name: str | None, user_id: str | None,
           out_path: str | None) -> None:
    """Write sessions, events and app/user state as JSON Lines."""
    from ._output import export_output

    if user_id is not None and app_name is None:
        raise click.UsageError("--user needs --app")
    with _store(ctx) as store, export_output(out_path) as out:
        for line in _export(store, app_name, user_id):
            out.write(line + b"\n")


@adk.command("import")
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@click.pass_context
def import_(ctx: click.Context, file: IO[bytes]) -> None:
    """Read JSON Lines written by export; sessions already present are kept."""
    with _store(ctx) as store:
        written, kept = _import(store, file)
    click.echo(f"imported {written} sessions, kept {kept} already present", err=True)


@adk.command("copy")
@click.option("--to", "target", required=True, metavar="URL", help="The target database URL.")
@click.option("--app", "app_name", help="Only this app.")
@click.option("--user", "user_id", help="Only this user (with --app).")
@click.pass_context
def copy(ctx: click.Context, target: str, app_name: str | None, user_id: str | None) -> None:
    """Copy sessions, events and app/user state to another database (any backend)."""
    if user_id is not None and app_name is None:
        raise click.UsageError("--user needs --app")
    urls = getattr(ctx.find_root().obj, "urls", None)
    if isinstance(urls, list):
        urls.append(target)
    with _store(ctx) as source, _store(ctx, target) as sink:
        importer = AdkImport(sink)
        for number, record in enumerate(records(source, app_name, user_id), 1):
            importer.add(record, f"record {number} of the source")
        importer.flush()
        written, kept = importer.counts.written, importer.counts.kept
    click.echo(f"copied {written} sessions, kept {kept} already present", err=True)
