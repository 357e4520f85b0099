"""Moving checkpoints in and out of a provider: JSON records, JSON Lines export/import, copy.

Everything here streams: one checkpoint is in memory at a time (plus one page of listing),
whatever the number of rows. Writes go through ``import_checkpoint`` (one statement per row,
committed in batches), so an interrupted run leaves every row either fully written or absent,
and running it again skips what is already there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from . import _app_transfer
from ._codec import dumps_json, loads_json
from ._validation import check_stored_checkpoint
from .errors import InvalidCheckpointError, StorageError
from .interface import CheckpointProvider
from .records import CheckpointListItem, NamedCheckpoint, StoredCheckpoint

#: Fields of a checkpoint record in JSON, in the order they are written (state last, so a
#: reader sees what the checkpoint is before its bulk).
RECORD_FIELDS = ("id", "name", "agent_id", "session_id", "agent_type", "created_at", "state")
_NAMED_REQUIRED = ("name", "agent_id", "state")
_NAMED_OPTIONAL = ("session_id", "agent_type", "created_at")

# -- records <-> JSON --------------------------------------------------------------------------


def record_to_dict(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    """A stored checkpoint as a JSON-ready dict, fields in :data:`RECORD_FIELDS` order."""
    return {name: getattr(checkpoint, name) for name in RECORD_FIELDS}


def dumps_line(checkpoint: StoredCheckpoint) -> bytes:
    """One JSON Lines record (no newline): compact UTF-8 JSON that round-trips exactly."""
    return dumps_compact(record_to_dict(checkpoint))


def dumps_compact(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a dict, exact for every value a state may hold."""
    return dumps_json(value)


def dumps_pretty(value: Any) -> bytes:
    """Indented JSON for people; exact like :func:`dumps_line` (big ints, lone surrogates).

    Text stays as it is (``"café"``, not ``"caf\\u00e9"``) whichever encoder runs; only a lone
    surrogate, which UTF-8 cannot hold, is written as a ``\\uXXXX`` escape.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)
        # Outside strings JSON is ASCII, so every surrogate here is inside a string.
        return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text).encode()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _parse_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = loads_json(data.encode() if isinstance(data, str) else data)
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
        # The fields this record may have (store's have no id), in the order export writes.
        fields = [name for name in RECORD_FIELDS if name in allowed]
        raise InvalidCheckpointError(
            f"{what} has unknown field(s) {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(fields)}"
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
    return stored_from_obj(_parse_object(data, what), what)


def stored_from_obj(obj: dict[str, Any], what: str) -> StoredCheckpoint:
    """A StoredCheckpoint from a parsed JSON object (see :func:`stored_from_json`)."""
    _check_fields(obj, ("id", *_NAMED_REQUIRED), _NAMED_OPTIONAL, what)
    return StoredCheckpoint(**obj)


# -- streaming over a provider ----------------------------------------------------------------


class Monitor(Protocol):
    """Where long work reports progress and learns that it should stop (Ctrl-C)."""

    def advance(self, amount: int) -> None:
        """``amount`` more units done (checkpoints, or bytes of input)."""

    def stop_requested(self) -> bool:
        """True once the user asked to stop: finish cleanly at the next safe point."""


class _Quiet:
    def advance(self, amount: int) -> None:
        pass

    def stop_requested(self) -> bool:
        return False


QUIET: Monitor = _Quiet()


def iter_items(provider: CheckpointProvider, **filters: Any) -> Iterator[CheckpointListItem]:
    """Every matching checkpoint, newest first (ties by id), without states, page by page."""
    return provider.iter_checkpoints(**filters)


@dataclass
class TransferCounts:
    """What an import or copy has done; only committed writes are counted."""

    written: int = 0
    """Checkpoints written to the target (and committed)."""
    skipped: int = 0
    """Checkpoints whose id the target already had (nothing written)."""
    vanished: int = 0
    """Checkpoints listed by the source but deleted before they could be read."""

    def add(self, other: TransferCounts) -> None:
        """Add ``other``'s counts to these."""
        self.written += other.written
        self.skipped += other.skipped
        self.vanished += other.vanished


def export_lines(provider: CheckpointProvider, out: IO[bytes], monitor: Monitor = QUIET) -> int:
    """Write every checkpoint, then every app checkpoint, as JSON lines; returns how many.

    Raises KeyboardInterrupt between two lines once ``monitor`` asks to stop.
    """
    return (export_checkpoints(provider, out, monitor)
            + _app_transfer.export_apps(provider, out, monitor))


def export_checkpoints(provider: CheckpointProvider, out: IO[bytes],
                       monitor: Monitor = QUIET) -> int:
    """Write every agent checkpoint as one JSON line (newest first); returns how many.

    Raises KeyboardInterrupt between two lines once ``monitor`` asks to stop.
    """
    count = 0
    for item in iter_items(provider):
        checkpoint = provider.retrieve_checkpoint(item.id)
        if checkpoint is not None:  # else deleted since it was listed
            out.write(dumps_line(checkpoint) + b"\n")
            count += 1
        monitor.advance(1)
        if monitor.stop_requested():
            raise KeyboardInterrupt
    return count


def export_apps(provider: CheckpointProvider, out: IO[bytes], monitor: Monitor = QUIET) -> int:
    """Write every app checkpoint as one JSON line (``"kind": "app"``); returns how many."""
    return _app_transfer.export_apps(provider, out, monitor)


class BatchWriter:
    """Writes checkpoints under their own ids, many per call of ``import_checkpoints``.

    A commit per row costs a disk flush per row (on a busy server, milliseconds each); rows
    are therefore collected and handed to the target's
    :meth:`~CheckpointProvider.import_checkpoints` every :attr:`batch_rows` rows or
    :attr:`batch_seconds` seconds (the Peewee provider writes each batch in one transaction;
    other providers row by row). Counts move to ``counts`` only when a batch is written, so
    they are exact whatever stops the work, and an interrupted batch is simply absent: the
    next run writes it. Once ``monitor`` asks to stop, the current batch is written and
    KeyboardInterrupt raised.
    """

    batch_rows = 500
    batch_seconds = 1.0

    def __init__(self, target: CheckpointProvider, counts: TransferCounts,
                 monitor: Monitor = QUIET) -> None:
        self._target = target
        self._counts = counts
        self._monitor = monitor
        self._batch: list[StoredCheckpoint] = []
        self._labels: list[str] = []
        self._started = 0.0

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._batch, self._labels = [], []  # the original error is the one to report

    def skipped(self, *, vanished: bool = False, work: int = 1) -> None:
        """Count a checkpoint not written (already present, or gone from the source)."""
        if vanished:
            self._counts.vanished += 1
        else:
            self._counts.skipped += 1
        self._after_row(work)

    def write(self, checkpoint: StoredCheckpoint, *, work: int = 1, label: str = "") -> None:
        """Write ``checkpoint`` unless its id exists (then count it as skipped).

        ``work`` is what the row stands for in the progress report (1, or bytes of input);
        ``label`` names it in an error (``line 7 of input``).
        """
        if not self._batch:
            self._started = time.monotonic()
        self._batch.append(checkpoint)
        self._labels.append(label)
        if (len(self._batch) >= self.batch_rows
                or time.monotonic() - self._started >= self.batch_seconds):
            self.commit()
        self._after_row(work)

    def commit(self) -> None:
        """Write the collected batch, if any, and count it."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        labels, self._labels = self._labels, []
        try:
            done = self._target.import_checkpoints(batch)
        except InvalidCheckpointError:
            # Nothing of the batch was written: write it row by row up to the bad one, so the
            # rows before it are kept and the error names it.
            for checkpoint, label in zip(batch, labels, strict=True):
                try:
                    one = self._target.import_checkpoints([checkpoint])
                except InvalidCheckpointError as exc:
                    if not label or str(exc).startswith(label):
                        raise
                    raise InvalidCheckpointError(f"{label}: {exc}") from exc
                self._counts.written += one.written
                self._counts.skipped += one.skipped
            return
        except StorageError as exc:
            raise StorageError(
                f"{exc}; the {len(batch)} rows of this batch were not written. Run the same "
                "command again to resume"
            ) from exc
        self._counts.written += done.written
        self._counts.skipped += done.skipped

    def _after_row(self, work: int) -> None:
        self._monitor.advance(work)
        if self._monitor.stop_requested():
            self.commit()
            raise KeyboardInterrupt


class LineSink(Protocol):
    """Where :func:`import_lines` sends the lines of other kinds of data (``"kind"`` set to
    something else than ``"app"``): LangGraph rows, sessions, ..."""

    def accepts(self, kind: object) -> bool:
        """True if lines of this kind go to this sink."""

    def continues(self, kind: object) -> bool:
        """True if such a line belongs with the lines before it (no stopping before it)."""

    def add(self, obj: dict[str, Any], what: str) -> None:
        """Take one parsed line; ``what`` names it in an error."""

    def flush(self) -> None:
        """Write (and commit) what was taken and not yet written."""


def import_lines(provider: CheckpointProvider, lines: Iterable[bytes], counts: TransferCounts,
                 monitor: Monitor = QUIET, source: str = "input", *,
                 apps: TransferCounts | None = None, others: LineSink | None = None) -> None:
    """Import JSON Lines records under their own ids; existing ids are skipped and counted.

    Agent checkpoints (no ``kind``) are counted in ``counts``, app checkpoints
    (``"kind": "app"``) in ``apps`` (default: ``counts`` too); lines of any other kind go to
    ``others`` (without it, they are an error). Blank lines are ignored. A bad line stops the
    import with :class:`InvalidCheckpointError` naming the line; the lines before it stay
    imported (running again skips them). Once ``monitor`` asks to stop, what was taken is
    written and KeyboardInterrupt raised at the next line that starts a new record.
    """
    apps = apps if apps is not None else counts
    with BatchWriter(provider, counts, monitor) as writer:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                monitor.advance(len(line))
                continue
            what = f"line {number} of {source}"
            try:
                obj = _parse_object(line, what)
                kind = obj.get("kind")
                if kind is not None and kind != _app_transfer.APP_KIND:
                    if others is None or not others.accepts(kind):
                        raise InvalidCheckpointError(f"{what}: unknown kind {kind!r}")
                    writer.commit()
                    if monitor.stop_requested() and not others.continues(kind):
                        others.flush()
                        raise KeyboardInterrupt
                    others.add(obj, what)
                    monitor.advance(len(line))
                    continue
                if others is not None:
                    others.flush()  # one writer at a time (SQLite has one write lock)
                if kind == _app_transfer.APP_KIND:  # an app checkpoint
                    writer.commit()
                    _app_transfer.import_app(provider, obj, what, apps)
                    monitor.advance(len(line))
                    continue
                checkpoint = stored_from_obj(obj, what)
                check_stored_checkpoint(checkpoint)
            except InvalidCheckpointError as exc:
                writer.commit()  # nothing reached the database for this line: keep the rest
                if str(exc).startswith(what):
                    raise
                raise InvalidCheckpointError(f"{what}: {exc}") from exc
            writer.write(checkpoint, work=len(line), label=what)
        if others is not None:
            others.flush()


def _key(item: CheckpointListItem) -> tuple[int, str]:
    return (item.created_at, item.id)


def copy_all(source: CheckpointProvider, target: CheckpointProvider, counts: TransferCounts,
             monitor: Monitor = QUIET, *, apps: TransferCounts | None = None) -> None:
    """Copy every checkpoint of ``source`` that ``target`` lacks, keeping ids.

    App checkpoints are copied after the agent checkpoints and counted in ``apps`` (default:
    ``counts`` too).

    Both listings come in the same total order (created_at, id descending), so they are walked
    side by side, a merge join: a checkpoint the target already has is recognised from its
    listing, without reading its state from the source. That makes a re-run after an
    interruption cost one listing of each side plus the missing rows, in constant memory.
    The join is only a shortcut: ``import_checkpoint`` refuses an existing id whatever the
    listings said, so a row written concurrently is still skipped, never duplicated.
    """
    with BatchWriter(target, counts, monitor) as writer:
        theirs = iter_items(target)
        head = next(theirs, None)
        for item in iter_items(source):
            key = _key(item)
            # Rows this loop writes sort above `head`, and a keyset-paged listing only fetches
            # rows below the last one it returned, so the target walk never sees our writes.
            while head is not None and _key(head) > key:
                head = next(theirs, None)
            if head is not None and _key(head) == key:
                writer.skipped()
                continue
            checkpoint = source.retrieve_checkpoint(item.id)
            if checkpoint is None:
                writer.skipped(vanished=True)
            else:
                writer.write(checkpoint)
    _app_transfer.copy_apps(source, target, apps if apps is not None else counts, monitor)
