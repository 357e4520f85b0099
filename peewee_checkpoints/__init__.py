"""peewee-checkpoints: checkpoint storage for AI agents on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from .aio import AsyncCheckpointProvider
from .config import load_provider
from .errors import (
    CheckpointError,
    ConfigError,
    InvalidCheckpointError,
    MigrationError,
    ProviderNotFoundError,
    StorageError,
)
from .interface import CheckpointProvider
from .memory import MemoryCheckpointProvider
from .model import Checkpoint
from .peewee_provider import PeeweeCheckpointProvider
from .records import (
    CheckpointListItem,
    CheckpointPage,
    ImportCounts,
    NamedCheckpoint,
    StoredCheckpoint,
)

__all__ = [
    "AsyncCheckpointProvider",
    "Checkpoint",
    "CheckpointError",
    "CheckpointListItem",
    "CheckpointPage",
    "CheckpointProvider",
    "ConfigError",
    "ImportCounts",
    "InvalidCheckpointError",
    "MemoryCheckpointProvider",
    "MigrationError",
    "NamedCheckpoint",
    "PeeweeCheckpointProvider",
    "ProviderNotFoundError",
    "StorageError",
    "StoredCheckpoint",
    "load_provider",
]
