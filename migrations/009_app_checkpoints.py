"""009_app_checkpoints: app checkpoints, the key id of encrypted states, and a lease table.

- ``peewee_checkpoints_app``: app checkpoints (the state of a whole application), stored like
  agent checkpoints: a ULID id, a name, ``created_at`` in epoch ms, the state's bytes with
  their ``state_codec`` and ``state_key``, and an index for newest-first listings.
- ``state_key`` on ``peewee_checkpoints``: the id of the encryption key a state is encrypted
  under, or ``''`` for a plain state (every row written before, so they stay readable).
- ``peewee_checkpoints_leases``: one row per recurring job (``retention``): until when the
  job's current run is claimed. A retention sweeper claims a run with one conditional UPDATE,
  so that many processes sweeping one database do the work once per interval.

Frozen once released, like 001 and 003: plain DDL per backend, nothing imported from the
package. Every statement is IF NOT EXISTS (the column is added only if missing), so a run that
failed half way on MySQL, where DDL is not transactional, is finished by the next one.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

CHECKPOINTS = "peewee_checkpoints"
APP = "peewee_checkpoints_app"
LEASES = "peewee_checkpoints_leases"

_SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS {APP} (
        id TEXT NOT NULL PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        state_codec INTEGER NOT NULL DEFAULT 0,
        state_key TEXT NOT NULL DEFAULT '',
        state BLOB NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {APP}_created_idx ON {APP} (created_at DESC, id DESC)",
    f"""CREATE TABLE IF NOT EXISTS {LEASES} (
        name TEXT NOT NULL PRIMARY KEY,
        holder TEXT NOT NULL DEFAULT '',
        expires_at INTEGER NOT NULL DEFAULT 0
    )""",
]

# "C" collation on ids: ordering by id is by code point, as on the other backends.
_POSTGRES = [
    f"""CREATE TABLE IF NOT EXISTS {APP} (
        id VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
        name VARCHAR(1024) NOT NULL,
        created_at BIGINT NOT NULL,
        state_codec SMALLINT NOT NULL DEFAULT 0,
        state_key VARCHAR(64) NOT NULL DEFAULT '',
        state BYTEA NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {APP}_created_idx ON {APP} (created_at DESC, id DESC)",
    f"""CREATE TABLE IF NOT EXISTS {LEASES} (
        name VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
        holder VARCHAR(255) NOT NULL DEFAULT '',
        expires_at BIGINT NOT NULL DEFAULT 0
    )""",
]

# MySQL runs DDL outside transactions: each table comes with its indexes in one statement.
# The charset is stated so a latin1 database default cannot apply; the state is LONGBLOB.
_MYSQL = [
    """CREATE TABLE IF NOT EXISTS {app} (
    id VARCHAR(64) NOT NULL,
    name VARCHAR(1024) NOT NULL,
    created_at BIGINT NOT NULL,
    state_codec SMALLINT NOT NULL DEFAULT 0,
    state_key VARCHAR(64) NOT NULL DEFAULT '',
    state LONGBLOB NOT NULL,
    PRIMARY KEY (id),
    KEY {app}_created_idx (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {leases} (
    name VARCHAR(64) NOT NULL,
    holder VARCHAR(255) NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
]

_ADD_KEY_SQLITE = f"ALTER TABLE {CHECKPOINTS} ADD COLUMN state_key TEXT NOT NULL DEFAULT ''"
_ADD_KEY_SERVER = (
    f"ALTER TABLE {CHECKPOINTS} ADD COLUMN state_key VARCHAR(64) NOT NULL DEFAULT ''"
)

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


def _add_key_column(db: Any) -> None:
    """Add ``state_key`` unless a run that failed after adding it already did."""
    if any(c.name == "state_key" for c in db.get_columns(CHECKPOINTS)):
        return
    statement = _ADD_KEY_SQLITE if isinstance(db, pw.SqliteDatabase) else _ADD_KEY_SERVER
    db.execute_sql(statement)


def _lease_row(db: Any) -> None:
    """The retention job's lease row, unclaimed."""
    param = db.param
    if db.execute_sql(f"SELECT 1 FROM {LEASES} WHERE name = {param}",
                      ("retention",)).fetchone():
        return
    db.execute_sql(
        f"INSERT INTO {LEASES} (name, holder, expires_at) VALUES ({param}, {param}, {param})",
        ("retention", "", 0))


def migrate(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Create the app checkpoints and leases tables; add ``state_key`` to checkpoints."""
    db = _real(database)
    if isinstance(db, pw.MySQLDatabase):
        collation = "utf8mb4_nopad_bin" if fake else _mysql_collation(db)
        for statement in _MYSQL:
            migrator.sql(statement.format(app=APP, leases=LEASES, collation=collation))
    else:
        for statement in _POSTGRES if isinstance(db, pw.PostgresqlDatabase) else _SQLITE:
            migrator.sql(statement)
    if not fake:
        migrator.run(_add_key_column, db)
        migrator.run(_lease_row, db)


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Drop the two tables and the ``state_key`` column.

    Refused while encrypted states remain (the version before this one could not read them):
    decrypt them first (``peewee-checkpoints rekey --decrypt``).
    """
    db = _real(database)
    if not fake:
        encrypted = db.execute_sql(
            f"SELECT id FROM {CHECKPOINTS} WHERE state_key <> '' LIMIT 1").fetchone()
        if encrypted:
            raise RuntimeError(
                "checkpoints are stored encrypted; run `peewee-checkpoints rekey --decrypt` "
                "before rolling back 009_app_checkpoints, which drops their key ids"
            )
    migrator.sql(f"DROP TABLE IF EXISTS {LEASES}")
    migrator.sql(f"DROP TABLE IF EXISTS {APP}")
    migrator.sql(f"ALTER TABLE {CHECKPOINTS} DROP COLUMN state_key")
