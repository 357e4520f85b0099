"""Migrations on every backend: fresh and migrated databases, rollback, a host application's own
peewee-migrate history, a database from a newer version, and many processes starting at once.

Every test inspects the database through a second, plain Peewee connection, so what is asserted
is what is really in the database, not what the provider believes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest
from peewee_migrate import Router
from playhouse.db_url import connect

from peewee_checkpoints import MigrationError, NamedCheckpoint, PeeweeCheckpointProvider
from peewee_checkpoints._migrations import HISTORY_TABLE, known_migrations
from peewee_checkpoints.model import TABLE_NAME
from tests.conftest import captured_sql

#: peewee-migrate's default history table: a host application's, never ours.
HOST_HISTORY_TABLE = "migratehistory"
#: Every migration this version ships, in order.
SHIPPED = list(known_migrations())
#: How many processes race for a fresh database.
RACERS = 8


def _checkpoint(name: str = "cp", **state: object) -> NamedCheckpoint:
    return NamedCheckpoint(name=name, agent_id="agent", state=dict(state))


@pytest.fixture
def inspect_db(db_url: str) -> Iterator[pw.Database]:
    """A plain Peewee connection to the test database, independent of any provider."""
    db = connect(db_url)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def new_provider(db_url: str) -> Iterator[type[PeeweeCheckpointProvider]]:
    """Build providers on the test database (each a fresh one, as a new process would) and
    close them all at the end."""
    made: list[PeeweeCheckpointProvider] = []

    def make() -> PeeweeCheckpointProvider:
        provider = PeeweeCheckpointProvider(db_url)
        made.append(provider)
        return provider

    yield make  # type: ignore[misc]
    for provider in made:
        provider.close()


def tables(db: pw.Database) -> set[str]:
    return set(db.get_tables())


def history(db: pw.Database, table: str = HISTORY_TABLE) -> list[str]:
    """Migration names recorded in ``table``, in the order they were applied."""
    return [row[0] for row in db.execute_sql(f"SELECT name FROM {table} ORDER BY id")]


def count_rows(db: pw.Database, table: str = TABLE_NAME) -> int:
    return int(db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# -- fresh and migrated databases ---------------------------------------------------------------


def test_a_fresh_database_gets_every_shipped_migration_recorded_in_the_package_history_table(
    new_provider, inspect_db
):
    provider = new_provider()

    assert provider.pending_migrations() == SHIPPED
    assert provider.migrate() == SHIPPED

    assert history(inspect_db) == SHIPPED
    assert {TABLE_NAME, HISTORY_TABLE} <= tables(inspect_db)
    assert HOST_HISTORY_TABLE not in tables(inspect_db)
    assert provider.applied_migrations() == SHIPPED
    assert provider.pending_migrations() == []


def test_the_first_provider_call_migrates_a_fresh_database_without_an_explicit_migrate(
    new_provider, inspect_db
):
    provider = new_provider()
    checkpoint_id = provider.store_checkpoint(_checkpoint(k=1))

    assert history(inspect_db) == SHIPPED
    assert HOST_HISTORY_TABLE not in tables(inspect_db)
    stored = provider.retrieve_checkpoint(checkpoint_id)
    assert stored is not None
    assert stored.state == {"k": 1}


def test_an_already_migrated_database_is_left_as_it_is(new_provider, inspect_db):
    first = new_provider()
    first.migrate()
    checkpoint_id = first.store_checkpoint(_checkpoint(k=1))

    again = new_provider()
    assert again.migrate() == []
    assert again.migrate() == []

    assert history(inspect_db) == SHIPPED
    assert again.retrieve_checkpoint(checkpoint_id) is not None


@pytest.fixture
def sql_log() -> Iterator[list[str]]:
    with captured_sql() as statements:
        yield statements


def test_the_migration_check_on_a_migrated_database_costs_exactly_one_query(
    new_provider, sql_log
):
    setup = new_provider()
    setup.migrate()
    checkpoint_id = setup.store_checkpoint(_checkpoint(k=1))
    setup.close()

    provider = new_provider()
    sql_log.clear()
    assert provider.retrieve_checkpoint(checkpoint_id) is not None
    first_call = list(sql_log)
    sql_log.clear()
    assert provider.retrieve_checkpoint(checkpoint_id) is not None
    later_call = list(sql_log)

    check = [sql for sql in first_call if sql not in later_call]
    assert len(first_call) == len(later_call) + 1, first_call
    assert len(check) == 1, first_call
    assert HISTORY_TABLE in check[0]
    assert check[0].lstrip().upper().startswith("SELECT")


# -- rollback -----------------------------------------------------------------------------------


def test_rolling_back_the_last_migration_drops_its_table_and_history_and_it_can_be_reapplied(
    new_provider, inspect_db
):
    provider = new_provider()
    provider.migrate()
    provider.store_checkpoint(_checkpoint(k=1))

    rolled_back = [provider.rollback_migration() for _ in SHIPPED]
    assert rolled_back == list(reversed(SHIPPED))

    assert TABLE_NAME not in tables(inspect_db)
    assert history(inspect_db) == []
    assert HOST_HISTORY_TABLE not in tables(inspect_db)
    assert provider.pending_migrations() == SHIPPED

    assert provider.migrate() == SHIPPED
    assert history(inspect_db) == SHIPPED
    checkpoint_id = provider.store_checkpoint(_checkpoint(k=2))
    stored = provider.retrieve_checkpoint(checkpoint_id)
    assert stored is not None
    assert stored.state == {"k": 2}
    assert count_rows(inspect_db) == 1


def test_after_a_rollback_the_next_provider_call_migrates_again(new_provider, inspect_db):
    provider = new_provider()
    provider.migrate()
    for _ in SHIPPED:
        provider.rollback_migration()

    checkpoint_id = provider.store_checkpoint(_checkpoint(k=1))

    assert history(inspect_db) == SHIPPED
    assert provider.retrieve_checkpoint(checkpoint_id) is not None


def test_rolling_back_with_nothing_applied_is_a_migration_error(new_provider, inspect_db):
    provider = new_provider()
    with pytest.raises(MigrationError, match="no applied migration"):
        provider.rollback_migration()
    provider.migrate()
    for _ in SHIPPED:
        provider.rollback_migration()
    with pytest.raises(MigrationError, match="no applied migration"):
        provider.rollback_migration()
    assert TABLE_NAME not in tables(inspect_db)


# -- a host application's peewee-migrate in the same database and process ----------------------

_HOST_MIGRATION = '''\
"""A host application's migration, named like ours on purpose."""


def migrate(migrator, database, fake=False):
    migrator.sql("CREATE TABLE host_things (id INTEGER PRIMARY KEY, label VARCHAR(50))")


def rollback(migrator, database, fake=False):
    migrator.sql("DROP TABLE host_things")
'''


@pytest.fixture
def host_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "host_migrations"
    folder.mkdir()
    (folder / "001_initial.py").write_text(_HOST_MIGRATION)
    return folder


@pytest.mark.parametrize(
    "first", ["ours", "theirs"], ids=["ours_built_first", "theirs_built_first"]
)
def test_a_host_application_peewee_migrate_history_is_not_disturbed(
    first, db_url, new_provider, inspect_db, host_migrations
):
    host_db = connect(db_url)
    try:
        # peewee-migrate's Router points the one MigrateHistory model of the process at its table
        # when it first touches .model; build both sides before either runs, in both orders.
        if first == "ours":
            ours = new_provider()
            assert ours.pending_migrations() == SHIPPED
            theirs = Router(host_db, migrate_dir=host_migrations)
            assert theirs.done == []
        else:
            theirs = Router(host_db, migrate_dir=host_migrations)
            assert theirs.done == []
            ours = new_provider()
            assert ours.pending_migrations() == SHIPPED

        runs = [("ours", ours.migrate), ("theirs", theirs.run)]
        if first == "theirs":
            runs.reverse()
        for side, run in runs:
            assert run() == (SHIPPED if side == "ours" else ["001_initial"])
        for _side, run in runs:
            assert run() == []

        assert history(inspect_db, HOST_HISTORY_TABLE) == ["001_initial"]
        assert history(inspect_db, HISTORY_TABLE) == SHIPPED
        assert {"host_things", TABLE_NAME} <= tables(inspect_db)
        assert theirs.done == ["001_initial"]
        assert ours.applied_migrations() == SHIPPED

        # A fresh provider still sees its own history, not the host's, and works.
        later = new_provider()
        assert later.migrate() == []
        assert later.retrieve_checkpoint(later.store_checkpoint(_checkpoint(k=1))) is not None
        # Rolling all of ours back leaves the host's table and history alone.
        for _ in SHIPPED:
            later.rollback_migration()
        assert history(inspect_db, HOST_HISTORY_TABLE) == ["001_initial"]
        assert "host_things" in tables(inspect_db)
        assert TABLE_NAME not in tables(inspect_db)
    finally:
        host_db.close()


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_host_router_with_its_own_schema_does_not_move_our_history_table(
    backend, db_url, new_provider, inspect_db, host_migrations
):
    # peewee-migrate writes Router(schema=...) into the shared MigrateHistory._meta; our history
    # model must not inherit it.
    inspect_db.execute_sql("CREATE SCHEMA host_app")
    host_db = connect(db_url)
    try:
        theirs = Router(host_db, migrate_dir=host_migrations, schema="host_app")
        assert theirs.done == []
        ours = new_provider()
        assert ours.migrate() == SHIPPED
        assert theirs.run() == ["001_initial"]
    finally:
        host_db.close()

    assert history(inspect_db) == SHIPPED
    assert history(inspect_db, f"host_app.{HOST_HISTORY_TABLE}") == ["001_initial"]
    assert HISTORY_TABLE not in inspect_db.get_tables(schema="host_app")


# -- a database migrated by a newer version -----------------------------------------------------

FUTURE = "999_from_a_newer_version"


def _record(db: pw.Database, name: str) -> None:
    """Add ``name`` to our history table, as a newer version of the package would."""
    db.execute_sql(
        f"INSERT INTO {HISTORY_TABLE} (id, name, migrated_at) "
        f"VALUES (999, {db.param}, {db.param})",
        (name, "2030-01-01 00:00:00"),
    )


def _snapshot(db: pw.Database) -> tuple[set[str], list[str], int | None]:
    found = tables(db)
    return found, history(db), count_rows(db) if TABLE_NAME in found else None


def test_a_history_with_a_migration_this_version_does_not_know_is_refused_and_nothing_changes(
    new_provider, inspect_db
):
    setup = new_provider()
    setup.migrate()
    setup.store_checkpoint(_checkpoint(k=1))
    _record(inspect_db, FUTURE)
    before = _snapshot(inspect_db)

    provider = new_provider()
    with pytest.raises(MigrationError, match=FUTURE) as raised:
        provider.store_checkpoint(_checkpoint(k=2))
    assert "upgrade" in str(raised.value)
    with pytest.raises(MigrationError, match=FUTURE):
        provider.migrate()
    with pytest.raises(MigrationError, match=FUTURE):
        provider.list_checkpoints()
    with pytest.raises(MigrationError, match=FUTURE):
        provider.rollback_migration()

    assert _snapshot(inspect_db) == before


def test_an_unknown_migration_is_refused_before_any_shipped_one_is_applied(
    new_provider, inspect_db
):
    # A history table that only holds a migration from elsewhere: applying 001_initial would
    # "work", but the database is not one this version understands.
    inspect_db.execute_sql(
        f"CREATE TABLE {HISTORY_TABLE} (id INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL, "
        "migrated_at TIMESTAMP NULL)"
    )
    _record(inspect_db, FUTURE)
    before = _snapshot(inspect_db)

    provider = new_provider()
    with pytest.raises(MigrationError, match=FUTURE):
        provider.migrate()
    with pytest.raises(MigrationError, match=FUTURE):
        provider.store_checkpoint(_checkpoint(k=1))

    assert _snapshot(inspect_db) == before
    assert TABLE_NAME not in tables(inspect_db)


# -- many processes at once ---------------------------------------------------------------------

_RACER = textwrap.dedent(
    """
    import sys, time
    from peewee_checkpoints import NamedCheckpoint, PeeweeCheckpointProvider

    url, worker, connect_first = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "connected"
    provider = PeeweeCheckpointProvider(url)  # does not touch the database yet
    if connect_first:
        provider.database.connect()  # only the first call itself races
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    checkpoint_id = provider.store_checkpoint(
        NamedCheckpoint(name=f"worker {worker}", agent_id="racer", state={"worker": worker})
    )
    print(checkpoint_id, flush=True)
    provider.close()
    """
)


def race(
    script: str, db_url: str, *args: str, processes: int = RACERS
) -> list[tuple[int, str, str]]:
    """Start ``processes`` copies of ``script``, each with (db_url, index, *args); once all
    are ready, release them at the same instant. Returns (returncode, stdout, stderr) of each.

    The script prints "ready", then reads the start time from stdin and sleeps until then.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url, str(i), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.communicate()[1]
        # Every process is imported and waiting: give them all the same start, a moment ahead.
        start = f"{time.time() + 0.3}\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(start)
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, out, err))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("start", ["cold", "connected"])
def test_eight_processes_starting_at_once_on_a_fresh_database_all_succeed(
    start, db_url, inspect_db
):
    # "cold": each process also opens its connection in the race, as a fresh process does.
    # "connected": connections are open beforehand, so the migration check and the migration
    # themselves collide; on SQLite, whose unsafe window is narrow, this is the round that
    # most often catches a missing lock.
    results = race(_RACER, db_url, start)

    failures = [err for code, _out, err in results if code != 0]
    assert not failures, failures[0]
    ids = {out.strip() for _code, out, _err in results}
    assert len(ids) == RACERS
    assert history(inspect_db) == list(known_migrations())
    assert count_rows(inspect_db) == RACERS
    stored = {row[0] for row in inspect_db.execute_sql(f"SELECT id FROM {TABLE_NAME}")}
    assert stored == ids
    assert HOST_HISTORY_TABLE not in tables(inspect_db)

