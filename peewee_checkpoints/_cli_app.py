"""CLI commands for app checkpoints (``app ...``), retention (``prune --policy``) and
encryption (``rekey``, ``keygen``). cli.py registers them at its end."""

from __future__ import annotations

from typing import IO, Any

import click

from ._crypto import generate_key
from .cli import (
    NotFound,
    Progress,
    Session,
    _emit_json,
    _info,
    _json_option,
    _provider,
    _require_persistent,
    _wants_json,
    local_time,
    pass_session,
)
from .errors import ConfigError, InvalidCheckpointError
from .records import AppCheckpoint, StoredAppCheckpoint, now_ms

__all__ = ["app", "apply_policy", "keygen", "rekey"]


def _app_record(checkpoint: StoredAppCheckpoint) -> dict[str, Any]:
    return {"id": checkpoint.id, "name": checkpoint.name, "created_at": checkpoint.created_at,
            "state": checkpoint.state}


def _app_from_json(data: bytes, what: str) -> AppCheckpoint:
    from ._transfer import _parse_object

    obj = _parse_object(data, what)
    unknown = [k for k in obj if k not in ("name", "state", "created_at")]
    if unknown:
        raise InvalidCheckpointError(
            f"{what} has unknown field(s) {', '.join(map(repr, unknown))}; the fields are "
            "name, state and created_at")
    missing = [k for k in ("name", "state") if k not in obj]
    if missing:
        raise InvalidCheckpointError(f"{what} lacks the field(s) {', '.join(missing)}")
    return AppCheckpoint(name=obj["name"], state=obj["state"],
                         created_at=obj.get("created_at", now_ms()))


def _app_options(json_: bool) -> None:
    session = click.get_current_context().find_object(Session)
    if session is not None:
        session.json = session.json or json_


app: click.Group = click.Group(
    "app", help="App checkpoints: snapshots of the whole application's state.",
    params=[click.Option(["--json", "json_"], is_flag=True, help="Print JSON.")],
    callback=_app_options)


@app.command("store")
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@_json_option
@pass_session
def app_store(session: Session, file: IO[bytes], json_: bool) -> None:
    """Store an app checkpoint given as JSON ({"name", "state", "created_at"?}); prints its id."""
    checkpoint = _app_from_json(file.read(), f"the app checkpoint in {file.name}")
    with _provider(session) as provider:
        _require_persistent(provider, session.chosen())
        checkpoint_id = provider.store_app_checkpoint(checkpoint)
    if _wants_json(session, json_):
        _emit_json({"id": checkpoint_id})
    else:
        click.echo(checkpoint_id)


@app.command("show")
@click.argument("checkpoint_id", metavar="ID")
@pass_session
def app_show(session: Session, checkpoint_id: str) -> None:
    """Print one app checkpoint, state included, as JSON."""
    with _provider(session, create=False) as provider:
        checkpoint = provider.retrieve_app_checkpoint(checkpoint_id)
    if checkpoint is None:
        raise NotFound(f"no app checkpoint with id {checkpoint_id!r}")
    _emit_json(_app_record(checkpoint))


@app.command("latest")
@pass_session
def app_latest(session: Session) -> None:
    """Print the newest app checkpoint, state included, as JSON."""
    with _provider(session, create=False) as provider:
        checkpoint = provider.latest_app_checkpoint()
    if checkpoint is None:
        raise NotFound("there is no app checkpoint")
    _emit_json(_app_record(checkpoint))


@app.command("list")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many (newest first).")
@_json_option
@pass_session
def app_list(session: Session, limit: int | None, json_: bool) -> None:
    """List app checkpoints, newest first."""
    with _provider(session, create=False) as provider:
        items = provider.list_app_checkpoints(limit=limit)
    if _wants_json(session, json_):
        _emit_json([{"id": i.id, "name": i.name, "created_at": i.created_at} for i in items])
        return
    for item in items:
        click.echo(f"{item.id}  {local_time(item.created_at)}  {item.name}")


@app.command("delete")
@click.argument("checkpoint_ids", metavar="ID...", nargs=-1, required=True)
@_json_option
@pass_session
def app_delete(session: Session, checkpoint_ids: tuple[str, ...], json_: bool) -> None:
    """Delete app checkpoints by id."""
    with _provider(session, create=False) as provider:
        deleted = [i for i in checkpoint_ids if provider.delete_app_checkpoint(i)]
    missing = [i for i in checkpoint_ids if i not in deleted]
    if _wants_json(session, json_):
        _emit_json({"deleted": deleted, "missing": missing})
    else:
        for checkpoint_id in deleted:
            click.echo(f"deleted {checkpoint_id}")
    if missing:
        raise NotFound("no app checkpoint with id " + ", ".join(map(repr, missing)))


def apply_policy(session: Session, yes: bool, as_json: bool) -> None:
    """``prune --policy``: apply the configured retention policy (a dry run unless ``yes``)."""
    with _provider(session, create=False) as provider:
        if provider.retention_policy is None:
            raise ConfigError(
                "prune --policy needs a retention policy: add a "
                "[checkpoints.providers.<name>.retention] table to the config file")
        report = provider.apply_retention(dry_run=not yes)
    if as_json:
        _emit_json(report.to_dict())
        return
    verb = "deleted" if yes else "would delete"
    for rule, result in report.rules.items():
        if result.rows:
            click.echo(f"{rule:<16} {verb} {result.rows} ({result.bytes} bytes)")
    click.echo(f"{'total':<16} {verb} {report.rows} ({report.bytes} bytes)")
    if not yes:
        _info("dry run: nothing was deleted; run again with --yes to delete")


@click.command()
@click.option("--decrypt", is_flag=True,
              help="Store every state unencrypted again (before turning encryption off).")
@click.option("--batch", type=click.IntRange(min=1, max=5000), default=500, show_default=True,
              help="Rows per transaction.")
@_json_option
@pass_session
def rekey(session: Session, decrypt: bool, batch: int, json_: bool) -> None:
    """Re-encrypt every stored state under the first encryption key.

    Covers checkpoint and app states, the LangGraph saver's checkpoints, metadata, blobs and
    writes, OpenAI Agents session items, and ADK session, app and user states and events.

    The keys come from the provider's encryption_keys option (or
    $PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS). Resumable: rows already under the first key are
    skipped, so an interrupted run is finished by running it again. Each batch is one short
    transaction. Once it reports 0 left, older keys can be removed from the list.
    """
    from ._rekey import rekey as run_rekey
    from .peewee_provider import PeeweeCheckpointProvider

    with _provider(session, create=False) as provider:
        if not isinstance(provider, PeeweeCheckpointProvider):
            raise ConfigError(f"rekey works on the Peewee provider, not {type(provider).__name__}")
        with Progress("re-encrypting", None) as progress:

            def advance(done: int) -> None:
                progress.advance(done)
                if not _wants_json(session, json_):
                    _info(f"rewrote {done} rows")

            counts = run_rekey(provider, decrypt=decrypt, batch=batch, progress=advance,
                               stop=progress.stop_requested)
            stopped = progress.stop_requested()
    if _wants_json(session, json_):
        _emit_json({"rewritten": counts.rewritten, "skipped": counts.skipped,
                    "complete": not stopped, "tables": counts.tables})
    else:
        target = "unencrypted" if decrypt else f"under key {provider.keyring.primary_id!r}"
        click.echo(f"rewrote {counts.rewritten} rows {target}"
                   + ("; interrupted: run again to finish" if stopped else ""))


@click.command()
@click.argument("key_id", default="k1")
@_json_option
@pass_session
def keygen(session: Session, key_id: str, json_: bool) -> None:
    """Print a new encryption key entry, KEY_ID:<base64 of 32 random bytes>."""
    entry = f"{key_id}:{generate_key()}"
    if _wants_json(session, json_):
        _emit_json({"key_id": key_id, "entry": entry})
    else:
        click.echo(entry)

