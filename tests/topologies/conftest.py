"""Fixtures of the topology suite: servers started on demand, a fresh database per test.

The suite runs only when ``PEEWEE_CHECKPOINTS_TOPOLOGIES`` names the topologies to start
(``all``, or a comma list of ``pgbouncer``, ``galera``, ``standby``); otherwise each test is
skipped with a reason that says so. A named topology that cannot start fails its tests (it is
never skipped). Each topology is started by a session-scoped fixture the first time a test needs
it, and stopped by pid at the end of the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ._servers import (
    MAIN_POSTGRES,
    TOPOLOGIES,
    Galera,
    PgBouncer,
    StandbyPair,
    TopologyError,
    lock_session,
    pg_query,
)

ENV = "PEEWEE_CHECKPOINTS_TOPOLOGIES"
HOW_TO_ENABLE = (
    f"set {ENV}=all (or a comma list of {','.join(TOPOLOGIES)}) to start the servers and run "
    "it; needs root or the server users, pgbouncer (apt-get install pgbouncer), mariadb-server "
    "with galera-4, postgresql-15, and PostgreSQL on 127.0.0.1:5432"
)


def enabled_topologies() -> set[str]:
    """The topologies ``PEEWEE_CHECKPOINTS_TOPOLOGIES`` asks for."""
    names = {n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()}
    if "all" in names:
        return set(TOPOLOGIES)
    unknown = names - set(TOPOLOGIES)
    if unknown:
        raise pytest.UsageError(f"{ENV}: unknown topology {sorted(unknown)}; "
                                f"known: all, {', '.join(TOPOLOGIES)}")
    return names


def pytest_configure(config: pytest.Config) -> None:
    enabled_topologies()  # a typo in the variable is a usage error, not a silent skip


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("topology")
    if marker is None:
        return
    name = str(marker.args[0])
    if name not in enabled_topologies():
        if os.environ.get(ENV):
            pytest.skip(f"topology {name} is not in {ENV}={os.environ[ENV]}")
        pytest.skip(f"topology test ({name}): {HOW_TO_ENABLE}")


def _start(name: str) -> Iterator[Any]:
    if name not in enabled_topologies():
        pytest.skip(f"topology test ({name}): {HOW_TO_ENABLE}")
    instance = TOPOLOGIES[name]()
    failure = None
    try:
        lock_session()
        instance.start()
    except TopologyError as exc:
        instance.stop()
        failure = str(exc)
    if failure is not None:  # outside the except block: the message alone says it all
        pytest.fail(f"{ENV} names {name}, which could not start: {failure}", pytrace=False)
    print(f"\nFIGURE: topology {name} started in {instance.startup_seconds:.1f}s")
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode (6432) and session mode (6433) before 127.0.0.1:5432."""
    yield from _start("pgbouncer")


@pytest.fixture(scope="session")
def galera_cluster() -> Iterator[Galera]:
    """The 3-node Galera cluster, as started (see :func:`galera`)."""
    yield from _start("galera")


@pytest.fixture
def galera(galera_cluster: Galera) -> Galera:
    """The 3-node Galera cluster with all three nodes up and Synced (restarted if a test
    killed some)."""
    try:
        galera_cluster.ensure_all_up()
    except TopologyError as exc:
        pytest.fail(f"galera: could not restore 3 nodes: {exc}", pytrace=False)
    return galera_cluster


@pytest.fixture(scope="session")
def standby_pair() -> Iterator[StandbyPair]:
    """The PostgreSQL primary (5433) and its streaming hot standby (5434), as started."""
    yield from _start("standby")


@pytest.fixture
def standby(standby_pair: StandbyPair) -> StandbyPair:
    """The primary and standby pair, rebuilt if a test (failover) broke it."""
    try:
        standby_pair.ensure_healthy()
    except TopologyError as exc:
        pytest.fail(f"standby: could not rebuild the pair: {exc}", pytrace=False)
    return standby_pair


def _db_name() -> str:
    return f"pc_topo_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def bouncer_db(pgbouncer: PgBouncer) -> Iterator[str]:
    """Name of a fresh database on 127.0.0.1:5432, reachable through both poolers."""
    name = _db_name()
    pg_query(MAIN_POSTGRES[1], f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        pg_query(MAIN_POSTGRES[1], f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def galera_db(galera: Galera) -> Iterator[str]:
    """Name of a fresh database on the cluster (created through node 1, replicated)."""
    name = _db_name()
    galera.query(0, f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        for node in range(3):  # any node that is up and Primary
            try:
                galera.query(node, f"DROP DATABASE IF EXISTS {name}", timeout=2)
                break
            except Exception:  # noqa: S112 - try the next node
                continue


@pytest.fixture
def standby_db(standby: StandbyPair) -> Iterator[str]:
    """Name of a fresh database on the primary, already replayed on the standby."""
    name = _db_name()
    standby.create_database(name)
    try:
        yield name
    finally:
        if standby.healthy():
            pg_query(standby.primary_port, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
