"""Security properties checked on the source itself: no code execution from stored data, and
SQL text built only from constants (values always travel as parameters).

Behaviour (hostile values stored and matched literally, the SQLite file mode, the password
never shown) is tested against real databases in test_reliability_input.py and
test_reliability_config.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "peewee_checkpoints").rglob("*.py"),
                  *(ROOT / "migrations").glob("*.py")])
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                     "jsonpickle", "yaml"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
SQL_CALLS = {"execute_sql", "execute", "sql", "executemany"}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_no_pickle_marshal_eval_or_exec_in_the_package(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path}:{node.lineno} {node.func.id}()"
            continue
        else:
            continue
        assert not names & FORBIDDEN_MODULES, f"{path}:{node.lineno} imports {names}"


def _constant_sql(node: ast.expr, constants: set[str]) -> bool:
    """True if ``node`` builds SQL text only from literals, module constants and
    precompiled statements (``<statement>.sql``)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        # "param" is the driver's placeholder (db.param: "?" or "%s"), not a value.
        return node.id in constants or node.id in {"statement", "sql", "param"}
    if isinstance(node, ast.Attribute):
        return node.attr == "sql" or node.attr.isupper()
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) or _constant_sql(v.value, constants)
                   for v in node.values if not isinstance(v, ast.Constant))
    if isinstance(node, ast.FormattedValue):
        return _constant_sql(node.value, constants)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        # int(...) cannot carry SQL: a PRAGMA's number (PRAGMAs take no bound parameters).
        return node.func.id == "int"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        # "...".format(table=TABLE, collation=collation): the collation is one of two names
        # the migration itself chose from a fixed tuple.
        return _constant_sql(node.func.value, constants) and node.func.attr == "format"
    return False


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_sql_text_is_built_from_constants_only(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    constants = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name) and t.id.lstrip("_").isupper()}
    # Loop variables over module-level constant lists of statements.
    constants |= {n.target.id for n in ast.walk(tree) if isinstance(n, ast.For)
                  and isinstance(n.target, ast.Name) and isinstance(n.iter, (ast.Name, ast.IfExp))}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS and node.args):
            target = node.func.value
            if (isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute)
                    and target.func.attr == "get_sql_context"):
                continue  # Peewee compiling a query object: values stay parameters
            assert _constant_sql(node.args[0], constants), (
                f"{path.name}:{node.lineno}: SQL built from a runtime value: "
                f"{ast.unparse(node.args[0])}")
