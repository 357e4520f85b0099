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

    The driver's exception is chained as ``__cause__``.
    """
