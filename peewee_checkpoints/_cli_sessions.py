"""``peewee-checkpoints sessions ...``: agent conversation sessions from the command line.

Reads and writes the session tables (migration 006) through the engine, without importing
any agent SDK, so it works wherever the package is installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import click
import orjson

from .errors import InvalidCheckpointError

# Peewee, the drivers and the engine are imported by the commands that run, so that
# `peewee-checkpoints --help` stays fast (the rest of the CLI does the same).
if TYPE_CHECKING:
    from ._sessions import SessionInfo, SessionTables
    from .cli import Session

__all__ = ["sessions"]



def _db_url(session: Session) -> str:
    """The database the global options select, as every command chooses it."""
    return session.database_url("OpenAI Agents sessions")


@contextlib.contextmanager
def _tables(session: Session, url: str | None = None) -> Iterator[SessionTables]:
    from ._sessions import open_session_tables

    with open_session_tables(url if url is not None else _db_url(session)) as tables:
        yield tables


def _out() -> IO[bytes]:
    return sys.stdout.buffer


def _dumps(value: Any) -> bytes:
    from ._codec import dumps_json

    return dumps_json(value)


def _line(value: Any) -> None:
    out = _out()
    out.write(_dumps(value) + b"\n")
    out.flush()


def _pretty(value: Any) -> None:
    out = _out()
    try:
        data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):
        data = _dumps(value)
    out.write(data + b"\n")
    out.flush()


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _info_dict(info: SessionInfo) -> dict[str, Any]:
    return {
        "session_id": info.session_id, "user_id": info.user_id, "metadata": info.metadata,
        "created_at": info.created_at, "updated_at": info.updated_at,
        "item_count": info.item_count, "total_bytes": info.total_bytes,
    }


def _meta_filter(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is read as JSON when it parses (1, true, null), else text."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        try:
            found[key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            found[key] = text
    return found


def _json_flag(session: Session, flag: bool) -> bool:
    return flag or session.json


def _pass() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # cli.py imports this module at its end, after defining pass_session.
    from .cli import pass_session

    return pass_session


@click.group()
@click.option("--json", "json_", is_flag=True, help="Print JSON (every sessions command).")
@click.pass_context
def sessions(ctx: click.Context, json_: bool) -> None:
    """Agent conversation sessions (OpenAI Agents SDK): list, show, move, delete."""
    root = ctx.find_root().obj
    if json_ and root is not None:
        root.json = True


@sessions.command("list")
@click.option("--user", "user_id", help="Only this user's sessions.")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE",
              help="Only sessions whose metadata has KEY equal to VALUE (repeatable).")
@click.option("--has-key", "has_keys", multiple=True, metavar="KEY",
              help="Only sessions whose metadata has KEY (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (most recent first).")
@click.option("--json", "json_", is_flag=True, help="Print JSON lines.")
@_pass()
def list_sessions(  # noqa: PLR0917 - click passes options as arguments
        session: Session, user_id: str | None, meta: tuple[str, ...],
                  has_keys: tuple[str, ...], limit: int | None, json_: bool) -> None:
    """Sessions, most recently active first."""
    filters = {"user_id": user_id, "metadata": _meta_filter(meta), "has_keys": has_keys}
    with _tables(session) as tables:
        as_json = _json_flag(session, json_)
        if not as_json:
            click.echo(f"{'UPDATED':19}  {'ITEMS':>7}  {'BYTES':>10}  {'USER':16}  SESSION")
        for shown, info in enumerate(tables.iter_sessions(**filters)):
            if limit is not None and shown >= limit:
                break
            if as_json:
                _line(_info_dict(info))
            else:
                click.echo(f"{_when(info.updated_at):19}  {info.item_count:>7}  "
                           f"{info.total_bytes:>10}  {(info.user_id or '-'):16}  "
                           f"{info.session_id}")


@sessions.command()
@click.argument("session_id", metavar="ID")
@click.option("--limit", type=click.IntRange(min=0), help="Only the newest N items.")
@_pass()
def show(session: Session, session_id: str, limit: int | None) -> None:
    """A session's details and items, as JSON."""
    with _tables(session) as tables:
        info = tables.info(session_id)
        if info is None:
            raise click.ClickException(f"no session {session_id!r} in {tables.engine.url}")
        _pretty({**_info_dict(info), "items": tables.get_items(session_id, limit)})


def _selected(tables: SessionTables, ids: tuple[str, ...], user_id: str | None
              ) -> Iterator[str]:
    if ids:
        yield from ids
        return
    for info in tables.iter_sessions(user_id=user_id):
        yield info.session_id


@sessions.command()
@click.argument("session_ids", metavar="[ID...]", nargs=-1)
@click.option("--user", "user_id", help="Every session of this user.")
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE (readable by you only) instead of stdout.")
@_pass()
def export(session: Session, session_ids: tuple[str, ...], user_id: str | None,
           out_path: str | None) -> None:
    """Sessions as JSON lines (one session with its items per line); all by default."""
    from ._output import export_output

    count = 0
    with _tables(session) as tables, export_output(out_path) as output:
        for sid in _selected(tables, session_ids, user_id):
            record = tables.export_session(sid)
            if record is None:
                raise click.ClickException(f"no session {sid!r} in {tables.engine.url}")
            output.write(_dumps(record) + b"\n")
            count += 1
    click.echo(f"exported {count} session(s)", err=True)


def _records(file: IO[bytes]) -> Iterator[dict[str, Any]]:
    from ._codec import loads_json

    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            record = loads_json(line)
        except ValueError as exc:
            raise InvalidCheckpointError(f"line {number}: not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise InvalidCheckpointError(f"line {number}: not a JSON object")
        yield record


@sessions.command("import")
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@click.option("--replace", is_flag=True, help="Replace sessions that already exist.")
@_pass()
def import_(session: Session, file: IO[bytes], replace: bool) -> None:
    """Sessions from JSON lines written by ``sessions export``.

    A session the database already has is kept and counted as skipped (so an interrupted
    import is finished by running it again), unless --replace.
    """
    count = items = skipped = 0
    with _tables(session) as tables:
        for record in _records(file):
            written = _write(tables, record, replace)
            if written is None:
                skipped += 1
                continue
            items += written
            count += 1
    click.echo(f"imported {count} session(s), {items} item(s)"
               + (f"; skipped {skipped} already there" if skipped else ""), err=True)


def _write(tables: SessionTables, record: dict[str, Any], replace: bool) -> int | None:
    from ._sessions import import_unless_present

    if replace:
        return tables.import_session(record, replace=True)
    return import_unless_present(tables, record)


@sessions.command()
@click.argument("session_ids", metavar="[ID...]", nargs=-1)
@click.option("--to", "target", required=True, metavar="URL", help="The database to copy to.")
@click.option("--user", "user_id", help="Every session of this user.")
@click.option("--replace", is_flag=True, help="Replace sessions that already exist there.")
@_pass()
def copy(session: Session, session_ids: tuple[str, ...], target: str, user_id: str | None,
         replace: bool) -> None:
    """Copy sessions (all by default) to another database, any backend."""
    session.urls.append(target)
    count = skipped = 0
    with _tables(session) as source, _tables(session, target) as destination:
        for sid in _selected(source, session_ids, user_id):
            record = source.export_session(sid)
            if record is None:
                raise click.ClickException(f"no session {sid!r} in {source.engine.url}")
            if _write(destination, record, replace) is None:
                skipped += 1
            else:
                count += 1
    click.echo(f"copied {count} session(s)"
               + (f"; skipped {skipped} already there" if skipped else ""), err=True)


@sessions.command()
@click.argument("session_ids", metavar="[ID...]", nargs=-1)
@click.option("--user", "user_id", help="Every session of this user.")
@_pass()
def delete(session: Session, session_ids: tuple[str, ...], user_id: str | None) -> None:
    """Delete sessions with their items (by id, or every session of --user)."""
    if not session_ids and user_id is None:
        raise click.UsageError("name sessions to delete, or --user")
    if session_ids and user_id is not None:
        raise click.UsageError("give session ids or --user, not both")
    with _tables(session) as tables:
        if user_id is not None:
            deleted = tables.delete_user(user_id)
        else:
            missing = [sid for sid in session_ids if not tables.delete_session(sid)]
            deleted = len(session_ids) - len(missing)
            if missing:
                click.echo(f"deleted {deleted} session(s); not found: {', '.join(missing)}",
                           err=True)
                raise SystemExit(1)
    click.echo(f"deleted {deleted} session(s)", err=True)
