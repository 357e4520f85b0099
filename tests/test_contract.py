"""The contract suite (peewee_checkpoints.testing) on the Peewee provider, on every backend."""

from __future__ import annotations

from peewee_checkpoints.testing import CheckpointProviderContract


class TestPeeweeProviderContract(CheckpointProviderContract):
    """Uses conftest's ``provider`` fixture: a fresh database per test, on each backend."""
