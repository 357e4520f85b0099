"""The README, followed as a new user would: its own commands, read from README.md itself.

README.md marks the blocks to run with ``<!-- walkthrough: NAME -->`` on the line before each
fenced block: ``setup`` (a fresh virtualenv and ``pip install .``, from the root of a clone),
``config`` (the ``checkpoints.toml`` to write), ``commands`` (store, list, show, status),
``postgres-line`` (the one line that moves the store to PostgreSQL) and ``main-job`` (the
first of "The two commands"). Nothing here repeats them: edit the README and this test runs
the edited commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import PeeweeCheckpointProvider

from .conftest import create_server_database, drop_server_database
from .test_packaging import _copy_source

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = json.loads((ROOT / "examples" / "checkpoint.json").read_text(encoding="utf-8"))

_BLOCK = re.compile(r"^<!-- walkthrough: ([\w-]+) -->\n```[\w-]*\n(.*?)^```", re.S | re.M)
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
# What a user's shell might carry that would choose another store than the README's.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PEEWEE_CHECKPOINTS_DB_URL",
                "PEEWEE_CHECKPOINTS_CONFIG", "DATABASE_URL")

pytestmark = pytest.mark.slow


def readme_blocks() -> dict[str, str]:
    """The README's marked blocks by name."""
    blocks = dict(_BLOCK.findall(README.read_text(encoding="utf-8")))
    missing = {"setup", "config", "commands", "postgres-line", "main-job"} - set(blocks)
    assert not missing, f"README.md lost its walkthrough markers: {sorted(missing)}"
    return blocks


@dataclass
class Walkthrough:
    """What steps 1-3 of the README's "Try it" left behind."""

    blocks: dict[str, str]
    source: Path  # the clone the user started from
    demo: Path  # the directory mktemp -d made: the venv, checkpoints.toml, checkpoints.db
    env: dict[str, str]
    sqlite_id: str
    sqlite_output: str


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    """Run ``script`` as one bash session that stops at the first failing command."""
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def reported(output: str, key: str) -> str:
    """A value the test's own ``echo KEY=value`` lines (not the README's) printed."""
    values = re.findall(rf"^{key}=(.*)$", output, re.M)
    assert len(values) == 1, output
    return values[0]


def assert_listed_and_shown(output: str, checkpoint_id: str) -> None:
    """``list`` printed a table row for the id and ``show`` the checkpoint with that id."""
    assert _ULID.fullmatch(checkpoint_id), checkpoint_id
    row = rf"^{checkpoint_id}\s+{EXAMPLE['name']}\s+{EXAMPLE['agent_id']}\s"
    assert re.search(row, output, re.M), output
    assert f'"id": "{checkpoint_id}"' in output, output


def assert_stored(db_url: str, checkpoint_id: str) -> None:
    with PeeweeCheckpointProvider(db_url) as provider:
        stored = provider.retrieve_checkpoint(checkpoint_id)
    assert stored is not None
    got: dict[str, Any] = {k: getattr(stored, k) for k in EXAMPLE}
    assert got == EXAMPLE


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Walkthrough:
    """Steps 1-3 on SQLite: a fresh venv, ``pip install .``, the config file, the commands."""
    blocks = readme_blocks()
    base = tmp_path_factory.mktemp("walkthrough")
    source = _copy_source(base / "peewee-checkpoints")
    # "python3" is this interpreter, so the new virtualenv has the Python the suite runs on.
    shims = base / "bin"
    shims.mkdir()
    shim = shims / "python3"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    (base / "tmp").mkdir()  # where the README's mktemp -d makes the demo directory
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(PATH=f"{shims}{os.pathsep}{env.get('PATH', '')}", TMPDIR=str(base / "tmp"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")

    # The user writes checkpoints.toml with an editor; a heredoc writes the same bytes.
    output = run_bash(
        f"{blocks['setup']}"
        f"cat > checkpoints.toml <<'README_CONFIG'\n{blocks['config']}README_CONFIG\n"
        f"{blocks['commands']}"
        'echo "WALKTHROUGH_DEMO=$PWD"\necho "WALKTHROUGH_ID=$ID"\n',
        cwd=source, env=env,
    )
    demo = Path(reported(output, "WALKTHROUGH_DEMO"))
    assert demo.parent == base / "tmp"
    return Walkthrough(blocks, source, demo, env, reported(output, "WALKTHROUGH_ID"), output)


@pytest.mark.backends("sqlite")
def test_the_readme_walkthrough_stores_and_lists_a_checkpoint_on_sqlite(
    walkthrough: Walkthrough,
) -> None:
    assert_listed_and_shown(walkthrough.sqlite_output, walkthrough.sqlite_id)
    assert re.search(r"^backend:\s+sqlite$", walkthrough.sqlite_output, re.M)
    # The package came from the virtualenv, not from the source tree.
    site = list((walkthrough.demo / "venv" / "lib").glob("python3.*/site-packages"))
    assert len(site) == 1 and (site[0] / "peewee_checkpoints" / "migrations").is_dir()
    assert_stored(f"sqlite:///{walkthrough.demo / 'checkpoints.db'}", walkthrough.sqlite_id)


@pytest.fixture
def postgres_url(servers: Any) -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL test server (like ``db_url``)."""
    admin = servers.url("postgres")
    url = create_server_database("postgres", admin)
    try:
        yield url
    finally:
        drop_server_database("postgres", admin, url)


@pytest.mark.backends("postgres")
def test_changing_one_line_of_the_config_moves_the_readme_walkthrough_to_postgresql(
    walkthrough: Walkthrough, postgres_url: str
) -> None:
    config = walkthrough.demo / "checkpoints.toml"
    before = config.read_text(encoding="utf-8").splitlines()
    # The README's line, with its example URL replaced by the test server's fresh database.
    (new_line,) = walkthrough.blocks["postgres-line"].strip().splitlines()
    new_line, replaced = re.subn(r'"postgresql://[^"]*"', f'"{postgres_url}"', new_line)
    assert replaced == 1, new_line
    key = new_line.split("=", 1)[0].strip()
    after = [new_line if line.split("=", 1)[0].strip() == key else line for line in before]
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
    config.write_text("\n".join(after) + "\n", encoding="utf-8")

    # "Run the three commands of step 3 again": the same shell, so the venv is active and the
    # working directory is the demo directory.
    output = run_bash(
        f'. "{walkthrough.demo}/venv/bin/activate"\ncd "{walkthrough.demo}"\n'
        f"{walkthrough.blocks['commands']}"
        'echo "WALKTHROUGH_ID=$ID"\n',
        cwd=walkthrough.demo, env=walkthrough.env,
    )
    checkpoint_id = reported(output, "WALKTHROUGH_ID")
    assert_listed_and_shown(output, checkpoint_id)
    assert re.search(r"^backend:\s+postgres$", output, re.M)
    assert_stored(postgres_url, checkpoint_id)
    # And not in the SQLite file: it still holds the first checkpoint alone.
    with PeeweeCheckpointProvider(f"sqlite:///{walkthrough.demo / 'checkpoints.db'}") as sqlite:
        assert [i.id for i in sqlite.list_checkpoints()] == [walkthrough.sqlite_id]


@pytest.mark.backends("sqlite")
def test_the_readme_main_job_command_stores_lists_and_shows_the_example_checkpoint(
    walkthrough: Walkthrough,
) -> None:
    # Run last: it reinstalls the package, editable, into the walk-through's virtualenv.
    output = run_bash(
        f'. "{walkthrough.demo}/venv/bin/activate"\n'
        f"{walkthrough.blocks['main-job']}\n"
        'echo "WALKTHROUGH_ID=$ID"\n',
        cwd=walkthrough.source, env=walkthrough.env,
    )
    checkpoint_id = reported(output, "WALKTHROUGH_ID")
    assert_listed_and_shown(output, checkpoint_id)
    assert_stored(f"sqlite:///{walkthrough.source / 'checkpoints.db'}", checkpoint_id)


def test_the_readme_says_first_that_it_installs_from_a_clone_into_a_virtualenv() -> None:
    text = README.read_text(encoding="utf-8")
    intro = text[:text.index("**Contents:**")]  # before any section: what a first look sees
    assert "not on PyPI" in intro and "from a clone" in intro and "virtualenv" in intro
    two_commands = text[text.index("## The two commands"):
                        text.index("<!-- walkthrough: main-job -->")]
    assert "virtualenv" in two_commands and "python3 -m venv" in two_commands
