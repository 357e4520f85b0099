"""App checkpoints on the Peewee provider's database (the table of migration 009).

Plain SQL, built once per engine in the driver's placeholder style: the statements are few
and fixed, and every backend runs them as written.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from ._app import check_app_checkpoint, check_stored_app_checkpoint
from ._codec import pack_state, unpack_state
from ._crypto import Keyring, row_aad
from ._engine import Engine
from ._ids import new_id
from ._statements import Statement
from ._validation import MAX_ID_LENGTH, check_limit, is_storable_key
from .errors import StorageError
from .records import AppCheckpoint, AppCheckpointListItem, StoredAppCheckpoint

__all__ = ["APP_TABLE", "AppStore"]

#: The table migrations/009_app_checkpoints.py creates.
APP_TABLE = "peewee_checkpoints_app"
_LIST = "id, name, created_at"
_FULL = "id, name, created_at, state_codec, state_key, state"


def _sql(text: str) -> Statement:
    return Statement(text, ())


class AppStore:
    """Stores, lists, retrieves and deletes app checkpoints through one :class:`Engine`."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self.keyring = keyring
        p = engine.param
        t = APP_TABLE
        self.q_insert = _sql(f"INSERT INTO {t} ({_FULL}) VALUES ({p}, {p}, {p}, {p}, {p}, {p})")
        self.q_exists = _sql(f"SELECT id FROM {t} WHERE id = {p}")
        self.q_retrieve = _sql(f"SELECT {_FULL} FROM {t} WHERE id = {p}")
        self.q_latest = _sql(f"SELECT {_FULL} FROM {t} ORDER BY created_at DESC, id DESC LIMIT 1")
        self.q_list = _sql(f"SELECT {_LIST} FROM {t} ORDER BY created_at DESC, id DESC")
        self.q_delete = _sql(f"DELETE FROM {t} WHERE id = {p}")
        self.q_count = _sql(f"SELECT COUNT(*) FROM {t}")

    # -- writing ---------------------------------------------------------------------------

    def _row(self, checkpoint_id: str, checkpoint: AppCheckpoint) -> list[Any]:
        codec, data = pack_state(checkpoint.state)
        key_id, data = self.keyring.encrypt(data, row_aad(APP_TABLE, checkpoint_id, codec))
        return [checkpoint_id, checkpoint.name, checkpoint.created_at, codec, key_id, data]

    def store(self, checkpoint: AppCheckpoint) -> str:
        check_app_checkpoint(checkpoint)
        checkpoint_id = new_id()
        row = self._row(checkpoint_id, checkpoint)
        self._engine.ensure_ready()
        sent = [False]
        if not self._engine.run("store an app checkpoint", lambda: self._insert(row, sent),
                                outcome_id=checkpoint_id):
            raise StorageError(f"id {checkpoint_id} already exists on {self._engine.url}")
        return checkpoint_id

    def import_(self, checkpoint: StoredAppCheckpoint) -> bool:
        plain = check_stored_app_checkpoint(checkpoint)
        row = self._row(checkpoint.id, plain)
        self._engine.ensure_ready()
        sent = [False]
        return self._engine.run("import an app checkpoint", lambda: self._insert(row, sent),
                                outcome_id=checkpoint.id)

    def _insert(self, row: list[Any], sent: list[bool]) -> bool:
        engine = self._engine
        data = row[5]
        engine.profile.check_value_size(len(data), data, engine.database.connection())
        was_sent, sent[0] = sent[0], True
        try:
            engine.execute(self.q_insert.sql, row)
        except pw.IntegrityError:
            if engine.execute(self.q_exists.sql, [row[0]]).fetchone() is not None:
                return was_sent
            raise
        return True

    # -- reading ---------------------------------------------------------------------------

    def _stored(self, row: Any) -> StoredAppCheckpoint:
        checkpoint_id, name, created_at, codec, key_id, data = row
        plain = self.keyring.decrypt(key_id, data, row_aad(APP_TABLE, checkpoint_id, codec),
                                     what=f"app checkpoint {checkpoint_id}")
        return StoredAppCheckpoint(id=checkpoint_id, name=name, state=unpack_state(codec, plain),
                                   created_at=created_at)

    def retrieve(self, checkpoint_id: str) -> StoredAppCheckpoint | None:
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return None
        self._engine.ensure_ready()
        row = self._engine.run("read an app checkpoint", lambda: self._engine.execute(
            self.q_retrieve.sql, [checkpoint_id]).fetchone())
        return None if row is None else self._stored(row)

    def latest(self) -> StoredAppCheckpoint | None:
        self._engine.ensure_ready()
        row = self._engine.run("read the latest app checkpoint", lambda: self._engine.execute(
            self.q_latest.sql).fetchone())
        return None if row is None else self._stored(row)

    def list(self, limit: int | None) -> list[AppCheckpointListItem]:
        check_limit(limit)
        if limit == 0:
            return []
        self._engine.ensure_ready()
        sql = self.q_list.sql if limit is None else f"{self.q_list.sql} LIMIT {int(limit)}"
        rows = self._engine.run("list app checkpoints",
                                lambda: self._engine.execute(sql).fetchall())
        return [AppCheckpointListItem(id=r[0], name=r[1], created_at=r[2]) for r in rows]

    def count(self) -> int:
        self._engine.ensure_ready()
        row = self._engine.run("count app checkpoints",
                               lambda: self._engine.execute(self.q_count.sql).fetchone())
        return int(row[0])

    def delete(self, checkpoint_id: str) -> bool:
        if not is_storable_key(checkpoint_id, MAX_ID_LENGTH):
            return False
        self._engine.ensure_ready()
        return self._engine.run("delete an app checkpoint", lambda: int(self._engine.execute(
            self.q_delete.sql, [checkpoint_id]).rowcount)) > 0
