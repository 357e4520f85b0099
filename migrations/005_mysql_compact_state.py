"""005_mysql_compact_state: InnoDB page compression for the checkpoints table on MariaDB.

InnoDB moves a state longer than about half a page (8,126 bytes with 16 KiB pages) to off-page
BLOB pages that no other row shares, so a 20 KiB chat state, 8.8 KB once compressed, took a
whole 16 KiB page. ``PAGE_COMPRESSED=1`` (MariaDB 10.1+) compresses every page as it is written
and punches the unused part out of the file: measured on MariaDB 10.11 with ext4 (4 KiB blocks),
the bytes allocated per 20 KiB chat checkpoint went from 0.85x to 0.59x its JSON. The table's
``data_length`` does not show it (it counts uncompressed pages); the tablespace's
``ALLOCATED_SIZE`` in ``information_schema.INNODB_SYS_TABLESPACES`` does. On a file system
that cannot punch holes it saves nothing.

A no-op on SQLite, PostgreSQL (which compresses long values in TOAST) and MySQL, whose
``COMPRESSION='zlib'`` attribute is a different feature, not tried here. The ``ALTER TABLE``
is one statement (MySQL DDL is not transactional) that rebuilds the table, which takes a while
on a large one. It is skipped when the table is already page-compressed (so running it twice
is harmless) and on a server whose ``innodb_file_per_table`` is off (page compression needs a
tablespace of the table's own).

Rolling back also rewrites the states stored with the codecs this version added (2, lz4; 8-10,
JSON from the standard library) into codecs 0 and 1, as the previous version wrote them.

Frozen once released, like 001 and 002: plain SQL, nothing imported from the package.
"""

from __future__ import annotations

from typing import Any

import lz4.block
import peewee as pw
import zstandard

TABLE = "peewee_checkpoints"
_BATCH = 200
# state_codec values: compression in the low bits, 8 for JSON written by the standard library,
# which codecs 0 and 1 used to mark with a leading space instead.
_ZSTD, _LZ4, _STDLIB = 1, 2, 8
_LEGACY_STDLIB_MARK = b" "


def _real(database: Any) -> Any:
    return database.obj if isinstance(database, pw.DatabaseProxy) else database


def _is_mariadb(db: Any) -> bool:
    row = db.execute_sql("SELECT VERSION()").fetchone()
    return "mariadb" in str(row[0]).lower()


def _page_compressed(db: Any) -> bool:
    row = db.execute_sql(
        "SELECT CREATE_OPTIONS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (TABLE,),
    ).fetchone()
    options = str(row[0] if row else "").lower().replace("`", "").replace("'", "")
    return "page_compressed=1" in options


def _own_tablespace(db: Any) -> bool:
    # PAGE_COMPRESSED needs the table in a file of its own (the default since MariaDB 5.5).
    return bool(int(db.execute_sql("SELECT @@innodb_file_per_table").fetchone()[0]))


def migrate(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Turn on InnoDB page compression for the checkpoints table on MariaDB."""
    db = _real(database)
    if fake or not isinstance(db, pw.MySQLDatabase) or not _is_mariadb(db):
        return
    if _own_tablespace(db) and not _page_compressed(db):
        migrator.sql(f"ALTER TABLE {TABLE} PAGE_COMPRESSED=1")


def _rewrite_new_codecs(db: Any) -> None:
    """Store every state written with codec 2 or 8-10 as codec 0 or 1, as before 005."""
    compressor = zstandard.ZstdCompressor(level=3)
    decompressor = zstandard.ZstdDecompressor()
    param = db.param
    last = ""
    while True:
        rows = db.execute_sql(
            f"SELECT id, state_codec, state FROM {TABLE} WHERE state_codec IN "
            f"({param}, {param}, {param}, {param}) AND id > {param} ORDER BY id LIMIT {_BATCH}",
            (_LZ4, _STDLIB, _STDLIB + _ZSTD, _STDLIB + _LZ4, last),
        ).fetchall()
        for row_id, codec, state in rows:
            compression = codec & ~_STDLIB
            data = bytes(state)
            if compression == _LZ4:
                data = lz4.block.decompress(data)
            elif compression == _ZSTD:
                data = decompressor.decompress(data)
            if codec & _STDLIB:
                data = _LEGACY_STDLIB_MARK + data
            new_codec = 0
            if compression:
                data, new_codec = compressor.compress(data), _ZSTD
            db.execute_sql(
                f"UPDATE {TABLE} SET state = {param}, state_codec = {param} WHERE id = {param}",
                (data, new_codec, row_id),
            )
        if len(rows) < _BATCH:
            return
        last = rows[-1][0]


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Rewrite the new codecs as the old ones; turn page compression off on MariaDB."""
    db = _real(database)
    if fake:
        return
    migrator.run(_rewrite_new_codecs, db)
    if isinstance(db, pw.MySQLDatabase) and _is_mariadb(db) and _page_compressed(db):
        migrator.sql(f"ALTER TABLE {TABLE} PAGE_COMPRESSED=0")
