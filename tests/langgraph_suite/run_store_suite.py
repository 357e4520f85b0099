"""Run LangGraph's own store tests against PeeweeStore (not part of the regular test run).

LangGraph's store tests are not shipped in its wheels; point this script at a checkout of
https://github.com/langchain-ai/langgraph (``libs/`` inside it). It copies the test modules
that LangGraph's InMemoryStore, PostgresStore and SqliteStore run into a scratch folder,
swaps each module's own ``store`` fixture (and ``InMemoryStore(...)``) for a PeeweeStore on a
fresh database of one backend, and runs pytest there once per backend::

    python tests/langgraph_suite/run_store_suite.py /path/to/langgraph [sqlite,postgres,mysql]

Needs ``pytest-asyncio`` and ``pytest-mock`` (LangGraph's tests use them) and the server URLs
of the regular tests (``PEEWEE_CHECKPOINTS_TEST_POSTGRES_URL`` / ``..._MYSQL_URL``). Nothing
of LangGraph's is copied into this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = {
    # LangGraph's path -> the name it gets here
    "libs/checkpoint/tests/test_store.py": "test_memory_store.py",
    "libs/checkpoint-postgres/tests/test_store.py": "test_postgres_store.py",
    "libs/checkpoint-postgres/tests/test_async_store.py": "test_postgres_async_store.py",
    "libs/checkpoint-sqlite/tests/test_store.py": "test_sqlite_store.py",
    "libs/checkpoint-sqlite/tests/test_async_store.py": "test_sqlite_async_store.py",
}
HELPERS = {"libs/checkpoint/tests/embed_test_utils.py": "embed_test_utils.py"}

# A module-level fixture named `store` (its decorator, signature and body up to the next
# top-level statement) is removed so that the conftest's PeeweeStore fixture applies.
_STORE_FIXTURE = re.compile(
    r"^@pytest(?:_asyncio)?\.fixture[^\n]*\n(?:async )?def store\(.*?(?=^\S)", re.S | re.M)


def prepare(checkout: Path, scratch: Path) -> None:
    package = scratch / "lgtests"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(HERE / "store_conftest.py", package / "conftest.py")
    for source, name in HELPERS.items():
        shutil.copy(checkout / source, package / name)
    for source, name in MODULES.items():
        text = (checkout / source).read_text()
        text = _STORE_FIXTURE.sub("", text)
        text = text.replace("from tests.test_store ", "from lgtests.test_sqlite_store ")
        text = text.replace("from tests.", "from lgtests.")
        if "memory" in name:
            # Tests that build InMemoryStore() themselves get a PeeweeStore instead.
            text = re.sub(r"\bInMemoryStore\(", "make_peewee_store(", text)
            text = text.replace("from langgraph.store.memory import InMemoryStore",
                                "from lgtests.conftest import make_peewee_store")
        (package / name).write_text(text)
    (scratch / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "addopts = -p no:cacheprovider -q -rN\n")


def main() -> int:
    checkout = Path(sys.argv[1])
    backends = (sys.argv[2] if len(sys.argv) > 2 else "sqlite,postgres,mysql").split(",")
    with tempfile.TemporaryDirectory(prefix="lg-store-suite-") as tmp:
        scratch = Path(tmp)
        prepare(checkout, scratch)
        code = 0
        for backend in backends:
            print(f"== PeeweeStore on {backend}", flush=True)
            env = {**os.environ, "LG_SUITE_BACKEND": backend,
                   "PYTHONPATH": os.pathsep.join([str(scratch), str(HERE.parent.parent)])}
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "lgtests", "--junitxml",
                 str(scratch / f"{backend}.xml"), *sys.argv[3:]],
                cwd=scratch, env=env, check=False)
            code = code or done.returncode
            summarize(scratch / f"{backend}.xml")
    return code


def summarize(report: Path) -> None:
    import xml.etree.ElementTree as ET

    per_module: dict[str, dict[str, int]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        module = case.get("classname", "").split(".")[1] if "." in case.get(
            "classname", "") else case.get("classname", "")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
        counts = per_module.setdefault(module, {})
        counts[outcome] = counts.get(outcome, 0) + 1
    for module, counts in sorted(per_module.items()):
        print(f"   {module}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    raise SystemExit(main())
