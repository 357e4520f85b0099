"""Migration safety: a database migrated by a newer version is refused untouched, and a
migration that fails halfway leaves the history consistent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from peewee_checkpoints import (
    MigrationError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    _migrations,
)
from peewee_checkpoints._migrations import HISTORY_TABLE


def _history(provider: PeeweeCheckpointProvider) -> list[str]:
    sql = f"SELECT name FROM {HISTORY_TABLE} ORDER BY id"
    return [r[0] for r in provider.database.execute_sql(sql).fetchall()]


def _tables(provider: PeeweeCheckpointProvider) -> set[str]:
    return set(provider.database.get_tables())


def test_a_database_migrated_by_a_newer_version_is_refused_and_left_unchanged(
    db_url: str,
) -> None:
    with PeeweeCheckpointProvider(db_url) as old:
        cid = old.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={"x": 1}))
        old.database.execute_sql(
            f"INSERT INTO {HISTORY_TABLE} (name, migrated_at) VALUES (%s, %s)".replace(
                "%s", old.database.param), ["002_from_the_future", "2030-01-01 00:00:00"])
        history, tables = _history(old), _tables(old)
    with PeeweeCheckpointProvider(db_url) as provider:
        for call in (provider.list_checkpoints, provider.migrate,
                     lambda: provider.retrieve_checkpoint(cid),
                     lambda: provider.store_checkpoint(NamedCheckpoint(name="m", agent_id="a",
                                                                       state={}))):
            with pytest.raises(MigrationError, match=r"newer peewee-checkpoints.*002_from_the"):
                call()
        assert _history(provider) == history
        assert _tables(provider) == tables
        count = provider.database.execute_sql("SELECT COUNT(*) FROM peewee_checkpoints")
        assert count.fetchone()[0] == 1


_BROKEN = '''
"""Two steps; the second fails."""
def migrate(migrator, database, *, fake=False):
    migrator.sql("CREATE TABLE pc_extra (x INTEGER)")
    migrator.sql("THIS IS NOT SQL")

def rollback(migrator, database, *, fake=False):
    migrator.sql("DROP TABLE pc_extra")
'''

_IDEMPOTENT = '''
"""Each step may be run again: a rerun after a failure halfway finishes the job."""
def migrate(migrator, database, *, fake=False):
    migrator.sql("CREATE TABLE IF NOT EXISTS pc_extra (x INTEGER)")
    migrator.sql("CREATE TABLE IF NOT EXISTS pc_extra2 (x INTEGER)")

def rollback(migrator, database, *, fake=False):
    migrator.sql("DROP TABLE pc_extra2")
    migrator.sql("DROP TABLE pc_extra")
'''


@pytest.fixture
def migrations_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrations folder holding the shipped ones and whatever the test writes next to them."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in _migrations.known_migrations():
        shutil.copy(_migrations.migrations_dir() / f"{name}.py", folder)
    monkeypatch.setattr(_migrations, "migrations_dir", lambda: folder)
    _migrations.known_migrations.cache_clear()
    yield folder
    _migrations.known_migrations.cache_clear()


def test_a_migration_that_fails_halfway_leaves_the_history_consistent(
    db_url: str, migrations_folder: Path
) -> None:
    shipped = list(_migrations.known_migrations())
    with PeeweeCheckpointProvider(db_url) as provider:
        provider.migrate()
        cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
        (migrations_folder / "900_broken.py").write_text(_BROKEN)
        _migrations.known_migrations.cache_clear()
        with pytest.raises(MigrationError, match=r"900_broken.* failed|failed"):
            provider.migrate()
        # Not recorded as applied, so it will be tried again; the data is untouched.
        assert _history(provider) == shipped
        assert provider.pending_migrations() == ["900_broken"]
        assert provider.retrieve_checkpoint(cid) is not None
        if provider.backend == "mysql":
            # MySQL commits each DDL statement: the first step stays. Hence the policy in
            # docs/reliability.md: one DDL statement per migration, or idempotent steps.
            assert "pc_extra" in _tables(provider)
        else:
            # PostgreSQL and SQLite run the whole migration in one transaction.
            assert "pc_extra" not in _tables(provider)
        # The fixed (idempotent) migration then applies on every backend.
        (migrations_folder / "900_broken.py").write_text(_IDEMPOTENT)
        assert provider.migrate() == ["900_broken"]
        assert {"pc_extra", "pc_extra2"} <= _tables(provider)
        assert _history(provider) == [*shipped, "900_broken"]
