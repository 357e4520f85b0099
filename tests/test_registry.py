"""Entry-point discovery, with real distribution metadata put on sys.path for each test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from peewee_checkpoints import (
    ConfigError,
    MemoryCheckpointProvider,
    PeeweeCheckpointProvider,
    ProviderNotFoundError,
    load_provider,
)
from peewee_checkpoints.registry import (
    ENTRY_POINT_GROUP,
    available_providers,
    create_provider,
    get_provider,
    provider_errors,
)

GOOD_MODULE = """\
from peewee_checkpoints import MemoryCheckpointProvider

class Tagged(MemoryCheckpointProvider):
    def __init__(self, tag: str, *, size: int = 1) -> None:
        super().__init__()
        self.tag, self.size = tag, size

def anything(**options):
    provider = MemoryCheckpointProvider()
    provider.options = options
    return provider

def not_a_provider():
    return {"store": "nope"}

def raises_type_error():
    raise TypeError("bad option type deep inside")

NOT_CALLABLE = 42
"""


class FakeDistributions:
    """Writes installed-distribution metadata (``*.dist-info``) into a sys.path entry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # A fresh module name per test: sys.modules would otherwise keep an earlier test's.
        self.module = f"fakeprov_{uuid.uuid4().hex[:8]}"
        (root / f"{self.module}.py").write_text(GOOD_MODULE, encoding="utf-8")

    def add(self, dist: str, version: str, entry_points: dict[str, str]) -> None:
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        lines = [f"[{ENTRY_POINT_GROUP}]"]
        lines += [f"{name} = {value.format(m=self.module)}" for name, value in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDistributions:
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates importlib's caches
    return FakeDistributions(tmp_path)


def test_this_package_registers_peewee_and_memory_with_its_distribution() -> None:
    found = available_providers()
    assert found["peewee"].value == "peewee_checkpoints.peewee_provider:PeeweeCheckpointProvider"
    assert found["memory"].value == "peewee_checkpoints.memory:MemoryCheckpointProvider"
    assert {found[n].distribution for n in ("peewee", "memory")} == {"peewee-checkpoints"}
    assert get_provider("peewee") is PeeweeCheckpointProvider
    assert get_provider("memory") is MemoryCheckpointProvider
    assert provider_errors() == {}


def test_a_third_party_provider_is_discovered_with_its_distribution(
    dists: FakeDistributions,
) -> None:
    dists.add("acme-store", "2.5.0", {"acme": "{m}:Tagged"})
    info = available_providers()["acme"]
    assert (info.distribution, info.version, info.origin) == ("acme-store", "2.5.0",
                                                              "acme-store 2.5.0")
    provider = load_provider({"checkpoints": {"providers": {"p": {
        "type": "acme", "tag": "t1", "size": 3}}}})
    assert isinstance(provider, MemoryCheckpointProvider)
    assert (provider.tag, provider.size) == ("t1", 3)  # type: ignore[attr-defined]


def test_a_provider_whose_import_fails_is_reported_and_the_others_still_load(
    dists: FakeDistributions,
) -> None:
    dists.add("broken-plugin", "0.3", {"broken": "no_such_module_xyz:Provider",
                                       "missing-attr": "{m}:NoSuchClass"})
    dists.add("acme-store", "1.0", {"acme": "{m}:Tagged"})
    assert {"broken", "missing-attr", "acme", "peewee", "memory"} <= set(available_providers())
    problems = provider_errors()
    assert set(problems) == {"broken", "missing-attr"}
    message = str(problems["broken"])
    assert "'broken'" in message and "broken-plugin 0.3" in message
    assert "ModuleNotFoundError" in message
    assert isinstance(problems["broken"].__cause__, ModuleNotFoundError)
    assert "AttributeError" in str(problems["missing-attr"])
    with pytest.raises(ProviderNotFoundError, match="broken-plugin"):
        load_provider({"checkpoints": {"providers": {"p": {"type": "broken"}}}})
    assert isinstance(create_provider("acme", {"tag": "x"}), MemoryCheckpointProvider)
    assert isinstance(create_provider("memory"), MemoryCheckpointProvider)


def test_two_distributions_registering_one_name_differently_is_an_error_naming_both(
    dists: FakeDistributions,
) -> None:
    dists.add("first-dist", "1.0", {"dup": "{m}:Tagged"})
    dists.add("second-dist", "1.0", {"dup": "{m}:anything"})
    with pytest.raises(ProviderNotFoundError, match=r"'dup'.*first-dist.*second-dist|"
                                                    r"'dup'.*second-dist.*first-dist"):
        get_provider("dup")
    assert "dup" in provider_errors()


def test_the_same_entry_point_seen_twice_is_not_a_conflict(dists: FakeDistributions) -> None:
    dists.add("twice-a", "1.0", {"twice": "{m}:anything"})
    dists.add("twice-b", "1.0", {"twice": "{m}:anything"})
    assert isinstance(create_provider("twice"), MemoryCheckpointProvider)


def test_a_factory_taking_kwargs_receives_every_option(dists: FakeDistributions) -> None:
    dists.add("kw-dist", "1.0", {"kw": "{m}:anything"})
    provider = create_provider("kw", {"a": 1, "nested": {"b": [2]}})
    assert provider.options == {"a": 1, "nested": {"b": [2]}}  # type: ignore[attr-defined]


def test_a_missing_required_option_is_named(dists: FakeDistributions) -> None:
    dists.add("acme-store", "1.0", {"acme": "{m}:Tagged"})
    with pytest.raises(ConfigError, match=r"checkpoints\.providers\.p \(type 'acme'\) needs "
                                          r"option 'tag'"):
        load_provider({"checkpoints": {"providers": {"p": {"type": "acme", "size": 1}}}})


def test_an_entry_point_returning_something_else_or_not_callable_is_refused(
    dists: FakeDistributions,
) -> None:
    dists.add("odd-dist", "1.0", {"odd": "{m}:not_a_provider", "num": "{m}:NOT_CALLABLE",
                                  "typeerr": "{m}:raises_type_error"})
    with pytest.raises(ProviderNotFoundError, match="returned a dict, not a CheckpointProvider"):
        create_provider("odd")
    with pytest.raises(ProviderNotFoundError, match=r"odd-dist.*not a callable"):
        create_provider("num")
    with pytest.raises(ConfigError, match="refused its options: TypeError") as info:
        create_provider("typeerr")
    assert isinstance(info.value.__cause__, TypeError)
