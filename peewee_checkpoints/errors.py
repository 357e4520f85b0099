"""The package's exception tree: every error it raises derives from :class:`CheckpointError`."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "InvalidCheckpointError",
    "MigrationError",
    "ProviderNotFoundError",
    "StorageError",
]


class CheckpointError(Exception):
    """Root of every error raised by peewee-checkpoints."""


class ConfigError(CheckpointError, ValueError):
    """A bad config file, ``db_url``, provider option or missing environment variable."""


class ProviderNotFoundError(ConfigError, LookupError):
    """No usable provider is registered under the requested type or name.

    A :class:`ConfigError` too: an unknown ``type`` or provider name in a config file is a
    configuration mistake, and ``except ConfigError`` should catch it.
    """


class MigrationError(CheckpointError):
    """The schema could not be brought to this version, or is newer than it."""


class InvalidCheckpointError(CheckpointError, ValueError):
    """A checkpoint (or its state) breaks the contract; nothing was written."""


class StorageError(CheckpointError):
    """The database refused the operation or could not be reached.

    The driver's exception is chained as ``__cause__`` (unless it would show a password).

    Args:
        message: what failed, and what to do about it.
        checkpoint_id: set when a store's outcome is unknown: the connection was lost after
            the row was sent and the server stayed unreachable, so the row may or may not
            exist. Look it up with ``retrieve_checkpoint(error.checkpoint_id)`` later; storing
            the same checkpoint again would make a second one.
    """

    def __init__(self, message: str = "", *, checkpoint_id: str | None = None) -> None:
        super().__init__(message)
        self.checkpoint_id = checkpoint_id

    def __reduce__(self) -> tuple[object, ...]:
        # Keep checkpoint_id across pickling (multiprocessing, concurrent.futures).
        return (_storage_error, (self.args[0] if self.args else "", self.checkpoint_id))


def _storage_error(message: str, checkpoint_id: str | None) -> StorageError:
    return StorageError(message, checkpoint_id=checkpoint_id)
