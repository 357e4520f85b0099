"""The built wheel, installed into a fresh virtualenv, finds and applies its migrations when run
from a directory outside the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run by the virtualenv's Python from an empty directory: nothing of the source tree is on
# sys.path, so everything comes from the installed wheel.
_USE_THE_INSTALLED_PACKAGE = textwrap.dedent(
    """
    import json, sys, sysconfig
    import peewee_checkpoints
    from peewee_checkpoints import NamedCheckpoint, PeeweeCheckpointProvider
    from peewee_checkpoints._migrations import migrations_dir

    with PeeweeCheckpointProvider("sqlite:///" + sys.argv[1]) as provider:
        applied = provider.migrate()
        state = {"messages": [{"role": "user", "content": "hi"}], "step": 3, "score": 0.5}
        checkpoint_id = provider.store_checkpoint(
            NamedCheckpoint(name="first", agent_id="agent", state=state)
        )
        stored = provider.retrieve_checkpoint(checkpoint_id)
        again = provider.migrate()
    print(json.dumps({
        "applied": applied,
        "again": again,
        "round_trip": stored is not None and stored.state == state,
        "package": peewee_checkpoints.__file__,
        "migrations": str(migrations_dir()),
        "site_packages": sysconfig.get_paths()["purelib"],
    }))
    """
)


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _copy_source(target: Path) -> Path:
    """Copy the source tree without build leftovers: a stale build/ could leak into the wheel,
    and building in place would leave build/ and *.egg-info behind in the checkout."""
    ignore = shutil.ignore_patterns(
        ".git", ".tox", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "*.db", "*.db-*",
    )
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


@pytest.mark.slow
def test_the_wheel_in_a_fresh_virtualenv_applies_its_migrations_from_outside_the_source(
    tmp_path: Path,
) -> None:
    source = _copy_source(tmp_path / "source")
    wheels = tmp_path / "wheels"
    # pip builds in an isolated environment with the build-system requirements of
    # pyproject.toml, so this works on Python 3.12+ where a venv has no setuptools.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, source)
    (wheel,) = wheels.glob("peewee_checkpoints-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = _run(
        python, "-c", _USE_THE_INSTALLED_PACKAGE, elsewhere / "checkpoints.db",
        cwd=elsewhere, env=env,
    )
    report = json.loads(out.strip().splitlines()[-1])

    shipped = sorted(p.stem for p in (ROOT / "migrations").glob("[0-9][0-9][0-9]_*.py"))
    assert report["applied"] == shipped
    assert report["again"] == []
    assert report["round_trip"] is True
    site_packages = Path(report["site_packages"]).resolve()
    assert site_packages.is_relative_to(venv.resolve())
    package = Path(report["package"]).resolve()
    migrations = Path(report["migrations"]).resolve()
    assert package.is_relative_to(site_packages), package
    assert migrations == site_packages / "peewee_checkpoints" / "migrations"
    assert (migrations / "001_initial.py").is_file()
    assert (package.parent / "py.typed").is_file()
