"""007_adk: the tables of the Google ADK session service (``peewee_checkpoints.adk``).

Frozen once released: plain DDL per backend, nothing imported from the package. Four tables,
as in ADK's own database service: sessions, their events, and the state shared by every
session of an app (``app:`` keys) or of a user (``user:`` keys).

- A session row carries ``revision``, the number of events appended to it: an event is stored
  with ``seq`` = the revision its append made, so events read back in the order they were
  appended, and a session object read at revision N is stale once the row says N+1.
- Times are ADK's own floats (epoch seconds), stored as 8-byte floats so that they read back
  equal to what ADK gave.
- Every state and event is UTF-8 JSON in a binary column, zstd-compressed when that pays; the
  ``*_codec`` column says which (0 plain, 1 zstd), as in the checkpoints table.
- Indexes: a user's sessions in ``list_sessions`` order (update_time, id), an app's sessions in
  (update_time, user_id, id) order, a session's events by seq (the primary key), by timestamp
  (``after_timestamp``) and by event id (an append delivered twice is stored once).

Key columns are 128 characters, as in ADK's schema; every index fits MySQL's 3072-byte limit
in utf8mb4.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

SESSIONS = "peewee_checkpoints_adk_sessions"
EVENTS = "peewee_checkpoints_adk_events"
APP_STATES = "peewee_checkpoints_adk_app_states"
USER_STATES = "peewee_checkpoints_adk_user_states"

_SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        id TEXT NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        create_time REAL NOT NULL,
        update_time REAL NOT NULL,
        state_codec INTEGER NOT NULL DEFAULT 0,
        state BLOB NOT NULL,
        PRIMARY KEY (app_name, user_id, id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_user_idx ON {SESSIONS} "
    "(app_name, user_id, update_time, id)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_app_idx ON {SESSIONS} "
    "(app_name, update_time, user_id, id)",
    f"""CREATE TABLE IF NOT EXISTS {EVENTS} (
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        ts REAL NOT NULL,
        data_codec INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL,
        PRIMARY KEY (app_name, user_id, session_id, seq)
    )""",
    f"CREATE INDEX IF NOT EXISTS {EVENTS}_ts_idx ON {EVENTS} "
    "(app_name, user_id, session_id, ts)",
    f"CREATE INDEX IF NOT EXISTS {EVENTS}_id_idx ON {EVENTS} "
    "(app_name, user_id, session_id, event_id)",
    f"""CREATE TABLE IF NOT EXISTS {APP_STATES} (
        app_name TEXT NOT NULL PRIMARY KEY,
        update_time REAL NOT NULL,
        state_codec INTEGER NOT NULL DEFAULT 0,
        state BLOB NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {USER_STATES} (
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        update_time REAL NOT NULL,
        state_codec INTEGER NOT NULL DEFAULT 0,
        state BLOB NOT NULL,
        PRIMARY KEY (app_name, user_id)
    )""",
]

# "C" collation on the keys: comparisons and ordering by code point, as on the other backends.
_POSTGRES = [
    f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
        app_name VARCHAR(128) COLLATE "C" NOT NULL,
        user_id VARCHAR(128) COLLATE "C" NOT NULL,
        id VARCHAR(128) COLLATE "C" NOT NULL,
        revision BIGINT NOT NULL DEFAULT 0,
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL,
        state_codec SMALLINT NOT NULL DEFAULT 0,
        state BYTEA NOT NULL,
        PRIMARY KEY (app_name, user_id, id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_user_idx ON {SESSIONS} "
    "(app_name, user_id, update_time, id)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_app_idx ON {SESSIONS} "
    "(app_name, update_time, user_id, id)",
    f"""CREATE TABLE IF NOT EXISTS {EVENTS} (
        app_name VARCHAR(128) COLLATE "C" NOT NULL,
        user_id VARCHAR(128) COLLATE "C" NOT NULL,
        session_id VARCHAR(128) COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        event_id VARCHAR(128) COLLATE "C" NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        data_codec SMALLINT NOT NULL DEFAULT 0,
        data BYTEA NOT NULL,
        PRIMARY KEY (app_name, user_id, session_id, seq)
    )""",
    f"CREATE INDEX IF NOT EXISTS {EVENTS}_ts_idx ON {EVENTS} "
    "(app_name, user_id, session_id, ts)",
    f"CREATE INDEX IF NOT EXISTS {EVENTS}_id_idx ON {EVENTS} "
    "(app_name, user_id, session_id, event_id)",
    f"""CREATE TABLE IF NOT EXISTS {APP_STATES} (
        app_name VARCHAR(128) COLLATE "C" NOT NULL PRIMARY KEY,
        update_time DOUBLE PRECISION NOT NULL,
        state_codec SMALLINT NOT NULL DEFAULT 0,
        state BYTEA NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {USER_STATES} (
        app_name VARCHAR(128) COLLATE "C" NOT NULL,
        user_id VARCHAR(128) COLLATE "C" NOT NULL,
        update_time DOUBLE PRECISION NOT NULL,
        state_codec SMALLINT NOT NULL DEFAULT 0,
        state BYTEA NOT NULL,
        PRIMARY KEY (app_name, user_id)
    )""",
]

# MySQL runs DDL outside transactions, so each table comes with its indexes in one statement:
# it exists whole or not at all, and IF NOT EXISTS lets a run that failed between two tables
# be finished by the next one. The charset is stated so a latin1 database default cannot
# apply; values are LONGBLOB (BLOB would stop at 64 KB).
_MYSQL = [
    """CREATE TABLE IF NOT EXISTS {sessions} (
    app_name VARCHAR(128) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    id VARCHAR(128) NOT NULL,
    revision BIGINT NOT NULL DEFAULT 0,
    create_time DOUBLE NOT NULL,
    update_time DOUBLE NOT NULL,
    state_codec SMALLINT NOT NULL DEFAULT 0,
    state LONGBLOB NOT NULL,
    PRIMARY KEY (app_name, user_id, id),
    KEY {sessions}_user_idx (app_name, user_id, update_time, id),
    KEY {sessions}_app_idx (app_name, update_time, user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {events} (
    app_name VARCHAR(128) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    session_id VARCHAR(128) NOT NULL,
    seq BIGINT NOT NULL,
    event_id VARCHAR(128) NOT NULL,
    ts DOUBLE NOT NULL,
    data_codec SMALLINT NOT NULL DEFAULT 0,
    data LONGBLOB NOT NULL,
    PRIMARY KEY (app_name, user_id, session_id, seq),
    KEY {events}_ts_idx (app_name, user_id, session_id, ts),
    KEY {events}_id_idx (app_name, user_id, session_id, event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {app_states} (
    app_name VARCHAR(128) NOT NULL,
    update_time DOUBLE NOT NULL,
    state_codec SMALLINT NOT NULL DEFAULT 0,
    state LONGBLOB NOT NULL,
    PRIMARY KEY (app_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC""",
    """CREATE TABLE IF NOT EXISTS {user_states} (
    app_name VARCHAR(128) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    update_time DOUBLE NOT NULL,
    state_codec SMALLINT NOT NULL DEFAULT 0,
    state LONGBLOB NOT NULL,
    PRIMARY KEY (app_name, user_id)
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
    """Create the ADK session service's tables and indexes."""
    db = _real(database)
    if isinstance(db, pw.MySQLDatabase):
        collation = "utf8mb4_nopad_bin" if fake else _mysql_collation(db)
        for statement in _MYSQL:
            migrator.sql(
                statement.format(
                    sessions=SESSIONS, events=EVENTS, app_states=APP_STATES,
                    user_states=USER_STATES, collation=collation,
                )
            )
        return
    for statement in _POSTGRES if isinstance(db, pw.PostgresqlDatabase) else _SQLITE:
        migrator.sql(statement)


_DROP = tuple(f"DROP TABLE {table}" for table in (EVENTS, SESSIONS, USER_STATES, APP_STATES))


def rollback(migrator: Any, database: Any, *, fake: bool = False) -> None:
    """Drop the ADK session service's tables (and with them their indexes)."""
    for statement in _DROP:
        migrator.sql(statement)
