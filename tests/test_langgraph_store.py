"""PeeweeStore, LangGraph's BaseStore on this package's database, on every backend."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

if not os.environ.get("PEEWEE_CHECKPOINTS_REQUIRE_LANGGRAPH"):
    pytest.importorskip("langgraph.store.base", reason="pip install -e '.[langgraph-test]'")

from langgraph.store.base import GetOp, InvalidNamespaceError, ListNamespacesOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from peewee_checkpoints import InvalidCheckpointError
from peewee_checkpoints.langgraph import PeeweeStore
from peewee_checkpoints.langgraph.store import STORE
from tests.test_langgraph_saver_extras import open_connections


@pytest.fixture
def store(db_url: str) -> Iterator[PeeweeStore]:
    s = PeeweeStore(db_url)
    try:
        yield s
    finally:
        s.close()


def test_put_get_update_delete(store: PeeweeStore) -> None:
    ns = ("users", "u-1", "memories")
    assert store.get(ns, "a") is None
    value = {"text": "likes tea", "n": 2**70, "f": 1.5, "deep": {"x": [1, None, True]},
             "unicode": "é\U0001f600", "z": 0, "a": 1}
    store.put(ns, "a", value)
    item = store.get(ns, "a")
    assert item is not None
    assert item.value == value
    assert item.namespace == ns and item.key == "a"
    created = item.created_at
    assert created.tzinfo is not None and item.updated_at == created
    time.sleep(0.01)
    store.put(ns, "a", {"text": "likes coffee"})
    again = store.get(ns, "a")
    assert again is not None and again.value == {"text": "likes coffee"}
    assert again.created_at == created and again.updated_at > created
    store.delete(ns, "a")
    assert store.get(ns, "a") is None
    store.delete(ns, "a")  # deleting what is gone is fine


def test_batch_keeps_order_and_reads_its_own_writes(store: PeeweeStore) -> None:
    results = store.batch([
        PutOp(("b",), "k1", {"v": 1}),
        GetOp(("b",), "k1"),
        PutOp(("b",), "k1", {"v": 2}),
        GetOp(("b",), "k1"),
        SearchOp(("b",), filter={"v": 2}),
        ListNamespacesOp(),
        PutOp(("b",), "k1", None),
        GetOp(("b",), "k1"),
    ])
    assert results[0] is None and results[1].value == {"v": 1}  # type: ignore[union-attr]
    assert results[3].value == {"v": 2}  # type: ignore[union-attr]
    assert [i.key for i in results[4]] == ["k1"]  # type: ignore[union-attr]
    assert results[5] == [("b",)]
    assert results[7] is None

    # Consecutive puts go out as multi-row upserts: the last put of a key wins.
    many = [PutOp(("m",), f"k{i % 300}", {"v": i}) for i in range(600)]
    assert store.batch(many) == [None] * 600
    assert store.get(("m",), "k7").value == {"v": 307}  # type: ignore[union-attr]
    assert len(store.search(("m",), limit=1000)) == 300

    async def main() -> list[Any]:
        return await store.abatch([PutOp(("c",), "x", {"v": 3}), GetOp(("c",), "x")])

    assert asyncio.run(main())[1].value == {"v": 3}


def test_namespaces_match_whole_labels_and_are_exact(store: PeeweeStore) -> None:
    for ns in [("a",), ("a", "b"), ("ab",), ("a_b",), ("a%",), ("A",), ("a", "b", "c"),
               ("a ",), ("a/",)]:
        store.put(ns, "k", {"ns": list(ns)})
    def found(prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {i.namespace for i in store.search(prefix, limit=100)}

    assert found(("a",)) == {("a",), ("a", "b"), ("a", "b", "c")}
    assert found(("a", "b")) == {("a", "b"), ("a", "b", "c")}
    assert found(("a_b",)) == {("a_b",)}
    assert found(("a%",)) == {("a%",)}
    assert found(("A",)) == {("A",)}
    assert found(("a ",)) == {("a ",)}
    assert len(found(())) == 9
    assert store.get(("a ",), "k") is not None and store.get(("a",), "k ") is None


def test_invalid_namespaces_keys_and_values_are_refused(store: PeeweeStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph",), "k", {})
    store.batch([PutOp(("langgraph", "x"), "k", {})])  # ops past the public API may use it
    with pytest.raises(InvalidNamespaceError):
        store.put(("x" * 513,), "k", {})
    with pytest.raises(InvalidCheckpointError):
        store.put(("a",), "k" * 256, {})
    with pytest.raises(InvalidCheckpointError):
        store.put(("a",), "k", {"nan": float("nan")})
    with pytest.raises(InvalidCheckpointError):
        store.put(("a",), "k", {"nul": "a\x00b"})
    with pytest.raises(InvalidCheckpointError):
        store.put(("a",), "k", [1, 2])  # type: ignore[arg-type]
    store.put(("x" * 250, "y" * 261), "k" * 255, {"ok": True})  # the longest allowed
    assert store.get(("x" * 250, "y" * 261), "k" * 255) is not None


# -- filters: SQL (and the Python fallback) agree with a plain-Python reference ------------------

_VALUES = [None, True, False, 0, 1, 2, -1, 1.5, 2.0, 10**12, "", "a", "b", "B", "10", "é", "a ",
           [1, 2], {"x": 1}, {"x": 1, "y": 2}]


def _reference(value: dict[str, Any], filter_: dict[str, Any]) -> bool:
    def equal(actual: Any, expected: Any, present: bool) -> bool:
        if expected is None:
            return actual is None
        if not present or isinstance(expected, bool) != isinstance(actual, bool):
            return False
        if isinstance(expected, dict):
            return isinstance(actual, dict) and all(
                equal(actual.get(k), v, k in actual) for k, v in expected.items())
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            return isinstance(actual, (int, float)) and actual == expected
        return type(actual) is type(expected) and actual == expected

    for key, expected in filter_.items():
        present, actual = key in value, value.get(key)
        ops = expected if isinstance(expected, dict) and any(
            k.startswith("$") for k in expected) else {"$eq": expected}
        for op, operand in ops.items():
            if op == "$eq":
                ok = equal(actual, operand, present)
            elif op == "$ne":
                ok = not equal(actual, operand, present)
            elif not present:
                ok = False
            else:
                num = (isinstance(actual, (int, float)) and not isinstance(actual, bool)
                       and isinstance(operand, (int, float)) and not isinstance(operand, bool))
                text = isinstance(actual, str) and isinstance(operand, str)
                if not (num or text):
                    ok = False
                else:
                    ok = {"$gt": actual > operand, "$gte": actual >= operand,
                          "$lt": actual < operand, "$lte": actual <= operand}[op]
            if not ok:
                return False
    return True


def test_filters_match_the_reference_semantics(store: PeeweeStore) -> None:
    rng = random.Random(14)
    values: dict[str, dict[str, Any]] = {}
    for i in range(120):
        value = {k: rng.choice(_VALUES) for k in ("p", "q", "my-key") if rng.random() < 0.8}
        values[f"k{i:03d}"] = value
        store.put(("f", "x" if i % 2 else "y"), f"k{i:03d}", value)
    scalars = [v for v in _VALUES if not isinstance(v, (list, dict))]
    filters: list[dict[str, Any]] = [{"p": v} for v in _VALUES]
    filters += [{"p": {op: v}} for op in ("$eq", "$ne") for v in scalars]
    filters += [{"q": {op: v}} for op in ("$gt", "$gte", "$lt", "$lte")
                for v in (0, 1, 1.5, 10**12, -5, "", "a", "B", "10")]
    filters += [{"p": {"$gte": 0, "$lt": 2}, "my-key": {"$ne": None}}, {"p": 1, "q": "a"},
                {"missing": None}, {"missing": {"$ne": 1}}, {"p": {"$ne": [1, 2]}}]
    for filter_ in filters:
        got = [i.key for i in store.search(("f",), filter=filter_, limit=1000)]
        expected = sorted(k for k, v in values.items() if _reference(v, filter_))
        assert sorted(got) == expected, filter_
        # Paging through a filtered search gives the same items in the same order.
        paged: list[str] = []
        while len(page := store.search(("f",), filter=filter_, limit=7, offset=len(paged))):
            paged += [i.key for i in page]
        assert paged == got, filter_


def test_dotted_hyphenated_and_digit_filter_keys(store: PeeweeStore) -> None:
    store.put(("docs",), "hyphen", {"access-level": "public", "user": {"access-level": "nested"}})
    store.put(("docs",), "digit", {"123abc": "ok", "user": {"123abc": "ok2", "n": 5}})

    def keys(filter_: dict[str, Any]) -> list[str]:
        return [r.key for r in store.search(("docs",), filter=filter_)]

    assert keys({"access-level": "public"}) == ["hyphen"]
    assert keys({"user.access-level": "nested"}) == ["hyphen"]
    assert keys({"123abc": "ok"}) == ["digit"]
    assert keys({"user.123abc": "ok2"}) == ["digit"]
    assert keys({"user.n": {"$gt": 4}}) == ["digit"]
    assert keys({"user.n": {"$ne": 5}}) == ["hyphen"]
    assert keys({"user": {"n": 5}}) == ["digit"]  # a nested-dict operand (matched in Python)


def test_unknown_filter_operators_are_refused(store: PeeweeStore) -> None:
    store.put(("a",), "k", {"p": "x"})
    assert store.search(("a",), filter={"p": "x\x00' OR '1'='1"}) == []  # matched in Python
    assert len(store.search(("a",), filter={"p": {"$ne": "x\x00"}})) == 1
    with pytest.raises(ValueError, match=r"\$regex"):
        store.search(("a",), filter={"p": {"$regex": "x"}})


def test_search_pages_are_stable_while_others_write(store: PeeweeStore) -> None:
    ns = ("page",)
    for i in range(30):
        store.put(ns, f"k{i:02d}", {"i": i})
    seen: list[str] = []
    offset = 0
    while True:
        page = store.search(ns, limit=4, offset=offset)
        if not page:
            break
        seen += [i.key for i in page]
        offset += len(page)
        if offset >= 30:
            continue
        # Meanwhile: updates of items on both sides of the cursor, and a new item after it.
        store.put(ns, seen[0], {"i": -1})
        store.put(ns, f"k{(offset + 5) % 30:02d}", {"i": -2})
        store.put(ns, f"new{offset}", {"i": offset})
    originals = [k for k in seen if k.startswith("k")]
    assert originals == [f"k{i:02d}" for i in range(30)]  # each once, in order
    assert len(seen) == len(set(seen))
    assert [k for k in seen if k.startswith("new")] == sorted(
        f"new{n}" for n in range(4, 31, 4))  # inserted after the cursor: seen once each


# -- list_namespaces agrees with LangGraph's InMemoryStore ----------------------------------------


def test_list_namespaces_matches_in_memory_store(store: PeeweeStore) -> None:
    reference = InMemoryStore()
    namespaces = [("a",), ("a", "b"), ("a", "b", "c"), ("a", "c"), ("b", "b"), ("b", "c", "d"),
                  ("users", "1", "memories"), ("users", "2", "memories"), ("users", "2", "prefs")]
    for ns in namespaces:
        store.put(ns, "k", {"v": 1})
        reference.put(ns, "k", {"v": 1})
    cases: list[dict[str, Any]] = [
        {}, {"prefix": ("a",)}, {"prefix": ("a", "b")}, {"suffix": ("memories",)},
        {"prefix": ("users", "*")}, {"suffix": ("*", "c")}, {"prefix": ("users",), "max_depth": 2},
        {"max_depth": 1}, {"limit": 2, "offset": 1}, {"prefix": ("*", "b")},
        {"prefix": ("users",), "suffix": ("prefs",)}, {"prefix": ("zzz",)},
    ]
    for case in cases:
        assert store.list_namespaces(**case) == reference.list_namespaces(**case), case

    async def main() -> list[tuple[str, ...]]:
        return await store.alist_namespaces(prefix=("a",))

    assert asyncio.run(main()) == reference.list_namespaces(prefix=("a",))


# -- TTL -----------------------------------------------------------------------------------------


def _backdate(store: PeeweeStore, ns: tuple[str, ...], key: str, seconds: float) -> None:
    engine, p = store._engine, store._engine.param
    engine.run("backdate", lambda: engine.execute(
        f"UPDATE {STORE} SET expires_at = expires_at - {p} WHERE prefix = {p} AND item_key = {p}",
        (int(seconds * 1_000_000), ".".join(ns), key)))


def _expires(store: PeeweeStore, ns: tuple[str, ...], key: str) -> int | None:
    engine, p = store._engine, store._engine.param
    row = engine.run("read", lambda: engine.execute(
        f"SELECT expires_at FROM {STORE} WHERE prefix = {p} AND item_key = {p}",
        (".".join(ns), key)).fetchone())
    return None if row is None else row[0]


def test_ttl_expiry_refresh_on_read_and_sweep(db_url: str) -> None:
    with PeeweeStore(db_url, ttl={"default_ttl": 1.0, "refresh_on_read": True}) as store:
        ns = ("ttl",)
        store.put(ns, "default", {"v": 1})  # the config's default_ttl: 1 minute
        store.put(ns, "short", {"v": 2}, ttl=0.5)
        store.put(ns, "forever", {"v": 3}, ttl=None)
        assert _expires(store, ns, "forever") is None
        first = _expires(store, ns, "default")
        assert first is not None

        # Reading refreshes: the deadline moves forward (unless refresh_ttl=False).
        time.sleep(0.01)
        assert store.get(ns, "default", refresh_ttl=False) is not None
        assert _expires(store, ns, "default") == first
        assert store.get(ns, "default") is not None
        refreshed = _expires(store, ns, "default")
        assert refreshed is not None and refreshed > first
        time.sleep(0.01)
        store.search(ns)
        assert (_expires(store, ns, "default") or 0) > refreshed

        # Expired items are gone for readers at once, before any sweep.
        _backdate(store, ns, "short", 31)
        assert store.get(ns, "short") is None
        assert [i.key for i in store.search(ns)] == ["default", "forever"]
        assert _expires(store, ns, "short") is not None  # still a row
        _backdate(store, ("ttl",), "default", 61)
        assert store.list_namespaces() == [ns]
        assert store.sweep_ttl() == 2
        assert _expires(store, ns, "short") is None and store.get(ns, "forever") is not None
        assert store.sweep_ttl() == 0
        # A put over an expired, unswept item makes a new item (new created_at).
        store.put(ns, "again", {"v": 4}, ttl=0.5)
        before = store.get(ns, "again")
        _backdate(store, ns, "again", 31)
        time.sleep(0.01)
        store.put(ns, "again", {"v": 5})
        after = store.get(ns, "again")
        assert before is not None and after is not None
        assert after.created_at > before.created_at and after.value == {"v": 5}


def test_background_sweeper_deletes_expired_items(db_url: str) -> None:
    with PeeweeStore(db_url) as store:
        store.put(("s",), "k", {"v": 1}, ttl=0.5)
        _backdate(store, ("s",), "k", 31)
        future = store.start_ttl_sweeper(sweep_interval_minutes=0.002)  # every 0.12 s
        deadline = time.monotonic() + 10
        while _expires(store, ("s",), "k") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _expires(store, ("s",), "k") is None
        assert store.stop_ttl_sweeper(timeout=5)
        assert future.result(timeout=5) is None


def test_omit_expired_false_keeps_them_visible_until_swept(db_url: str) -> None:
    with PeeweeStore(db_url, ttl={"omit_expired": False}) as store:
        store.put(("o",), "k", {"v": 1}, ttl=0.5)
        _backdate(store, ("o",), "k", 31)
        assert store.get(("o",), "k", refresh_ttl=False) is not None
        assert store.sweep_ttl() == 1


# -- semantic search, context managers, async ----------------------------------------------------


def test_semantic_search_is_refused_clearly_unless_ignored(db_url: str) -> None:
    with pytest.raises(NotImplementedError, match="semantic"):
        PeeweeStore(db_url, index={"dims": 3, "embed": lambda texts: [[0.0] * 3 for _ in texts]})
    with PeeweeStore.from_conn_string(db_url) as store:
        store.put(("s",), "k", {"text": "hello"})
        with pytest.raises(NotImplementedError, match=r"\$gte"):
            store.search(("s",), query="hello")
        with pytest.raises(NotImplementedError, match="semantic"):
            store.put(("s",), "k2", {"text": "x"}, index=["text"])
    with PeeweeStore(db_url, ignore_semantic=True) as lenient:
        assert [i.key for i in lenient.search(("s",), query="anything")] == ["k"]
        lenient.put(("s",), "k2", {"text": "x"}, index=["text"])


def test_async_api_and_context_managers_close_connections(db_url: str) -> None:
    async def main() -> None:
        async with PeeweeStore.from_conn_string(db_url) as store:
            await store.asetup()
            await store.aput(("a",), "k", {"v": 1}, ttl=5)
            item = await store.aget(("a",), "k")
            assert item is not None and item.value == {"v": 1}
            assert [i.key for i in await store.asearch(("a",), filter={"v": {"$gte": 1}})] == ["k"]
            await store.adelete(("a",), "k")
            assert await store.aget(("a",), "k") is None
            assert await store.asweep_ttl() == 0
            database = store._engine.database
        assert open_connections(database) == 0

    asyncio.run(main())


def test_concurrent_writers_from_threads(store: PeeweeStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.put(("t", str(n)), f"k{i}", {"n": n, "i": i})
                store.search(("t",), filter={"n": n}, limit=5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.search(("t",), limit=1000)) == 80
