"""Importing the package stays light: no asyncio, no database driver, no Peewee, until a name
that needs them is used (the command line's start-up depends on it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("asyncio", "psycopg2", "psycopg", "pymysql", "peewee")


def _loaded_after(code: str) -> list[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return [name for name in HEAVY if name in modules]


@pytest.mark.parametrize(
    "code",
    [
        "import peewee_checkpoints",
        "from peewee_checkpoints import NamedCheckpoint, StoredCheckpoint, CheckpointError",
        "import peewee_checkpoints.cli",
    ],
)
def test_importing_the_package_loads_no_driver_and_no_asyncio(code: str) -> None:
    assert _loaded_after(code) == []


def test_the_cli_help_loads_no_driver() -> None:
    code = ("import sys\nfrom peewee_checkpoints.cli import main\n"
            "assert main(['--help']) == 0\n")
    assert _loaded_after(code) == []


def test_the_cli_help_lists_the_command_groups_without_importing_them() -> None:
    code = ("import sys\nfrom peewee_checkpoints.cli import main\n"
            "assert main(['--help']) == 0\n"
            "lazy = {m for m in sys.modules if m.startswith('peewee_checkpoints._cli_')}\n"
            "assert not lazy, lazy\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_the_help_of_a_lazy_command_is_its_own() -> None:
    import click

    from peewee_checkpoints.cli import _LazyGroup, cli

    with click.Context(cli) as ctx:
        for name, (_, _, listed) in _LazyGroup.LAZY.items():
            command = cli.get_command(ctx, name)
            assert command is not None and command.name == name
            assert (command.help or "").split("\n\n")[0].strip() == listed, name


def test_the_lazy_names_still_import_and_are_the_real_objects() -> None:
    import peewee_checkpoints as pc
    from peewee_checkpoints.aio import AsyncCheckpointProvider
    from peewee_checkpoints.config import load_provider
    from peewee_checkpoints.interface import CheckpointProvider
    from peewee_checkpoints.memory import MemoryCheckpointProvider
    from peewee_checkpoints.model import Checkpoint
    from peewee_checkpoints.peewee_provider import PeeweeCheckpointProvider

    assert pc.AsyncCheckpointProvider is AsyncCheckpointProvider
    assert pc.load_provider is load_provider
    assert pc.CheckpointProvider is CheckpointProvider
    assert pc.MemoryCheckpointProvider is MemoryCheckpointProvider
    assert pc.Checkpoint is Checkpoint
    assert pc.PeeweeCheckpointProvider is PeeweeCheckpointProvider
    assert set(pc.__all__) <= set(dir(pc))
    for name in pc.__all__:
        assert getattr(pc, name) is not None
    with pytest.raises(AttributeError):
        pc.NoSuchName  # noqa: B018
    with pytest.raises(ImportError):
        from peewee_checkpoints import NoSuchName  # noqa: F401


def test_using_the_provider_then_loads_what_it_needs() -> None:
    loaded = _loaded_after("from peewee_checkpoints import PeeweeCheckpointProvider")
    assert "peewee" in loaded
