"""Moving checkpoints in and out of a provider: JSON records, JSON Lines export/import, copy.

Everything here streams: one checkpoint is in memory at a time (plus one page of listing),
whatever the number of rows. Writes go through ``import_checkpoint``, one row per statement,
so an interrupted run leaves every row either fully written or absent, and running it again
skips what is already there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import orjson

from ._codec import _dumps, _loads
from .errors import InvalidCheckpointError
from .interface import CheckpointProvider
from .records import CheckpointListItem, NamedCheckpoint, StoredCheckpoint

#: Fields of a checkpoint record in JSON, in the order they are written (state last, so a
#: reader sees what the checkpoint is before its bulk).
RECORD_FIELDS = ("id", "name", "agent_id", "session_id", "agent_type", "created_at", "state")
_NAMED_REQUIRED = ("name", "agent_id", "state")
_NAMED_OPTIONAL = ("session_id", "agent_type", "created_at")

#: Called after each checkpoint with how much work it stood for (1, or bytes read).
Progress = Callable[[int], None]


def _no_progress(_: int) -> None:
    pass


# -- records <-> JSON --------------------------------------------------------------------------


def record_to_dict(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    """A stored checkpoint as a JSON-ready dict, fields in :data:`RECORD_FIELDS` order."""
    return {name: getattr(checkpoint, name) for name in RECORD_FIELDS}


def dumps_line(checkpoint: StoredCheckpoint) -> bytes:
    """One JSON Lines record (no newline): compact UTF-8 JSON that round-trips exactly."""
    return dumps_compact(record_to_dict(checkpoint))


def dumps_compact(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a dict, exact for every value a state may hold."""
    return _dumps(value)


def dumps_pretty(value: Any) -> bytes:
    """Indented JSON for people; exact like :func:`dumps_line` (big ints, lone surrogates)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=True, allow_nan=False, indent=2).encode()


def _parse_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = _loads(data.encode() if isinstance(data, str) else data)
    except (ValueError, RecursionError) as exc:
        raise InvalidCheckpointError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidCheckpointError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _check_fields(obj: Mapping[str, Any], required: Iterable[str], optional: Iterable[str],
                  what: str) -> None:
    required = tuple(required)
    allowed = set(required) | set(optional)
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise InvalidCheckpointError(
            f"{what} has unknown field(s) {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(RECORD_FIELDS)}"
        )
    missing = [k for k in required if k not in obj]
    if missing:
        raise InvalidCheckpointError(f"{what} lacks the field(s) {', '.join(missing)}")


def named_from_json(data: bytes | str, what: str = "the checkpoint") -> NamedCheckpoint:
    """Parse a NamedCheckpoint from a JSON object (``id`` is refused: use import for that).

    Raises:
        InvalidCheckpointError: not JSON, not an object, unknown or missing fields.
    """
    obj = _parse_object(data, what)
    if "id" in obj:
        raise InvalidCheckpointError(
            f"{what} has an 'id': store gives every checkpoint a new id; to keep ids, "
            "use import (JSON Lines, one checkpoint per line)"
        )
    _check_fields(obj, _NAMED_REQUIRED, _NAMED_OPTIONAL, what)
    return NamedCheckpoint(**obj)


def stored_from_json(data: bytes | str, what: str = "the checkpoint") -> StoredCheckpoint:
    """Parse a StoredCheckpoint (a record as ``export`` writes it) from a JSON object.

    Raises:
        InvalidCheckpointError: not JSON, not an object, unknown or missing fields.
    """
    obj = _parse_object(data, what)
    _check_fields(obj, ("id", *_NAMED_REQUIRED), _NAMED_OPTIONAL, what)
    return StoredCheckpoint(**obj)


# -- streaming over a provider ----------------------------------------------------------------


def iter_items(provider: CheckpointProvider, **filters: Any) -> Iterator[CheckpointListItem]:
    """Every matching checkpoint, newest first (ties by id), without states.

    Uses the provider's ``iter_checkpoints`` (keyset paging, constant memory) when it has one;
    otherwise falls back to one ``list_checkpoints`` call, which holds the listing in memory.
    """
    iterate = getattr(provider, "iter_checkpoints", None)
    if iterate is not None:
        yield from iterate(**filters)
    else:
        yield from provider.list_checkpoints(**filters)


def iter_full(provider: CheckpointProvider, progress: Progress = _no_progress
              ) -> Iterator[StoredCheckpoint]:
    """Every checkpoint with its state, newest first; rows deleted meanwhile are left out."""
    for item in iter_items(provider):
        checkpoint = provider.retrieve_checkpoint(item.id)
        progress(1)
        if checkpoint is not None:
            yield checkpoint


@dataclass
class TransferCounts:
    """What an import or copy did so far (kept up to date, so an interrupt can report it)."""

    written: int = 0
    """Checkpoints written to the target."""
    skipped: int = 0
    """Checkpoints whose id the target already had (nothing written)."""
    vanished: int = 0
    """Checkpoints listed by the source but deleted before they could be read."""

    def as_dict(self) -> dict[str, int]:
        return {"written": self.written, "skipped": self.skipped, "vanished": self.vanished}


def export_lines(provider: CheckpointProvider, out: IO[bytes],
                 progress: Progress = _no_progress) -> int:
    """Write every checkpoint as one JSON line (newest first); returns how many."""
    count = 0
    for checkpoint in iter_full(provider, progress):
        out.write(dumps_line(checkpoint) + b"\n")
        count += 1
    return count


def import_lines(provider: CheckpointProvider, lines: Iterable[bytes], counts: TransferCounts,
                 progress: Progress = _no_progress, source: str = "input") -> None:
    """Import JSON Lines records under their own ids; existing ids are skipped and counted.

    Blank lines are ignored. A bad line stops the import with :class:`InvalidCheckpointError`
    naming the line; the lines before it stay imported (running again skips them).
    """
    for number, line in enumerate(lines, start=1):
        if line.strip():
            what = f"line {number} of {source}"
            checkpoint = stored_from_json(line, what)
            try:
                written = provider.import_checkpoint(checkpoint)
            except InvalidCheckpointError as exc:
                raise InvalidCheckpointError(f"{what}: {exc}") from exc
            if written:
                counts.written += 1
            else:
                counts.skipped += 1
        progress(len(line))


def _key(item: CheckpointListItem) -> tuple[int, str]:
    return (item.created_at, item.id)


def copy_all(source: CheckpointProvider, target: CheckpointProvider, counts: TransferCounts,
             progress: Progress = _no_progress) -> None:
    """Copy every checkpoint of ``source`` that ``target`` lacks, keeping ids.

    Both listings come in the same total order (created_at, id descending), so they are walked
    side by side, a merge join: a checkpoint the target already has is recognised from its
    listing, without reading its state from the source. That makes a re-run after an
    interruption cost one listing of each side plus the missing rows, in constant memory.
    The join is only a shortcut: ``import_checkpoint`` refuses an existing id whatever the
    listings said, so a row written concurrently is still skipped, never duplicated.
    """
    theirs = iter_items(target)
    head = next(theirs, None)
    for item in iter_items(source):
        key = _key(item)
        # Rows this loop writes sort above `head`, and a keyset-paged listing only fetches
        # rows below the last one it returned, so the target walk never sees our own writes.
        while head is not None and _key(head) > key:
            head = next(theirs, None)
        if head is not None and _key(head) == key:
            counts.skipped += 1
        else:
            checkpoint = source.retrieve_checkpoint(item.id)
            if checkpoint is None:
                counts.vanished += 1
            elif target.import_checkpoint(checkpoint):
                counts.written += 1
            else:
                counts.skipped += 1
        progress(1)
