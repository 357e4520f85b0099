"""008_langgraph_store: checkpoint namespaces of any length, and the LangGraph store's table.

Frozen once released: plain DDL per backend (plus one data step), nothing imported from the
package.

1. Namespaces of any depth. LangGraph's subgraph namespaces grow by the node name plus 38
   characters a level, past the 255 characters migration 003 gave ``checkpoint_ns``. The
   ``checkpoint_ns`` columns stay the (indexed) key, which MySQL's 3072-byte index limit keeps
   short, but hold a *key form* of the namespace: the namespace itself up to 190 characters;
   a longer one becomes its first 190 characters, ``#`` and the SHA-256 of its UTF-8 (255
   characters, so a key form never equals a namespace stored as is). The whole namespace goes
   in the new ``checkpoint_ns_full`` column of the checkpoint row (NULL when the key is the
   namespace). Rows written before this migration with a namespace of 191-255 characters are
   rewritten to the key form here.
2. ``peewee_checkpoints_lg_store``: the items of ``peewee_checkpoints.langgraph.PeeweeStore``
   (LangGraph's ``BaseStore``). ``prefix`` is the namespace's labels joined with ``.``
   (LangGraph forbids ``.`` in a label), ``item_key`` the key, ``value`` the item as JSON
   (JSONB on PostgreSQL, so filters need no parsing), times in epoch microseconds;
   ``expires_at`` (NULL: never) and ``ttl_minutes`` serve TTL.
"""

from __future__ import annotations

import hashlib
from typing import Any

import peewee as pw

CHECKPOINTS = "peewee_checkpoints_lg_checkpoints"
BLOBS = "peewee_checkpoints_lg_blobs"
WRITES = "peewee_checkpoints_lg_writes"
STORE = "peewee_checkpoints_lg_store"
_NS_TABLES = (CHECKPOINTS, BLOBS, WRITES)
_NS_RAW_MAX = 190
_OLD_NS_MAX = 255

# Store keys: 512 + 255 characters = 3068 bytes in utf8mb4, within MySQL's 3072-byte limit.
_SQLITE = [
    f"ALTER TABLE {CHECKPOINTS} ADD COLUMN checkpoint_ns_full TEXT",
    f"""CREATE TABLE {STORE} (
        prefix TEXT NOT NULL,
        item_key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        ttl_minutes REAL,
        PRIMARY KEY (prefix, item_key)
    )""",
    f"CREATE INDEX {STORE}_expires_idx ON {STORE} (expires_at)",
]

_POSTGRES = [
    f"ALTER TABLE {CHECKPOINTS} ADD COLUMN checkpoint_ns_full TEXT",
    f"""CREATE TABLE {STORE} (
        prefix VARCHAR(512) COLLATE "C" NOT NULL,
        item_key VARCHAR(255) COLLATE "C" NOT NULL,
        value JSONB NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        expires_at BIGINT,
        ttl_minutes DOUBLE PRECISION,
        PRIMARY KEY (prefix, item_key)
    )""",
    f"CREATE INDEX {STORE}_expires_idx ON {STORE} (expires_at) WHERE expires_at IS NOT NULL",
]

_MYSQL_STORE = """CREATE TABLE IF NOT EXISTS {store} (
    prefix VARCHAR(512) NOT NULL,
    item_key VARCHAR(255) NOT NULL,
    value LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NULL,
    ttl_minutes DOUBLE NULL,
    PRIMARY KEY (prefix, item_key),
    KEY {store}_expires_idx (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC"""

_MYSQL_COLLATIONS = ("utf8mb4_0900_bin", "utf8mb4_nopad_bin")


def _real(database: Any) -> Any:
    return database.obj if isinstance(database, pw.DatabaseProxy) else database


def _ns_key(ns: str) -> str:
    if len(ns) <= _NS_RAW_MAX:
        return ns
    digest = hashlib.sha256(ns.encode("utf-8")).hexdigest()
    return f"{ns[:_NS_RAW_MAX]}#{digest}"


def _mysql_collation(db: Any) -> str:
    cursor = db.execute_sql(
        "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN (%s, %s)",
        _MYSQL_COLLATIONS,
    )
    found = {row[0] for row in cursor.fetchall()}
    for name in _MYSQL_COLLATIONS:
        if name in found:
            return name
    raise RuntimeError("this MySQL/MariaDB server has neither utf8mb4_0900_bin nor "
                       "utf8mb4_nopad_bin; peewee-checkpoints needs MySQL 8.0+ or MariaDB 10.2+")


def _mysql_has_column(db: Any, table: str, column: str) -> bool:
    cursor = db.execute_sql(
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND COLUMN_NAME = %s",
        (table, column),
    )
    return bool(cursor.fetchone()[0])


def _mysql_schema(db: Any) -> None:
    # MySQL runs DDL outside transactions: each step checks first, so a run that failed
    # half-way is finished by the next one.
    if not _mysql_has_column(db, CHECKPOINTS, "checkpoint_ns_full"):
        db.execute_sql(f"ALTER TABLE {CHECKPOINTS} ADD COLUMN checkpoint_ns_full MEDIUMTEXT NULL")
    db.execute_sql(_MYSQL_STORE.format(store=STORE, collation=_mysql_collation(db)))


def _rekey_long_namespaces(db: Any) -> None:
    """Rewrite namespaces longer than 190 characters (written before this migration)."""
    param = db.param
    found: set[tuple[str, str]] = set()
    for table in _NS_TABLES:
        cursor = db.execute_sql(
            f"SELECT DISTINCT thread_id, checkpoint_ns FROM {table} "
            f"WHERE LENGTH(checkpoint_ns) > {param}",
            (_NS_RAW_MAX // 4,),  # LENGTH counts bytes on MySQL: look wide, check in Python
        )
        found.update((row[0], row[1]) for row in cursor.fetchall())
    for thread_id, ns in sorted(found):
        if len(ns) <= _NS_RAW_MAX:
            continue
        key = _ns_key(ns)
        for table in _NS_TABLES:
            db.execute_sql(
                f"UPDATE {table} SET checkpoint_ns = {param} "
                f"WHERE thread_id = {param} AND checkpoint_ns = {param}",
                (key, thread_id, ns),
            )
        db.execute_sql(
            f"UPDATE {CHECKPOINTS} SET checkpoint_ns_full = {param} "
            f"WHERE thread_id = {param} AND checkpoint_ns = {param}",
            (ns, thread_id, key),
        )


def _restore_namespaces(db: Any) -> None:
    """Undo the key form: namespaces that fit 003's 255 characters get theirs back; threads'
    rows in namespaces that don't are deleted (003 cannot hold them)."""
    param = db.param
    cursor = db.execute_sql(
        f"SELECT DISTINCT thread_id, checkpoint_ns, checkpoint_ns_full FROM {CHECKPOINTS} "
        "WHERE checkpoint_ns_full IS NOT NULL"
    )
    for thread_id, key, full in cursor.fetchall():
        for table in _NS_TABLES:
            if len(full) <= _OLD_NS_MAX:
                db.execute_sql(
                    f"UPDATE {table} SET checkpoint_ns = {param} "
                    f"WHERE thread_id = {param} AND checkpoint_ns = {param}",
                    (full, thread_id, key),
                )
            else:
                db.execute_sql(
                    f"DELETE FROM {table} WHERE thread_id = {param} AND checkpoint_ns = {param}",
                    (thread_id, key),
                )


def migrate(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Add checkpoint_ns_full, rewrite long namespaces, create the store's table."""
    db = _real(database)
    if fake:
        return
    if isinstance(db, pw.MySQLDatabase):
        migrator.run(_mysql_schema, db)
    else:
        for statement in _POSTGRES if isinstance(db, pw.PostgresqlDatabase) else _SQLITE:
            migrator.sql(statement)
    migrator.run(_rekey_long_namespaces, db)


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Drop the store's table and checkpoint_ns_full, restoring namespaces that fit."""
    db = _real(database)
    if fake:
        return
    migrator.run(_restore_namespaces, db)
    migrator.sql(f"DROP TABLE {STORE}")
    migrator.sql(f"ALTER TABLE {CHECKPOINTS} DROP COLUMN checkpoint_ns_full")
