"""Applying the shipped migrations with peewee-migrate, under a database-level lock."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import nullcontext
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import peewee as pw
from peewee_migrate import Migrator, Router
from peewee_migrate.models import MigrateHistory
from playhouse.migrate import Operation

from ._database import DatabaseTarget
from ._profiles import BackendProfile
from ._redact import chain
from .errors import MigrationError

log = logging.getLogger("peewee_checkpoints.migrations")

#: Our own history table: a host application's peewee-migrate keeps its ``migratehistory``.
HISTORY_TABLE = "peewee_checkpoints_migrations"
#: Seconds a process waits for another one that is migrating the same database.
LOCK_TIMEOUT = 60.0


def migrations_dir() -> Path:
    """The folder holding the installed migration files."""
    try:
        folder: Any = resources.files("peewee_checkpoints.migrations")
    except ModuleNotFoundError:
        # Imported straight from a source checkout (not installed): the top-level migrations/
        # folder beside the package is what an install would map to this name.
        folder = Path(__file__).resolve().parent.parent / "migrations"
    path = Path(str(folder))
    if not path.is_dir():
        raise MigrationError(
            f"the migrations folder {folder} is not on the file system; install "
            "peewee-checkpoints unzipped (pip does this by default)"
        )
    return path


@lru_cache(maxsize=1)
def known_migrations() -> tuple[str, ...]:
    """Names of the migrations this version ships, in the order they apply."""
    names = (p.stem for p in migrations_dir().iterdir() if Router.filemask.match(p.name))
    return tuple(sorted(names))


class _Migrator(Migrator):  # type: ignore[misc,unused-ignore]
    """peewee-migrate's Migrator, running its queued operations the same way on every version.

    peewee-migrate 1.x (the line for Python 3.10) logs ``Operation.method``, which peewee 4
    renamed, and 2.x wraps the run in ``migration_context()``, which peewee 3 lacks: either
    pairing breaks in ``Migrator.__call__``. Our migrations only queue ``migrator.sql()``, and
    the Router already runs each migration in a transaction.
    """

    def __call__(self) -> None:
        ops, self.__ops__ = self.__ops__, []
        for op in ops:
            if isinstance(op, Operation):
                op.run()
            else:
                op()


class _Router(Router):  # type: ignore[misc,unused-ignore]
    """peewee-migrate's Router with two process-wide side effects taken out."""

    @cached_property
    def model(self) -> type[MigrateHistory]:
        # Router.model rebinds peewee-migrate's one global MigrateHistory model to this
        # database and table, which would redirect a host application's own Router. A private
        # subclass keeps the history table ours alone.
        database = self.database

        class History(MigrateHistory):  # type: ignore[misc,unused-ignore]
            # Unique: a second record of one migration is refused, whatever lock failed.
            name = pw.CharField(max_length=255, unique=True)
            migrated_at = pw.DateTimeField(default=lambda: dt.datetime.now(dt.timezone.utc))

            class Meta:
                table_name = HISTORY_TABLE
                # Peewee copies an unset schema from the parent model, whose _meta a host's
                # Router(schema=...) may have changed: ours lives in the default schema.
                schema = None

        History._meta.database = database
        History.create_table(safe=True)
        return History

    @cached_property
    def migrator(self) -> Any:
        # Router.migrator replays every applied migration with peewee.Database.execute_sql
        # patched by unittest.mock for the whole process, which would break other threads'
        # queries. Our migrations are self-contained SQL and need no replayed model state.
        return self.migrator_class(self.database)


class MigrationRunner:
    """Brings one database to the schema this version ships, exactly once.

    ``profile`` returns the engine's current profile, which holds the lock and knows whether
    the server is read-only.
    """

    def __init__(self, target: DatabaseTarget, profile: Callable[[], BackendProfile],
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        self._target = target
        self._db = target.database
        self._profile = profile
        self.lock_timeout = lock_timeout

    def _router(self) -> _Router:
        return _Router(
            self._db,
            migrate_dir=migrations_dir(),
            migrate_table=HISTORY_TABLE,
            migrator_class=_Migrator,
        )

    def applied(self) -> list[str] | None:
        """Names recorded in the history table, or None if it does not exist yet. One query."""
        db = self._db
        # Inside a transaction (PostgreSQL's migration lock) a failed query would abort it:
        # a savepoint keeps the missing-table case harmless.
        scope: Any = db.atomic() if db.in_transaction() else nullcontext()
        try:
            with scope:
                cursor = db.execute_sql(f"SELECT name FROM {HISTORY_TABLE}")  # noqa: S608
                return [row[0] for row in cursor.fetchall()]
        except (pw.ProgrammingError, pw.OperationalError) as exc:
            # On a server an OperationalError is usually a connection that failed or dropped,
            # which must not pass for an empty history.
            if self._profile().is_missing_table(exc):
                return None
            raise

    def pending(self) -> list[str]:
        """Migrations not yet applied; raises MigrationError if the database is newer."""
        applied = self.applied() or []
        self._check_not_newer(applied)
        done = set(applied)
        return [name for name in known_migrations() if name not in done]

    def _check_not_newer(self, applied: list[str]) -> None:
        unknown = sorted(set(applied) - set(known_migrations()))
        if unknown:
            raise MigrationError(
                f"the database {self._target.safe_url} was migrated by a newer peewee-checkpoints "
                f"(it records {', '.join(unknown)}, which this version does not ship); upgrade "
                "the package to use it"
            )

    def is_current(self) -> bool:
        """True when every shipped migration is applied (the cheap check: one query)."""
        applied = self.applied()
        if applied is None:
            return False
        self._check_not_newer(applied)
        return set(known_migrations()) <= set(applied)

    def migrate(self) -> list[str]:
        """Apply pending migrations under the lock; returns the names applied by this call.

        With nothing pending this only reads (a hot standby answers it); otherwise it takes
        the migration lock, looks again, and applies what is still missing.
        """
        if self.is_current():
            return []
        profile = self._profile()
        reason = profile.read_only_reason(self._db)
        if reason is not None:
            raise MigrationError(
                f"{self._target.safe_url} needs migrations ({', '.join(self.pending())}) but "
                f"{reason}"
            )
        with profile.migration_lock(self._db, self.lock_timeout):
            self._check_not_newer(self.applied() or [])
            failure: Exception | None = None
            try:
                done: list[str] = self._router().run()
            except Exception as exc:  # a migration may fail with any exception, not only SQL
                failure = exc
            if failure is not None:
                raise self._error(f"migrating {self._target.safe_url} failed", failure)
        if done:
            log.info("applied migrations %s to %s", ", ".join(done), self._target.safe_url)
        return done

    def rollback(self) -> str:
        """Roll back the newest applied migration under the lock; returns its name."""
        with self._profile().migration_lock(self._db, self.lock_timeout):
            applied = self.applied()
            if not applied:
                raise MigrationError("there is no applied migration to roll back")
            self._check_not_newer(applied)
            router = self._router()
            name: str = router.done[-1]
            failure: Exception | None = None
            try:
                router.rollback()  # type: ignore[no-untyped-call,unused-ignore]
            except Exception as exc:
                failure = exc
            if failure is not None:
                raise self._error(f"rolling back {name} failed", failure)
        return name

    def _error(self, what: str, exc: Exception) -> MigrationError:
        """A MigrationError for ``exc``, raised by the caller outside its except block."""
        redact = self._target.redact
        return chain(MigrationError(redact(f"{what}: {type(exc).__name__}: {exc}")), exc, redact)

