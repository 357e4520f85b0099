"""``PeeweeStore``: LangGraph's long-term memory (``BaseStore``) on SQLite, PostgreSQL or MySQL.

Items live in ``peewee_checkpoints_lg_store`` (migration 008): one row per (namespace, key),
the namespace's labels joined with ``.`` as LangGraph's own stores do (labels cannot hold a
``.``), the value as JSON (JSONB on PostgreSQL), times in epoch microseconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from .._codec import encode_state, loads_json
from .._engine import Engine
from .._migrations import LOCK_TIMEOUT
from .._profiles import BackendProfile
from .._validation import text_problem
from ..errors import InvalidCheckpointError

__all__ = ["SEMANTIC_SEARCH_UNSUPPORTED", "PeeweeStore"]

log = logging.getLogger("peewee_checkpoints.langgraph.store")

STORE = "peewee_checkpoints_lg_store"
#: Column sizes of migration 008 (MySQL's index limit decides them), the same on every backend.
MAX_PREFIX = 512
MAX_KEY = 255
_FILTER_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_US_PER_MINUTE = 60_000_000
#: Items in one multi-row upsert (7 parameters each: under SQLite's 999).
_PUT_CHUNK = 140
#: A put, ready to run: (prefix, key, JSON value, ttl in minutes).
_PutRow = tuple[str, str, str, "float | None"]
_INT64 = 2**63

#: What PeeweeStore says when asked for semantic search.
SEMANTIC_SEARCH_UNSUPPORTED = (
    "PeeweeStore does not do semantic (vector) search: it stores and finds items by namespace, "
    "key and filter ($eq, $ne, $gt, $gte, $lt, $lte on value fields, evaluated in SQL), with "
    "paging, list_namespaces and TTL, on SQLite, PostgreSQL and MySQL/MariaDB. "
    "No embedding index serves all three backends, so index= and query= are refused rather "
    "than silently ignored; pass ignore_semantic=True to ignore them as LangGraph's stores "
    "without an index config do, or use langgraph's PostgresStore (pgvector) for vectors"
)


def _now_us() -> int:
    return time.time_ns() // 1000


def _datetime(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.timezone.utc)


def _prefix(namespace: Sequence[str]) -> str:
    return ".".join(namespace)


def _check_labels(namespace: Sequence[str], *, allow_empty: bool) -> str:
    if not isinstance(namespace, tuple | list):
        raise InvalidNamespaceError(
            f"a namespace is a tuple of str, not {type(namespace).__name__}")
    if not namespace and not allow_empty:
        raise InvalidNamespaceError("Namespace cannot be empty.")
    for label in namespace:
        if not isinstance(label, str) or not label:
            raise InvalidNamespaceError(
                f"namespace labels must be non-empty strings; got {label!r} in {namespace!r}"
            )
        if "." in label:
            raise InvalidNamespaceError(
                f"namespace label {label!r} contains a period ('.'), which LangGraph forbids"
            )
        problem = text_problem(label, MAX_PREFIX)
        if problem is not None:
            raise InvalidNamespaceError(f"namespace label {label!r} {problem}")
    prefix = _prefix(namespace)
    if len(prefix) > MAX_PREFIX:
        raise InvalidNamespaceError(
            f"namespace {namespace!r} is {len(prefix)} characters long joined with '.'; at "
            f"most {MAX_PREFIX} are allowed (the same on every backend)"
        )
    return prefix


def _check_key(key: object) -> str:
    problem = text_problem(key, MAX_KEY)
    if problem is None and key == "":
        problem = "must not be empty"
    if problem is not None:
        raise InvalidCheckpointError(f"store key {problem}")
    return key  # type: ignore[return-value]  # text_problem checked it is a str


def _encode_value(value: object) -> str:
    if not isinstance(value, dict):
        raise InvalidCheckpointError(
            f"a store value must be a dict (a JSON object), not {type(value).__name__}"
        )
    _, data = encode_state(value)  # exact JSON, or InvalidCheckpointError
    if b"\\u0000" in data:
        # PostgreSQL's JSONB cannot hold NUL; refusing it everywhere keeps backends identical.
        raise InvalidCheckpointError("a store value may not contain a NUL character in a string")
    return data.decode()


def _decode_value(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    raw = data.encode() if isinstance(data, str) else bytes(data)
    value: dict[str, Any] = loads_json(raw)
    return value


# -- filters ----------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sql_scalar(value: object) -> bool:
    """A filter operand SQL compares exactly on every backend."""
    if isinstance(value, str):
        return "\x00" not in value  # PostgreSQL can't be sent NUL; stored values never hold one
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_INT64 <= value < _INT64
    return isinstance(value, float) and math.isfinite(value)


def _equal(actual: Any, expected: Any, present: bool) -> bool:
    """JSON equality as the SQL computes it: types must agree (true is not 1)."""
    if expected is None:
        return actual is None
    if not present:
        return False
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual == expected
    if _is_number(expected):
        return _is_number(actual) and actual == expected
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            _equal(actual.get(k), v, k in actual) for k, v in expected.items()
        )
    if isinstance(expected, list | tuple):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(_equal(a, e, True) for a, e in zip(actual, expected, strict=True)))
    return type(actual) is type(expected) and bool(actual == expected)


def _compare(actual: Any, op: str, operand: Any, present: bool) -> bool:
    if op == "$eq":
        return _equal(actual, operand, present)
    if op == "$ne":
        return not _equal(actual, operand, present)
    if not present:
        return False
    if _is_number(operand) and _is_number(actual):
        a, b = float(actual), float(operand)
    elif isinstance(operand, str) and isinstance(actual, str):
        a, b = actual, operand  # type: ignore[assignment]
    else:
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _python_match(value: dict[str, Any], filter_: dict[str, Any]) -> bool:
    for key, expected in filter_.items():
        present, actual = _lookup(value, key)
        if isinstance(expected, dict) and any(k.startswith("$") for k in expected):
            if not all(_compare(actual, op, v, present) for op, v in expected.items()):
                return False
        elif not _equal(actual, expected, present):
            return False
    return True


def _conditions(filter_: dict[str, Any] | None) -> list[tuple[str, str, Any]] | None:
    """The filter as (key, op, operand) triples SQL can evaluate, or None if it can't."""
    if not filter_:
        return []
    found = []
    for key, expected in filter_.items():
        if (not isinstance(key, str) or '"' in key or "\\" in key or text_problem(key, 255)
                or "" in key.split(".")):
            return None
        if isinstance(expected, dict) and any(str(k).startswith("$") for k in expected):
            for op, operand in expected.items():
                if op not in _FILTER_OPS:
                    raise ValueError(
                        f"unsupported filter operator {op!r}; PeeweeStore accepts "
                        + ", ".join(_FILTER_OPS)
                    )
                if not _sql_scalar(operand) or (
                    op in _COMPARISONS and not (_is_number(operand) or isinstance(operand, str))
                ):
                    return None
                found.append((key, op, operand))
        elif _sql_scalar(expected):
            found.append((key, "$eq", expected))
        else:
            return None
    return found


def _json_path(key: str) -> str:
    """SQLite/MySQL JSON path of a filter key: ``a.b`` is field ``b`` inside field ``a``."""
    return "$" + "".join(f'."{part}"' for part in key.split("."))


def _lookup(value: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(present, value) of a filter key, following dots into nested objects."""
    current: Any = value
    for part in key.split("."):
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current


class _Dialect:
    """One backend's SQL for the store."""

    def __init__(self, profile: BackendProfile, param: str) -> None:
        self.backend = profile.name
        p = self.p = param
        self.value_column = profile.json_text("value")
        cols = f"prefix, item_key, {self.value_column}, created_at, updated_at, ttl_minutes"
        self.columns = cols
        self.get = (f"SELECT {cols} FROM {STORE} WHERE prefix = {p} AND item_key = {p}")
        # An update keeps created_at, unless the row had expired (and was not swept yet):
        # then it is a new item. MySQL assigns left to right, so created_at goes first.
        new = profile.excluded
        self._upsert = (
            f"{profile.upsert(('prefix', 'item_key'))}created_at = CASE WHEN "
            f"{STORE}.expires_at IS NOT NULL AND {STORE}.expires_at <= {new('updated_at')} "
            f"THEN {new('created_at')} ELSE {STORE}.created_at END, "
            + ", ".join(f"{c} = {new(c)}"
                        for c in ("value", "updated_at", "expires_at", "ttl_minutes")))
        value = profile.json_param(p)
        self._put_row = f"({p}, {p}, {value}, {p}, {p}, {p}, {p})"
        self.delete = f"DELETE FROM {STORE} WHERE prefix = {p} AND item_key = {p}"
        self.refresh = (f"UPDATE {STORE} SET expires_at = {p} WHERE prefix = {p} "
                        f"AND item_key = {p} AND ttl_minutes IS NOT NULL")
        self.sweep = f"DELETE FROM {STORE} WHERE expires_at IS NOT NULL AND expires_at <= {p}"
        self.live = f"(expires_at IS NULL OR expires_at > {p})"

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a few shapes per dialect, kept for its life
    def put(self, rows: int) -> str:
        """Upsert ``rows`` items (7 parameters each)."""
        return (f"INSERT INTO {STORE} (prefix, item_key, value, created_at, updated_at, "
                f"expires_at, ttl_minutes) VALUES "
                + ", ".join([self._put_row] * rows) + self._upsert)

    def namespace(self, prefix: str) -> tuple[str, list[Any]]:
        """Rows in ``prefix`` or below it (``prefix`` itself, or ``prefix.``...).

        One range on the primary key, ``[prefix, prefix + "/")`` under the binary collation
        of every backend ('/' follows '.'), so rows come in key order and a LIMIT stops
        early; the rest of the condition drops the few names in that range that only start
        with ``prefix`` (``prefix-x``)."""
        p = self.p
        return (f"prefix >= {p} AND prefix < {p} AND (prefix = {p} OR prefix >= {p})",
                [prefix, prefix + "/", prefix, prefix + "."])

    def condition(self, key: str, op: str, operand: Any) -> tuple[str, list[Any]]:
        if op == "$ne":
            sql, params = self.condition(key, "$eq", operand)
            return f"(CASE WHEN {sql} THEN 1 ELSE 0 END) = 0", params
        build = {"sqlite": self._sqlite, "postgres": self._postgres, "mysql": self._mysql}
        return build[self.backend](key, op, operand)

    def _sqlite(self, key: str, op: str, v: Any) -> tuple[str, list[Any]]:
        p = self.p
        path = _json_path(key)
        kind = f"json_type(value, {p})"
        if op == "$eq":
            if v is None:
                return f"COALESCE({kind}, 'null') = 'null'", [path]
            if isinstance(v, bool):
                return f"{kind} = '{'true' if v else 'false'}'", [path]
        types = "('integer', 'real')" if _is_number(v) else "('text')"
        sign = _COMPARISONS.get(op, "=")
        # The value test first: AND stops there for most rows, which then parse once.
        return (f"(json_extract(value, {p}) {sign} {p} AND {kind} IN {types})", [path, v, path])

    def _postgres(self, key: str, op: str, v: Any) -> tuple[str, list[Any]]:
        p = self.p
        path = key.split(".")  # a text[] path: value #> path
        if op == "$eq":
            if v is None:
                return f"COALESCE(value #> {p}, 'null'::jsonb) = 'null'::jsonb", [path]
            # JSONB equality is typed: "1" is not 1, true is not 1, 1 is 1.0.
            return f"(value #> {p}) = CAST({p} AS JSONB)", [path, json.dumps(v)]
        sign = _COMPARISONS[op]
        if _is_number(v):
            return (f"(jsonb_typeof(value #> {p}) = 'number' AND (value #> {p}) {sign} "
                    f"CAST({p} AS JSONB))", [path, path, json.dumps(v)])
        return (f"(jsonb_typeof(value #> {p}) = 'string' AND (value #>> {p}) COLLATE \"C\" "
                f"{sign} {p})", [path, path, v])

    def _mysql(self, key: str, op: str, v: Any) -> tuple[str, list[Any]]:
        p = self.p
        path = _json_path(key)
        kind = f"JSON_TYPE(JSON_EXTRACT(value, {p}))"
        text = f"JSON_UNQUOTE(JSON_EXTRACT(value, {p}))"
        if op == "$eq":
            if v is None:
                return f"COALESCE({kind}, 'NULL') = 'NULL'", [path]
            if isinstance(v, bool):
                return f"({kind} = 'BOOLEAN' AND {text} = {p})", [path, path,
                                                                  "true" if v else "false"]
        sign = _COMPARISONS.get(op, "=")
        if _is_number(v):
            return (f"({kind} IN ('INTEGER', 'DOUBLE', 'UNSIGNED INTEGER', 'DECIMAL') AND "
                    f"(JSON_EXTRACT(value, {p}) + 0e0) {sign} {p})", [path, path, float(v)])
        return (f"({kind} = 'STRING' AND CAST({text} AS BINARY) {sign} CAST({p} AS BINARY))",
                [path, path, v])


def _matches_condition(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    pairs = (zip(namespace, path, strict=False) if condition.match_type == "prefix"
             else zip(reversed(namespace), reversed(path), strict=False))
    if condition.match_type not in ("prefix", "suffix"):
        raise ValueError(f"unsupported match type {condition.match_type!r}")
    return all(want in ("*", got) for got, want in pairs)


class PeeweeStore(BaseStore):
    """LangGraph's ``BaseStore`` (long-term memory) on this package's database.

    One class for SQLite, PostgreSQL and MySQL/MariaDB, chosen by ``db_url`` as for
    :class:`~peewee_checkpoints.langgraph.PeeweeSaver`; its table comes from the package's
    migrations (applied on first use, under the package's lock), on its own pooled engine.

    - ``get`` / ``put`` / ``delete`` / ``search`` / ``list_namespaces`` and their async
      variants, through ``batch`` / ``abatch`` (a batch runs in one transaction when it writes).
    - ``search(prefix, filter=..., limit, offset)``: a namespace prefix matches whole labels
      (``("a",)`` finds ``("a", "b")``, never ``("ab",)``); ``filter`` keys are value
      fields (a dotted key, ``"user.access-level"``, reaches into nested objects, as in
      LangGraph's SqliteStore), and ``$eq`` ``$ne`` ``$gt`` ``$gte`` ``$lt`` ``$lte`` (and plain
      values) on str, number, bool and None run in SQL; nested-dict or list operands are matched in
      Python over the namespace's rows. Results come in (namespace, key) order, the primary
      key's: a search reads the index in order and stops at ``limit`` matches, and an item's
      place never changes when it is updated, so paging with ``offset`` while others update
      items neither skips nor repeats one (an item inserted or deleted before the offset
      shifts the later pages by one, as with any offset paging).
    - TTL in minutes: ``put(..., ttl=)`` or ``ttl={"default_ttl": ...}``; reads refresh it
      (``refresh_on_read``, default True, or ``refresh_ttl=`` per call); an expired item is
      not returned, even before :meth:`sweep_ttl` deletes it (``omit_expired``, default True
      here); :meth:`start_ttl_sweeper` runs the sweep in a background thread every
      ``sweep_interval_minutes``.
    - Semantic search is not supported: ``index=`` and ``query=`` raise
      :class:`NotImplementedError` (:data:`SEMANTIC_SEARCH_UNSUPPORTED`), unless
      ``ignore_semantic=True``, which ignores them as LangGraph's stores without an index do.

    Limits, the same on every backend: a namespace joined with ``.`` up to 512 characters,
    keys up to 255; values are JSON objects (no NUL in strings).
    """

    supports_ttl: bool = True

    def __init__(
        self,
        db_url: str,
        *,
        ttl: TTLConfig | None = None,
        index: Any = None,
        ignore_semantic: bool = False,
        migration_lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        super().__init__()
        if index is not None and not ignore_semantic:
            raise NotImplementedError(SEMANTIC_SEARCH_UNSUPPORTED)
        self.ttl_config = ttl
        self.ignore_semantic = ignore_semantic
        self._engine = Engine(db_url, migration_lock_timeout=migration_lock_timeout)
        self._sql = _Dialect(self._engine.profile, self._engine.param)
        self._sweeper: threading.Thread | None = None
        self._sweeper_stop = threading.Event()

    # -- plumbing -------------------------------------------------------------------------

    @classmethod
    def from_conn_string(cls, conn_string: str, *, ttl: TTLConfig | None = None,
                         ignore_semantic: bool = False) -> PeeweeStore:
        """A store on ``conn_string`` (a ``db_url``); ``with`` / ``async with`` closes it."""
        return cls(conn_string, ttl=ttl, ignore_semantic=ignore_semantic)

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._engine.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> PeeweeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PeeweeStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Stop the sweeper and close every connection this store opened."""
        self.stop_ttl_sweeper()
        self._engine.close()

    def setup(self) -> None:
        """Apply pending migrations now; optional, the first call does it anyway."""
        self._engine.migrate()

    async def asetup(self) -> None:
        """Async :meth:`setup`."""
        await asyncio.to_thread(self.setup)

    def _omit_expired(self) -> bool:
        return bool((self.ttl_config or {}).get("omit_expired", True))

    def _refresh_default(self) -> bool:
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    # -- batch ----------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order; results line up with them (None for puts)."""
        ops = list(ops)
        plans = [self._plan(op) for op in ops]  # every op checked before anything runs
        writes = any(isinstance(op, PutOp) for op in ops)
        self._engine.ensure_ready()

        def run() -> list[Result]:
            now = _now_us()
            results: list[Result] = [None] * len(plans)
            scope: Any = self._engine.transaction(write=True) if writes else nullcontext()
            with scope:
                i = 0
                while i < len(plans):
                    plan = plans[i]
                    if isinstance(plan, tuple):
                        # Consecutive puts become multi-row upserts.
                        j = i
                        while j < len(plans) and isinstance(plans[j], tuple):
                            j += 1
                        self._put_many(plans[i:j], now)  # type: ignore[arg-type]
                        i = j
                    else:
                        results[i] = plan(now)
                        i += 1
            return results

        return self._engine.run("run a LangGraph store batch", run)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch` (in a worker thread)."""
        return await asyncio.to_thread(self.batch, list(ops))

    def _plan(self, op: Op) -> Callable[[int], Result] | _PutRow:
        if isinstance(op, GetOp):
            prefix = _check_labels(op.namespace, allow_empty=False)
            key = _check_key(op.key)
            return lambda now: self._get(prefix, key, op.refresh_ttl, now)
        if isinstance(op, PutOp):
            # BaseStore.put refuses a "langgraph" root label; ops given to batch() may use it
            # (LangGraph's own stores agree).
            prefix = _check_labels(op.namespace, allow_empty=False)
            key = _check_key(op.key)
            if op.index not in (None, False) and not self.ignore_semantic:
                raise NotImplementedError(SEMANTIC_SEARCH_UNSUPPORTED)
            if op.value is None:
                return lambda now: self._delete(prefix, key)
            value = _encode_value(op.value)
            ttl = op.ttl
            if ttl is not None and (not _is_number(ttl) or not math.isfinite(ttl) or ttl <= 0):
                raise InvalidCheckpointError(
                    f"ttl must be a positive number of minutes, not {ttl!r}")
            return (prefix, key, value, ttl)
        if isinstance(op, SearchOp):
            prefix = _check_labels(op.namespace_prefix, allow_empty=True)
            if op.query is not None and not self.ignore_semantic:
                raise NotImplementedError(SEMANTIC_SEARCH_UNSUPPORTED)
            if op.limit < 0 or op.offset < 0:
                raise InvalidCheckpointError("search limit and offset must be >= 0")
            if op.filter is not None and not isinstance(op.filter, dict):
                raise InvalidCheckpointError("search filter must be a dict")
            conditions = _conditions(op.filter)
            return lambda now: self._search(op, prefix, conditions, now)
        if isinstance(op, ListNamespacesOp):
            for condition in op.match_conditions or ():
                _check_labels([label for label in condition.path if label != "*"],
                              allow_empty=True)
            if op.limit < 0 or op.offset < 0:
                raise InvalidCheckpointError("list_namespaces limit and offset must be >= 0")
            return lambda now: self._list_namespaces(op, now)
        raise TypeError(f"unknown store operation {type(op).__name__}")

    # -- operations -----------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._engine.execute(sql, params)

    def _item(self, row: Sequence[Any], cls: type[Item] = Item) -> Any:
        namespace = tuple(row[0].split("."))
        return cls(value=_decode_value(row[2]), key=row[1], namespace=namespace,
                   created_at=_datetime(row[3]), updated_at=_datetime(row[4]))

    def _refresh(self, rows: Sequence[Sequence[Any]], now: int) -> None:
        for row in rows:
            if row[5] is not None:
                expires = now + int(float(row[5]) * _US_PER_MINUTE)
                self._execute(self._sql.refresh, (expires, row[0], row[1]))

    def _get(self, prefix: str, key: str, refresh: bool | None, now: int) -> Item | None:
        sql = self._sql.get
        params: list[Any] = [prefix, key]
        if self._omit_expired():
            sql += " AND " + self._sql.live
            params.append(now)
        row = self._execute(sql, params).fetchone()
        if row is None:
            return None
        if (self._refresh_default() if refresh is None else refresh):
            self._refresh([row], now)
        item: Item = self._item(row)
        return item

    def _put_many(self, rows: Sequence[_PutRow], now: int) -> None:
        latest: dict[tuple[str, str], _PutRow] = {}
        for row in rows:  # one statement can't touch a row twice: the last put of a key wins
            latest[row[0], row[1]] = row
        unique = list(latest.values())
        for start in range(0, len(unique), _PUT_CHUNK):
            chunk = unique[start : start + _PUT_CHUNK]
            params: list[Any] = []
            for prefix, key, value, ttl in chunk:
                expires = None if ttl is None else now + int(ttl * _US_PER_MINUTE)
                params += (prefix, key, value, now, now, expires, ttl)
            self._execute(self._sql.put(len(chunk)), params)

    def _delete(self, prefix: str, key: str) -> None:
        self._execute(self._sql.delete, (prefix, key))

    def _search(self, op: SearchOp, prefix: str,
                conditions: list[tuple[str, str, Any]] | None, now: int) -> list[SearchItem]:
        where: list[str] = []
        params: list[Any] = []
        if prefix:
            sql, more = self._sql.namespace(prefix)
            where.append(sql)
            params += more
        if self._omit_expired():
            where.append(self._sql.live)
            params.append(now)
        for key, name, operand in conditions or ():
            sql, more = self._sql.condition(key, name, operand)
            where.append(sql)
            params += more
        sql = f"SELECT {self._sql.columns} FROM {STORE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY prefix, item_key"
        if conditions is not None:
            sql += f" LIMIT {self._sql.p} OFFSET {self._sql.p}"
            rows = self._execute(sql, [*params, op.limit, op.offset]).fetchall()
        else:
            # A filter SQL can't state exactly (nested dicts, lists): matched here, in order.
            filter_ = op.filter or {}
            rows = []
            skip = op.offset
            cursor = self._execute(sql, params)
            for row in cursor:
                if len(rows) >= op.limit:
                    break
                if _python_match(_decode_value(row[2]), filter_):
                    if skip:
                        skip -= 1
                    else:
                        rows.append(row)
            cursor.close()
        if (self._refresh_default() if op.refresh_ttl is None else op.refresh_ttl):
            self._refresh(rows, now)
        return [self._item(row, SearchItem) for row in rows]

    def _list_namespaces(self, op: ListNamespacesOp, now: int) -> list[tuple[str, ...]]:
        where: list[str] = []
        params: list[Any] = []
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix":
                fixed: list[str] = []
                for label in condition.path:
                    if label == "*":
                        break
                    fixed.append(label)
                if fixed:
                    sql, more = self._sql.namespace(_prefix(fixed))
                    where.append(sql)
                    params += more
        if self._omit_expired():
            where.append(self._sql.live)
            params.append(now)
        sql = f"SELECT DISTINCT prefix FROM {STORE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        found: set[tuple[str, ...]] = set()
        for (prefix,) in self._execute(sql, params).fetchall():
            namespace = tuple(prefix.split("."))
            if all(_matches_condition(namespace, c) for c in op.match_conditions or ()):
                found.add(namespace[: op.max_depth] if op.max_depth is not None else namespace)
        return sorted(found)[op.offset : op.offset + op.limit]

    # -- TTL ------------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete the items whose TTL has run out; returns how many."""
        self._engine.ensure_ready()

        def run() -> int:
            cursor = self._execute(self._sql.sweep, (_now_us(),))
            return max(int(cursor.rowcount or 0), 0)

        return self._engine.run("sweep expired LangGraph store items", run)

    async def asweep_ttl(self) -> int:
        """Async :meth:`sweep_ttl`."""
        return await asyncio.to_thread(self.sweep_ttl)

    def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Run :meth:`sweep_ttl` in a daemon thread every ``sweep_interval_minutes`` (else the
        ``ttl`` config's, else 5) until :meth:`stop_ttl_sweeper` or :meth:`close`.

        Returns a future that completes when the sweeper stops. A failed sweep is logged and
        tried again at the next interval.
        """
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._sweeper is not None and self._sweeper.is_alive():
            future.set_result(None)
            return future
        interval = sweep_interval_minutes or (self.ttl_config or {}).get(
            "sweep_interval_minutes") or 5
        seconds = float(interval) * 60
        self._sweeper_stop.clear()

        def loop() -> None:
            try:
                while not self._sweeper_stop.wait(seconds):
                    try:
                        deleted = self.sweep_ttl()
                    except Exception:
                        log.exception("TTL sweep of %s failed", self.url)
                    else:
                        if deleted:
                            log.info("TTL sweep deleted %d items from %s", deleted, self.url)
            finally:
                future.set_result(None)

        self._sweeper = threading.Thread(target=loop, name="peewee-store-ttl-sweeper",
                                         daemon=True)
        self._sweeper.start()
        return future

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; True if it stopped (or was not running)."""
        thread = self._sweeper
        if thread is None or not thread.is_alive():
            return True
        self._sweeper_stop.set()
        thread.join(timeout)
        stopped = not thread.is_alive()
        if stopped:
            self._sweeper = None
        return stopped

