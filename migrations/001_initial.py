"""001_initial: the checkpoints table and the indexes that serve list_checkpoints.

Frozen: this file states the schema as version 0.1.0 shipped it, in plain DDL per backend, and
imports nothing from the package, so later changes to the model cannot change what it does.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

TABLE = "peewee_checkpoints"

# Keys compared by filters are VARCHAR(255) so they can be indexed on every backend (MySQL's
# index key limit is 3072 bytes, 768 utf8mb4 characters); the state is bytes of UTF-8 JSON in
# the widest binary type (MySQL's BLOB would stop at 64 KB) and is the last column, so reading
# the other columns never touches it.
_SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id TEXT NOT NULL PRIMARY KEY,
        name TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        session_id TEXT NOT NULL DEFAULT '',
        agent_type TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        state BLOB NOT NULL
    )""",
]

# "C" collation on id: ordering by id is by code point, as on SQLite and MySQL's binary
# collations, so the (created_at, id) order is the same on every backend.
_POSTGRES = [
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
        name VARCHAR(1024) NOT NULL,
        agent_id VARCHAR(255) NOT NULL,
        session_id VARCHAR(255) NOT NULL DEFAULT '',
        agent_type VARCHAR(255) NOT NULL DEFAULT '',
        created_at BIGINT NOT NULL,
        state BYTEA NOT NULL
    )""",
]

_INDEX = "CREATE INDEX IF NOT EXISTS {table}_{name}_idx ON {table} ({columns})"
_INDEXES = [
    _INDEX.format(table=TABLE, name="created", columns="created_at DESC, id DESC"),
    _INDEX.format(table=TABLE, name="agent", columns="agent_id, created_at DESC, id DESC"),
    _INDEX.format(table=TABLE, name="session", columns="session_id, created_at DESC, id DESC"),
    _INDEX.format(table=TABLE, name="type", columns="agent_type, created_at DESC, id DESC"),
]

# MySQL runs DDL outside transactions, so the table and its indexes are one statement: it
# exists whole or not at all. The charset is stated so a latin1 database default cannot apply.
_MYSQL = """CREATE TABLE IF NOT EXISTS {table} (
    id VARCHAR(64) NOT NULL,
    name VARCHAR(1024) NOT NULL,
    agent_id VARCHAR(255) NOT NULL,
    session_id VARCHAR(255) NOT NULL DEFAULT '',
    agent_type VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    state LONGBLOB NOT NULL,
    PRIMARY KEY (id),
    KEY {table}_created_idx (created_at, id),
    KEY {table}_agent_idx (agent_id, created_at, id),
    KEY {table}_session_idx (session_id, created_at, id),
    KEY {table}_type_idx (agent_type, created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC"""

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
    """Create the checkpoints table and its indexes."""
    db = _real(database)
    if isinstance(db, pw.MySQLDatabase):
        collation = "utf8mb4_nopad_bin" if fake else _mysql_collation(db)
        migrator.sql(_MYSQL.format(table=TABLE, collation=collation))
        return
    for statement in (_POSTGRES if isinstance(db, pw.PostgresqlDatabase) else _SQLITE):
        migrator.sql(statement)
    for statement in _INDEXES:
        migrator.sql(statement)


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Drop the checkpoints table (and with it its indexes)."""
    migrator.sql(f"DROP TABLE {TABLE}")
