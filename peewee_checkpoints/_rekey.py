"""Re-encrypting stored payloads under the first encryption key (or decrypting them all).

Covers every table that holds payloads: agent and app checkpoints, the LangGraph saver's
checkpoints, metadata, channel blobs and pending writes, OpenAI Agents session items, and
Google ADK session, app and user states and events.

Resumable by construction: a row is rewritten only if it is not yet under the target key,
so a run that was killed half way is finished by running it again, which skips what is done.
Rows go in batches (by primary key), each batch one short transaction; every UPDATE checks
the row is still under the key it was read with, so a concurrent write is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._app_store import APP_TABLE
from ._crypto import (
    MAX_TYPE,
    TYPED_PREFIX,
    Keyring,
    open_typed,
    row_aad,
    seal,
    seal_typed,
    sealed_key,
    unseal,
)
from ._retention_sql import LG_BLOBS, LG_CHECKPOINTS, LG_WRITES
from ._sessions import ITEMS as OAI_ITEMS
from ._sessions import SESSIONS as OAI_SESSIONS
from ._sessions import item_aad
from ._statements import Statement
from .adk._store import APP_STATES, EVENTS, SESSIONS, USER_STATES, payload_aad
from .errors import ConfigError
from .model import TABLE_NAME

if TYPE_CHECKING:
    from .peewee_provider import PeeweeCheckpointProvider

__all__ = ["RekeyCounts", "rekey"]

#: Rows per batch (one transaction each).
BATCH = 500
_TABLES = (TABLE_NAME, APP_TABLE)


@dataclass
class RekeyCounts:
    """What :func:`rekey` did."""

    rewritten: int = 0
    """Rows re-encrypted under the target key (or decrypted)."""
    skipped: int = 0
    """Rows changed by another writer while this ran (they are under a current key)."""
    tables: dict[str, int] = field(default_factory=dict)
    """Rows rewritten per table."""


def rekey(provider: PeeweeCheckpointProvider, *, decrypt: bool = False, batch: int = BATCH,
          progress: Callable[[int], None] | None = None,
          stop: Callable[[], bool] | None = None) -> RekeyCounts:
    """Rewrite every state not under the provider's first key (``decrypt``: every encrypted
    state as plain bytes); returns how many rows were rewritten.

    Args:
        batch: rows per transaction.
        progress: called with the number of rows each batch rewrote.
        stop: asked between batches; True ends the run early (run it again to finish).

    Raises:
        ConfigError: no ``encryption_keys`` (and not ``decrypt``).
        EncryptionError: a row is under a key the provider does not have (add it to
            ``encryption_keys``; the message names it), or fails authentication.
    """
    keyring = provider.keyring
    if not keyring and not decrypt:
        raise ConfigError(
            "rekey needs encryption_keys (the first one is the key to encrypt under); "
            "to store every state unencrypted again, use decrypt"
        )
    target = "" if decrypt else keyring.primary_id
    engine = provider.engine
    engine.ensure_ready()
    p = engine.param
    counts = RekeyCounts()
    for table in _TABLES:
        select = Statement(f"SELECT id, state_codec, state_key, state FROM {table} "
                  f"WHERE id > {p} AND state_key <> {p} ORDER BY id LIMIT {int(batch)}", ())
        update = Statement(f"UPDATE {table} SET state = {p}, state_key = {p} "
                  f"WHERE id = {p} AND state_key = {p}", ())
        last = ""
        while not (stop is not None and stop()):
            def run(last: str = last, table: str = table, select: Statement = select,
                    update: Statement = update) -> tuple[int, int, str | None]:
                with engine.transaction(write=True):
                    rows = engine.execute(select.sql, [last, target]).fetchall()
                    done = skipped = 0
                    for row_id, codec, key_id, data in rows:
                        aad = row_aad(table, row_id, codec)
                        plain = bytes(keyring.decrypt(key_id, data, aad,
                                                      what=f"{table} row {row_id}"))
                        new_key, stored = ("", plain) if decrypt else keyring.encrypt(plain, aad)
                        params: list[Any] = [stored, new_key, row_id, key_id]
                        if engine.execute(update.sql, params).rowcount == 1:
                            done += 1
                        else:
                            skipped += 1
                    return done, skipped, (rows[-1][0] if len(rows) == batch else None)

            done, skipped, next_last = engine.run("re-encrypt states", run)
            counts.rewritten += done
            counts.skipped += skipped
            counts.tables[table] = counts.tables.get(table, 0) + done
            if progress is not None and done:
                progress(done)
            if next_last is None:
                break
            last = next_last
    for spec in _PAYLOAD_TABLES:
        if stop is not None and stop():
            break
        _rekey_table(provider, spec, keyring=keyring, target=target, batch=batch,
                     counts=counts, progress=progress, stop=stop)
    return counts


# -- the LangGraph and session tables: composite keys, payloads that carry their key id ----

# A rewrite gets (keyring, target key id, row values after the key columns) and returns the
# new values of the payload columns, or None if the row is already under the target key.
_Rewrite = Callable[[Keyring, str, tuple[Any, ...]], "tuple[Any, ...] | None"]


@dataclass(frozen=True)
class _Spec:
    table: str
    keys: tuple[str, ...]
    """The primary key, walked in order."""
    read: tuple[str, ...]
    """Columns read after the keys (what ``rewrite`` gets)."""
    write: tuple[str, ...]
    """Columns ``rewrite`` returns new values for; each is also checked unchanged."""
    rewrite: _Rewrite


def _typed(keyring: Keyring, target: str, type_: str, data: Any, where: tuple[str, ...]
           ) -> tuple[str, Any] | None:
    """A LangGraph value moved under ``target`` (``""``: decrypted); None if it is."""
    if data is None:
        return None
    current = type_[len(TYPED_PREFIX):].partition(":")[0] if type_.startswith(TYPED_PREFIX) \
        else ""
    if current == target:
        return None
    inner, plain = open_typed(keyring, type_, bytes(data), where, f"a LangGraph value in "
                              f"{where[0]}")
    new_type, stored = seal_typed(keyring if target else Keyring(), inner, bytes(plain), where)
    if len(new_type) > MAX_TYPE:
        raise ConfigError(
            f"key id {target!r} is too long to record in the LangGraph saver's type column; "
            "the first key needs an id of at most 40 characters")
    return new_type, stored


def _sealed(keyring: Keyring, target: str, data: Any, aad: bytes) -> Any:
    """A sealed payload moved under ``target`` (``""``: decrypted); None if it is."""
    if data is None or sealed_key(data) == target:
        return None
    plain = bytes(unseal(keyring, data, aad, "a session payload"))
    return seal(keyring, plain, aad) if target else plain


def _lg_checkpoint(keyring: Keyring, target: str, row: tuple[Any, ...]) -> Any:
    ns, checkpoint_id, type_, data, md_type, md = row
    value = _typed(keyring, target, type_, data, (LG_CHECKPOINTS, "checkpoint", ns,
                                                  checkpoint_id))
    meta = _typed(keyring, target, md_type, md, (LG_CHECKPOINTS, "metadata", ns, checkpoint_id))
    if value is None and meta is None:
        return None
    return (*(value or (type_, data)), *(meta or (md_type, md)))


def _lg_blob(keyring: Keyring, target: str, row: tuple[Any, ...]) -> Any:
    ns, channel, version, type_, data = row
    return _typed(keyring, target, type_, data, (LG_BLOBS, ns, channel, version))


def _lg_write(keyring: Keyring, target: str, row: tuple[Any, ...]) -> Any:
    ns, checkpoint_id, task_id, idx, channel, type_, data = row
    return _typed(keyring, target, type_, data,
                  (LG_WRITES, ns, checkpoint_id, task_id, str(idx), channel))


def _oai_item(keyring: Keyring, target: str, row: tuple[Any, ...]) -> Any:
    seq, data = row
    stored = _sealed(keyring, target, data, item_aad(int(seq)))
    return None if stored is None else (stored,)


def _adk_state(table: str) -> _Rewrite:
    def rewrite(keyring: Keyring, target: str, row: tuple[Any, ...]) -> Any:
        codec, data = row
        stored = _sealed(keyring, target, data, payload_aad(table, codec))
        return None if stored is None else (stored,)
    return rewrite


def _adk_event(keyring: Keyring, target: str, row: tuple[Any, ...]) -> Any:
    event_id, codec, data = row
    stored = _sealed(keyring, target, data, payload_aad(EVENTS, codec, event_id))
    return None if stored is None else (stored,)


_PAYLOAD_TABLES = (
    _Spec(LG_CHECKPOINTS, ("thread_id", "checkpoint_ns", "checkpoint_id"),
          ("checkpoint_ns", "checkpoint_id", "type", "checkpoint", "metadata_type", "metadata"),
          ("type", "checkpoint", "metadata_type", "metadata"), _lg_checkpoint),
    _Spec(LG_BLOBS, ("thread_id", "checkpoint_ns", "channel", "version"),
          ("checkpoint_ns", "channel", "version", "type", "data"), ("type", "data"), _lg_blob),
    _Spec(LG_WRITES, ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
          ("checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type", "data"),
          ("type", "data"), _lg_write),
    _Spec(OAI_ITEMS, ("session_id", "seq"), ("seq", "data"), ("data",), _oai_item),
    _Spec(SESSIONS, ("app_name", "user_id", "id"), ("state_codec", "state"), ("state",),
          _adk_state(SESSIONS)),
    _Spec(EVENTS, ("app_name", "user_id", "session_id", "seq"),
          ("event_id", "data_codec", "data"), ("data",), _adk_event),
    _Spec(APP_STATES, ("app_name",), ("state_codec", "state"), ("state",),
          _adk_state(APP_STATES)),
    _Spec(USER_STATES, ("app_name", "user_id"), ("state_codec", "state"), ("state",),
          _adk_state(USER_STATES)),
)


def _after(keys: tuple[str, ...], p: str) -> str:
    """``keys > (params)`` in keyset order, written out (row values are not planned alike on
    every backend); its parameters come from :func:`_after_params`. The leading ``>=`` lets
    every planner range-scan the primary key."""
    clause = f"{keys[-1]} > {p}"
    for key in reversed(keys[:-1]):
        clause = f"({key} > {p} OR ({key} = {p} AND {clause}))"
    return f"{keys[0]} >= {p} AND {clause}"


def _after_params(last: tuple[Any, ...]) -> list[Any]:
    params = [last[0]]
    for value in last[:-1]:
        params += (value, value)
    return [*params, last[-1]]


def _rekey_table(provider: PeeweeCheckpointProvider, spec: _Spec, *, keyring: Keyring,
                 target: str, batch: int, counts: RekeyCounts,
                 progress: Callable[[int], None] | None, stop: Callable[[], bool] | None
                 ) -> None:
    engine = provider.engine
    p = engine.param
    n = len(spec.keys)
    columns = ", ".join((*spec.keys, *spec.read))
    order = ", ".join(spec.keys)
    first = Statement(f"SELECT {columns} FROM {spec.table} ORDER BY {order} "
                      f"LIMIT {int(batch)}", ())
    more = Statement(f"SELECT {columns} FROM {spec.table} WHERE {_after(spec.keys, p)} "
                     f"ORDER BY {order} LIMIT {int(batch)}", ())
    # The row must still hold what was read: a concurrent writer's value is never replaced.
    where = " AND ".join(f"{c} = {p}" for c in (*spec.keys, *spec.write))
    sets = ", ".join(f"{c} = {p}" for c in spec.write)
    update = Statement(f"UPDATE {spec.table} SET {sets} WHERE {where}", ())
    grow = Statement(f"UPDATE {OAI_SESSIONS} SET total_bytes = total_bytes + {p} "
                     f"WHERE session_id = {p}", ())
    last: tuple[Any, ...] | None = None
    while not (stop is not None and stop()):
        def run(last: tuple[Any, ...] | None = last) -> tuple[int, int, Any]:
            with engine.transaction(write=True):
                if last is None:
                    rows = engine.execute(first.sql, []).fetchall()
                else:
                    rows = engine.execute(more.sql, _after_params(last)).fetchall()
                done = skipped = 0
                for row in rows:
                    key, values = tuple(row[:n]), tuple(row[n:])
                    new = spec.rewrite(keyring, target, values)
                    if new is None:
                        continue
                    by_name = dict(zip(spec.read, values, strict=True))
                    old = [by_name[c] for c in spec.write]
                    params: list[Any] = [*new, *key, *old]
                    if engine.execute(update.sql, params).rowcount != 1:
                        skipped += 1
                        continue
                    done += 1
                    if spec.table == OAI_ITEMS:
                        # The session's byte count follows its items' stored size.
                        engine.execute(grow.sql, [len(new[0]) - len(bytes(old[0])), key[0]])
                return done, skipped, (tuple(rows[-1][:n]) if len(rows) == batch else None)

        done, skipped, next_last = engine.run("re-encrypt payloads", run)
        counts.rewritten += done
        counts.skipped += skipped
        counts.tables[spec.table] = counts.tables.get(spec.table, 0) + done
        if progress is not None and done:
            progress(done)
        if next_last is None:
            return
        last = next_last
