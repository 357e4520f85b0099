"""peewee-checkpoints: checkpoint storage for AI agents on SQLite, PostgreSQL and MySQL/MariaDB.

Importing the package loads only the records and the errors. The interface, the providers, the
config loader and the async wrapper are imported on first use of their names: Peewee imports
every database driver it finds (psycopg2, psycopg, PyMySQL, and asyncio through psycopg), which
the command line's ``--help`` or code that only handles records never needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    ConfigError,
    InvalidCheckpointError,
    MigrationError,
    ProviderNotFoundError,
    StorageError,
)
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

if TYPE_CHECKING:
    from ._crypto import EncryptionError
    from .aio import AsyncCheckpointProvider
    from .config import load_provider
    from .interface import CheckpointProvider
    from .memory import MemoryCheckpointProvider
    from .model import Checkpoint
    from .peewee_provider import PeeweeCheckpointProvider
    from .retention import RetentionPolicy, RetentionReport, RetentionSweeper

# Public name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "EncryptionError": "._crypto",
    "RetentionPolicy": ".retention",
    "RetentionReport": ".retention",
    "RetentionSweeper": ".retention",
    "AsyncCheckpointProvider": ".aio",
    "Checkpoint": ".model",
    "CheckpointProvider": ".interface",
    "MemoryCheckpointProvider": ".memory",
    "PeeweeCheckpointProvider": ".peewee_provider",
    "load_provider": ".config",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
