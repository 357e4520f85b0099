"""peewee-checkpoints: checkpoint storage for AI agents on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from .errors import (
    CheckpointError,
    ConfigError,
    InvalidCheckpointError,
    MigrationError,
    ProviderNotFoundError,
    StorageError,
)
from .interface import CheckpointProvider
from .model import Checkpoint
from .peewee_provider import PeeweeCheckpointProvider
from .records import CheckpointListItem, CheckpointPage, NamedCheckpoint, StoredCheckpoint

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointListItem",
    "CheckpointPage",
    "CheckpointProvider",
    "ConfigError",
    "InvalidCheckpointError",
    "MigrationError",
    "NamedCheckpoint",
    "PeeweeCheckpointProvider",
    "ProviderNotFoundError",
    "StorageError",
    "StoredCheckpoint",
]
