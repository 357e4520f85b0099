"""Discovery for real: a separate distribution registers a provider and is chosen by config.

A tiny package, ``tinyprov``, is written to a temp directory; it is installed with this package
(a normal, non-editable install of a copy of the source tree) into a fresh virtualenv; then,
in that virtualenv and from another directory, a script selects its provider from a TOML
file, and pytest runs the conformance kit against it, as a third-party author would.

``PEEWEE_CHECKPOINTS_TEST_VENV_PYTHON`` picks the interpreter for the virtualenv (default: the
one running the tests), e.g. a Python 3.10 to exercise the tomli fallback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints.testing import CheckpointProviderContract

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

TINY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyprov"
version = "0.1.0"
dependencies = ["peewee-checkpoints"]

[project.entry-points."peewee_checkpoints.providers"]
dictstore = "tinyprov:make"
# Registered on purpose with a module that does not exist: it must not break dictstore.
broken = "tinyprov_missing_dependency:make"

[tool.setuptools]
py-modules = ["tinyprov"]
"""

# Written against the public API only, as an outside author would.
TINY_MODULE = '''\
"""A toy checkpoint provider: a dict of JSON text."""

from __future__ import annotations

import itertools
import json
import threading
import time

from peewee_checkpoints import (
    CheckpointListItem,
    CheckpointProvider,
    InvalidCheckpointError,
    NamedCheckpoint,
    StoredCheckpoint,
)

_sequence = itertools.count()


def _text(field, value, *, empty_ok):
    if type(value) is not str or not (value or empty_ok) or "\\x00" in value:
        raise InvalidCheckpointError(f"{field} must be a non-empty str")


class DictStore(CheckpointProvider):
    def __init__(self, label=""):
        self.label = label
        self._lock = threading.Lock()
        self._rows = {}

    def _validated(self, cp):
        if not isinstance(cp, NamedCheckpoint):
            raise InvalidCheckpointError("expected a NamedCheckpoint")
        _text("name", cp.name, empty_ok=False)
        _text("agent_id", cp.agent_id, empty_ok=False)
        _text("session_id", cp.session_id, empty_ok=True)
        _text("agent_type", cp.agent_type, empty_ok=True)
        if type(cp.created_at) is not int or cp.created_at < 0:
            raise InvalidCheckpointError("created_at must be a non-negative int")
        if type(cp.state) is not dict:
            raise InvalidCheckpointError("state must be a dict")
        try:
            text = json.dumps(cp.state, allow_nan=False)
            same = json.loads(text) == cp.state
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidCheckpointError(f"state is not JSON: {exc}") from exc
        if not same:
            raise InvalidCheckpointError("state does not survive a JSON round trip")
        return (cp.name, cp.agent_id, text, cp.session_id, cp.agent_type, cp.created_at)

    def store_checkpoint(self, cp):
        row = self._validated(cp)
        with self._lock:
            cid = f"{time.time_ns():020d}{next(_sequence):012d}"
            self._rows[cid] = row
        return cid

    def import_checkpoint(self, cp):
        if type(cp.id) is not str or not cp.id:
            raise InvalidCheckpointError("id must be a non-empty str")
        row = self._validated(cp.to_named())
        with self._lock:
            if cp.id in self._rows:
                return False
            self._rows[cp.id] = row
        return True

    def retrieve_checkpoint(self, checkpoint_id):
        with self._lock:
            row = self._rows.get(checkpoint_id) if isinstance(checkpoint_id, str) else None
        if row is None:
            return None
        name, agent_id, text, session_id, agent_type, created_at = row
        return StoredCheckpoint(checkpoint_id, name, agent_id, json.loads(text), session_id,
                                agent_type, created_at)

    def list_checkpoints(self, *, agent_id=None, session_id=None, agent_type=None,
                         before=None, after=None, limit=None):
        with self._lock:
            rows = list(self._rows.items())
        items = [
            CheckpointListItem(cid, name, aid, sid, atype, created)
            for cid, (name, aid, _, sid, atype, created) in rows
            if (agent_id is None or aid == agent_id)
            and (session_id is None or sid == session_id)
            and (agent_type is None or atype == agent_type)
            and (before is None or created < before)
            and (after is None or created > after)
        ]
        items.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        return items if limit is None else items[:limit]

    def delete_checkpoint(self, checkpoint_id):
        with self._lock:
            return self._rows.pop(checkpoint_id, None) is not None

    def close(self):
        pass


def make(label=""):
    """The entry point: called with the provider's options as keyword arguments."""
    return DictStore(label)
'''

CONFIG = """\
[checkpoints]
active = "tiny"

[checkpoints.providers.tiny]
type = "dictstore"
label = "${TINY_LABEL:-no label}"

[checkpoints.providers.bad]
type = "broken"
"""

USE_IT = """\
import json, sys
import peewee_checkpoints
from peewee_checkpoints import NamedCheckpoint, ProviderNotFoundError, load_provider
from peewee_checkpoints.registry import available_providers, provider_errors

provider = load_provider(sys.argv[1])
cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={"x": [1, 2.5]}))
out = {
    "class": f"{type(provider).__module__}.{type(provider).__name__}",
    "label": provider.label,
    "state": provider.retrieve_checkpoint(cid).state,
    "providers": {n: [i.distribution, i.value] for n, i in available_providers().items()},
    "errors": {n: str(e) for n, e in provider_errors().items()},
    "package_file": peewee_checkpoints.__file__,
    "memory": type(load_provider({"checkpoints": {"providers": {"m": {"type": "memory"}}}}))
    .__name__,
}
try:
    load_provider(sys.argv[1], name="bad")
except ProviderNotFoundError as exc:
    out["bad"] = str(exc)
print(json.dumps(out))
"""

KIT_TEST = """\
import pytest

from peewee_checkpoints import load_provider
from peewee_checkpoints.testing import CheckpointProviderContract


class TestDictStoreConformance(CheckpointProviderContract):
    @pytest.fixture
    def provider(self):
        config = {"checkpoints": {"providers": {"t": {"type": "dictstore"}}}}
        with load_provider(config) as p:
            yield p
"""


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "PEEWEE_CHECKPOINTS_CONFIG", "VIRTUAL_ENV")}
    clean.update(env, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(args, cwd=cwd, env=clean, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with this package (from a copy of the tree), tinyprov and pytest."""
    base = tmp_path_factory.mktemp("third_party")
    # A copy, so the build leaves nothing (build/, egg-info) in the working tree.
    source = base / "peewee-checkpoints"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        "*.db", ".hypothesis"))
    tiny = base / "tinyprov"
    tiny.mkdir()
    (tiny / "pyproject.toml").write_text(TINY_PYPROJECT, encoding="utf-8")
    (tiny / "tinyprov.py").write_text(TINY_MODULE, encoding="utf-8")
    python = os.environ.get("PEEWEE_CHECKPOINTS_TEST_VENV_PYTHON", sys.executable)
    env_dir = base / "venv"
    _run([python, "-m", "venv", str(env_dir)], cwd=base)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source), str(tiny),
          "pytest"], cwd=base)
    yield bin_dir / "python"


def test_a_provider_from_another_distribution_is_chosen_by_a_config_file(
    venv: Path, tmp_path: Path
) -> None:
    (tmp_path / "checkpoints.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "use_it.py").write_text(USE_IT, encoding="utf-8")
    result = _run([str(venv), "use_it.py", "checkpoints.toml"], cwd=tmp_path,
                  TINY_LABEL="from the environment")
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["class"] == "tinyprov.DictStore"
    assert out["label"] == "from the environment"
    assert out["state"] == {"x": [1, 2.5]}
    # The installed copy was used, not the working tree.
    assert Path(out["package_file"]).resolve().is_relative_to(venv.parent.parent.resolve())
    assert out["providers"]["dictstore"] == ["tinyprov", "tinyprov:make"]
    assert out["providers"]["peewee"][0] == out["providers"]["memory"][0] == "peewee-checkpoints"
    assert out["memory"] == "MemoryCheckpointProvider"
    # The broken entry point is reported with its name and distribution, and only it fails.
    assert list(out["errors"]) == ["broken"]
    for message in (out["errors"]["broken"], out["bad"]):
        assert "'broken'" in message and "tinyprov 0.1.0" in message
        assert "tinyprov_missing_dependency" in message


def _contract_test_count(*, app: bool = False) -> int:
    """Cases of the kit's tests; ``app=True``: only those of app checkpoints (which a provider
    without app checkpoints skips)."""
    total = 0
    for name in dir(CheckpointProviderContract):
        if name.startswith("test_") and (not app or name.startswith("test_app_checkpoint")):
            cases = 1
            for mark in getattr(getattr(CheckpointProviderContract, name), "pytestmark", []):
                if mark.name == "parametrize":
                    cases *= len(mark.args[1])
            total += cases
    return total


def test_a_third_party_runs_the_conformance_kit_against_its_provider(
    venv: Path, tmp_path: Path
) -> None:
    (tmp_path / "test_tinyprov_conformance.py").write_text(KIT_TEST, encoding="utf-8")
    result = _run([str(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path)
    expected = _contract_test_count()
    assert expected > 60
    # tinyprov stores no app checkpoints: the kit skips those tests, and passes the rest.
    skipped = _contract_test_count(app=True)
    assert skipped > 10
    assert f"{expected - skipped} passed, {skipped} skipped" in result.stdout, result.stdout
    assert "failed" not in result.stdout
