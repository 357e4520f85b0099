"""The command line on every backend.

Most tests run ``main(ARGS)`` in this process under click's ``CliRunner`` isolation (its own
stdin, stdout, stderr and environment), which is what ``peewee-checkpoints ARGS`` runs. A few
need a real process and start one: the console script and ``python -m`` (the same program),
Ctrl-C (a signal to a running copy), and peak memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import peewee as pw
import pytest
from click.testing import CliRunner

from peewee_checkpoints import (
    MemoryCheckpointProvider,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
    StoredCheckpoint,
)
from peewee_checkpoints import cli as cli_module
from peewee_checkpoints._ids import new_id
from peewee_checkpoints.cli import local_time, main

from .conftest import make_db_url

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "checkpoint.json"
_ENV_VARS = ("PEEWEE_CHECKPOINTS_DB_URL", "PEEWEE_CHECKPOINTS_CONFIG")


@dataclass
class Result:
    """What a run of the command line left: its exit code and its two output streams."""

    returncode: int
    stdout: bytes
    stderr: bytes


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2: always separate
        return CliRunner()


def cli(*args: str, cwd: Path, input: bytes | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> Result:
    """Run ``peewee-checkpoints ARGS`` in this process, in ``cwd``, with a clean environment."""
    environ: dict[str, str | None] = {var: None for var in _ENV_VARS}
    environ.update(env or {})
    before = Path.cwd()
    os.chdir(cwd)
    try:
        with _runner().isolation(input=input, env=environ) as streams:
            code = main(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
            result = Result(code, streams[0].getvalue(), streams[1].getvalue())
    finally:
        os.chdir(before)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr.decode()}")
    return result


def process(*args: str, cwd: Path, env: dict[str, str] | None = None,
            program: list[str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m peewee_checkpoints ARGS`` (or ``program``) as a real process."""
    full_env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    full_env.update(env or {})
    return subprocess.run([*(program or [sys.executable, "-m", "peewee_checkpoints"]), *args],
                          cwd=cwd, env=full_env, capture_output=True, timeout=300, check=False)


def out(proc: Result | subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode()


def err(proc: Result | subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode()


def jsonl(text: str | bytes) -> list[dict[str, Any]]:
    lines = text.splitlines() if isinstance(text, str) else text.decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def record(cp: StoredCheckpoint) -> dict[str, Any]:
    return {"id": cp.id, "name": cp.name, "agent_id": cp.agent_id, "session_id": cp.session_id,
            "agent_type": cp.agent_type, "created_at": cp.created_at, "state": cp.state}


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for i in range(depth):
        node = {"level": i, "child": [node]}
    return node


#: States that a careless JSON path would change: each must survive export -> import exactly.
TRICKY_STATES: list[dict[str, Any]] = [
    {"big": 2**70, "neg": -(2**64), "float": 0.1, "neg_zero": -0.0,
     "huge": 1.7976931348623157e308},
    {"nul": "a\x00b", "astral": "\U0001f600", "accents": "Ça été",
     "rtl": "\u05e9\u05dc\u05d5\u05dd"},
    {"z": 1, "a": 2, "m": {"y": [], "b": {}}},  # key order
    {"lone_surrogate": "\ud800"},
    _deep(300),
]


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def other_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'other.db'}"


# -- single checkpoints on every backend ---------------------------------------------------------


def test_store_show_list_and_delete_the_example_checkpoint(db_url: str, tmp: Path) -> None:
    example = json.loads(EXAMPLE.read_text())
    cid = out(cli("--db-url", db_url, "store", str(EXAMPLE), cwd=tmp)).strip()
    assert len(cid) == 26

    shown = json.loads(out(cli("--db-url", db_url, "show", cid, cwd=tmp)))
    assert shown.pop("id") == cid
    created_at = shown.pop("created_at")
    assert shown == example
    assert abs(created_at - time.time() * 1000) < 60_000

    table = out(cli("--db-url", db_url, "list", cwd=tmp)).splitlines()
    assert table[0].split()[:5] == ["ID", "NAME", "AGENT", "SESSION", "TYPE"]
    assert table[1].split() == [cid, "after-summary", "writer-1", "demo", "writer",
                                *local_time(created_at).split()]

    # The same checkpoint from stdin gets a new id.
    again = out(cli("--db-url", db_url, "store", "-", input=EXAMPLE.read_bytes(), cwd=tmp))
    assert again.strip() != cid

    deleted = cli("--db-url", db_url, "delete", cid, "NO-SUCH-ID", cwd=tmp, check=False)
    assert deleted.returncode == 1
    assert out(deleted) == f"deleted {cid}\n"
    assert err(deleted) == "error: no checkpoint with id 'NO-SUCH-ID'\n"
    missing = cli("--db-url", db_url, "show", cid, cwd=tmp, check=False)
    assert (missing.returncode, err(missing)) == (1, f"error: no checkpoint with id '{cid}'\n")


def test_list_filters_match_the_providers_listing(db_url: str, tmp: Path) -> None:
    rows = [
        StoredCheckpoint(new_id(), f"n{i}", f"agent-{i % 3}", {"i": i}, f"s{i % 2}",
                         "coder" if i % 4 else "writer", 1_700_000_000_000 + (i // 2) * 1000)
        for i in range(12)
    ]
    lines = b"".join(json.dumps(record(r)).encode() + b"\n" for r in rows)
    cli("--db-url", db_url, "import", input=lines, cwd=tmp)

    def listed(*args: str) -> list[dict[str, Any]]:
        return json.loads(out(cli("--db-url", db_url, "list", "--json", *args, cwd=tmp)))

    with PeeweeCheckpointProvider(db_url) as provider:
        def expected(**filters: Any) -> list[dict[str, Any]]:
            return [vars(i) for i in provider.list_checkpoints(**filters)]

        assert listed() == expected()
        assert len(listed()) == 12
        assert listed("--agent", "agent-1") == expected(agent_id="agent-1")
        assert listed("--session", "s0", "--type", "coder") == expected(session_id="s0",
                                                                        agent_type="coder")
        assert listed("--limit", "5") == expected(limit=5)
        assert listed("--limit", "0") == []
        middle = 1_700_000_000_000 + 3000
        assert listed("--before", str(middle)) == expected(before=middle)
        assert listed("--after", str(middle), "--agent", "agent-2") == expected(
            after=middle, agent_id="agent-2")
        # ISO 8601 with an offset, and "Z"
        assert listed("--after", "2023-11-14T22:13:23+00:00") == expected(after=middle)
        assert listed("--before", "2023-11-14T22:13:23Z") == expected(before=middle)
        assert listed("--agent", "nobody") == []
    # The global --json works too.
    assert json.loads(out(cli("--json", "--db-url", db_url, "list", "--limit", "1", cwd=tmp)))

    # prune: by count per agent and/or by age; a checkpoint goes if either rule removes it.
    newest_first = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    rank: dict[str, int] = {}
    keep = []
    for r in newest_first:
        rank[r.agent_id] = rank.get(r.agent_id, 0) + 1
        if rank[r.agent_id] <= 3 and r.created_at >= middle:
            keep.append(r.id)
    dry = cli("--db-url", db_url, "prune", "--keep-last-per-agent", "3", "--before", str(middle),
              "--dry-run", cwd=tmp)
    assert out(dry) == f"would delete {12 - len(keep)} checkpoints\n"
    assert len(listed()) == 12
    pruned = cli("--db-url", db_url, "prune", "--keep-last-per-agent", "3", "--before",
                 str(middle), "--json", cwd=tmp)
    assert json.loads(out(pruned)) == {"deleted": 12 - len(keep)}
    assert [i["id"] for i in listed()] == keep


def test_migrate_and_status(db_url: str, tmp: Path) -> None:
    if db_url.startswith("sqlite:"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # status creates no database
    before = json.loads(out(cli("--db-url", db_url, "status", "--json", cwd=tmp)))
    assert before["applied_migrations"] == [] and before["checkpoints"] is None
    assert "001_initial" in before["pending_migrations"]

    applied = out(cli("--db-url", db_url, "migrate", cwd=tmp))
    assert applied.splitlines() == [f"applied {name}" for name in before["pending_migrations"]]
    assert out(cli("--db-url", db_url, "migrate", cwd=tmp)) == "up to date: no pending migrations\n"

    cli("--db-url", db_url, "store", str(EXAMPLE), cwd=tmp)
    after = json.loads(out(cli("--db-url", db_url, "status", "--json", cwd=tmp)))
    assert after["applied_migrations"] == before["pending_migrations"]
    assert after["pending_migrations"] == []
    assert after["checkpoints"] == 1
    assert after["backend"] in db_url.split(":", maxsplit=1)[0]
    text = out(cli("--db-url", db_url, "status", cwd=tmp))
    assert "checkpoints: 1" in text and f"backend:     {after['backend']}" in text


# -- export / import / copy on every backend -------------------------------------------------------


def test_export_then_import_is_exact_and_an_existing_id_is_skipped(
    db_url: str, other_sqlite: str, tmp: Path
) -> None:
    with PeeweeCheckpointProvider(other_sqlite) as source:
        for i, state in enumerate(TRICKY_STATES):
            source.store_checkpoint(NamedCheckpoint(f"tricky-{i}", "agent", state, "s", "t"))
    cli("--db-url", other_sqlite, "export", "--out", str(tmp / "a.jsonl"), cwd=tmp)
    assert (tmp / "a.jsonl").stat().st_mode & 0o777 == 0o600

    first = cli("--db-url", db_url, "import", str(tmp / "a.jsonl"), "--json", cwd=tmp)
    assert json.loads(out(first)) == {"imported": 5, "skipped": 0, "vanished": 0}
    second = cli("--db-url", db_url, "import", str(tmp / "a.jsonl"), cwd=tmp)
    assert out(second) == "imported 0, skipped 5 (id already present)\n"
    # New and existing ids mixed in one batch (on PostgreSQL a duplicate must not abort it).
    extra = json.dumps({"id": "EXTRA", "name": "x", "agent_id": "other", "state": {},
                        "created_at": 5}).encode()
    mixed = (tmp / "a.jsonl").read_bytes().replace(b"\n", b"\n" + extra + b"\n", 1)
    third = cli("--db-url", db_url, "import", "-", input=mixed, cwd=tmp)
    assert out(third) == "imported 1, skipped 5 (id already present)\n"
    assert cli("--db-url", db_url, "delete", "EXTRA", cwd=tmp).returncode == 0

    exported = cli("--db-url", db_url, "export", cwd=tmp)
    assert exported.stdout == (tmp / "a.jsonl").read_bytes()
    assert err(exported) == "exported 5 checkpoints\n"
    with PeeweeCheckpointProvider(db_url) as target:
        for item in target.list_checkpoints():
            copy = target.retrieve_checkpoint(item.id)
            assert copy is not None
            expected = TRICKY_STATES[int(copy.name.split("-")[1])]
            assert copy.state == expected
            # == cannot see 2**70 read back as a float, -0.0 as 0.0, or key order: JSON can.
            assert json.dumps(copy.state) == json.dumps(expected)


def test_copy_to_a_url_and_back_copies_only_what_is_missing(
    db_url: str, other_sqlite: str, tmp: Path
) -> None:
    with PeeweeCheckpointProvider(db_url) as provider:
        for i in range(6):
            provider.store_checkpoint(
                NamedCheckpoint(f"n{i}", "a", {"i": i}, created_at=10 + i // 3))
    first = cli("--db-url", db_url, "copy", "--to", other_sqlite, cwd=tmp)
    assert out(first) == "copied 6, skipped 0 (id already present)\n"
    again = cli("--db-url", db_url, "copy", "--to", other_sqlite, "--json", cwd=tmp)
    assert json.loads(out(again)) == {"copied": 0, "skipped": 6, "vanished": 0}

    with PeeweeCheckpointProvider(other_sqlite) as other:
        other.store_checkpoint(NamedCheckpoint("only-in-sqlite", "a", {}, created_at=11))
    back = cli("--db-url", other_sqlite, "copy", "--to", db_url, cwd=tmp)
    assert out(back) == "copied 1, skipped 6 (id already present)\n"
    assert (cli("--db-url", db_url, "export", cwd=tmp).stdout
            == cli("--db-url", other_sqlite, "export", cwd=tmp).stdout)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["list", "--bogus"], None, "--bogus"),
        (["show"], None, "error: Missing argument"),
        (["prune"], None, "prune needs --before and/or --keep-last-per-agent"),
        (["list", "--before", "yesterday"], None, "is neither epoch milliseconds nor an ISO"),
        (["list", "--limit", "-1"], None, "error: Invalid value for '--limit'"),
        (["store"], b"{not json", "error: the checkpoint in <stdin> is not valid JSON"),
        (["store"], b'{"name": "n", "state": {}}', "lacks the field(s) agent_id"),
        (["store"], b'{"name": "n", "agent_id": "a", "state": {}, "colour": 1}',
         "unknown field(s) 'colour'; the fields are name, agent_id, session_id, agent_type, "
         "created_at, state\n"),
        (["import"], b'{"id": "A", "name": "n", "agent_id": "a", "state": {}, "colour": 1}',
         "the fields are id, name, agent_id, session_id, agent_type, created_at, state\n"),
        (["store"], b'{"name": "n", "agent_id": "a", "state": {"x": NaN}}', "error: state"),
        (["store"], b'{"id": "X", "name": "n", "agent_id": "a", "state": {}}', "use import"),
        (["store"], b'{"name": "", "agent_id": "a", "state": {}}', "name must not be empty"),
        (["import"], b'{"id": "A", "name": "n", "agent_id": "a", "state": {}}\n[1]\n',
         "error: line 2 of stdin must be a JSON object, not list (1 imported before it"),
        (["--db-url", "sqlite:///x.db", "--provider", "p", "list"], None,
         "--db-url cannot be combined with --config or --provider"),
        (["--db-url", "oracle://u:hunter2@h/db", "list"], None,
         "error: unsupported db_url scheme oracle://"),
        (["--db-url", "mysql://root@localhost", "list"], None, "names no database"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_usage_config_and_input_errors_exit_2_with_one_line(
    tmp: Path, args: list[str], stdin: bytes | None, message: str
) -> None:
    proc = cli(*args, input=stdin, cwd=tmp, check=False,
               env={"PEEWEE_CHECKPOINTS_DB_URL": f"sqlite:///{tmp / 'c.db'}"})
    assert proc.returncode == 2, err(proc)
    assert message in err(proc)
    assert err(proc).startswith("error: ")
    assert "Traceback" not in err(proc) and "hunter2" not in err(proc)
    assert out(proc) == ""


def test_a_storage_error_exits_1_without_password_or_traceback_unless_verbose(tmp: Path) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/nowhere?connect_timeout=3"
    proc = cli("--db-url", url, "list", cwd=tmp, check=False)
    assert proc.returncode == 1
    assert err(proc).startswith("error: could not ")
    assert "postgres:***@127.0.0.1:1" in err(proc)
    assert "Traceback" not in err(proc) and "hunter2" not in err(proc)

    verbose = cli("-v", "--db-url", url, "list", cwd=tmp, check=False,
                  env={"PEEWEE_CHECKPOINTS_DB_URL": url})
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in err(verbose)
    assert "StorageError" in err(verbose)
    assert "hunter2" not in err(verbose)
    assert "\nerror: could not " in err(verbose)

    # The same from a config file, the password from the environment.
    (tmp / "c.toml").write_text('[checkpoints.providers.p]\ntype = "peewee"\n'
                                'db_url = "postgresql://postgres:${PW}@127.0.0.1:1/nowhere"\n')
    configured = cli("-v", "--config", "c.toml", "list", cwd=tmp, check=False,
                     env={"PW": "hunter2"})
    assert configured.returncode == 1
    assert "Traceback" in err(configured) and "postgres:***@127.0.0.1:1" in err(configured)
    assert "hunter2" not in err(configured)


def test_the_store_comes_from_flags_then_environment_then_config_file_then_default(
    tmp: Path,
) -> None:
    def count(name: str) -> int:
        with PeeweeCheckpointProvider(f"sqlite:///{tmp / name}") as provider:
            return len(provider.list_checkpoints())

    def store(*flags: str, **env: str) -> None:
        cli(*flags, "store", str(EXAMPLE), cwd=tmp, env=env)

    store()  # nothing configured: the embedded default, ./checkpoints.db
    assert count("checkpoints.db") == 1
    (tmp / "checkpoints.toml").write_text(
        '[checkpoints]\nactive = "main"\n'
        '[checkpoints.providers.main]\ntype = "peewee"\ndb_url = "sqlite:///main.db"\n'
        '[checkpoints.providers.other]\ntype = "peewee"\ndb_url = "sqlite:///other.db"\n'
    )
    (tmp / "alt.toml").write_text(
        '[checkpoints.providers.alt]\ntype = "peewee"\ndb_url = "sqlite:///alt.db"\n')
    env_url = {"PEEWEE_CHECKPOINTS_DB_URL": f"sqlite:///{tmp / 'env.db'}"}
    store()  # ./checkpoints.toml, its active provider
    store("--provider", "other")
    store(**env_url)  # the environment beats the config file
    store("--provider", "other", **env_url)  # a flag beats the environment
    store("--config", "alt.toml", **env_url)
    store("--db-url", f"sqlite:///{tmp / 'flag.db'}", **env_url)
    store(PEEWEE_CHECKPOINTS_CONFIG="alt.toml")  # the config variable beats ./checkpoints.toml
    assert [count(n) for n in ("main.db", "other.db", "env.db", "alt.db", "flag.db")] == [
        1, 2, 1, 2, 1]
    assert count("checkpoints.db") == 1

    # copy --to takes a provider name from the same config.
    copied = cli("copy", "--to", "other", cwd=tmp)
    assert out(copied) == "copied 1, skipped 0 (id already present)\n"
    assert count("other.db") == 3


def test_providers_lists_the_installed_types_and_their_distribution(tmp: Path) -> None:
    table = out(cli("providers", cwd=tmp)).splitlines()
    assert table[0].split() == ["TYPE", "DISTRIBUTION", "VERSION", "OBJECT", "STATUS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["peewee"][1:] == ["peewee-checkpoints", version("peewee-checkpoints"),
                                  "peewee_checkpoints.peewee_provider:PeeweeCheckpointProvider",
                                  "ok"]
    assert rows["memory"][1] == "peewee-checkpoints"
    listed = {p["name"]: p for p in json.loads(out(cli("providers", "--json", cwd=tmp)))}
    assert listed["peewee"]["distribution"] == "peewee-checkpoints"
    assert listed["memory"]["error"] is None


def test_python_m_and_the_console_script_are_the_same_program(tmp: Path) -> None:
    script = Path(sys.executable).parent / "peewee-checkpoints"
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    help_m = process("--help", cwd=tmp)
    assert help_m.returncode == 0 and "Usage: peewee-checkpoints" in out(help_m)
    assert out(process("--help", cwd=tmp, program=[str(script)])) == out(help_m)
    # With no arguments at all: the same help, on stdout, and no error (exit 0).
    bare = process(cwd=tmp, program=[str(script)])
    assert (bare.returncode, out(bare), err(bare)) == (0, out(help_m), "")
    failed = process("show", cwd=tmp)
    assert failed.returncode == 2 and err(failed).startswith("error: Missing argument")


# -- the first hour of a new user (issue 16) ----------------------------------------------------


def test_a_relative_sqlite_path_in_a_config_file_is_found_from_any_directory(tmp: Path) -> None:
    project, elsewhere = tmp / "project", tmp / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "checkpoints.toml").write_text(
        '[checkpoints]\nactive = "main"\n'
        '[checkpoints.providers.main]\ntype = "peewee"\ndb_url = "sqlite:///checkpoints.db"\n')
    cid = out(cli("store", str(EXAMPLE), cwd=project)).strip()
    config = str(project / "checkpoints.toml")
    listed = cli("--config", config, "list", "--json", cwd=elsewhere)
    assert [item["id"] for item in json.loads(out(listed))] == [cid]
    assert list(elsewhere.iterdir()) == []  # no new, empty checkpoints.db here
    status = json.loads(out(cli("--config", config, "status", "--json", cwd=elsewhere)))
    assert status["url"] == f"sqlite:///{project / 'checkpoints.db'}"


READ_ONLY = [["show", "01M8B610AZ8M65MK2HP9YT39PW"], ["list"], ["export"], ["status"],
             ["delete", "01M8B610AZ8M65MK2HP9YT39PW"], ["prune", "--before", "5"],
             ["copy", "--to", "sqlite:///target.db"]]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_a_command_that_only_reads_refuses_a_missing_sqlite_file_and_creates_nothing(
    tmp: Path, command: list[str]
) -> None:
    typo = cli("--db-url", "sqlite:///typo2.db", *command, cwd=tmp, check=False)
    assert typo.returncode == 2, err(typo)
    assert err(typo) == (
        f"error: no SQLite database at {tmp / 'typo2.db'} (from --db-url), and '{command[0]}' "
        "does not create one: check the path, or create the database with "
        "'peewee-checkpoints migrate' (store and import create it too)\n")
    assert out(typo) == ""
    # From a config file and from the environment, the message names where the URL came from.
    (tmp / "c.toml").write_text('[checkpoints.providers.p]\ntype = "peewee"\n'
                                'db_url = "sqlite:///typo3.db"\n')
    configured = cli("--config", "c.toml", *command, cwd=tmp, check=False)
    assert configured.returncode == 2
    assert f"no SQLite database at {tmp / 'typo3.db'} (from c.toml: checkpoints.providers.p)" \
        in err(configured)
    env = cli(*command, cwd=tmp, check=False,
              env={"PEEWEE_CHECKPOINTS_DB_URL": "sqlite:///typo4.db"})
    assert "(from $PEEWEE_CHECKPOINTS_DB_URL)" in err(env)
    assert list(tmp.iterdir()) == [tmp / "c.toml"]


def test_a_command_that_only_reads_never_migrates_a_database(db_url: str, tmp: Path) -> None:
    if db_url.startswith("sqlite:"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # an empty SQLite database
    safe = PeeweeCheckpointProvider(db_url).url
    for command in ([c for c in READ_ONLY if c[0] != "status"]):
        proc = cli("--db-url", db_url, *command, cwd=tmp, check=False)
        assert (proc.returncode, err(proc)) == (1, (
            f"error: no peewee-checkpoints tables in {safe}; run 'peewee-checkpoints migrate' "
            "to create them (store and import create them too)\n")), command
    # status reports the pending migrations instead of failing.
    status = json.loads(out(cli("--db-url", db_url, "status", "--json", cwd=tmp)))
    assert status["applied_migrations"] == [] and status["checkpoints"] is None
    with PeeweeCheckpointProvider(db_url) as provider:
        assert provider.pending_migrations() == status["pending_migrations"] != []
    assert not (tmp / "target.db").exists()  # copy stopped before opening its target

    # A database migrated by an older version: read commands ask for migrate, not do it.
    with PeeweeCheckpointProvider(db_url) as provider:
        provider.migrate()
        newest = provider.rollback_migration()
    listed = cli("--db-url", db_url, "list", cwd=tmp, check=False)
    assert listed.returncode == 1
    assert err(listed) == (f"error: {safe} needs the migration(s) {newest} first, and 'list' "
                           "does not migrate: run 'peewee-checkpoints migrate'\n")
    assert out(cli("--db-url", db_url, "migrate", cwd=tmp)) == f"applied {newest}\n"
    assert cli("--db-url", db_url, "list", cwd=tmp).returncode == 0


def test_every_command_takes_json_after_its_name(tmp: Path) -> None:
    db = f"sqlite:///{tmp / 'c.db'}"
    cid = json.loads(out(cli("--db-url", db, "store", str(EXAMPLE), "--json", cwd=tmp)))["id"]
    shown = cli("--db-url", db, "show", cid, "--json", cwd=tmp)
    assert out(shown) == out(cli("--json", "--db-url", db, "show", cid, cwd=tmp))
    assert json.loads(out(shown))["id"] == cid
    exported = cli("--db-url", db, "export", "--json", cwd=tmp)  # stdout is the data already
    assert [r["id"] for r in jsonl(exported.stdout)] == [cid]
    assert err(exported) == "exported 1 checkpoint\n"
    to_file = cli("--db-url", db, "export", "--out", "e.jsonl", "--json", cwd=tmp)
    assert json.loads(out(to_file)) == {"exported": 1, "out": "e.jsonl"}
    group = cli_module.cli
    with click.Context(group) as ctx:
        for name in group.list_commands(ctx):  # the lazily loaded groups too
            command = group.get_command(ctx, name)
            assert command is not None
            assert "--json" in [o for p in command.params for o in p.opts], name


def test_no_arguments_prints_the_help_and_is_not_an_error(tmp: Path) -> None:
    bare = cli(cwd=tmp)
    assert (bare.returncode, err(bare)) == (0, "")
    assert out(bare) == out(cli("--help", cwd=tmp))
    assert out(bare).startswith("Usage: peewee-checkpoints [OPTIONS] COMMAND [ARGS]...")


def test_messages_name_the_flags_not_python_arguments(tmp: Path) -> None:
    (tmp / "checkpoints.toml").write_text(
        '[checkpoints]\nactive = "main"\n'
        '[checkpoints.providers.main]\ntype = "peewee"\ndb_url = "sqlite:///m.db"\n'
        '[checkpoints.providers.other]\ntype = "peewee"\ndb_url = "sqlite:///o.db"\n')
    cli("store", str(EXAMPLE), cwd=tmp)
    wrong = cli("--provider", "reporting", "list", cwd=tmp, check=False)
    assert (wrong.returncode, err(wrong)) == (2, (
        "error: checkpoints.toml: no provider named 'reporting' (from --provider) is defined; "
        "defined: 'main', 'other'\n"))
    to = cli("copy", "--to", "nosuch", cwd=tmp, check=False)
    assert to.returncode == 2 and "'nosuch' (from --to) is defined" in err(to)
    (tmp / "checkpoints.toml").write_text(
        (tmp / "checkpoints.toml").read_text().replace('active = "main"', ""))
    several = cli("list", cwd=tmp, check=False)
    assert several.returncode == 2 and err(several).endswith("set it, or pass --provider\n")
    elsewhere = tmp / "no-config"
    elsewhere.mkdir()
    none = cli("--provider", "reporting", "list", cwd=elsewhere, check=False)
    assert none.returncode == 2 and "no config file was found" in err(none)
    for proc in (wrong, to, several, none):
        assert "name=" not in err(proc) and "<default>" not in err(proc)


def test_show_prints_text_as_text_whatever_the_integers(tmp: Path) -> None:
    db = f"sqlite:///{tmp / 'c.db'}"
    states = [{"t": "café ☕ \U0001f600", "n": 1}, {"t": "café ☕ \U0001f600", "n": 2**70},
              {"t": "café", "n": 2**70, "lone": "\ud800"}]
    for state in states:
        cid = out(cli("--db-url", db, "store", input=json.dumps(
            {"name": "n", "agent_id": "a", "state": state}).encode(), cwd=tmp)).strip()
        shown = out(cli("--db-url", db, "show", cid, cwd=tmp))
        assert '"t": "café' in shown and "\\u00e9" not in shown
        assert json.loads(shown)["state"] == state
        assert json.dumps(json.loads(shown)["state"]) == json.dumps(state)
    assert '"lone": "\\ud800"' in shown  # UTF-8 cannot hold it: escaped, and exact


def test_writing_into_a_memory_provider_is_refused_because_it_vanishes_at_exit(tmp: Path) -> None:
    (tmp / "checkpoints.toml").write_text(
        '[checkpoints]\nactive = "main"\n'
        '[checkpoints.providers.main]\ntype = "peewee"\ndb_url = "sqlite:///m.db"\n'
        '[checkpoints.providers.scratch]\ntype = "memory"\n')
    cli("store", str(EXAMPLE), cwd=tmp)
    copied = cli("copy", "--to", "scratch", cwd=tmp, check=False)
    assert (copied.returncode, out(copied)) == (2, "")
    assert err(copied) == (
        "error: --to scratch is a memory provider, which keeps checkpoints only while this "
        "command runs: what it wrote would vanish at exit. Use a database (a db_url, or a "
        'provider of type = "peewee")\n')
    for args in (["store", str(EXAMPLE)], ["import", "-"]):
        proc = cli("--provider", "scratch", *args, cwd=tmp, check=False, input=b"")
        assert proc.returncode == 2 and "--provider scratch is a memory provider" in err(proc)
    # Reading one is harmless (and empty).
    assert out(cli("--provider", "scratch", "list", "--json", cwd=tmp)) == "[]\n"


def test_a_count_that_fails_is_a_storage_error_that_never_chains_a_password(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = cli_module.Session(urls=["postgresql://u:hunter2@db.example/x"])
    with PeeweeCheckpointProvider(f"sqlite:///{tmp / 'c.db'}") as provider:
        provider.migrate()
        assert cli_module._count(session, provider) == 0
        provider.database.execute_sql(f"DROP TABLE {provider.model._meta.table_name}")
        with pytest.raises(StorageError, match="could not count checkpoints on") as dropped:
            cli_module._count(session, provider)
        assert isinstance(dropped.value.__cause__, pw.OperationalError)

        def leak(*_: object) -> None:
            raise pw.OperationalError("authentication failed for password hunter2")

        monkeypatch.setattr(pw.ModelSelect, "count", leak)
        with pytest.raises(StorageError) as leaked:
            cli_module._count(session, provider)
    assert "hunter2" not in str(leaked.value) and "***" in str(leaked.value)
    assert leaked.value.__cause__ is None and leaked.value.__context__ is None
    assert cli_module._count(session, MemoryCheckpointProvider()) == 0  # its count_checkpoints


def test_export_and_copy_count_rows_only_for_a_progress_bar_someone_sees(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_count(*_: object) -> None:
        raise AssertionError("counted without a terminal")

    db = f"sqlite:///{tmp / 'c.db'}"
    cli("--db-url", db, "store", str(EXAMPLE), cwd=tmp)
    monkeypatch.setattr(cli_module, "_count", no_count)
    assert len(jsonl(cli("--db-url", db, "export", cwd=tmp).stdout)) == 1
    cli("--db-url", db, "copy", "--to", f"sqlite:///{tmp / 'd.db'}", cwd=tmp)


class _TwoArgumentError(StorageError):
    def __init__(self, table: str, detail: str) -> None:
        super().__init__(f"{table}: {detail}")


def test_an_import_error_after_some_rows_keeps_its_exit_code_whatever_its_constructor(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(provider: Any, lines: Any, counts: Any, *_: Any, **__: Any) -> None:
        counts.written = 3
        raise _TwoArgumentError("checkpoints", "disk full")

    monkeypatch.setattr(cli_module.transfer, "import_lines", failing)
    proc = cli("--db-url", f"sqlite:///{tmp / 'c.db'}", "import", input=b"", cwd=tmp,
               check=False)
    assert (proc.returncode, err(proc)) == (1, (
        "error: checkpoints: disk full (3 imported before it are kept, and skipped when you "
        "import again)\n"))
    verbose = cli("-v", "--db-url", f"sqlite:///{tmp / 'c.db'}", "import", input=b"", cwd=tmp,
                  check=False)
    assert verbose.returncode == 1 and "_TwoArgumentError: checkpoints: disk full" in err(verbose)


# -- 10,000 checkpoints across backends ----------------------------------------------------------


@pytest.fixture
def second_db(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory: a fresh database on a named backend, dropped at the end of the test."""
    made: list[Iterator[str]] = []

    def make(backend: str) -> str:
        gen = make_db_url(backend, servers, tmp_path_factory)
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        gen.close()


def fill(db_url: str, count: int) -> None:
    """Store ``count`` checkpoints fast (one transaction); four share each created_at."""
    with PeeweeCheckpointProvider(db_url) as provider:
        provider.migrate()
        with provider.database.atomic():
            for i in range(count):
                provider.import_checkpoint(StoredCheckpoint(
                    new_id(), f"step-{i}", f"agent-{i % 17}",
                    {"i": i, "messages": [{"role": "user", "content": "x" * 100}],
                     "big": 2**65 + i, "f": i / 7},
                    f"s-{i % 101}", "coder", 1_700_000_000_000 + i // 4))


def count_rows(db_url: str) -> int:
    with PeeweeCheckpointProvider(db_url) as provider:
        return int(provider.model.select().count())


N_BIG = 10_000


@pytest.mark.slow
@pytest.mark.backends("sqlite", "postgres")
def test_copy_10k_sqlite_to_postgres_interrupted_then_resumed_matches_record_by_record(
    second_db: Any, tmp: Path
) -> None:
    source, target = second_db("sqlite"), second_db("postgres")
    fill(source, N_BIG)
    before = cli("--db-url", source, "export", cwd=tmp).stdout

    # Ctrl-C midway: the copy stops after the row it is writing and says how to resume.
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    proc = subprocess.Popen([sys.executable, "-m", "peewee_checkpoints", "--db-url", source,
                             "copy", "--to", target], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while count_rows_safe(target) < 300 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    message = stderr.decode()
    assert "run the same copy again" in message and "Traceback" not in message
    present = count_rows(target)
    assert 300 <= present < N_BIG
    assert f"interrupted after copying {present} " in message

    # What was copied is whole: every target record equals its source record.
    partial = cli("--db-url", target, "export", cwd=tmp).stdout.splitlines()
    assert len(partial) == present
    assert set(partial) <= set(before.splitlines())

    resumed = cli("--db-url", source, "copy", "--to", target, "--json", cwd=tmp)
    assert json.loads(out(resumed)) == {"copied": N_BIG - present, "skipped": present,
                                        "vanished": 0}
    assert cli("--db-url", target, "export", cwd=tmp).stdout == before


def count_rows_safe(db_url: str) -> int:
    try:
        return count_rows(db_url)
    except Exception:  # the copy has not created the table yet
        return 0


@pytest.mark.slow
@pytest.mark.backends("mysql", "sqlite")
def test_copy_10k_mariadb_to_sqlite_matches_record_by_record(second_db: Any, tmp: Path) -> None:
    source, target = second_db("mysql"), second_db("sqlite")
    fill(source, N_BIG)
    before = cli("--db-url", source, "export", "--out", str(tmp / "before.jsonl"), cwd=tmp)
    assert err(before) == f"exported {N_BIG} checkpoints\n"

    copied = cli("--db-url", source, "copy", "--to", target, cwd=tmp)
    assert out(copied) == f"copied {N_BIG}, skipped 0 (id already present)\n"
    cli("--db-url", target, "export", "--out", str(tmp / "after.jsonl"), cwd=tmp)
    before_lines = (tmp / "before.jsonl").read_bytes().splitlines()
    after_lines = (tmp / "after.jsonl").read_bytes().splitlines()
    assert len(before_lines) == N_BIG
    for a, b in zip(before_lines, after_lines, strict=True):
        assert json.loads(a) == json.loads(b)
    assert before_lines == after_lines

    again = cli("--db-url", source, "copy", "--to", target, cwd=tmp)
    assert out(again) == f"copied 0, skipped {N_BIG} (id already present)\n"


@pytest.mark.slow
@pytest.mark.backends("sqlite", "mysql")
def test_import_interrupted_by_ctrl_c_resumes_with_exact_counts(second_db: Any, tmp: Path) -> None:
    source, target = second_db("sqlite"), second_db("mysql")
    fill(source, 5000)
    cli("--db-url", source, "export", "--out", str(tmp / "all.jsonl"), cwd=tmp)
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    proc = subprocess.Popen([sys.executable, "-m", "peewee_checkpoints", "--db-url", target,
                             "import", str(tmp / "all.jsonl")], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while count_rows_safe(target) < 100 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    present = count_rows(target)
    assert 100 <= present < 5000
    assert f"interrupted after importing {present} and skipping 0" in stderr.decode()

    resumed = cli("--db-url", target, "import", str(tmp / "all.jsonl"), cwd=tmp)
    assert out(resumed) == f"imported {5000 - present}, skipped {present} (id already present)\n"
    assert (cli("--db-url", target, "export", cwd=tmp).stdout
            == (tmp / "all.jsonl").read_bytes())


_PEAK_RSS = (
    "import resource, sys\n"
    "from peewee_checkpoints.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_rss_kib(*args: str, cwd: Path) -> int:
    """Run the CLI in a fresh interpreter; its peak resident memory in KiB (Linux)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, *args], cwd=cwd,
                          capture_output=True, check=False, timeout=300,
                          env={k: v for k, v in os.environ.items() if k not in _ENV_VARS})
    assert proc.returncode == 0, err(proc)
    return int(err(proc).splitlines()[-1])


@pytest.mark.slow
@pytest.mark.backends("sqlite")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is KiB on Linux")
def test_export_import_and_copy_memory_does_not_grow_with_the_number_of_rows(tmp: Path) -> None:
    peaks: dict[int, list[int]] = {}
    for n in (500, 10_000):
        src, dst, dst2 = (f"sqlite:///{tmp / f'{name}{n}.db'}" for name in ("src", "dst", "cp"))
        with PeeweeCheckpointProvider(src) as provider, provider.database.atomic():
            for i in range(n):  # 4 KiB states: 40 MiB in all for the larger store
                provider.import_checkpoint(StoredCheckpoint(
                    new_id(), f"n{i}", "a", {"text": f"{i:08d}" * 512}, created_at=i))
        out_file = str(tmp / f"{n}.jsonl")
        peaks[n] = [
            peak_rss_kib("--db-url", src, "export", "--out", out_file, cwd=tmp),
            peak_rss_kib("--db-url", dst, "import", out_file, cwd=tmp),
            peak_rss_kib("--db-url", src, "copy", "--to", dst2, cwd=tmp),
        ]
        assert count_rows(dst) == count_rows(dst2) == n
    for small, big in zip(peaks[500], peaks[10_000], strict=True):
        # 20x the rows and 38 MiB more data; holding the states would add 40 MiB, holding the
        # listing about 5 MiB. Measured: 1.6 MiB.
        assert big - small < 4 * 1024, peaks
