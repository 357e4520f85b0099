"""006_openai_sessions: the tables of ``peewee_checkpoints.openai_agents`` (SDK sessions).

Frozen once released: plain DDL per backend, nothing imported from the package. Three tables:

- sessions: one row per conversation, with its owner (``user_id``), its metadata (a JSON
  object), its activity times (epoch ms), its item count and byte size, and ``next_seq``, the
  counter that numbers the items. Every write to a session first locks this row, so writers
  of one session take turns and each ``add_items`` call gets a contiguous run of numbers.
- items: one row per conversation item (its JSON), ordered by ``seq`` within the session,
  never by time: timestamps tie, sequence numbers do not.
- meta: each scalar metadata value of a session as (key, JSON text), so sessions can be
  listed by metadata key with an index on every backend.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

SESSIONS = "peewee_checkpoints_oai_sessions"
ITEMS = "peewee_checkpoints_oai_items"
META = "peewee_checkpoints_oai_meta"

# Key sizes fit MySQL's 3072-byte index limit in utf8mb4: meta (191 + 255 + 255) * 4 = 2804.
_SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
        session_id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT,
        metadata TEXT NOT NULL DEFAULT '{{}}',
        next_seq INTEGER NOT NULL DEFAULT 0,
        item_count INTEGER NOT NULL DEFAULT 0,
        total_bytes INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_activity_idx ON {SESSIONS} (updated_at, session_id)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_user_idx "
    f"ON {SESSIONS} (user_id, updated_at, session_id)",
    f"""CREATE TABLE IF NOT EXISTS {ITEMS} (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (session_id, seq)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {META} (
        meta_key TEXT NOT NULL,
        meta_value TEXT NOT NULL,
        session_id TEXT NOT NULL,
        PRIMARY KEY (meta_key, meta_value, session_id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {META}_session_idx ON {META} (session_id)",
]

# "C" collation: ids compare and sort by code point, as on the other backends.
_POSTGRES = [
    f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
        session_id VARCHAR(255) COLLATE "C" NOT NULL PRIMARY KEY,
        user_id VARCHAR(255) COLLATE "C",
        metadata TEXT NOT NULL DEFAULT '{{}}',
        next_seq BIGINT NOT NULL DEFAULT 0,
        item_count BIGINT NOT NULL DEFAULT 0,
        total_bytes BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_activity_idx ON {SESSIONS} (updated_at, session_id)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_user_idx "
    f"ON {SESSIONS} (user_id, updated_at, session_id)",
    f"""CREATE TABLE IF NOT EXISTS {ITEMS} (
        session_id VARCHAR(255) COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        data BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (session_id, seq)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {META} (
        meta_key VARCHAR(191) COLLATE "C" NOT NULL,
        meta_value VARCHAR(255) COLLATE "C" NOT NULL,
        session_id VARCHAR(255) COLLATE "C" NOT NULL,
        PRIMARY KEY (meta_key, meta_value, session_id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {META}_session_idx ON {META} (session_id)",
]

# MySQL runs DDL outside transactions, so each table comes with its indexes in one statement:
# it exists whole or not at all, and IF NOT EXISTS lets the next run finish a run that failed
# between two tables. The charset is stated so that a latin1 database default cannot apply.
_MYSQL = [
    """CREATE TABLE IF NOT EXISTS {sessions} (
    session_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NULL,
    metadata LONGTEXT NOT NULL,
    next_seq BIGINT NOT NULL DEFAULT 0,
    item_count BIGINT NOT NULL DEFAULT 0,
    total_bytes BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (session_id),
    KEY {sessions}_activity_idx (updated_at, session_id),
    KEY {sessions}_user_idx (user_id, updated_at, session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {items} (
    session_id VARCHAR(255) NOT NULL,
    seq BIGINT NOT NULL,
    data LONGBLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {meta} (
    meta_key VARCHAR(191) NOT NULL,
    meta_value VARCHAR(255) NOT NULL,
    session_id VARCHAR(255) NOT NULL,
    PRIMARY KEY (meta_key, meta_value, session_id),
    KEY {meta}_session_idx (session_id)
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
    """Create the OpenAI Agents session tables and their indexes."""
    db = _real(database)
    if isinstance(db, pw.MySQLDatabase):
        collation = "utf8mb4_nopad_bin" if fake else _mysql_collation(db)
        for statement in _MYSQL:
            migrator.sql(
                statement.format(sessions=SESSIONS, items=ITEMS, meta=META, collation=collation)
            )
        return
    for statement in _POSTGRES if isinstance(db, pw.PostgresqlDatabase) else _SQLITE:
        migrator.sql(statement)


_DROP = (f"DROP TABLE {META}", f"DROP TABLE {ITEMS}", f"DROP TABLE {SESSIONS}")


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Drop the OpenAI Agents session tables (and with them their indexes)."""
    for statement in _DROP:
        migrator.sql(statement)
