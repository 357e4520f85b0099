"""Start and stop the production topologies the suite runs against, on 127.0.0.1 only.

Three topologies, each built from Debian's packages with its own data directories under one
directory (:data:`BASE`) and on fixed spare ports (:data:`PORTS`):

- :class:`PgBouncer`: PgBouncer 1.18 in transaction mode and in session mode, in front of the
  machine's PostgreSQL on 5432.
- :class:`Galera`: a 3-node MariaDB Galera cluster (galera-4, rsync SST).
- :class:`StandbyPair`: a PostgreSQL 15 primary with a streaming hot standby.

Every server runs in the foreground as a child of the test process (never daemonized), with a
parent-death signal, so it goes away with the test process even when that one is killed;
``stop()`` ends it by pid. A start first clears what a crashed earlier run may have left: the
processes it recorded (checked by command line, so a reused pid is never hit) and the data
directories. A file lock keeps two test sessions from using the same ports at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BASE = Path(os.environ.get("PEEWEE_CHECKPOINTS_TOPOLOGY_DIR")
            or Path(tempfile.gettempdir()) / "peewee-checkpoints-topologies")
"""Parent of every data directory, log and pid file the suite makes."""

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADBD = "/usr/sbin/mariadbd"
GALERA_LIBRARY = "/usr/lib/galera/libgalera_smm.so"
MAIN_POSTGRES = ("127.0.0.1", 5432)
"""The machine's PostgreSQL, behind PgBouncer; the suite never starts or stops it."""

PORTS = {
    "pgbouncer": (6432, 6433),
    "galera": (3307, 3308, 3309, 4567, 4568, 4577, 4578, 4587, 4588, 4444, 4445, 4446),
    "standby": (5433, 5434),
}

_PR_SET_PDEATHSIG = 1


class TopologyError(RuntimeError):
    """A topology could not be started (or restored); the message carries the log's tail."""


# -- processes ------------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file, indented, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"    (no log at {path}: {exc})"
    return "\n".join("    " + line for line in text) or "    (log is empty)"


def _ids(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) to run as, or None to stay the current user (only root can switch)."""
    if user is None or os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def chown_tree(path: Path, user: str | None) -> None:
    """Give ``path`` (recursively) to ``user`` when running as root."""
    ids = _ids(user)
    if ids is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *ids)
        for name in dirs + files:
            os.chown(os.path.join(root, name), *ids, follow_symlinks=False)


_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the forked child only calls it


def _death_signal(sig: int) -> Callable[[], None]:
    parent = os.getpid()

    def preexec() -> None:
        # Runs in the child after its uid change (a uid change clears the setting): the
        # kernel sends ``sig`` when the test process dies, however it dies. (Strictly, when
        # the thread that started it ends: servers are only started from the main thread.)
        _libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def run(argv: list[str], *, user: str | None = None, timeout: float = 60,
        what: str = "") -> str:
    """Run a command to completion as ``user``; raise TopologyError with its output if it fails."""
    ids = _ids(user)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=BASE,
            user=ids[0] if ids else None, group=ids[1] if ids else None,
            extra_groups=[] if ids else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise TopologyError(f"{what or argv[0]}: still running after {timeout:.0f}s: "
                            f"{' '.join(argv)}") from exc
    if done.returncode != 0:
        raise TopologyError(
            f"{what or argv[0]} failed (exit {done.returncode}): {' '.join(argv)}\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout


class Server:
    """One foreground server process, its log and how to stop it."""

    def __init__(self, name: str, argv: list[str], log: Path, *, user: str | None,
                 stop_signal: int = signal.SIGTERM, death_signal: int = signal.SIGKILL) -> None:
        self.name, self.argv, self.log, self.user = name, argv, log, user
        self.stop_signal, self.death_signal = stop_signal, death_signal
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        ids = _ids(self.user)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=BASE, start_new_session=True, preexec_fn=_death_signal(self.death_signal),  # noqa: PLW1509
                user=ids[0] if ids else None, group=ids[1] if ids else None,
                extra_groups=[] if ids else None,
            )
        _record_pid(self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, message: str) -> TopologyError:
        """A TopologyError saying ``message``, the exit status, and the log's tail."""
        status = ""
        if self.proc is not None and self.proc.poll() is not None:
            status = f" (the process exited with {self.proc.returncode})"
        return TopologyError(f"{self.name}: {message}{status}; {self.log}:\n{log_tail(self.log)}")

    def stop(self, sig: int | None = None, timeout: float = 15) -> None:
        """Signal the process (and its process group), wait, SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal if sig is None else sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # helpers left in its group (rsync, ...)
            os.killpg(proc.pid, signal.SIGKILL)
        _forget_pid(self.name)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)


def wait_until(server: Server, what: str, check: Callable[[], bool], timeout: float,
               interval: float = 0.2) -> float:
    """Poll ``check`` until true; returns seconds waited. Raises TopologyError on timeout or
    when the server exits meanwhile."""
    start = time.monotonic()
    last: BaseException | None = None
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:
            last = exc
        if not server.alive():
            raise server.failure(f"exited while waiting until {what}")
        if time.monotonic() - start > timeout:
            detail = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise server.failure(f"not {what} after {timeout:.0f}s{detail}")
        time.sleep(interval)


# -- leftovers of earlier runs ---------------------------------------------------------------------


def _pid_dir() -> Path:
    return BASE / "pids"


def _record_pid(name: str, pid: int) -> None:
    _pid_dir().mkdir(parents=True, exist_ok=True)
    (_pid_dir() / f"{name}.pid").write_text(str(pid))


def _forget_pid(name: str) -> None:
    with contextlib.suppress(OSError):
        (_pid_dir() / f"{name}.pid").unlink()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _ours(pid: int) -> bool:
    """True if ``pid`` is a server this suite started (its command line names BASE)."""
    return str(BASE) in _cmdline(pid)


def _kill_and_wait(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if Path(f"/proc/{pid}/status").exists() and "State:\tZ" in Path(
                f"/proc/{pid}/status").read_text():
            return
        time.sleep(0.05)


def listeners(port: int) -> list[int]:
    """Pids listening on 127.0.0.1:``port`` (or any address), from ``ss``."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                         check=False, timeout=10).stdout
    pids = set()
    for part in out.split("pid=")[1:]:
        digits = part.split(",", 1)[0]
        if digits.isdigit():
            pids.add(int(digits))
    if out.strip() and not pids:
        pids.add(-1)  # a listener we may not see the owner of
    return sorted(pids)


def clear_leftovers(topology: str, prefix: str) -> None:
    """Kill what a crashed earlier run of ``topology`` left (recorded pids, then listeners on
    its ports, in both cases only processes whose command line names BASE); fail if one of its
    ports is held by anything else."""
    for pidfile in sorted(_pid_dir().glob(f"{prefix}*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text())
            if _ours(pid):
                _kill_and_wait(pid)
        pidfile.unlink(missing_ok=True)
    for port in PORTS[topology]:
        killed = False
        for pid in listeners(port):
            if pid > 0 and _ours(pid):
                _kill_and_wait(pid)
                killed = True
        deadline = time.monotonic() + (10 if killed else 0)
        while (held := listeners(port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if held:
            owners = ", ".join(f"pid {p} ({' '.join(_cmdline(p).split())[:80] or '?'})"
                               for p in held)
            raise TopologyError(
                f"{topology}: port {port} on 127.0.0.1 is in use by {owners}, which this suite "
                "did not start; stop it or free the port"
            )


_session_lock: list[Any] = []  # the open lock file, once taken
_session_lock_guard = threading.Lock()


def lock_session(timeout: float = 300) -> None:
    """Hold, for the life of this process, the lock that gives one test session the ports."""
    with _session_lock_guard:
        if _session_lock:
            return
        BASE.mkdir(parents=True, exist_ok=True)
        os.chmod(BASE, 0o755)  # noqa: S103 - the server users must reach their directories
        handle = open(BASE / "session.lock", "a+")  # noqa: SIM115 - held until exit
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise TopologyError(
                        f"another test session (pid {handle.read().strip() or '?'}) has held "
                        f"{BASE / 'session.lock'} for {timeout:.0f}s: the topology servers use "
                        "fixed ports, so only one session can run them at a time"
                    ) from None
                time.sleep(1)
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        _session_lock.append(handle)


def remove_dir(path: Path) -> None:
    """Remove a topology's directory, unless PEEWEE_CHECKPOINTS_TOPOLOGY_KEEP is set (to read
    its logs after the run)."""
    if not os.environ.get("PEEWEE_CHECKPOINTS_TOPOLOGY_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


def fresh_dir(path: Path) -> Path:
    """Empty directory at ``path`` (removed first if present)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- PostgreSQL helpers ---------------------------------------------------------------------------


def pg_connect(port: int, dbname: str = "postgres", timeout: int = 3) -> Any:
    """An autocommit psycopg2 connection as ``postgres`` to 127.0.0.1:``port``."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname,
                            connect_timeout=timeout)
    conn.autocommit = True
    return conn


def pg_query(port: int, sql: str, params: tuple[Any, ...] = (), dbname: str = "postgres") -> Any:
    """The first column of the first row of ``sql`` on 127.0.0.1:``port``."""
    conn = pg_connect(port, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone() if cur.description else None
            return row[0] if row else None
    finally:
        conn.close()


def _answers(port: int) -> bool:
    return bool(pg_query(port, "SELECT 1") == 1)


# -- PgBouncer ------------------------------------------------------------------------------------


class PgBouncer:
    """PgBouncer in transaction mode (:attr:`transaction_port`) and session mode
    (:attr:`session_port`, ``default_pool_size`` :attr:`pool_size`) before 127.0.0.1:5432."""

    transaction_port, session_port = PORTS["pgbouncer"]
    pool_size = 10

    def __init__(self) -> None:
        self.dir = BASE / "pgbouncer"
        self.servers: dict[str, Server] = {}
        self.startup_seconds = 0.0

    @staticmethod
    def binary() -> str:
        found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
        if not found:
            raise TopologyError(
                "pgbouncer is not installed: apt-get install -y pgbouncer (Debian's 1.18)"
            )
        return found

    def url(self, dbname: str, mode: str = "transaction") -> str:
        port = self.transaction_port if mode == "transaction" else self.session_port
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"

    def start(self) -> None:
        start = time.monotonic()
        binary = self.binary()
        try:
            pg_query(MAIN_POSTGRES[1], "SELECT 1")
        except Exception as exc:
            raise TopologyError(f"pgbouncer: the PostgreSQL it fronts (127.0.0.1:5432) does not "
                                f"answer: {exc}") from exc
        clear_leftovers("pgbouncer", "pgbouncer")
        fresh_dir(self.dir)
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        for mode, port in (("transaction", self.transaction_port),
                           ("session", self.session_port)):
            ini = self.dir / f"{mode}.ini"
            ini.write_text(
                "[databases]\n"
                f"* = host={MAIN_POSTGRES[0]} port={MAIN_POSTGRES[1]}\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                f"listen_port = {port}\n"
                "unix_socket_dir =\n"
                "auth_type = trust\n"
                f"auth_file = {self.dir / 'userlist.txt'}\n"
                f"pool_mode = {mode}\n"
                f"default_pool_size = {self.pool_size}\n"
                "max_client_conn = 200\n"
                "ignore_startup_parameters = extra_float_digits\n"
                "admin_users = postgres\n"
                # A client that waits for a server connection fails after 20 s, not 120.
                "query_wait_timeout = 20\n"
                f"logfile = {self.dir / (mode + '.log')}\n"
                f"pidfile = {self.dir / (mode + '.pid')}\n"
            )
            self.servers[mode] = Server(f"pgbouncer-{mode}", [binary, str(ini)],
                                        self.dir / f"{mode}.out", user="postgres")
        chown_tree(self.dir, "postgres")
        for server in self.servers.values():
            server.start()
        for mode, server in self.servers.items():
            port = self.transaction_port if mode == "transaction" else self.session_port
            wait_until(server, f"accepting connections on {port}",
                       functools.partial(_answers, port), timeout=20)
        self.startup_seconds = time.monotonic() - start

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        remove_dir(self.dir)


# -- Galera ---------------------------------------------------------------------------------------


class Galera:
    """A 3-node MariaDB Galera cluster: SQL ports 3307-3309, gcomm 4567/4577/4587."""

    sql_ports = (3307, 3308, 3309)
    gcomm_ports = (4567, 4577, 4587)
    sst_ports = (4444, 4445, 4446)

    def __init__(self) -> None:
        self.dir = BASE / "galera"
        self.nodes: list[Server] = []
        self.startup_seconds = 0.0

    def url(self, node: int, dbname: str) -> str:
        """URL of ``dbname`` through node ``node`` (0, 1 or 2)."""
        return f"mysql://root@127.0.0.1:{self.sql_ports[node]}/{dbname}"

    def _cnf(self, node: int) -> Path:
        return self.dir / f"node{node + 1}.cnf"

    def _datadir(self, node: int) -> Path:
        return self.dir / f"node{node + 1}"

    def _write_cnf(self, node: int) -> None:
        gcomm, sst, port = self.gcomm_ports[node], self.sst_ports[node], self.sql_ports[node]
        everyone = ",".join(f"127.0.0.1:{p}" for p in self.gcomm_ports)
        self._cnf(node).write_text(
            "[mysqld]\n"
            f"datadir = {self._datadir(node)}\n"
            f"socket = {self.dir / f'node{node + 1}.sock'}\n"
            f"pid-file = {self.dir / f'node{node + 1}.pid'}\n"
            f"port = {port}\n"
            "bind-address = 127.0.0.1\n"
            "skip-name-resolve\n"
            "performance_schema = OFF\n"
            "max_connections = 300\n"
            "binlog_format = ROW\n"
            "default_storage_engine = InnoDB\n"
            "innodb_autoinc_lock_mode = 2\n"
            "innodb_buffer_pool_size = 64M\n"
            "innodb_log_file_size = 32M\n"
            # Durability comes from replication here; a SIGKILL still leaves the OS's copy.
            "innodb_flush_log_at_trx_commit = 2\n"
            "wsrep_on = ON\n"
            f"wsrep_provider = {GALERA_LIBRARY}\n"
            "wsrep_cluster_name = peewee_checkpoints_topologies\n"
            f"wsrep_cluster_address = gcomm://{everyone}\n"
            f"wsrep_node_address = 127.0.0.1:{gcomm}\n"
            f"wsrep_node_name = node{node + 1}\n"
            f'wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:{gcomm};'
            f'ist.recv_addr=127.0.0.1:{gcomm + 1};gcache.size=64M"\n'
            f"wsrep_sst_receive_address = 127.0.0.1:{sst}\n"
            "wsrep_sst_method = rsync\n"
        )

    def query(self, node: int, sql: str, timeout: int = 3) -> Any:
        """First column of the first row of ``sql`` on node ``node``."""
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.sql_ports[node], user="root",
                               password="", connect_timeout=timeout, read_timeout=30,
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                return row[0] if row else None
        finally:
            conn.close()

    def status(self, node: int, name: str) -> str:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.sql_ports[node], user="root",
                               password="", connect_timeout=3, read_timeout=10, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW STATUS LIKE %s", (name,))
                row = cur.fetchone()
                return str(row[1]) if row else ""
        finally:
            conn.close()

    def _synced(self, node: int, size: int = 3) -> bool:
        return (self.status(node, "wsrep_local_state_comment") == "Synced"
                and self.status(node, "wsrep_cluster_size") == str(size))

    def _server(self, node: int, *extra: str) -> Server:
        return Server(f"galera-node{node + 1}",
                      [MARIADBD, f"--defaults-file={self._cnf(node)}", "--user=mysql", *extra],
                      self.dir / f"node{node + 1}.out", user="mysql")

    def start(self) -> None:
        """Install node 1's data directory, bootstrap node 1, then start 2 and 3 together (each
        gets node 1's data by rsync SST); wait until all three are Synced in a cluster of 3."""
        start = time.monotonic()
        for path in (MARIADBD, GALERA_LIBRARY):
            if not Path(path).exists():
                raise TopologyError(f"galera: {path} is missing (apt-get install mariadb-server "
                                    "galera-4)")
        clear_leftovers("galera", "galera")
        fresh_dir(self.dir)
        for node in range(3):
            self._write_cnf(node)
        chown_tree(self.dir, "mysql")
        run(["mariadb-install-db", f"--defaults-file={self._cnf(0)}", "--user=mysql",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve"], user="mysql", what="galera: mariadb-install-db",
            timeout=120)
        for node in (1, 2):  # the joiners receive node 1's data by rsync SST
            self._datadir(node).mkdir()
        chown_tree(self.dir, "mysql")
        self.nodes = [self._server(0, "--wsrep-new-cluster"), self._server(1),
                      self._server(2)]
        self.nodes[0].start()
        wait_until(self.nodes[0], "node 1 is Synced (bootstrap)",
                   lambda: self._synced(0, size=1), timeout=60)
        self.nodes[1].start()
        self.nodes[2].start()
        for node in range(3):
            wait_until(self.nodes[node], f"node {node + 1} is Synced in a cluster of 3",
                       functools.partial(self._synced, node), timeout=90)
        self.startup_seconds = time.monotonic() - start

    def _recovered_position(self, node: int) -> str:
        """The Galera position of a node's own data (``mariadbd --wsrep-recover``), which a
        restarted node must be given to rejoin by IST; what galera_recovery does for systemd."""
        log = self.dir / f"node{node + 1}.recover"
        log.unlink(missing_ok=True)
        run([MARIADBD, f"--defaults-file={self._cnf(node)}", "--user=mysql", "--wsrep-recover",
             f"--log-error={log}"], user="mysql", what=f"galera: recovery of node {node + 1}",
            timeout=60)
        for line in log.read_text(errors="replace").splitlines():
            if "Recovered position:" in line:
                return line.rsplit("Recovered position:", 1)[1].strip()
        raise TopologyError(f"galera: no recovered position for node {node + 1} in {log}:\n"
                            f"{log_tail(log)}")

    def _rejoin(self, node: int) -> None:
        """Start a stopped node on its own data, at its recovered position."""
        position = self._recovered_position(node)
        self.nodes[node] = self._server(node, f"--wsrep-start-position={position}")
        self.nodes[node].start()

    def restart(self, node: int, timeout: float = 90) -> float:
        """Start node ``node`` again with its own data (it rejoins by IST); wait until the
        whole cluster is Synced at 3. Returns seconds taken."""
        start = time.monotonic()
        if self.nodes[node].alive():
            return 0.0
        self._rejoin(node)
        for n in range(3):
            wait_until(self.nodes[n], f"node {n + 1} is Synced in a cluster of 3 after restart "
                       f"of node {node + 1}", functools.partial(self._synced, n), timeout=timeout)
        return time.monotonic() - start

    def kill(self, node: int) -> None:
        """SIGKILL node ``node``, as a crash would."""
        self.nodes[node].kill()

    def ensure_all_up(self) -> None:
        """Bring the cluster back to 3 Synced nodes after a test killed some of them."""
        down = [n for n in range(3) if not self.nodes[n].alive()]
        if not down:
            with contextlib.suppress(Exception):
                if all(self._synced(n) for n in range(3)):
                    return
        up = [n for n in range(3) if self.nodes[n].alive()]
        if not up:
            raise TopologyError("galera: every node is down; the cluster cannot be restored")
        # A survivor that lost quorum stays non-Primary until told to form a new cluster.
        if self.status(up[0], "wsrep_cluster_status") != "Primary":
            self.query(up[0], "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
            wait_until(self.nodes[up[0]], f"node {up[0] + 1} is Primary again",
                       lambda: self.status(up[0], "wsrep_cluster_status") == "Primary",
                       timeout=30)
        for node in down:
            self._rejoin(node)
        for n in range(3):
            wait_until(self.nodes[n], f"node {n + 1} is Synced in a cluster of 3 again",
                       functools.partial(self._synced, n), timeout=120)

    def stop(self) -> None:
        for server in self.nodes:
            server.stop(signal.SIGKILL)  # throwaway data: no clean shutdown needed
        remove_dir(self.dir)


# -- PostgreSQL primary + hot standby --------------------------------------------------------------


class StandbyPair:
    """A PostgreSQL 15 primary (:attr:`primary_port`) streaming to a hot standby
    (:attr:`standby_port`)."""

    primary_port, standby_port = PORTS["standby"]

    def __init__(self) -> None:
        self.dir = BASE / "standby"
        self.primary: Server | None = None
        self.standby: Server | None = None
        self.startup_seconds = 0.0

    def url(self, dbname: str, which: str = "primary") -> str:
        port = self.primary_port if which == "primary" else self.standby_port
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"

    def _postgres(self, name: str, datadir: Path) -> Server:
        # SIGINT: fast shutdown; SIGQUIT if the test process dies: immediate, no leftovers.
        return Server(f"standby-{name}", [str(PG_BIN / "postgres"), "-D", str(datadir)],
                      self.dir / f"{name}.log", user="postgres", stop_signal=signal.SIGINT,
                      death_signal=signal.SIGQUIT)

    def _configure(self, datadir: Path, port: int) -> None:
        with open(datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
                "shared_buffers = 64MB\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\nwal_receiver_status_interval = 1s\n"
                "logging_collector = off\nmax_connections = 100\n"
                # Segments in the data directory, not /dev/shm: nothing outlives a crash.
                "dynamic_shared_memory_type = mmap\n"
            )

    def start(self) -> None:
        """initdb the primary, start it, pg_basebackup -R the standby, start it; wait until
        the standby is in recovery and streaming."""
        start = time.monotonic()
        if not (PG_BIN / "initdb").exists():
            raise TopologyError(f"standby: {PG_BIN}/initdb is missing (postgresql-15)")
        clear_leftovers("standby", "standby")
        fresh_dir(self.dir)
        chown_tree(self.dir, "postgres")
        primary_dir, standby_dir = self.dir / "primary", self.dir / "standby"
        run([str(PG_BIN / "initdb"), "-D", str(primary_dir), "-U", "postgres", "--auth=trust",
             "--no-sync", "--no-instructions"], user="postgres", what="standby: initdb")
        self._configure(primary_dir, self.primary_port)
        with open(primary_dir / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self.primary = self._postgres("primary", primary_dir)
        self.primary.start()
        wait_until(self.primary, f"primary accepting connections on {self.primary_port}",
                   lambda: pg_query(self.primary_port, "SELECT 1") == 1, timeout=30)
        run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port),
             "-U", "postgres", "-D", str(standby_dir), "-R", "-X", "stream", "-c", "fast",
             "--no-sync"], user="postgres", what="standby: pg_basebackup")
        with open(standby_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.standby_port}\n")
        self.standby = self._postgres("standby", standby_dir)
        self.standby.start()
        wait_until(self.standby, f"standby accepting connections on {self.standby_port}",
                   lambda: pg_query(self.standby_port, "SELECT pg_is_in_recovery()") is True,
                   timeout=30)
        wait_until(self.primary, "the standby streaming from the primary",
                   lambda: pg_query(self.primary_port,
                                    "SELECT count(*) FROM pg_stat_replication "
                                    "WHERE state = 'streaming'") == 1, timeout=30)
        self.startup_seconds = time.monotonic() - start

    def healthy(self) -> bool:
        """True if the primary is a primary and the standby a streaming standby."""
        if not (self.primary and self.standby and self.primary.alive() and self.standby.alive()):
            return False
        try:
            return (pg_query(self.primary_port, "SELECT pg_is_in_recovery()") is False
                    and pg_query(self.standby_port, "SELECT pg_is_in_recovery()") is True)
        except Exception:
            return False

    def ensure_healthy(self) -> None:
        """Rebuild the pair if a test (failover) broke it."""
        if not self.healthy():
            self.stop()
            self.start()

    def create_database(self, name: str) -> None:
        """CREATE DATABASE on the primary and wait until the standby has it."""
        pg_query(self.primary_port, f'CREATE DATABASE "{name}"')
        self.wait_replayed()

    def wait_replayed(self, timeout: float = 20) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        assert self.standby is not None
        target = pg_query(self.primary_port, "SELECT pg_current_wal_lsn()::text")
        wait_until(self.standby, f"the standby replayed up to {target}",
                   lambda: pg_query(self.standby_port,
                                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                    (target,)) is True, timeout=timeout, interval=0.05)

    def fail_over(self) -> None:
        """Kill the primary (``pg_ctl -m immediate stop``) and promote the standby."""
        assert self.primary is not None and self.standby is not None
        run([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "primary"), "-m", "immediate", "-w",
             "stop"], user="postgres", what="standby: pg_ctl stop of the primary")
        self.primary.stop()
        run([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "standby"), "-w", "promote"],
            user="postgres", what="standby: pg_ctl promote")

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            if server is not None:
                server.stop()
        self.primary = self.standby = None
        remove_dir(self.dir)


TOPOLOGIES: dict[str, type[PgBouncer | Galera | StandbyPair]] = {
    "pgbouncer": PgBouncer, "galera": Galera, "standby": StandbyPair,
}


@contextlib.contextmanager
def started(topology: str) -> Iterator[Any]:
    """Start ``topology`` (after taking the session lock), yield it, stop it."""
    lock_session()
    instance = TOPOLOGIES[topology]()
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


if __name__ == "__main__":  # python -m tests.topologies._servers NAME...: start, report, stop
    for name in sys.argv[1:] or list(TOPOLOGIES):
        with started(name) as t:
            print(f"{name}: started in {t.startup_seconds:.1f}s")
