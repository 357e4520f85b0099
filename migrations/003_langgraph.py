"""003_langgraph: the tables of the LangGraph checkpointer (``peewee_checkpoints.langgraph``).

Frozen once released: plain DDL per backend, nothing imported from the package. Three tables,
as in LangGraph's own PostgreSQL saver: a checkpoint row without its channel values, one blob
per (channel, version) so that a value that did not change is stored once however many
checkpoints refer to it, and the pending writes of each checkpoint. Every value is stored as
the serializer's type name plus bytes. ``blob_refs`` repeats, as a JSON object, the
(channel -> version) of the blobs a checkpoint uses, so that SQL can join them in the same
query that reads the checkpoint.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

CHECKPOINTS = "peewee_checkpoints_lg_checkpoints"
BLOBS = "peewee_checkpoints_lg_blobs"
WRITES = "peewee_checkpoints_lg_writes"

# Key sizes are chosen so that every primary key fits MySQL's 3072-byte index limit in utf8mb4
# (4 bytes a character): blobs 255+255+191+64 = 765 characters, writes 255+255+64+128 = 702.
# The saver refuses longer values with the same limits on every backend.
_SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        parent_checkpoint_id TEXT,
        run_id TEXT,
        type TEXT NOT NULL,
        checkpoint BLOB NOT NULL,
        metadata_type TEXT NOT NULL,
        metadata BLOB NOT NULL,
        blob_refs TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_run_idx ON {CHECKPOINTS} (run_id)",
    f"""CREATE TABLE IF NOT EXISTS {BLOBS} (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL,
        version TEXT NOT NULL,
        type TEXT NOT NULL,
        data BLOB,
        PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {WRITES} (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        task_path TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    )""",
]

# "C" collation on the keys: checkpoint ids order by code point as on the other backends, and
# comparisons skip the locale's rules.
_POSTGRES = [
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        thread_id VARCHAR(255) COLLATE "C" NOT NULL,
        checkpoint_ns VARCHAR(255) COLLATE "C" NOT NULL DEFAULT '',
        checkpoint_id VARCHAR(64) COLLATE "C" NOT NULL,
        parent_checkpoint_id VARCHAR(64) COLLATE "C",
        run_id VARCHAR(255) COLLATE "C",
        type VARCHAR(64) NOT NULL,
        checkpoint BYTEA NOT NULL,
        metadata_type VARCHAR(64) NOT NULL,
        metadata BYTEA NOT NULL,
        blob_refs TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_run_idx ON {CHECKPOINTS} (run_id)",
    f"""CREATE TABLE IF NOT EXISTS {BLOBS} (
        thread_id VARCHAR(255) COLLATE "C" NOT NULL,
        checkpoint_ns VARCHAR(255) COLLATE "C" NOT NULL DEFAULT '',
        channel VARCHAR(191) COLLATE "C" NOT NULL,
        version VARCHAR(64) COLLATE "C" NOT NULL,
        type VARCHAR(64) NOT NULL,
        data BYTEA,
        PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {WRITES} (
        thread_id VARCHAR(255) COLLATE "C" NOT NULL,
        checkpoint_ns VARCHAR(255) COLLATE "C" NOT NULL DEFAULT '',
        checkpoint_id VARCHAR(64) COLLATE "C" NOT NULL,
        task_id VARCHAR(128) COLLATE "C" NOT NULL,
        idx INTEGER NOT NULL,
        channel VARCHAR(191) COLLATE "C" NOT NULL,
        type VARCHAR(64) NOT NULL,
        data BYTEA NOT NULL,
        task_path TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    )""",
]

# MySQL runs DDL outside transactions, so each table comes with its indexes in one statement:
# it exists whole or not at all, and IF NOT EXISTS lets a run that failed between two tables
# be finished by the next one (the history records the migration only once all three exist).
# The charset is stated so a latin1 database default cannot
# apply; values are LONGBLOB (BLOB would stop at 64 KB).
_MYSQL = [
    """CREATE TABLE IF NOT EXISTS {checkpoints} (
    thread_id VARCHAR(255) NOT NULL,
    checkpoint_ns VARCHAR(255) NOT NULL DEFAULT '',
    checkpoint_id VARCHAR(64) NOT NULL,
    parent_checkpoint_id VARCHAR(64) NULL,
    run_id VARCHAR(255) NULL,
    type VARCHAR(64) NOT NULL,
    checkpoint LONGBLOB NOT NULL,
    metadata_type VARCHAR(64) NOT NULL,
    metadata LONGBLOB NOT NULL,
    blob_refs LONGTEXT NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id),
    KEY {checkpoints}_run_idx (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {blobs} (
    thread_id VARCHAR(255) NOT NULL,
    checkpoint_ns VARCHAR(255) NOT NULL DEFAULT '',
    channel VARCHAR(191) NOT NULL,
    version VARCHAR(64) NOT NULL,
    type VARCHAR(64) NOT NULL,
    data LONGBLOB NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {writes} (
    thread_id VARCHAR(255) NOT NULL,
    checkpoint_ns VARCHAR(255) NOT NULL DEFAULT '',
    checkpoint_id VARCHAR(64) NOT NULL,
    task_id VARCHAR(128) NOT NULL,
    idx INT NOT NULL,
    channel VARCHAR(191) NOT NULL,
    type VARCHAR(64) NOT NULL,
    data LONGBLOB NOT NULL,
    task_path TEXT NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
]

# Exact comparison needs a binary collation without PAD SPACE ('a ' = 'a' under utf8mb4_bin).
# MySQL 8 has utf8mb4_0900_bin, MariaDB 10.2+ has utf8mb4_nopad_bin.
_MYSQL_COLLATIONS = ("utf8mb4_0900_bin", "utf8mb4_nopad_bin")


def _real(database: Any) -> Any:
    return database.obj if isinstance(database, pw.DatabaseProxy) else database


def _mysql_collation(database: Any) -> str:
    cursor = database.execute_sql(
        "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN (%s, %s)",
        _MYSQL_COLLATIONS,
    )
    found = {row[0] for row in cursor.fetchall()}
    for name in _MYSQL_COLLATIONS:
        if name in found:
            return name
    raise RuntimeError(
        "this MySQL/MariaDB server has neither utf8mb4_0900_bin nor utf8mb4_nopad_bin; "
        "peewee-checkpoints needs MySQL 8.0+ or MariaDB 10.2+ for exact string comparison"
    )


def migrate(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Create the LangGraph checkpointer's tables and indexes."""
    db = _real(database)
    if isinstance(db, pw.MySQLDatabase):
        collation = "utf8mb4_nopad_bin" if fake else _mysql_collation(db)
        for statement in _MYSQL:
            migrator.sql(
                statement.format(
                    checkpoints=CHECKPOINTS, blobs=BLOBS, writes=WRITES, collation=collation
                )
            )
        return
    for statement in _POSTGRES if isinstance(db, pw.PostgresqlDatabase) else _SQLITE:
        migrator.sql(statement)


_DROP = (f"DROP TABLE {WRITES}", f"DROP TABLE {BLOBS}", f"DROP TABLE {CHECKPOINTS}")


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Drop the LangGraph checkpointer's tables (and with them their indexes)."""
    for statement in _DROP:
        migrator.sql(statement)
