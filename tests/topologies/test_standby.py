"""The provider and the LangGraph saver on a PostgreSQL hot standby, and across a failover.

A hot standby serves reads and refuses every write, even ``CREATE TABLE IF NOT EXISTS`` of a
table that exists (SQLSTATE 25006). A libpq multi-host URL with
``target_session_attrs=read-write`` connects to whichever host is the primary, so after the
primary dies and the standby is promoted, the same provider can write again. The failover test
runs last; the ``standby`` fixture rebuilds the pair for any test after it.
"""

from __future__ import annotations

import time

import pytest

from peewee_checkpoints import (
    CheckpointError,
    PeeweeCheckpointProvider,
    StorageError,
)

from .._workload import checkpoint, is_intact
from ._servers import StandbyPair, pg_query
from ._work import saver_checkpoint, saver_config

pytestmark = pytest.mark.topology("standby")

FAILOVER_LIMIT = 30


def _wal_lsn(pair: StandbyPair) -> str:
    return str(pg_query(pair.primary_port, "SELECT pg_current_wal_lsn()::text"))


def test_a_provider_and_a_saver_on_the_standby_serve_reads(
        standby: StandbyPair, standby_db: str) -> None:
    """Data written through the primary is read through the standby by a provider (retrieve,
    list) and by a LangGraph saver (get_tuple, list)."""
    from peewee_checkpoints.langgraph import PeeweeSaver

    with PeeweeCheckpointProvider(standby.url(standby_db)) as primary:
        ids = [primary.store_checkpoint(checkpoint("sb", f"sb-{i}")) for i in range(5)]
    with PeeweeSaver(standby.url(standby_db)) as saver:
        stored = saver.put(saver_config("sb"), saver_checkpoint(1), {"step": 1},
                           {"a": 1, "b": 1})
    standby.wait_replayed()

    with PeeweeCheckpointProvider(standby.url(standby_db, "standby")) as replica:
        for cid in ids:
            assert is_intact(replica.retrieve_checkpoint(cid), "sb")
        assert [i.id for i in replica.list_checkpoints(agent_id="sb")] == ids[::-1]
    with PeeweeSaver(standby.url(standby_db, "standby")) as replica_saver:
        got = replica_saver.get_tuple(stored)
        listed = list(replica_saver.list(saver_config("sb")))
    print(f"\nFIGURE: standby reads: 5 retrieves + list by a provider, get_tuple "
          f"({'found' if got else 'missing'}) + list ({len(listed)}) by a saver")
    assert got is not None and got.checkpoint["channel_values"]["b"] == 1
    assert len(listed) == 1


def test_migrate_on_the_standby_with_nothing_pending_succeeds_and_writes_nothing(
        standby: StandbyPair, standby_db: str) -> None:
    """``migrate()`` through the standby of a database migrated on the primary returns [] (no
    DDL is attempted, so the read-only server has nothing to refuse), and so does a saver's
    ``setup()``."""
    from peewee_checkpoints.langgraph import PeeweeSaver

    with PeeweeCheckpointProvider(standby.url(standby_db)) as primary:
        applied = primary.migrate()
    standby.wait_replayed()
    before = _wal_lsn(standby)
    with PeeweeCheckpointProvider(standby.url(standby_db, "standby")) as replica:
        assert replica.migrate() == []
        assert replica.pending_migrations() == []
        assert sorted(replica.applied_migrations()) == sorted(applied)
    with PeeweeSaver(standby.url(standby_db, "standby")) as replica_saver:
        replica_saver.setup()
    assert _wal_lsn(standby) == before
    print(f"\nFIGURE: standby: migrate() with nothing pending returned [] "
          f"({len(applied)} migrations applied on the primary)")


def test_a_write_on_the_standby_says_it_is_a_read_only_standby(
        standby: StandbyPair, standby_db: str) -> None:
    """A store by a provider, and a put by a LangGraph saver, through the standby of a migrated
    database raise StorageError that says the server is a read-only standby (not just 'read-only
    transaction')."""
    from peewee_checkpoints.langgraph import PeeweeSaver

    with PeeweeCheckpointProvider(standby.url(standby_db)) as primary:
        primary.migrate()
    standby.wait_replayed()
    with PeeweeCheckpointProvider(standby.url(standby_db, "standby")) as replica, \
            pytest.raises(StorageError) as store_error:
        replica.store_checkpoint(checkpoint("sb", "write"))
    with PeeweeSaver(standby.url(standby_db, "standby")) as replica_saver, \
            pytest.raises(StorageError) as put_error:
        replica_saver.put(saver_config("sb-write"), saver_checkpoint(1), {"step": 1},
                          {"a": 1, "b": 1})
    print(f"\nFIGURE: store on the standby: {' '.join(str(store_error.value).split())[:200]!r}; "
          f"saver put: {' '.join(str(put_error.value).split())[:200]!r}")
    assert "standby" in str(store_error.value).lower()
    assert "standby" in str(put_error.value).lower()


def test_a_never_migrated_database_on_the_standby_says_to_use_the_primary(
        standby: StandbyPair, standby_db: str) -> None:
    """On a standby whose database was never migrated, a read cannot apply the migrations:
    the error says the server is a standby and to migrate (or connect) through the primary,
    instead of 'cannot execute CREATE TABLE in a read-only transaction'; a store's error says
    standby too."""
    with PeeweeCheckpointProvider(standby.url(standby_db, "standby")) as replica:
        with pytest.raises(CheckpointError) as error:
            replica.retrieve_checkpoint("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        with pytest.raises(CheckpointError) as store_error:
            replica.store_checkpoint(checkpoint("sb", "never-migrated"))
    message = str(error.value).lower()
    print(f"\nFIGURE: read of a never-migrated database on the standby: "
          f"{type(error.value).__name__}: {' '.join(str(error.value).split())[:200]!r}; store: "
          f"{type(store_error.value).__name__}: "
          f"{' '.join(str(store_error.value).split())[:200]!r}")
    assert "standby" in message and "primary" in message, str(error.value)
    assert "standby" in str(store_error.value).lower(), str(store_error.value)


@pytest.mark.parametrize("form", ["netloc", "query"])
def test_multi_host_urls_are_accepted_and_reach_the_primary(
        standby: StandbyPair, standby_db: str, form: str) -> None:
    """Both libpq multi-host forms (``h1:p1,h2:p2`` in the netloc; ``?host=...&port=...``) with
    ``target_session_attrs=read-write`` are accepted and write to the primary."""
    url = _multi_host_url(standby, standby_db, form)
    try:
        with PeeweeCheckpointProvider(url) as provider:
            cid = provider.store_checkpoint(checkpoint("mh", f"mh-{form}"))
            assert is_intact(provider.retrieve_checkpoint(cid), "mh")
    except CheckpointError as exc:
        print(f"\nFIGURE: multi-host URL ({form} form): {type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:200]}")
        raise
    print(f"\nFIGURE: multi-host URL ({form} form): accepted, stored on the primary")


def _multi_host_url(pair: StandbyPair, dbname: str, form: str) -> str:
    if form == "netloc":
        return (f"postgresql://postgres@127.0.0.1:{pair.primary_port},127.0.0.1:"
                f"{pair.standby_port}/{dbname}?target_session_attrs=read-write")
    return (f"postgresql://postgres@/{dbname}?host=127.0.0.1,127.0.0.1&port={pair.primary_port},"
            f"{pair.standby_port}&target_session_attrs=read-write")


def test_after_failover_the_same_provider_writes_again_within_seconds(
        standby: StandbyPair, standby_db: str) -> None:
    """Providers on both multi-host URL forms store; the primary is killed
    (``pg_ctl -m immediate stop``) and the standby promoted; the same provider objects store
    again within 30 s (the figure is the seconds from promotion to the first good store).
    Runs last: it destroys the pair (the fixture rebuilds it for any later test)."""
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    providers: dict[str, PeeweeCheckpointProvider] = {}
    for form in ("netloc", "query"):  # a form that is refused must not hide the other's figure
        try:
            providers[form] = PeeweeCheckpointProvider(_multi_host_url(standby, standby_db, form))
        except CheckpointError as exc:
            errors[form] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    try:
        before = {form: p.store_checkpoint(checkpoint("fo", f"fo-{form}-before"))
                  for form, p in providers.items()}
        standby.wait_replayed()
        killed = time.monotonic()
        standby.fail_over()
        promoted = time.monotonic()
        for form, provider in providers.items():
            attempts = 0
            while True:
                attempts += 1
                try:
                    cid = provider.store_checkpoint(checkpoint("fo", f"fo-{form}-after"))
                    seconds[form] = time.monotonic() - promoted
                    assert is_intact(provider.retrieve_checkpoint(cid), "fo")
                    assert is_intact(provider.retrieve_checkpoint(before[form]), "fo")
                    break
                except CheckpointError as exc:
                    errors[form] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                    if time.monotonic() - promoted > FAILOVER_LIMIT:
                        break
                    time.sleep(0.1)
    finally:
        for provider in providers.values():
            provider.close()
    print(f"\nFIGURE: failover: primary killed, standby promoted in {promoted - killed:.1f}s; "
          f"writes resumed after {seconds} s (netloc / query forms); last errors {errors}")
    for form in ("netloc", "query"):
        assert form in seconds, f"{form} form: no store within {FAILOVER_LIMIT}s: {errors[form]}"
