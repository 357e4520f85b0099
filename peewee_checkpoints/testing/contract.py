"""Contract tests every CheckpointProvider must pass (see the package docstring)."""

from __future__ import annotations

import base64
import datetime
import threading
import uuid
from typing import Any

import pytest

from ..errors import CheckpointError, InvalidCheckpointError
from ..interface import CheckpointProvider
from ..records import (
    AppCheckpoint,
    AppCheckpointListItem,
    CheckpointListItem,
    CheckpointPage,
    NamedCheckpoint,
    StoredAppCheckpoint,
    StoredCheckpoint,
    now_ms,
)

__all__ = ["CheckpointProviderContract", "assert_same_json"]


def assert_same_json(actual: Any, expected: Any, path: str = "state") -> None:
    """Assert equality with the same types at every level and the same key order."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: key order differs"
        for key, value in expected.items():
            assert_same_json(actual[key], value, f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and expected == 0.0:
        assert str(actual) == str(expected), f"{path}: {actual!r} != {expected!r}"  # -0.0
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for i in range(depth):
        node = {"level": i, "child": [node]}
    return node


def _chat(turns: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user" if i % 2 else "assistant",
             "content": f"message {i}: " + "lorem ipsum " * (i % 7)}
            for i in range(turns)
        ]
    }


TRICKY_STATES: dict[str, dict[str, Any]] = {
    "an empty dict": {},
    "64-bit integers": {"max": 2**63 - 1, "min": -(2**63), "umax": 2**64 - 1, "zero": 0},
    "floats that are whole numbers": {"one": 1.0, "neg": -2.0, "big": 1e16, "negzero": -0.0},
    "extreme floats": {"huge": 1e308, "tiny": 5e-324, "pi": 3.141592653589793},
    "unicode with NUL, emoji and right-to-left text": {
        "nul": "a\x00b", "emoji": "😀🧪🏳️‍🌈", "astral": "\U0010ffff𝄞", "rtl": "שלום مرحبا",
        "ключ ✓": "accents: àéîõü ß ñ", "quotes": "'\"\\; DROP TABLE x; --",
    },
    "keys in a non-sorted order": {"z": 1, "a": 2, "m": {"y": 1, "b": 2}, "0": 3},
    "deep nesting": _deep(400),
    "mixed scalar types": {"t": True, "f": False, "n": None, "i": 1, "x": 1.5, "s": "1",
                           "l": [1, 1.0, "1", True, None, [], {}]},
    "a 200 KB chat history (past MySQL's 64 KB TEXT)": _chat(2000),
}

INVALID_STATES: dict[str, Any] = {
    "a set": {"s": {1, 2}},
    "bytes": {"b": b"raw"},
    "a datetime": {"d": datetime.datetime(2024, 1, 1)},
    "NaN": {"x": float("nan")},
    "infinity": {"x": float("inf")},
    "a non-str key": {1: "one"},
    "a tuple": {"t": (1, 2)},
    "a UUID": {"u": uuid.uuid4()},
    "a list instead of a dict": [1, 2],
    "None instead of a dict": None,
}


def _cp(**overrides: Any) -> NamedCheckpoint:
    fields: dict[str, Any] = {"name": "cp", "agent_id": "agent", "state": {"k": "v"}}
    fields.update(overrides)
    return NamedCheckpoint(**fields)


def _order_key(item: CheckpointListItem) -> tuple[int, str]:
    return (item.created_at, item.id)


def _walk(provider: CheckpointProvider, limit: int, cursor: str | None = None,
          **filters: Any) -> list[CheckpointPage]:
    """Every page from ``cursor`` (None: the first page) until next_cursor is None."""
    pages = [provider.page_checkpoints(limit=limit, cursor=cursor, **filters)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 1000, "paging does not end"
        pages.append(provider.page_checkpoints(limit=limit, cursor=pages[-1].next_cursor,
                                               **filters))
    return pages


def _ids(provider: CheckpointProvider) -> set[str]:
    return {i.id for i in provider.list_checkpoints()}


class CheckpointProviderContract:
    """The contract suite.

    Needs a ``provider`` fixture (on the subclass or in a conftest) that yields a fresh,
    empty provider for each test.
    """

    # -- store and retrieve ---------------------------------------------------------------

    def test_store_returns_a_string_id_and_retrieve_returns_every_field(
        self, provider: CheckpointProvider
    ) -> None:
        cp = NamedCheckpoint(name="first", agent_id="a1", state={"x": 1}, session_id="s1",
                             agent_type="coder", created_at=1_700_000_000_123)
        cid = provider.store_checkpoint(cp)
        assert isinstance(cid, str) and cid
        got = provider.retrieve_checkpoint(cid)
        assert got == StoredCheckpoint(id=cid, name="first", agent_id="a1", state={"x": 1},
                                       session_id="s1", agent_type="coder",
                                       created_at=1_700_000_000_123)

    def test_defaults_are_empty_session_and_type_and_now(
        self, provider: CheckpointProvider
    ) -> None:
        start = now_ms()
        cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
        got = provider.retrieve_checkpoint(cid)
        assert got is not None
        assert (got.session_id, got.agent_type) == ("", "")
        assert start <= got.created_at <= now_ms()

    @pytest.mark.parametrize("label", list(TRICKY_STATES))
    def test_tricky_state_round_trips_exactly(
        self, provider: CheckpointProvider, label: str
    ) -> None:
        state = TRICKY_STATES[label]
        cid = provider.store_checkpoint(_cp(state=state))
        got = provider.retrieve_checkpoint(cid)
        assert got is not None
        assert got.state == state
        assert_same_json(got.state, state)

    def test_ids_are_unique_and_sort_by_creation(self, provider: CheckpointProvider) -> None:
        ids = [provider.store_checkpoint(_cp()) for _ in range(50)]
        assert len(set(ids)) == 50
        assert ids == sorted(ids)

    def test_retrieve_of_an_unknown_id_returns_none(self, provider: CheckpointProvider) -> None:
        provider.store_checkpoint(_cp())
        assert provider.retrieve_checkpoint("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None

    @pytest.mark.parametrize(
        "bad_id",
        ["", "x" * 10_000, "\x00", "nul\x00inside", "\ud800", "'; DROP TABLE x; --", "%", "_",
         " ", 123, None],
        ids=["empty", "very long", "NUL", "NUL inside", "lone surrogate", "SQL injection",
             "percent", "underscore", "space", "an int", "None"],
    )
    def test_retrieve_of_a_malformed_id_returns_none(
        self, provider: CheckpointProvider, bad_id: Any
    ) -> None:
        provider.store_checkpoint(_cp())
        assert provider.retrieve_checkpoint(bad_id) is None

    def test_stored_state_is_not_aliased_to_the_callers_object(
        self, provider: CheckpointProvider
    ) -> None:
        state: dict[str, Any] = {"items": [1, 2]}
        cid = provider.store_checkpoint(_cp(state=state))
        state["items"].append(3)
        got = provider.retrieve_checkpoint(cid)
        assert got is not None and got.state == {"items": [1, 2]}
        got.state["items"].append(4)
        again = provider.retrieve_checkpoint(cid)
        assert again is not None and again.state == {"items": [1, 2]}

    # -- invalid input --------------------------------------------------------------------

    @pytest.mark.parametrize("label", list(INVALID_STATES))
    def test_invalid_state_is_refused_and_nothing_is_written(
        self, provider: CheckpointProvider, label: str
    ) -> None:
        with pytest.raises(InvalidCheckpointError):
            provider.store_checkpoint(_cp(state=INVALID_STATES[label]))
        assert provider.list_checkpoints() == []

    @pytest.mark.parametrize(
        "overrides",
        [{"name": ""}, {"agent_id": ""}, {"created_at": -1}, {"name": 5}, {"agent_id": None},
         {"created_at": 1.5}, {"session_id": None}],
        ids=["empty name", "empty agent_id", "negative created_at", "non-str name",
             "None agent_id", "float created_at", "None session_id"],
    )
    def test_invalid_fields_are_refused_and_nothing_is_written(
        self, provider: CheckpointProvider, overrides: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidCheckpointError) as info:
            provider.store_checkpoint(_cp(**overrides))
        assert isinstance(info.value, ValueError) and isinstance(info.value, CheckpointError)
        assert provider.list_checkpoints() == []

    # -- listing --------------------------------------------------------------------------

    def test_list_returns_items_without_state_newest_first(
        self, provider: CheckpointProvider
    ) -> None:
        ids = [provider.store_checkpoint(_cp(name=f"n{i}", created_at=1000 + i)) for i in range(5)]
        items = provider.list_checkpoints()
        assert [i.id for i in items] == list(reversed(ids))
        assert all(isinstance(i, CheckpointListItem) for i in items)
        assert not hasattr(items[0], "state")
        assert items[0] == CheckpointListItem(id=ids[4], name="n4", agent_id="agent",
                                              session_id="", agent_type="", created_at=1004)

    def test_list_breaks_created_at_ties_by_id_descending(
        self, provider: CheckpointProvider
    ) -> None:
        for i in range(30):
            provider.store_checkpoint(_cp(name=f"n{i}", created_at=5000 + i % 3))
        items = provider.list_checkpoints()
        assert len(items) == 30
        keys = [_order_key(i) for i in items]
        assert keys == sorted(keys, reverse=True)
        assert provider.list_checkpoints() == items  # stable

    def test_each_filter_matches_exactly_and_filters_combine_with_and(
        self, provider: CheckpointProvider
    ) -> None:
        rows = [("a1", "s1", "t1"), ("a1", "s2", "t1"), ("a2", "s1", "t2"), ("a2", "s2", "t1"),
                ("a1", "s1", "t2")]
        ids = {provider.store_checkpoint(_cp(agent_id=a, session_id=s, agent_type=t,
                                             created_at=100 + n)): (a, s, t)
               for n, (a, s, t) in enumerate(rows)}
        filter_sets: list[dict[str, str]] = [
            {"agent_id": "a1"}, {"session_id": "s1"}, {"agent_type": "t1"},
            {"agent_id": "a1", "session_id": "s1"}, {"agent_id": "a2", "agent_type": "t1"},
            {"agent_id": "a1", "session_id": "s1", "agent_type": "t2"}, {"agent_id": "nobody"},
        ]
        for kwargs in filter_sets:
            # Stored oldest first with distinct created_at, so the listing is the reverse.
            expected = [cid for cid, (a, s, t) in reversed(ids.items())
                        if all(kwargs.get(k, v) == v
                               for k, v in (("agent_id", a), ("session_id", s),
                                            ("agent_type", t)))]
            got = [i.id for i in provider.list_checkpoints(
                agent_id=kwargs.get("agent_id"), session_id=kwargs.get("session_id"),
                agent_type=kwargs.get("agent_type"))]
            assert got == expected, kwargs

    def test_before_and_after_are_strict_bounds(self, provider: CheckpointProvider) -> None:
        for t in (10, 20, 30, 40):
            provider.store_checkpoint(_cp(created_at=t))
        assert [i.created_at for i in provider.list_checkpoints(before=30)] == [20, 10]
        assert [i.created_at for i in provider.list_checkpoints(after=20)] == [40, 30]
        assert [i.created_at for i in provider.list_checkpoints(after=10, before=40)] == [30, 20]
        assert provider.list_checkpoints(after=20, before=30) == []
        assert provider.list_checkpoints(before=0) == []
        assert len(provider.list_checkpoints(after=-1, before=2**70)) == 4

    def test_limit_caps_the_newest_and_none_means_all(self, provider: CheckpointProvider) -> None:
        for t in range(12):
            provider.store_checkpoint(_cp(created_at=t))
        assert [i.created_at for i in provider.list_checkpoints(limit=3)] == [11, 10, 9]
        assert len(provider.list_checkpoints(limit=None)) == 12
        assert provider.list_checkpoints(limit=0) == []
        assert len(provider.list_checkpoints(limit=100)) == 12

    @pytest.mark.parametrize(
        ("stored", "query"),
        [("Agent", "agent"), ("agent", "AGENT"), ("café", "cafe"), ("cafe", "café"),
         ("a", "a "), ("a ", "a"), ("a%", "a_"), ("ab", "a%"), ("ab", "a_"), ("ß", "ss"),
         ("e\u0301", "é")],
        ids=["case", "upper case", "accent removed", "accent added", "trailing space in query",
             "trailing space stored", "percent vs underscore", "percent is literal",
             "underscore is literal", "sharp s", "combining accent"],
    )
    def test_filters_never_match_a_different_string(
        self, provider: CheckpointProvider, stored: str, query: str
    ) -> None:
        provider.store_checkpoint(_cp(agent_id=stored, session_id=stored, agent_type=stored))
        assert provider.list_checkpoints(agent_id=query) == []
        assert provider.list_checkpoints(session_id=query) == []
        assert provider.list_checkpoints(agent_type=query) == []
        assert len(provider.list_checkpoints(agent_id=stored, session_id=stored,
                                             agent_type=stored)) == 1

    @pytest.mark.parametrize("value", ["100%", "a_b", "O'Brien", 'say "hi"', "x; DROP TABLE y",
                                       "SELECT", "back\\slash", " lead", "trail "])
    def test_odd_characters_in_filters_match_literally(
        self, provider: CheckpointProvider, value: str
    ) -> None:
        cid = provider.store_checkpoint(_cp(agent_id=value, session_id=value))
        provider.store_checkpoint(_cp(agent_id="other"))
        assert [i.id for i in provider.list_checkpoints(agent_id=value)] == [cid]
        assert [i.id for i in provider.list_checkpoints(session_id=value)] == [cid]

    def test_a_filter_value_no_row_can_hold_matches_nothing(
        self, provider: CheckpointProvider
    ) -> None:
        provider.store_checkpoint(_cp())
        assert provider.list_checkpoints(agent_id="a\x00") == []
        assert provider.list_checkpoints(agent_id="x" * 5000) == []

    # -- delete ---------------------------------------------------------------------------

    def test_delete_removes_once(self, provider: CheckpointProvider) -> None:
        keep = provider.store_checkpoint(_cp(name="keep"))
        gone = provider.store_checkpoint(_cp(name="gone"))
        assert provider.delete_checkpoint(gone) is True
        assert provider.delete_checkpoint(gone) is False
        assert provider.retrieve_checkpoint(gone) is None
        assert [i.id for i in provider.list_checkpoints()] == [keep]
        assert provider.delete_checkpoint("no-such-id") is False
        assert provider.delete_checkpoint("\x00") is False

    # -- import (copies between stores keep their ids) ------------------------------------

    def test_import_keeps_the_id_and_skips_an_existing_one(
        self, provider: CheckpointProvider
    ) -> None:
        cp = StoredCheckpoint(id="01HZZZZZZZZZZZZZZZZZZZZZZZ", name="copied", agent_id="a",
                              state={"k": [1, 2.5]}, session_id="s", agent_type="t",
                              created_at=1234)
        try:
            assert provider.import_checkpoint(cp) is True
        except CheckpointError as exc:
            if "cannot import" in str(exc):
                pytest.skip("this provider does not import checkpoints with their ids")
            raise
        assert provider.retrieve_checkpoint(cp.id) == cp
        changed = StoredCheckpoint(**{**cp.__dict__, "name": "other"})
        assert provider.import_checkpoint(changed) is False
        assert provider.retrieve_checkpoint(cp.id) == cp
        assert [i.id for i in provider.list_checkpoints()] == [cp.id]
        with pytest.raises(InvalidCheckpointError):
            provider.import_checkpoint(StoredCheckpoint(**{**cp.__dict__, "id": ""}))

    # -- paging ---------------------------------------------------------------------------

    def test_pages_walk_every_checkpoint_once_in_listing_order(
        self, provider: CheckpointProvider
    ) -> None:
        for i in range(23):
            provider.store_checkpoint(_cp(name=f"n{i}", created_at=1000 + (i * 7) % 11))
        pages = _walk(provider, 5)
        assert [len(p.items) for p in pages] == [5, 5, 5, 5, 3]
        assert all(isinstance(p, CheckpointPage) for p in pages)
        assert all(isinstance(p.next_cursor, str) for p in pages[:-1])
        walked = [item for page in pages for item in page.items]
        assert walked == provider.list_checkpoints()

    def test_pages_walk_many_checkpoints_sharing_one_created_at_exactly_once(
        self, provider: CheckpointProvider
    ) -> None:
        # Ties are where offset-free paging breaks: a cursor on created_at alone would skip
        # or repeat rows. 40 share one millisecond, walked 3 at a time, with rows around them.
        for i in range(40):
            provider.store_checkpoint(_cp(name=f"tie{i}", created_at=5000))
        for t in (4999, 5001, 5000 - 2, 5002):
            provider.store_checkpoint(_cp(name=f"t{t}", created_at=t))
        for limit in (1, 3, 7):
            walked = [item for page in _walk(provider, limit) for item in page.items]
            assert len(walked) == 44
            assert len({i.id for i in walked}) == 44
            assert walked == provider.list_checkpoints()

    def test_a_page_that_ends_the_listing_has_no_next_cursor(
        self, provider: CheckpointProvider
    ) -> None:
        assert provider.page_checkpoints() == CheckpointPage(items=[], next_cursor=None)
        for t in range(10):
            provider.store_checkpoint(_cp(created_at=t))
        first = provider.page_checkpoints(limit=5)
        assert [i.created_at for i in first.items] == [9, 8, 7, 6, 5]
        second = provider.page_checkpoints(limit=5, cursor=first.next_cursor)
        assert [i.created_at for i in second.items] == [4, 3, 2, 1, 0]
        assert second.next_cursor is None  # no empty page after an exact multiple
        assert len(provider.page_checkpoints().items) == 10  # the default page holds 50

    def test_pages_apply_filters_and_bounds(self, provider: CheckpointProvider) -> None:
        for t in range(30):
            provider.store_checkpoint(_cp(agent_id=f"a{t % 3}", session_id=f"s{t % 2}",
                                          created_at=100 + t // 2))
        for filters in ({"agent_id": "a1"}, {"agent_id": "a0", "session_id": "s1"},
                        {"after": 103, "before": 110}, {"agent_type": "", "before": 105},
                        {"agent_id": "nobody"}, {"agent_id": "a\x00"}):
            walked = [item for page in _walk(provider, 2, **filters) for item in page.items]
            assert walked == provider.list_checkpoints(**filters), filters

    def test_a_cursor_keeps_its_place_when_checkpoints_are_added_or_removed(
        self, provider: CheckpointProvider
    ) -> None:
        ids = [provider.store_checkpoint(_cp(created_at=t)) for t in range(10)]
        first = provider.page_checkpoints(limit=4)
        provider.store_checkpoint(_cp(created_at=100))  # newer: belongs before the cursor
        provider.delete_checkpoint(ids[5])  # the next page's first row
        rest = [i.id for p in _walk(provider, 4, cursor=first.next_cursor) for i in p.items]
        assert rest == [ids[4], ids[3], ids[2], ids[1], ids[0]]

    @pytest.mark.parametrize(
        "cursor",
        ["", "not a cursor", "!!!", base64.urlsafe_b64encode(b'{"v": 1}').decode(),
         base64.urlsafe_b64encode(b"[99, 1, \"x\"]").decode(),
         base64.urlsafe_b64encode(b"[1, -5, \"x\"]").decode(),
         base64.urlsafe_b64encode(b"[1, 5, 7]").decode(), "x" * 10_000, 42],
        ids=["empty", "text", "not base64", "wrong shape", "unknown version",
             "negative created_at", "non-str id", "very long", "an int"],
    )
    def test_a_malformed_cursor_is_a_value_error(
        self, provider: CheckpointProvider, cursor: Any
    ) -> None:
        provider.store_checkpoint(_cp())
        with pytest.raises(InvalidCheckpointError) as info:
            provider.page_checkpoints(cursor=cursor)
        assert isinstance(info.value, ValueError) and isinstance(info.value, CheckpointError)

    @pytest.mark.parametrize("limit", [0, -1, "5", None, 2.5])
    def test_a_page_size_must_be_a_positive_int(
        self, provider: CheckpointProvider, limit: Any
    ) -> None:
        with pytest.raises(InvalidCheckpointError):
            provider.page_checkpoints(limit=limit)

    # -- order and count -----------------------------------------------------------------

    def test_order_asc_is_the_exact_reverse_of_the_listing(
        self, provider: CheckpointProvider
    ) -> None:
        for i in range(25):
            provider.store_checkpoint(_cp(agent_id=f"a{i % 2}", created_at=300 + i // 4))
        newest_first = provider.list_checkpoints()
        assert provider.list_checkpoints(order="desc") == newest_first
        oldest_first = provider.list_checkpoints(order="asc")
        assert oldest_first == newest_first[::-1]
        assert oldest_first == sorted(oldest_first, key=_order_key)
        assert provider.list_checkpoints(order="asc", limit=3) == oldest_first[:3]
        assert provider.list_checkpoints(order="asc", agent_id="a1", after=301, before=305) == \
            provider.list_checkpoints(agent_id="a1", after=301, before=305)[::-1]

    def test_pages_and_iter_walk_oldest_first_with_ties_by_id_ascending(
        self, provider: CheckpointProvider
    ) -> None:
        provider.iter_page_size = 4
        for i in range(30):
            provider.store_checkpoint(_cp(agent_id=f"a{i % 3}", created_at=900 + i // 7))
        expected = provider.list_checkpoints(order="asc")
        for limit in (1, 4, 7, 50):
            walked = [i for p in _walk(provider, limit, order="asc") for i in p.items]
            assert walked == expected, limit
        assert list(provider.iter_checkpoints(order="asc")) == expected
        assert list(provider.iter_checkpoints(order="asc", agent_id="a2", before=903)) == \
            provider.list_checkpoints(order="asc", agent_id="a2", before=903)
        walked = [i for p in _walk(provider, 3, order="asc", after=901) for i in p.items]
        assert walked == provider.list_checkpoints(order="asc", after=901)

    def test_a_cursor_is_refused_by_the_other_order(self, provider: CheckpointProvider) -> None:
        for t in range(6):
            provider.store_checkpoint(_cp(created_at=t))
        desc = provider.page_checkpoints(limit=2).next_cursor
        asc = provider.page_checkpoints(limit=2, order="asc").next_cursor
        assert desc is not None and asc is not None and desc != asc
        with pytest.raises(InvalidCheckpointError, match="order"):
            provider.page_checkpoints(limit=2, cursor=desc, order="asc")
        with pytest.raises(InvalidCheckpointError, match="order"):
            provider.page_checkpoints(limit=2, cursor=asc)
        assert [i.created_at for i in provider.page_checkpoints(
            limit=2, cursor=asc, order="asc").items] == [2, 3]

    @pytest.mark.parametrize("order", ["ASC", "newest", None, 1])
    def test_an_unknown_order_is_refused(self, provider: CheckpointProvider, order: Any) -> None:
        with pytest.raises(InvalidCheckpointError):
            provider.list_checkpoints(order=order)
        with pytest.raises(InvalidCheckpointError):
            provider.page_checkpoints(order=order)
        with pytest.raises(InvalidCheckpointError):
            list(provider.iter_checkpoints(order=order))

    def test_count_matches_the_listing_for_every_filter(
        self, provider: CheckpointProvider
    ) -> None:
        assert provider.count_checkpoints() == 0
        for t in range(30):
            provider.store_checkpoint(_cp(agent_id=f"a{t % 3}", session_id=f"s{t % 2}",
                                          agent_type="T" if t % 5 else "t",
                                          created_at=100 + t // 2))
        for filters in ({}, {"agent_id": "a1"}, {"agent_id": "a0", "session_id": "s1"},
                        {"after": 103, "before": 110}, {"agent_type": "t"},
                        {"agent_type": "T", "before": 105}, {"agent_id": "nobody"},
                        {"agent_id": "a\x00"}, {"before": 0}, {"after": 2**63 - 1}):
            count = provider.count_checkpoints(**filters)
            assert count == len(provider.list_checkpoints(**filters)), filters
        with pytest.raises(InvalidCheckpointError):
            provider.count_checkpoints(before="now")  # type: ignore[arg-type]

    # -- app checkpoints ------------------------------------------------------------------
    # Skipped for a provider that does not store them (it keeps the interface's defaults).

    @pytest.fixture
    def apps(self, provider: CheckpointProvider) -> CheckpointProvider:
        if not provider.supports_app_checkpoints:
            pytest.skip(f"{type(provider).__name__} does not store app checkpoints")
        return provider

    def test_app_checkpoint_round_trips_every_field(self, apps: CheckpointProvider) -> None:
        cp = AppCheckpoint(name="nightly", state={"agents": ["a", "b"], "n": 2**63 - 1},
                           created_at=1_700_000_000_123)
        checkpoint_id = apps.store_app_checkpoint(cp)
        assert isinstance(checkpoint_id, str) and checkpoint_id
        got = apps.retrieve_app_checkpoint(checkpoint_id)
        assert got == StoredAppCheckpoint(id=checkpoint_id, name="nightly", state=cp.state,
                                          created_at=1_700_000_000_123)
        assert got is not None and got.to_app_checkpoint() == cp
        before = now_ms()
        fresh = apps.retrieve_app_checkpoint(apps.store_app_checkpoint(
            AppCheckpoint(name="now", state={})))
        assert fresh is not None and before - 5 <= fresh.created_at <= now_ms() + 5

    @pytest.mark.parametrize("label", ["64-bit integers", "unicode with NUL, emoji and "
                                       "right-to-left text", "a 200 KB chat history (past "
                                       "MySQL's 64 KB TEXT)", "keys in a non-sorted order"])
    def test_app_checkpoint_tricky_state_round_trips_exactly(
        self, apps: CheckpointProvider, label: str
    ) -> None:
        state = TRICKY_STATES[label]
        got = apps.retrieve_app_checkpoint(apps.store_app_checkpoint(
            AppCheckpoint(name="x", state=state)))
        assert got is not None
        assert_same_json(got.state, state)

    def test_app_checkpoints_list_newest_first_without_states(
        self, apps: CheckpointProvider
    ) -> None:
        assert apps.list_app_checkpoints() == []
        assert apps.latest_app_checkpoint() is None
        ids = [apps.store_app_checkpoint(AppCheckpoint(name=f"n{i}", state={"i": i},
                                                       created_at=100 + i // 3))
               for i in range(10)]
        listed = apps.list_app_checkpoints()
        assert all(isinstance(i, AppCheckpointListItem) for i in listed)
        assert not any(hasattr(i, "state") for i in listed)
        assert [(i.created_at, i.id) for i in listed] == sorted(
            ((i.created_at, i.id) for i in listed), reverse=True)
        assert {i.id for i in listed} == set(ids)
        assert apps.list_app_checkpoints(limit=3) == listed[:3]
        assert apps.list_app_checkpoints(limit=0) == []
        latest = apps.latest_app_checkpoint()
        assert latest is not None and latest.id == listed[0].id
        assert latest.state == {"i": int(latest.name[1:])}
        assert apps.count_app_checkpoints() == 10
        with pytest.raises(InvalidCheckpointError):
            apps.list_app_checkpoints(limit=-1)

    def test_app_checkpoints_are_apart_from_agent_checkpoints(
        self, apps: CheckpointProvider
    ) -> None:
        app_id = apps.store_app_checkpoint(AppCheckpoint(name="app", state={}))
        agent_id = apps.store_checkpoint(_cp())
        assert [i.id for i in apps.list_checkpoints()] == [agent_id]
        assert [i.id for i in apps.list_app_checkpoints()] == [app_id]
        assert apps.retrieve_checkpoint(app_id) is None
        assert apps.retrieve_app_checkpoint(agent_id) is None
        assert apps.delete_checkpoint(app_id) is False
        assert apps.delete_app_checkpoint(agent_id) is False

    def test_app_checkpoint_delete_and_unknown_ids(self, apps: CheckpointProvider) -> None:
        checkpoint_id = apps.store_app_checkpoint(AppCheckpoint(name="x", state={}))
        for bad in ("", "nope", "a\x00b", "x" * 10_000, "\ud800"):
            assert apps.retrieve_app_checkpoint(bad) is None
            assert apps.delete_app_checkpoint(bad) is False
        assert apps.delete_app_checkpoint(checkpoint_id) is True
        assert apps.delete_app_checkpoint(checkpoint_id) is False
        assert apps.retrieve_app_checkpoint(checkpoint_id) is None
        assert apps.latest_app_checkpoint() is None

    @pytest.mark.parametrize("label", list(INVALID_STATES))
    def test_app_checkpoint_invalid_state_is_refused(
        self, apps: CheckpointProvider, label: str
    ) -> None:
        with pytest.raises(InvalidCheckpointError):
            apps.store_app_checkpoint(AppCheckpoint(name="x", state=INVALID_STATES[label]))
        assert apps.list_app_checkpoints() == []

    @pytest.mark.parametrize("fields", [{"name": ""}, {"name": 5}, {"name": "a\x00"},
                                        {"created_at": -1}, {"created_at": 1.5}])
    def test_app_checkpoint_invalid_fields_are_refused(
        self, apps: CheckpointProvider, fields: dict[str, Any]
    ) -> None:
        values: dict[str, Any] = {"name": "x", "state": {}, **fields}
        with pytest.raises(InvalidCheckpointError):
            apps.store_app_checkpoint(AppCheckpoint(**values))
        with pytest.raises(InvalidCheckpointError):
            apps.store_app_checkpoint(_cp())  # type: ignore[arg-type]
        assert apps.list_app_checkpoints() == []

    def test_app_checkpoint_import_keeps_the_id_and_skips_an_existing_one(
        self, apps: CheckpointProvider
    ) -> None:
        stored = StoredAppCheckpoint(id="01ARZ3NDEKTSV4RRFFQ69G5FAV", name="copied",
                                     state={"k": [1, 2]}, created_at=42)
        assert apps.import_app_checkpoint(stored) is True
        assert apps.retrieve_app_checkpoint(stored.id) == stored
        assert apps.import_app_checkpoint(
            StoredAppCheckpoint(id=stored.id, name="other", state={}, created_at=1)) is False
        assert apps.retrieve_app_checkpoint(stored.id) == stored
        with pytest.raises(InvalidCheckpointError):
            apps.import_app_checkpoint(StoredAppCheckpoint(id="", name="x", state={}))

    # -- iteration ------------------------------------------------------------------------

    def test_iter_yields_every_match_in_listing_order_across_pages(
        self, provider: CheckpointProvider
    ) -> None:
        provider.iter_page_size = 4  # cross many page boundaries with few rows
        for i in range(30):
            provider.store_checkpoint(_cp(agent_id=f"a{i % 2}", created_at=700 + i // 5))
        iterator = provider.iter_checkpoints()
        assert iter(iterator) is iterator
        assert list(iterator) == provider.list_checkpoints()
        assert list(provider.iter_checkpoints(agent_id="a1", after=701)) == \
            provider.list_checkpoints(agent_id="a1", after=701)
        assert list(provider.iter_checkpoints(agent_id="nobody")) == []

    def test_iter_refuses_a_bad_filter(self, provider: CheckpointProvider) -> None:
        with pytest.raises(InvalidCheckpointError):
            list(provider.iter_checkpoints(before="yesterday"))  # type: ignore[arg-type]

    # -- prune ----------------------------------------------------------------------------

    def test_prune_before_deletes_strictly_older_checkpoints(
        self, provider: CheckpointProvider
    ) -> None:
        for t in (10, 20, 30, 40, 50):
            provider.store_checkpoint(_cp(created_at=t))
        assert provider.prune(before=30, dry_run=True) == 2
        assert len(provider.list_checkpoints()) == 5  # a dry run deletes nothing
        assert provider.prune(before=30) == 2
        assert [i.created_at for i in provider.list_checkpoints()] == [50, 40, 30]
        assert provider.prune(before=30) == 0
        assert provider.prune(before=0) == 0
        assert provider.prune(before=2**70) == 3
        assert provider.list_checkpoints() == []

    def test_prune_keeps_the_newest_of_each_agent(self, provider: CheckpointProvider) -> None:
        for agent, times in (("a", [1, 2, 3, 3, 3]), ("b", [5, 6]), ("c", [2, 2, 2])):
            for t in times:
                provider.store_checkpoint(_cp(agent_id=agent, created_at=t))
        expected = {a: [i.id for i in provider.list_checkpoints(agent_id=a)][:2]
                    for a in ("a", "b", "c")}
        assert provider.prune(keep_last_per_agent=2, dry_run=True) == 4
        assert len(provider.list_checkpoints()) == 10
        assert provider.prune(keep_last_per_agent=2) == 4
        for agent, kept in expected.items():
            assert [i.id for i in provider.list_checkpoints(agent_id=agent)] == kept
        assert provider.prune(keep_last_per_agent=2) == 0
        assert provider.prune(keep_last_per_agent=0) == 6
        assert provider.list_checkpoints() == []

    def test_prune_with_both_rules_removes_what_either_removes_counted_once(
        self, provider: CheckpointProvider
    ) -> None:
        for agent, times in (("a", [10, 20, 30, 40]), ("b", [10, 50]), ("c", [60])):
            for t in times:
                provider.store_checkpoint(_cp(agent_id=agent, created_at=t))
        assert provider.prune(before=2**70, keep_last_per_agent=1, dry_run=True) == 7
        # keep 2 per agent removes a@10, a@20; before=25 removes a@10, a@20, b@10.
        assert provider.prune(before=25, keep_last_per_agent=2, dry_run=True) == 3
        assert provider.prune(before=25, keep_last_per_agent=2) == 3
        assert sorted((i.agent_id, i.created_at) for i in provider.list_checkpoints()) == [
            ("a", 30), ("a", 40), ("b", 50), ("c", 60)]
        # keep 1 removes a@30 only: (b@50 is newest of b); before=55 removes a@30, a@40, b@50.
        assert provider.prune(before=55, keep_last_per_agent=1, dry_run=True) == 3
        assert provider.prune(before=55, keep_last_per_agent=1) == 3
        assert [(i.agent_id, i.created_at) for i in provider.list_checkpoints()] == [("c", 60)]

    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"dry_run": True}, {"keep_last_per_agent": -1}, {"before": "old"},
         {"keep_last_per_agent": 1.5}],
        ids=["no rule", "only dry_run", "negative keep", "str before", "float keep"],
    )
    def test_prune_refuses_bad_rules(
        self, provider: CheckpointProvider, kwargs: dict[str, Any]
    ) -> None:
        provider.store_checkpoint(_cp())
        with pytest.raises(InvalidCheckpointError):
            provider.prune(**kwargs)
        assert len(provider.list_checkpoints()) == 1

    # -- concurrency and lifecycle --------------------------------------------------------

    def test_threads_share_one_provider(self, provider: CheckpointProvider) -> None:
        errors: list[BaseException] = []
        stored: list[str] = []
        lock = threading.Lock()

        def work(n: int) -> None:
            try:
                for i in range(10):
                    cid = provider.store_checkpoint(_cp(agent_id=f"t{n}", name=f"{i}"))
                    assert provider.retrieve_checkpoint(cid) is not None
                    provider.list_checkpoints(agent_id=f"t{n}", limit=5)
                    with lock:
                        stored.append(cid)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(stored) == 80
        assert {i.id for i in provider.list_checkpoints()} == set(stored)

    def test_provider_is_a_context_manager(self, provider: CheckpointProvider) -> None:
        with provider as entered:
            assert entered is provider
            entered.store_checkpoint(_cp())
