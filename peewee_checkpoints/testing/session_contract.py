"""A conformance suite for the OpenAI Agents SDK's ``Session`` protocol, for any session.

Subclass :class:`SessionContract` and give it a ``make_session`` fixture: a callable that
takes a session id and returns a session on one fresh, empty store shared by every session
the test makes (same id, same conversation)::

    import pytest
    from peewee_checkpoints.testing import SessionContract

    class TestMySession(SessionContract):
        @pytest.fixture
        def make_session(self, tmp_path):
            made = []
            def make(session_id):
                made.append(MySession(session_id, path=tmp_path / "db"))
                return made[-1]
            yield make
            for s in made:
                s.close()

The tests are plain (synchronous) pytest tests that drive the coroutines with
``asyncio.run``: no asyncio plugin is needed. The SDK itself is only imported by the tests
that need its types (``SessionSettings``), and those skip when it is missing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

__all__ = ["SessionContract"]

_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coro)


def _msg(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


#: Items of every shape a run stores, with values that trip up naive storage.
SAMPLE_ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "Hello, what's the weather in Paris?"},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather",
     "arguments": '{"city": "Paris"}', "status": "completed"},
    {"type": "function_call_output", "call_id": "call_1", "output": "18°C, light rain"},
    {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
     "content": [{"type": "output_text", "text": "It is 18°C in Paris.", "annotations": []}]},
    {"role": "user", "content": [{"type": "input_text", "text": "emoji 😀, RTL שלום, NUL \x00."}]},
    {"role": "user", "content": "quotes ' \" \\ ; DROP TABLE x; --", "n": 2**53 + 1,
     "f": 0.1, "z": None, "t": True, "nested": {"b": [1, {"a": []}], "a": {}}},
]


class SessionContract:
    """The Session protocol's behaviour, as the SDK documents it and its users rely on.

    Needs a ``make_session`` fixture (see the module docstring).
    """

    # -- the basics -----------------------------------------------------------------------

    def test_a_new_session_is_empty(self, make_session: Callable[[str], Any]) -> None:
        session = make_session("empty")
        assert session.session_id == "empty"
        assert _run(session.get_items()) == []
        assert _run(session.get_items(5)) == []
        assert _run(session.pop_item()) is None
        _run(session.clear_session())
        assert _run(session.get_items()) == []

    def test_items_come_back_equal_and_in_the_order_they_were_added(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("roundtrip")
        _run(session.add_items(SAMPLE_ITEMS[:3]))
        _run(session.add_items(SAMPLE_ITEMS[3:]))
        assert _run(session.get_items()) == SAMPLE_ITEMS

    def test_key_order_inside_items_is_kept(self, make_session: Callable[[str], Any]) -> None:
        session = make_session("keys")
        item = {"z": 1, "a": 2, "content": "x", "role": "user"}
        _run(session.add_items([item]))
        assert list(_run(session.get_items())[0]) == ["z", "a", "content", "role"]

    def test_adding_an_empty_list_changes_nothing(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("noop")
        _run(session.add_items([]))
        assert _run(session.get_items()) == []
        _run(session.add_items([_msg("a")]))
        _run(session.add_items([]))
        assert _run(session.get_items()) == [_msg("a")]

    def test_order_holds_for_many_quick_single_item_calls(
            self, make_session: Callable[[str], Any]) -> None:
        # Items added within one clock tick must not be ordered by timestamp (SDK #1900).
        session = make_session("quick")

        async def add() -> None:
            for i in range(150):
                await session.add_items([_msg(f"m{i}")])

        _run(add())
        assert _run(session.get_items()) == [_msg(f"m{i}") for i in range(150)]

    def test_a_large_batch_keeps_its_order(self, make_session: Callable[[str], Any]) -> None:
        session = make_session("batch")
        items = [_msg(f"m{i}") for i in range(1200)]
        _run(session.add_items(items))
        assert _run(session.get_items()) == items

    def test_a_large_item_round_trips(self, make_session: Callable[[str], Any]) -> None:
        session = make_session("large")
        item = _msg("lorem ipsum " * 30_000)  # 360 KB: past MySQL's 64 KB TEXT
        _run(session.add_items([item]))
        assert _run(session.get_items()) == [item]

    # -- limits ---------------------------------------------------------------------------

    def test_limit_returns_the_newest_items_oldest_first(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("limit")
        items = [_msg(f"m{i}") for i in range(10)]
        _run(session.add_items(items))
        assert _run(session.get_items(3)) == items[-3:]
        assert _run(session.get_items(limit=1)) == items[-1:]
        assert _run(session.get_items(10)) == items
        assert _run(session.get_items(50)) == items
        assert _run(session.get_items(None)) == items

    def test_limit_zero_returns_nothing(self, make_session: Callable[[str], Any]) -> None:
        session = make_session("zero")
        _run(session.add_items([_msg("a"), _msg("b")]))
        assert _run(session.get_items(0)) == []

    def test_session_settings_limit_applies_when_no_limit_is_given(
            self, make_session: Callable[[str], Any]) -> None:
        settings_module = pytest.importorskip("agents.memory.session_settings")
        session = make_session("settings")
        items = [_msg(f"m{i}") for i in range(6)]
        _run(session.add_items(items))
        session.session_settings = settings_module.SessionSettings(limit=2)
        assert _run(session.get_items()) == items[-2:]
        assert _run(session.get_items(4)) == items[-4:], "an explicit limit wins"

    # -- pop ------------------------------------------------------------------------------

    def test_pop_returns_the_newest_item_and_removes_it(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("pop")
        _run(session.add_items([_msg("a"), _msg("b"), _msg("c")]))
        assert _run(session.pop_item()) == _msg("c")
        assert _run(session.get_items()) == [_msg("a"), _msg("b")]
        assert _run(session.pop_item()) == _msg("b")
        assert _run(session.pop_item()) == _msg("a")
        assert _run(session.pop_item()) is None
        assert _run(session.get_items()) == []

    def test_items_added_after_a_pop_come_after_the_rest(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("pop-add")
        _run(session.add_items([_msg("a"), _msg("b")]))
        _run(session.pop_item())
        _run(session.add_items([_msg("c")]))
        assert _run(session.get_items()) == [_msg("a"), _msg("c")]
        assert _run(session.get_items(1)) == [_msg("c")]

    # -- clear and isolation --------------------------------------------------------------

    def test_clear_removes_every_item_and_the_session_can_be_reused(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("clear")
        _run(session.add_items([_msg("a"), _msg("b")]))
        _run(session.clear_session())
        assert _run(session.get_items()) == []
        assert _run(session.pop_item()) is None
        _run(session.add_items([_msg("c")]))
        assert _run(session.get_items()) == [_msg("c")]

    def test_sessions_do_not_see_each_others_items(
            self, make_session: Callable[[str], Any]) -> None:
        one, two = make_session("one"), make_session("two")
        _run(one.add_items([_msg("1")]))
        _run(two.add_items([_msg("2")]))
        _run(one.clear_session())
        assert _run(two.get_items()) == [_msg("2")]
        assert _run(two.pop_item()) == _msg("2")
        assert _run(one.get_items()) == []

    def test_session_ids_match_exactly(self, make_session: Callable[[str], Any]) -> None:
        # Case, trailing spaces and LIKE wildcards are part of the id on every backend.
        ids = ["Chat", "chat", "chat ", "ch%t", "ch_t", "çhat"]
        sessions = [make_session(i) for i in ids]
        for i, session in enumerate(sessions):
            _run(session.add_items([_msg(str(i))]))
        for i, session in enumerate(sessions):
            assert _run(session.get_items()) == [_msg(str(i))], ids[i]

    def test_two_objects_with_one_id_share_the_conversation(
            self, make_session: Callable[[str], Any]) -> None:
        first, second = make_session("shared"), make_session("shared")
        _run(first.add_items([_msg("a")]))
        _run(second.add_items([_msg("b")]))
        assert _run(first.get_items()) == [_msg("a"), _msg("b")]
        assert _run(first.pop_item()) == _msg("b")
        assert _run(second.get_items()) == [_msg("a")]

    # -- copies ---------------------------------------------------------------------------

    def test_changing_items_after_adding_or_reading_does_not_change_the_store(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("copies")
        item: dict[str, Any] = {"role": "user",
                                "content": [{"type": "input_text", "text": "a"}]}
        _run(session.add_items([item]))
        item["content"][0]["text"] = "changed"
        read = _run(session.get_items())
        read[0]["role"] = "changed"
        assert _run(session.get_items()) == [
            {"role": "user", "content": [{"type": "input_text", "text": "a"}]}]

    # -- concurrency ----------------------------------------------------------------------

    def test_concurrent_first_writes_lose_nothing_and_keep_each_call_contiguous(
            self, make_session: Callable[[str], Any]) -> None:
        # Several session objects, one id, first writes at once (SDK #2722).
        sessions = [make_session("race") for _ in range(4)]
        batches = [[{"role": "user", "content": f"{w}-{b}-{i}"} for i in range(5)]
                   for w in range(4) for b in range(5)]
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            try:
                for b in range(5):
                    _run(sessions[w].add_items(batches[w * 5 + b]))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        stored = _run(sessions[0].get_items())
        assert len(stored) == 100, f"{100 - len(stored)} items lost"
        for start in range(0, 100, 5):
            chunk = [item["content"] for item in stored[start:start + 5]]
            w, b, _ = chunk[0].split("-")
            assert chunk == [f"{w}-{b}-{i}" for i in range(5)], "a batch was interleaved"

    def test_concurrent_pops_never_return_the_same_item(
            self, make_session: Callable[[str], Any]) -> None:
        # pop_item must be atomic (SDK #4205).
        sessions = [make_session("pops") for _ in range(4)]
        _run(sessions[0].add_items([_msg(f"m{i}") for i in range(40)]))
        popped: list[Any] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def popper(w: int) -> None:
            try:
                for _ in range(15):
                    item = _run(sessions[w].pop_item())
                    with lock:
                        popped.append(item)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=popper, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        got = [item["content"] for item in popped if item is not None]
        assert len(got) == len(set(got)), "an item was popped twice"
        assert sorted(got) == sorted(f"m{i}" for i in range(40)), "an item was lost"
        assert _run(sessions[0].get_items()) == []

    def test_concurrent_calls_on_one_event_loop(
            self, make_session: Callable[[str], Any]) -> None:
        session = make_session("gather")

        async def go() -> list[Any]:
            await asyncio.gather(*(session.add_items([_msg(f"{b}-0"), _msg(f"{b}-1")])
                                   for b in range(10)))
            return list(await session.get_items())

        stored = [item["content"] for item in _run(go())]
        assert len(stored) == 20
        for start in range(0, 20, 2):
            b = stored[start].split("-")[0]
            assert stored[start:start + 2] == [f"{b}-0", f"{b}-1"]
