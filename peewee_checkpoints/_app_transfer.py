"""App checkpoints in export, import and copy (called from :mod:`._transfer`).

An exported app checkpoint is a JSON Lines record that starts with ``"kind": "app"``::

    {"kind":"app","id":"01J...","name":"nightly","created_at":1700000000000,"state":{...}}

Agent checkpoint records have no ``kind``, so files written before app checkpoints existed
import unchanged. App checkpoints are few: they are read and written one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from ._codec import dumps_json
from ._validation import MAX_ID_LENGTH
from .errors import InvalidCheckpointError
from .interface import CheckpointProvider
from .records import StoredAppCheckpoint

if TYPE_CHECKING:
    from ._transfer import Monitor, TransferCounts

__all__ = ["APP_KIND", "app_from_obj", "copy_apps", "export_apps", "import_app"]

APP_KIND = "app"
_FIELDS = ("kind", "id", "name", "created_at", "state")


def dumps_app(checkpoint: StoredAppCheckpoint) -> bytes:
    """One JSON Lines record (no newline) for an app checkpoint."""
    return dumps_json({"kind": APP_KIND, "id": checkpoint.id, "name": checkpoint.name,
                       "created_at": checkpoint.created_at, "state": checkpoint.state})


def app_from_obj(obj: Mapping[str, Any], what: str) -> StoredAppCheckpoint:
    """The app checkpoint an exported record holds."""
    unknown = [k for k in obj if k not in _FIELDS]
    if unknown:
        raise InvalidCheckpointError(
            f"{what} has unknown field(s) {', '.join(map(repr, unknown))}; an app checkpoint "
            f"record has {', '.join(_FIELDS)}")
    missing = [k for k in ("id", "name", "state") if k not in obj]
    if missing:
        raise InvalidCheckpointError(f"{what} lacks the field(s) {', '.join(missing)}")
    fields = {k: v for k, v in obj.items() if k != "kind"}
    if isinstance(fields["id"], str) and len(fields["id"]) > MAX_ID_LENGTH:
        raise InvalidCheckpointError(f"{what}: id is longer than {MAX_ID_LENGTH} characters")
    return StoredAppCheckpoint(**fields)


def export_apps(provider: CheckpointProvider, out: IO[bytes], monitor: Monitor) -> int:
    """Write every app checkpoint (newest first); returns how many."""
    if not provider.supports_app_checkpoints:
        return 0
    count = 0
    for item in provider.list_app_checkpoints():
        checkpoint = provider.retrieve_app_checkpoint(item.id)
        if checkpoint is not None:
            out.write(dumps_app(checkpoint) + b"\n")
            count += 1
        monitor.advance(1)
        if monitor.stop_requested():
            raise KeyboardInterrupt
    return count


def import_app(provider: CheckpointProvider, obj: Mapping[str, Any], what: str,
               counts: TransferCounts) -> None:
    """Import one exported app checkpoint record under its id (skipped if it exists)."""
    try:
        checkpoint = app_from_obj(obj, what)
        written = provider.import_app_checkpoint(checkpoint)
    except InvalidCheckpointError as exc:
        if str(exc).startswith(what):
            raise
        raise InvalidCheckpointError(f"{what}: {exc}") from exc
    if written:
        counts.written += 1
    else:
        counts.skipped += 1


def copy_apps(source: CheckpointProvider, target: CheckpointProvider, counts: TransferCounts,
              monitor: Monitor) -> None:
    """Copy the app checkpoints ``target`` lacks, keeping ids."""
    if not source.supports_app_checkpoints:
        return
    have = {i.id for i in target.list_app_checkpoints()} if target.supports_app_checkpoints \
        else set()
    for item in source.list_app_checkpoints():
        if item.id in have:
            counts.skipped += 1
        else:
            checkpoint = source.retrieve_app_checkpoint(item.id)
            if checkpoint is None:
                counts.vanished += 1
            elif target.import_app_checkpoint(checkpoint):
                counts.written += 1
            else:
                counts.skipped += 1
        monitor.advance(1)
        if monitor.stop_requested():
            raise KeyboardInterrupt
