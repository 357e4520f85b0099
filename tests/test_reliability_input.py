"""Hostile and odd input, property-based (hypothesis) on every backend.

Each property runs a fixed number of examples, derandomized so CI sees the same ones every
time: state round trip 150, hostile names/ids/filters 150, hostile ids to retrieve/delete 100.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peewee_checkpoints import (
    InvalidCheckpointError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StorageError,
)
from peewee_checkpoints.testing.contract import assert_same_json

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

# Every Unicode plane (0-16), lone surrogates included where a test says so.
any_char = st.characters(codec=None, exclude_categories=["Cs"])
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
astral = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)
SQL_BITS = ["'", '"', "`", ";", "--", "/*", "*/", "\\", "%", "_", "\x00", "\n", " ",
            "DROP TABLE peewee_checkpoints", "' OR '1'='1", "SELECT", "NULL", "%s", "?", ":id",
            "$1", "\u0130", "\ufeff", "\u200b", "e\u0301", "\U0001f600", "\U000e0001"]
hostile_text = st.one_of(
    st.lists(st.sampled_from(SQL_BITS), max_size=6).map("".join),
    st.lists(st.one_of(any_char, astral, st.sampled_from(SQL_BITS)), max_size=20).map("".join),
)

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63), 2**64]),
    st.text(alphabet=st.one_of(any_char, astral, surrogate, st.just("\x00"))),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(alphabet=st.one_of(any_char, surrogate, st.just("\x00")),
                                max_size=8), inner, max_size=5),
    ),
    max_leaves=30,
)
json_state = st.dictionaries(st.text(max_size=10), json_value, max_size=6)


def test_any_json_state_round_trips_exactly(provider: PeeweeCheckpointProvider) -> None:
    @settings(max_examples=150, **SETTINGS)
    @given(state=json_state)
    def check(state: dict[str, Any]) -> None:
        cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state=state))
        got = provider.retrieve_checkpoint(cid)
        assert got is not None
        assert_same_json(got.state, state)

    check()


def test_deep_nesting_round_trips_and_too_deep_is_refused_cleanly(
    provider: PeeweeCheckpointProvider,
) -> None:
    def nested(depth: int) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for _ in range(depth):
            state = {"k": [state]}
        return state

    deep = nested(250)  # 500 levels of JSON
    cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state=deep))
    got = provider.retrieve_checkpoint(cid)
    assert got is not None and got.state == deep
    # Deeper than Python's JSON can go on any version (3.13's C encoder goes past the
    # recursion limit: 4,000 levels round-trip there, 100,000 do not).
    too_deep = nested(50_000)
    with pytest.raises(InvalidCheckpointError):
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state=too_deep))
    assert len(provider.list_checkpoints()) == 1


def _storable(value: str) -> bool:
    """What the package accepts in a text field: no NUL, no lone surrogate."""
    return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def test_hostile_names_and_keys_round_trip_or_are_refused_and_filters_match_literally(
    provider: PeeweeCheckpointProvider,
) -> None:
    stored: dict[str, tuple[str, str, str]] = {}  # id -> (agent_id, session_id, agent_type)

    @settings(max_examples=150, **SETTINGS)
    @given(name=hostile_text, agent_id=hostile_text, session_id=hostile_text,
           agent_type=hostile_text, probe=hostile_text, bad=surrogate)
    def check(name: str, agent_id: str, session_id: str, agent_type: str, *, probe: str,
              bad: str) -> None:
        name, agent_id = name or "n", agent_id or "a"
        cp = NamedCheckpoint(name=name, agent_id=agent_id, state={"v": name},
                             session_id=session_id, agent_type=agent_type)
        if all(map(_storable, (name, agent_id, session_id, agent_type))):
            cid = provider.store_checkpoint(cp)
            stored[cid] = (agent_id, session_id, agent_type)
            got = provider.retrieve_checkpoint(cid)
            assert got is not None
            assert (got.name, got.agent_id, got.session_id, got.agent_type) == (
                name, agent_id, session_id, agent_type)
        else:
            before = len(provider.list_checkpoints())
            with pytest.raises(InvalidCheckpointError):
                provider.store_checkpoint(cp)
            assert len(provider.list_checkpoints()) == before
        # Lone surrogates in a name are refused (state keeps them: see the round-trip test).
        with pytest.raises(InvalidCheckpointError):
            provider.store_checkpoint(NamedCheckpoint(name=name + bad, agent_id="a", state={}))
        # Filters are exact: %, _, quotes and keywords are literal, case and spaces count.
        for field, index in (("agent_id", 0), ("session_id", 1), ("agent_type", 2)):
            for value in (probe, agent_id, session_id):
                listed = {i.id for i in provider.list_checkpoints(**{field: value})}
                expected = {c for c, keys in stored.items() if keys[index] == value}
                assert listed == expected, (field, value)

    check()


def test_hostile_ids_find_nothing_and_never_raise_a_driver_error(
    provider: PeeweeCheckpointProvider,
) -> None:
    keep = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))

    @settings(max_examples=100, **SETTINGS)
    @given(checkpoint_id=st.one_of(hostile_text, st.text(alphabet=surrogate, min_size=1),
                                   st.just(keep + "%"), st.just(keep[:-1] + "_"),
                                   st.just(keep.lower()), st.just(" " + keep)))
    def check(checkpoint_id: str) -> None:
        assert provider.retrieve_checkpoint(checkpoint_id) is None
        assert provider.delete_checkpoint(checkpoint_id) is False

    check()
    assert provider.retrieve_checkpoint(keep) is not None


# -- a state too large for the server ----------------------------------------------------------


def _incompressible(stored_bytes: int) -> str:
    """Text that still takes at least ``stored_bytes`` once the codec has compressed it."""
    return base64.b64encode(os.urandom(stored_bytes)).decode()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_state_over_max_allowed_packet_is_refused_naming_the_limit(
    provider: PeeweeCheckpointProvider,
) -> None:
    packet = provider.database.execute_sql("SELECT @@max_allowed_packet").fetchone()[0]
    state = {"blob": _incompressible(packet + 4096)}
    with pytest.raises(StorageError, match="max_allowed_packet") as info:
        provider.store_checkpoint(NamedCheckpoint(name="big", agent_id="a", state=state))
    assert str(packet) in str(info.value) and "nothing was written" in str(info.value)
    assert provider.list_checkpoints() == []


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"),
                    reason="sqlite3 Connection.setlimit needs Python 3.11+")
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_state_over_the_sqlite_length_limit_is_refused_naming_the_limit(
    provider: PeeweeCheckpointProvider,
) -> None:
    provider.migrate()
    provider.database.connection().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100_000)
    with pytest.raises(StorageError, match="SQLITE_LIMIT_LENGTH") as info:
        provider.store_checkpoint(NamedCheckpoint(name="big", agent_id="a",
                                                  state={"blob": _incompressible(200_000)}))
    assert "100000" in str(info.value) and "nothing was written" in str(info.value)
    assert provider.list_checkpoints() == []
    provider.store_checkpoint(NamedCheckpoint(name="small", agent_id="a", state={"x": 1}))
    assert len(provider.list_checkpoints()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_state_over_the_postgres_literal_limit_is_refused_naming_the_limit(
    provider: PeeweeCheckpointProvider,
) -> None:
    """About 270 MB of state (1-2 s and 1.5 GB of memory): refused before it is sent."""
    state = {"blob": _incompressible(2**28)}
    with pytest.raises(StorageError, match=r"2\*\*29 - 1 characters") as info:
        provider.store_checkpoint(NamedCheckpoint(name="big", agent_id="a", state=state))
    assert "nothing was written" in str(info.value)
    del state
    assert provider.list_checkpoints() == []
