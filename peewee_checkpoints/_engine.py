"""The engine: one database, its migrations, its connections and its error policy.

Every public surface of the package (the checkpoint provider, the LangGraph saver, the agent
framework sessions) is a thin layer on one :class:`Engine`. The engine owns:

- the database handle built from ``db_url`` (always pooled: connections go back after each
  call, so a process holds at most ``max_connections`` per engine, whatever its threads do);
- readiness: the package's migrations applied once, under a lock that holds on every
  topology (see :mod:`._profiles`), before the first statement;
- :meth:`Engine.run`, the only way statements reach the server: it turns driver errors into
  :class:`StorageError` (never showing a password), waits out SQLite's busy lock, replaces a
  dropped connection, and runs idempotent work again after a deadlock or a serialization
  failure, with bounded backoff;
- the backend/topology profile, refined from what each new connection reports.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase

from ._database import (
    SQLITE_BUSY_TIMEOUT,
    Backend,
    open_database,
    remove_sqlite_files,
)
from ._migrations import LOCK_TIMEOUT, MigrationRunner
from ._profiles import BackendProfile, profile_for
from ._redact import Redactor, chain
from .errors import CheckpointError, StorageError

__all__ = ["Engine"]

_T = TypeVar("_T")

#: Runs of an idempotent operation after a deadlock or serialization failure, at most.
RETRY_ATTEMPTS = 8
#: First pause before such a retry, in seconds; it doubles (with jitter) up to RETRY_MAX_PAUSE.
RETRY_FIRST_PAUSE = 0.01
RETRY_MAX_PAUSE = 0.5
#: Fresh connections an idempotent operation may take after its connection was dropped.
RECONNECTS = 2


@dataclass
class _Attempts:
    """What one :meth:`Engine.run` call has left to try."""

    reconnects: int
    retries: int
    pause: float = RETRY_FIRST_PAUSE
    busy_deadline: float | None = None
    lost: bool = False
    """A connection was lost while the call ran: a write's outcome may be unknown."""
    remigrated: bool = False


class Engine:
    """One database behind a ``db_url``: connections, migrations, errors and retries.

    Args:
        db_url: ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` (also libpq's
            multi-host ``host1:port1,host2:port2`` form), ``mysql://user:pass@host:port/db``,
            each also ``+pool``; query-string parameters go to the driver, plus
            ``max_connections`` (default 8), ``timeout`` (seconds to wait for a free pooled
            connection) and ``stale_timeout``.
        migration_lock_timeout: seconds to wait for another process that is migrating the
            same database before giving up with :class:`MigrationError`.

    Raises:
        ConfigError: ``db_url`` is malformed or names an unsupported backend.
    """

    def __init__(self, db_url: str, *, migration_lock_timeout: float = LOCK_TIMEOUT) -> None:
        target = self._target = open_database(db_url)
        database: Any = target.database
        self.database: Any = database
        """The Peewee database (pooled); reach it inside :meth:`run`."""
        self._profile = profile_for(target.backend, target.safe_url, target.name)
        # Pooled: a call returns its connection. Otherwise (SQLite) each thread keeps its own.
        self._pooled = isinstance(database, PooledDatabase)
        database._pc_on_connect = self._on_connect
        self._migrations = MigrationRunner(target, self._current_profile,
                                           migration_lock_timeout)
        self._ready = False
        self._ready_lock = threading.Lock()

    # -- what it is -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._target.safe_url

    @property
    def backend(self) -> Backend:
        """``"sqlite"``, ``"postgres"`` or ``"mysql"``."""
        return self._target.backend

    @property
    def profile(self) -> BackendProfile:
        """The backend/topology profile, as refined by the newest connection."""
        return self._profile

    @property
    def redact(self) -> Redactor:
        """Hides this URL's password in any text."""
        return self._target.redact

    @property
    def param(self) -> str:
        """The driver's placeholder (``?`` or ``%s``)."""
        return str(self.database.param)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _current_profile(self) -> BackendProfile:
        return self._profile

    def _on_connect(self, conn: Any) -> None:
        profile = self._profile.refine(conn)
        profile.prepare(conn)
        self._profile = profile

    # -- migrations -----------------------------------------------------------------------

    @property
    def migration_lock_timeout(self) -> float:
        """Seconds :meth:`migrate` waits for another process's migration lock."""
        return self._migrations.lock_timeout

    def ensure_ready(self) -> None:
        """Apply pending migrations unless this engine already knows the schema is current."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                # Safe to repeat on a fresh connection: it reads first, and migrates under
                # the lock only what the history still lacks.
                self.run("prepare the schema", self._migrations.migrate)
                self._ready = True

    def migrate(self) -> list[str]:
        """Apply pending migrations now; returns the names this call applied."""
        with self._ready_lock:
            done = self.run("migrate", self._migrations.migrate)
            self._ready = True
        return done

    def pending_migrations(self) -> list[str]:
        """Names of shipped migrations not yet applied."""
        return self.run("read the migration history", self._migrations.pending)

    def applied_migrations(self) -> list[str]:
        """Names recorded in the package's migration history table."""
        return self.run("read the migration history", self._migrations.applied) or []

    def rollback_migration(self) -> str:
        """Roll back the newest applied migration; returns its name."""
        with self._ready_lock:
            self._ready = False
            return self.run("roll back a migration", self._migrations.rollback,
                            idempotent=False)

    # -- running statements ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement on this thread's connection; returns the driver's cursor.

        Call it inside a function given to :meth:`run`, which owns the connection.
        """
        return self.database.execute_sql(sql, params)

    def transaction(self, *, write: bool = False) -> AbstractContextManager[Any]:
        """A transaction (a savepoint when nested), for use inside a :meth:`run` function.

        ``write=True`` for a transaction that reads before it writes: on SQLite it takes the
        write lock up front, as a deferred one could not wait for it later ("database is
        locked").
        """
        if write:
            return self._profile.write_transaction(self.database)
        return self.database.atomic()  # type: ignore[no-any-return]

    def run(self, action: str, fn: Callable[[], _T], *, idempotent: bool = True,
            outcome_id: str | None = None) -> _T:
        """Run ``fn`` (which uses :meth:`execute`) under the engine's error and retry policy.

        - Driver errors become :class:`StorageError` naming ``action`` and the URL; connect
          failures say "could not connect". Errors of the package pass through.
        - SQLite's busy lock is waited out (up to the busy timeout): nothing was written.
        - With ``idempotent`` (running ``fn`` twice leaves what running it once does), a
          dropped connection is replaced and ``fn`` runs again, and a deadlock or a
          serialization failure runs it again after a short, growing, jittered pause.
        - The connection goes back to the pool afterwards, unless a transaction is open.

        - ``outcome_id``: the id a write makes. If its connection was lost while it ran and
          no fresh one could finish it, the outcome is unknown: the error carries that id
          (``StorageError.checkpoint_id``) and says so.

        Inside a transaction (a ``run`` within a ``run``) ``fn`` just runs: the outermost
        call owns the connection, the translation and the retries, and retries the whole
        transaction.
        """
        if self.database.in_transaction():
            return fn()
        attempts = _Attempts(RECONNECTS if idempotent else 0,
                             RETRY_ATTEMPTS if idempotent else 0)
        try:
            while True:
                failure = self._connect()
                if failure is None:
                    try:
                        return fn()
                    except CheckpointError:
                        raise
                    except (pw.PeeweeException, MaxConnectionsExceeded) as exc:
                        failure = exc
                    broken = self._discard_if_broken()
                    attempts.lost = attempts.lost or broken
                elif not self._profile.is_busy(failure):  # busy: SQLite locked while connecting
                    error = self._connect_error(failure)
                    if attempts.lost and outcome_id is not None:
                        error = self._unknown_outcome(action, outcome_id, error)
                    raise error
                else:
                    broken = False
                if not self._recover(failure, broken, attempts, idempotent):
                    break
            # Raised here, outside the except blocks, so that the driver's error is chained
            # only when it is safe to show (chain() checks it for the password).
            error = self.storage_error(action, failure)
            if attempts.lost and outcome_id is not None:
                error = self._unknown_outcome(action, outcome_id, error)
            raise error
        finally:
            self._release()

    def _recover(self, failure: BaseException, broken: bool, attempts: _Attempts,
                 idempotent: bool) -> bool:
        """Get ready to run again after ``failure``; False when the call should give up."""
        profile = self._profile
        if profile.is_busy(failure):
            # Nothing was written: wait for the other writer, up to the busy timeout.
            now = time.monotonic()
            attempts.busy_deadline = attempts.busy_deadline or now + SQLITE_BUSY_TIMEOUT
            if now >= attempts.busy_deadline:
                return False
            time.sleep(min(attempts.pause, 0.2))
            attempts.pause = min(attempts.pause * 2, 0.2)
            return True
        if broken:
            if not attempts.reconnects:
                return False
            attempts.reconnects -= 1
            return True
        if profile.is_missing_table(failure) and self._ready and idempotent \
                and not attempts.remigrated:
            # The schema went away under a running engine (a migration rolled back, a
            # database restored from an older backup): migrate again, then run again.
            attempts.remigrated = True
            self._ready = False
            self._release()
            self.ensure_ready()
            return True
        if profile.is_retryable(failure) and attempts.retries:
            attempts.retries -= 1
            time.sleep(attempts.pause * (0.5 + random.random()))  # noqa: S311 - jitter only
            attempts.pause = min(attempts.pause * 2, RETRY_MAX_PAUSE)
            return True
        return False

    def _connect(self) -> BaseException | None:
        """Make sure this thread holds a connection; returns the failure if it could not."""
        db = self.database
        if not db.is_closed():
            return None
        try:
            db.connect()
        except (pw.PeeweeException, MaxConnectionsExceeded) as exc:
            return exc
        return None

    def _connect_error(self, failure: BaseException) -> StorageError:
        """The StorageError for a failed connect: it says "could not connect", not what the
        call was about, since that never started."""
        if isinstance(failure, MaxConnectionsExceeded):
            message = (
                f"could not get a connection to {self.url}: all "
                f"{self.database._max_connections} connections of this process's pool stayed "
                "in use for the whole wait. Raise max_connections (a db_url parameter) or make "
                "fewer calls at once"
            )
        else:
            hint = self._profile.explain(failure)
            detail = f"{type(failure).__name__}: {failure}".strip()
            message = f"could not connect to {self.url}: " + (
                f"{hint} ({detail})" if hint else detail)
        redact = self.redact
        return chain(StorageError(redact(message)), failure, redact)

    def storage_error(self, action: str, exc: BaseException, *,
                      checkpoint_id: str | None = None) -> StorageError:
        """The StorageError for ``exc`` during ``action`` (raise it outside ``except``)."""
        hint = self._profile.explain(exc)
        detail = f"{type(exc).__name__}: {exc}"
        message = f"could not {action} on {self.url}: " + (f"{hint} ({detail})" if hint
                                                           else detail)
        redact = self.redact
        return chain(StorageError(redact(message), checkpoint_id=checkpoint_id), exc, redact)

    def _unknown_outcome(self, action: str, outcome_id: str, cause: StorageError
                         ) -> StorageError:
        error = StorageError(
            f"could not {action} on {self.url}, and the outcome is unknown: the connection "
            f"was lost after {outcome_id} was sent, and the server could not be asked since. "
            f"It may have been written: look for it with retrieve_checkpoint({outcome_id!r}) "
            f"once the server answers ({cause})",
            checkpoint_id=outcome_id,
        )
        error.__cause__ = cause
        return error

    def _release(self) -> None:
        """Give this thread's connection back to the pool (never inside a transaction)."""
        db = self.database
        if not self._pooled or db.in_transaction() or db.is_closed():
            return
        try:
            db.close()
        except Exception:  # a connection that fails to close is gone either way: forget it
            db._state.reset()

    def _discard_if_broken(self) -> bool:
        """Drop this thread's connection if the server closed it; True if one was dropped."""
        db = self.database
        state = db._state
        conn = state.conn
        if conn is None or state.closed:
            return False
        if not self._profile.is_broken(conn):
            return False
        # Never returned to the pool; any transaction on it is gone with it.
        while db.in_transaction():
            db.pop_transaction()
        try:
            db.manual_close()
        except Exception:
            state.reset()
        return True

    def close(self) -> None:
        """Close every connection this engine opened (later calls open new ones)."""
        self.database.close_all()
        temporary = self._target.temporary
        if temporary is not None:
            # sqlite:///:memory: lives as long as the engine's connections do.
            remove_sqlite_files(temporary)
            self._ready = False
