"""Checks on checkpoint fields that every provider applies before writing anything."""

from __future__ import annotations

from typing import Any

from .errors import InvalidCheckpointError
from .records import NamedCheckpoint, StoredCheckpoint

#: Longest ``name`` accepted, in characters (the column is VARCHAR(1024) on the servers).
MAX_NAME_LENGTH = 1024
#: Longest ``agent_id``, ``session_id`` or ``agent_type`` (indexed VARCHAR(255) columns).
MAX_KEY_LENGTH = 255
#: Longest id accepted from outside (ids this package makes are 26 characters).
MAX_ID_LENGTH = 64
#: created_at is a signed 64-bit column.
MAX_CREATED_AT = 2**63 - 1


def text_problem(value: object, max_length: int) -> str | None:
    """Say why ``value`` cannot be stored as an exact text column, or return None."""
    if type(value) is not str:
        return f"must be a str, not {type(value).__name__}"
    if len(value) > max_length:
        return f"is {len(value)} characters long; at most {max_length} are allowed"
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refusing it everywhere keeps backends identical.
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode text"
    return None


def is_storable_key(value: object, max_length: int = MAX_KEY_LENGTH) -> bool:
    """True if ``value`` could be in a text column; filters and ids that aren't match nothing."""
    return text_problem(value, max_length) is None


def check_text(field: str, value: object, max_length: int, *, allow_empty: bool) -> None:
    """Raise :class:`InvalidCheckpointError` unless ``value`` is storable text."""
    problem = text_problem(value, max_length)
    if problem is None and not allow_empty and value == "":
        problem = "must not be empty"
    if problem is not None:
        raise InvalidCheckpointError(f"{field} {problem}")


def check_created_at(value: object) -> None:
    """Raise :class:`InvalidCheckpointError` unless ``value`` is a valid epoch-ms int."""
    if type(value) is not int:
        raise InvalidCheckpointError(
            f"created_at must be an int (epoch milliseconds), not {type(value).__name__}"
        )
    if not 0 <= value <= MAX_CREATED_AT:
        raise InvalidCheckpointError(
            f"created_at must be between 0 and {MAX_CREATED_AT} epoch milliseconds, got {value}"
        )


def check_checkpoint(checkpoint: object) -> None:
    """Validate every field of a :class:`NamedCheckpoint` except ``state``."""
    if not isinstance(checkpoint, NamedCheckpoint):
        raise InvalidCheckpointError(
            f"expected a NamedCheckpoint, got {type(checkpoint).__name__}"
        )
    check_text("name", checkpoint.name, MAX_NAME_LENGTH, allow_empty=False)
    check_text("agent_id", checkpoint.agent_id, MAX_KEY_LENGTH, allow_empty=False)
    check_text("session_id", checkpoint.session_id, MAX_KEY_LENGTH, allow_empty=True)
    check_text("agent_type", checkpoint.agent_type, MAX_KEY_LENGTH, allow_empty=True)
    check_created_at(checkpoint.created_at)


def check_stored_checkpoint(checkpoint: object) -> NamedCheckpoint:
    """Validate a :class:`StoredCheckpoint` to import under its own id; returns it unnamed."""
    if not isinstance(checkpoint, StoredCheckpoint):
        raise InvalidCheckpointError(
            f"expected a StoredCheckpoint, got {type(checkpoint).__name__}"
        )
    check_text("id", checkpoint.id, MAX_ID_LENGTH, allow_empty=False)
    named = checkpoint.to_named()
    check_checkpoint(named)
    return named


def check_bound(name: str, value: object) -> None:
    """Validate a ``before``/``after`` filter (epoch ms) or raise InvalidCheckpointError."""
    if value is not None and type(value) is not int:
        raise InvalidCheckpointError(f"{name} must be an int (epoch milliseconds) or None")


def check_limit(value: object) -> None:
    """Validate a ``limit`` (None or a non-negative int)."""
    if value is not None and (type(value) is not int or value < 0):
        raise InvalidCheckpointError("limit must be a non-negative int or None")


def check_page_limit(value: object) -> None:
    """Validate a page size: a positive int (a page of 0 would never advance)."""
    if type(value) is not int or value < 1:
        raise InvalidCheckpointError("limit must be a positive int for page_checkpoints")


def check_prune_rules(before: object, keep_last_per_agent: object) -> None:
    """Validate prune's rules; at least one must be given, so prune() never empties a store."""
    check_bound("before", before)
    if keep_last_per_agent is not None and (
        type(keep_last_per_agent) is not int or keep_last_per_agent < 0
    ):
        raise InvalidCheckpointError("keep_last_per_agent must be a non-negative int or None")
    if before is None and keep_last_per_agent is None:
        raise InvalidCheckpointError(
            "prune needs a rule: before=<epoch ms> and/or keep_last_per_agent=<count>"
        )


def filter_values(
    agent_id: object,
    session_id: object,
    agent_type: object,
    before: object,
    after: object,
) -> dict[str, Any] | None:
    """Validated listing filters by name, or None when no stored row can match them.

    Raises:
        InvalidCheckpointError: a filter of the wrong type.
    """
    values: dict[str, Any] = {}
    for name, value in (
        ("agent_id", agent_id),
        ("session_id", session_id),
        ("agent_type", agent_type),
    ):
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidCheckpointError(f"{name} filter must be a str or None")
        if not is_storable_key(value):
            return None  # no stored row can hold this value
        values[name] = value
    check_bound("before", before)
    check_bound("after", after)
    # Bounds outside the column's range would overflow a BIGINT parameter on the servers;
    # they exclude nothing (or everything), so they are dropped (or match nothing) here.
    if before is not None and before <= MAX_CREATED_AT:  # type: ignore[operator]
        if before <= 0:  # type: ignore[operator]
            return None
        values["before"] = before
    if after is not None and after >= 0:  # type: ignore[operator]
        if after >= MAX_CREATED_AT:  # type: ignore[operator]
            return None
        values["after"] = after
    return values
