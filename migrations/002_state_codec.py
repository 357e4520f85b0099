"""002_state_codec: record how each row's state bytes are encoded.

``state_codec`` 0 is plain UTF-8 JSON, what every row written by 0.1.0 holds, so the default
keeps those rows readable unchanged; 1 is a zstd frame of that JSON.

Frozen once released, like 001: plain SQL per backend, nothing imported from the package.
"""

from __future__ import annotations

from typing import Any

import peewee as pw
import zstandard

TABLE = "peewee_checkpoints"
# SQLite's DDL is transactional and runs under the migration lock; PostgreSQL takes IF NOT
# EXISTS; MySQL 8 does not, so the column is looked up first there (idempotent either way).
_ADD_SQLITE = f"ALTER TABLE {TABLE} ADD COLUMN state_codec INTEGER NOT NULL DEFAULT 0"
_ADD_POSTGRES = (
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS state_codec SMALLINT NOT NULL DEFAULT 0"
)
_ADD_MYSQL = f"ALTER TABLE {TABLE} ADD COLUMN state_codec SMALLINT NOT NULL DEFAULT 0"
_CODEC_ZSTD = 1
_BATCH = 200


def _real(database: Any) -> Any:
    return database.obj if isinstance(database, pw.DatabaseProxy) else database


def migrate(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Add the ``state_codec`` column (instant on PostgreSQL 11+, MariaDB 10.3+, MySQL 8)."""
    db = _real(database)
    if isinstance(db, pw.SqliteDatabase):
        migrator.sql(_ADD_SQLITE)
    elif isinstance(db, pw.PostgresqlDatabase):
        migrator.sql(_ADD_POSTGRES)
    elif fake or not _has_column(db):
        migrator.sql(_ADD_MYSQL)


def _has_column(db: Any) -> bool:
    cursor = db.execute_sql(
        "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND COLUMN_NAME = 'state_codec'",
        (TABLE,),
    )
    return cursor.fetchone() is not None


def _decompress_all(db: Any) -> None:
    """Rewrite compressed states as plain JSON, so that 0.1.0 can read every row again."""
    decompressor = zstandard.ZstdDecompressor()
    param = db.param
    last = ""
    while True:
        rows = db.execute_sql(
            f"SELECT id, state FROM {TABLE} WHERE state_codec = {param} AND id > {param} "
            f"ORDER BY id LIMIT {_BATCH}",
            (_CODEC_ZSTD, last),
        ).fetchall()
        for row_id, state in rows:
            db.execute_sql(
                f"UPDATE {TABLE} SET state = {param}, state_codec = 0 WHERE id = {param}",
                (decompressor.decompress(state), row_id),
            )
        if len(rows) < _BATCH:
            return
        last = rows[-1][0]


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Decompress every compressed state, then drop the column (SQLite needs 3.35+)."""
    db = _real(database)
    if not fake:
        migrator.run(_decompress_all, db)
    migrator.sql(f"ALTER TABLE {TABLE} DROP COLUMN state_codec")
