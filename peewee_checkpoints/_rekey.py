"""Re-encrypting stored states under the first encryption key (or decrypting them all).

Resumable by construction: a row is rewritten only if it is not yet under the target key,
so a run that was killed half way is finished by running it again, which skips what is done.
Rows go in batches (by primary key), each batch one short transaction; every UPDATE checks
the row is still under the key it was read with, so a concurrent write is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._app_store import APP_TABLE
from ._crypto import row_aad
from ._statements import Statement
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
            if progress is not None and done:
                progress(done)
            if next_last is None:
                break
            last = next_last
    return counts
