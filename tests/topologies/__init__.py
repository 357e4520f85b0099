"""The topology suite: the package on the server set-ups production runs, started by the tests.

Run it (as root, or as a user that can start the servers; ~4 minutes on 2 cores)::

    PEEWEE_CHECKPOINTS_TOPOLOGIES=all python -m pytest -s tests/topologies

``PEEWEE_CHECKPOINTS_TOPOLOGIES`` is ``all`` or a comma list of ``pgbouncer``, ``galera``,
``standby``; unset, every test here is skipped (saying how to enable it). ``-s`` shows the
``FIGURE:`` line each test prints (processes, operations, errors, misses, connection counts,
failover seconds); ``pytest -s tests/topologies | grep FIGURE:`` collects them.

What the suite starts, on 127.0.0.1 only, under one directory
(``$TMPDIR/peewee-checkpoints-topologies``, or ``$PEEWEE_CHECKPOINTS_TOPOLOGY_DIR``):

- ``pgbouncer``: PgBouncer (Debian's ``pgbouncer``, 1.18) on 6432 in transaction mode and on
  6433 in session mode (``default_pool_size=10``), before the machine's PostgreSQL on 5432;
  tests create their databases on 5432 and use them through the pooler.
- ``galera``: 3 MariaDB nodes with galera-4 (SQL 3307/3308/3309, gcomm 4567/4577/4587, IST
  4568/4578/4588, rsync SST 4444-4446), run as user ``mysql``; node 1 bootstraps, 2 and 3
  join by SST; a node a test kills rejoins by IST.
- ``standby``: a PostgreSQL 15 primary (5433) and a streaming hot standby (5434) made with
  ``initdb`` and ``pg_basebackup -R``, run as user ``postgres``; the failover test promotes
  the standby, and the pair is rebuilt if a later test needs it.

Each topology starts the first time a test needs it and stops, by pid, when the session ends;
the servers also die with the test process however it dies (parent-death signal), and a start
clears what a crashed run left. ``PEEWEE_CHECKPOINTS_TOPOLOGY_KEEP=1`` keeps the directories
(logs) after the run. Only one test session can use the ports at a time (a file lock; a second
session waits up to 5 minutes). ``python -m tests.topologies._servers [NAME...]`` starts and
stops a topology on its own, printing how long it took.
"""
