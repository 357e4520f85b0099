"""peewee-checkpoints: checkpoint storage for AI agents on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from ._crypto import EncryptionError
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
    AppCheckpoint,
    AppCheckpointListItem,
    CheckpointListItem,
    CheckpointPage,
    ImportCounts,
    NamedCheckpoint,
    StoredAppCheckpoint,
    StoredCheckpoint,
)
from .retention import RetentionPolicy, RetentionReport, RetentionSweeper

__all__ = [
    "AppCheckpoint",
    "AppCheckpointListItem",
    "AsyncCheckpointProvider",
    "Checkpoint",
    "CheckpointError",
    "CheckpointListItem",
    "CheckpointPage",
    "CheckpointProvider",
    "ConfigError",
    "EncryptionError",
    "ImportCounts",
    "InvalidCheckpointError",
    "MemoryCheckpointProvider",
    "MigrationError",
    "NamedCheckpoint",
    "PeeweeCheckpointProvider",
    "ProviderNotFoundError",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionSweeper",
    "StorageError",
    "StoredAppCheckpoint",
    "StoredCheckpoint",
    "load_provider",
]
