"""The Peewee model of the checkpoints table, bound through a ``DatabaseProxy``."""

from __future__ import annotations

import peewee as pw

__all__ = ["TABLE_NAME", "Checkpoint", "bind_model", "database_proxy"]

#: The table that migrations/001_initial.py creates (002 adds ``state_codec``).
TABLE_NAME = "peewee_checkpoints"

#: The proxy the module-level :class:`Checkpoint` is bound to. Providers do not use it: each
#: binds its own copy of the model (see :func:`bind_model`), so two providers with different
#: ``db_url``s in one process never share a database. Initialize it yourself to query
#: ``Checkpoint`` directly: ``database_proxy.initialize(provider.database)``.
database_proxy = pw.DatabaseProxy()


class Checkpoint(pw.Model):
    """One stored checkpoint. The schema itself is owned by the migrations."""

    id = pw.CharField(max_length=64, primary_key=True)
    """The checkpoint's id (a ULID from ``store_checkpoint``, or kept by an import)."""
    name = pw.CharField(max_length=1024)
    """Human-readable label, up to 1,024 characters."""
    agent_id = pw.CharField(max_length=255)
    """The agent whose state this is (indexed)."""
    session_id = pw.CharField(max_length=255, default="")
    """The conversation or run; empty when there is none (indexed)."""
    agent_type = pw.CharField(max_length=255, default="")
    """The kind of agent; empty when there is none (indexed)."""
    created_at = pw.BigIntegerField()
    """Creation time in epoch milliseconds."""
    state = pw.BlobField()
    """The agent's state: UTF-8 JSON bytes, encoded as ``state_codec`` says."""
    state_codec = pw.SmallIntegerField(default=0)
    """How ``state`` is encoded: 0 plain JSON (every row written by 0.1.0), 1 zstd of JSON, 2 lz4
    of JSON; plus 8 when the standard library wrote the JSON (see ``_codec``)."""
    state_key = pw.CharField(max_length=64, default="")
    """Id of the encryption key ``state`` is encrypted under; empty if it is not encrypted
    (added by migration 009)."""

    class Meta:
        database = database_proxy
        table_name = TABLE_NAME


def bind_model(database: pw.Database) -> type[Checkpoint]:
    """Return a subclass of :class:`Checkpoint` bound to ``database`` through its own proxy."""
    proxy = pw.DatabaseProxy()
    proxy.initialize(database)

    class BoundCheckpoint(Checkpoint):
        class Meta:
            database = proxy
            table_name = TABLE_NAME

    return BoundCheckpoint
