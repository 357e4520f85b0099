"""Checks on app checkpoints, shared by every provider that stores them."""

from __future__ import annotations

from ._validation import MAX_ID_LENGTH, MAX_NAME_LENGTH, check_created_at, check_text
from .errors import InvalidCheckpointError
from .records import AppCheckpoint, StoredAppCheckpoint

__all__ = ["check_app_checkpoint", "check_stored_app_checkpoint"]


def check_app_checkpoint(checkpoint: object) -> None:
    """Validate every field of an :class:`AppCheckpoint` except ``state``."""
    if not isinstance(checkpoint, AppCheckpoint):
        raise InvalidCheckpointError(
            f"expected an AppCheckpoint, got {type(checkpoint).__name__}"
        )
    check_text("name", checkpoint.name, MAX_NAME_LENGTH, allow_empty=False)
    check_created_at(checkpoint.created_at)


def check_stored_app_checkpoint(checkpoint: object) -> AppCheckpoint:
    """Validate a :class:`StoredAppCheckpoint` to import under its own id; returns it without."""
    if not isinstance(checkpoint, StoredAppCheckpoint):
        raise InvalidCheckpointError(
            f"expected a StoredAppCheckpoint, got {type(checkpoint).__name__}"
        )
    check_text("id", checkpoint.id, MAX_ID_LENGTH, allow_empty=False)
    plain = checkpoint.to_app_checkpoint()
    check_app_checkpoint(plain)
    return plain
