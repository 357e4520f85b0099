"""load_provider: config lookup, ${VAR} expansion, option passing and every config error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from peewee_checkpoints import (
    CheckpointError,
    ConfigError,
    MemoryCheckpointProvider,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    ProviderNotFoundError,
    load_provider,
)
from peewee_checkpoints.config import (
    CONFIG_ENV_VAR,
    expand_env,
    resolve_provider_config,
)

EXAMPLE = """\
[checkpoints]
active = "main"                    # which provider below is used when no name is given

[checkpoints.providers.main]
type = "peewee"                    # an entry-point name in peewee_checkpoints.providers
db_url = "${DATABASE_URL:-sqlite:///checkpoints.db}"

[checkpoints.providers.scratch]
type = "memory"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts in an empty directory with none of the variables the configs use."""
    for var in (CONFIG_ENV_VAR, "DATABASE_URL", "PC_TEST_VAR", "PC_TEST_ACTIVE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def memory_config(**options: Any) -> dict[str, Any]:
    return {"checkpoints": {"providers": {"scratch": {"type": "memory", **options}}}}


# -- the contract's example file, on every backend --------------------------------------------


def test_the_example_file_selects_peewee_on_the_url_from_the_environment(
    db_url: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    with load_provider(write(tmp_path / "checkpoints.toml", EXAMPLE)) as provider:
        assert isinstance(provider, PeeweeCheckpointProvider)
        assert provider.backend == backend
        cid = provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={"k": 1}))
        got = provider.retrieve_checkpoint(cid)
        assert got is not None and got.state == {"k": 1}


def test_the_example_file_falls_back_to_the_default_url(tmp_path: Path) -> None:
    with load_provider(write(tmp_path / "c.toml", EXAMPLE)) as provider:
        assert isinstance(provider, PeeweeCheckpointProvider)
        # The default's relative path, next to the config file.
        assert provider.url == f"sqlite:///{tmp_path / 'checkpoints.db'}"


def test_name_selects_another_provider_of_the_file(tmp_path: Path) -> None:
    provider = load_provider(write(tmp_path / "c.toml", EXAMPLE), name="scratch")
    assert type(provider) is MemoryCheckpointProvider


# -- where the config comes from --------------------------------------------------------------


def test_no_config_reads_the_file_named_by_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EXAMPLE.replace('active = "main"', 'active = "scratch"')
    path = write(tmp_path / "elsewhere.toml", text)
    write(tmp_path / "checkpoints.toml", EXAMPLE)  # loses to the variable
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))
    assert type(load_provider()) is MemoryCheckpointProvider


def test_no_config_and_no_variable_reads_checkpoints_toml_in_the_working_directory(
    tmp_path: Path,
) -> None:
    write(tmp_path / "checkpoints.toml", EXAMPLE.replace('active = "main"', 'active = "scratch"'))
    assert type(load_provider()) is MemoryCheckpointProvider


def test_no_config_at_all_is_peewee_on_a_sqlite_file_in_the_working_directory(
    tmp_path: Path,
) -> None:
    with load_provider() as provider:
        assert isinstance(provider, PeeweeCheckpointProvider)
        assert provider.url == "sqlite:///checkpoints.db"
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
    assert (tmp_path / "checkpoints.db").is_file()


def test_a_variable_naming_a_missing_file_is_an_error_that_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "checkpoints.toml", EXAMPLE)  # not a silent fallback
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=rf"nope\.toml.*\${CONFIG_ENV_VAR}.*does not exist"):
        load_provider()


def test_a_path_like_config_is_accepted(tmp_path: Path) -> None:
    assert isinstance(load_provider(write(tmp_path / "c.toml", EXAMPLE), name="scratch"),
                      MemoryCheckpointProvider)
    assert isinstance(load_provider(str(tmp_path / "c.toml"), name="scratch"),
                      MemoryCheckpointProvider)


def test_a_relative_sqlite_path_in_a_config_file_is_relative_to_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    config = write(tmp_path / "project" / "checkpoints.toml",
                   '[checkpoints.providers.main]\ntype = "peewee"\n'
                   'db_url = "sqlite:///data/checkpoints.db?timeout=5"\n')
    (tmp_path / "project" / "data").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with load_provider(str(Path("..") / "project" / "checkpoints.toml")) as provider:
        provider.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
    assert (tmp_path / "project" / "data" / "checkpoints.db").is_file()
    assert list((tmp_path / "elsewhere").iterdir()) == []
    chosen = resolve_provider_config(config)
    assert chosen.options["db_url"] == (
        f"sqlite:///{tmp_path / 'project' / 'data' / 'checkpoints.db'}?timeout=5")

    # The same from $PEEWEE_CHECKPOINTS_CONFIG, and for a path from a ${VAR:-default}.
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "project" / "c2.toml"))
    write(tmp_path / "project" / "c2.toml", EXAMPLE)
    assert resolve_provider_config().options["db_url"] == (
        f"sqlite:///{tmp_path / 'project' / 'checkpoints.db'}")


@pytest.mark.parametrize("url", [
    "sqlite:////var/lib/agents/checkpoints.db",  # absolute: four slashes
    "sqlite:///:memory:",
    "sqlite:///file:shared?mode=memory&cache=shared&uri=true",
    "postgresql://u:pw@db.example/agents",
    "mysql://u@localhost/agents",
])
def test_other_urls_in_a_config_file_are_left_as_written(tmp_path: Path, url: str) -> None:
    path = write(tmp_path / "c.toml", f'[checkpoints.providers.p]\ntype = "peewee"\n'
                                      f'db_url = "{url}"\n')
    assert resolve_provider_config(path).options["db_url"] == url


def test_a_mapping_or_no_config_keeps_relative_paths_relative_to_the_working_directory(
    tmp_path: Path,
) -> None:
    config = {"checkpoints": {"providers": {"p": {"type": "peewee",
                                                  "db_url": "sqlite:///rel.db"}}}}
    assert resolve_provider_config(config).options["db_url"] == "sqlite:///rel.db"
    assert resolve_provider_config().options["db_url"] == "sqlite:///checkpoints.db"


# -- choosing the provider --------------------------------------------------------------------


def test_the_only_provider_is_used_when_there_is_no_active_key() -> None:
    assert type(load_provider(memory_config())) is MemoryCheckpointProvider


def test_active_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"checkpoints": {"active": "${PC_TEST_ACTIVE:-main}", "providers": {
        "main": {"type": "peewee"}, "scratch": {"type": "memory"}}}}
    monkeypatch.setenv("PC_TEST_ACTIVE", "scratch")
    assert type(load_provider(config)) is MemoryCheckpointProvider


def test_several_providers_and_no_active_key_is_an_error_listing_them() -> None:
    config = {"checkpoints": {"providers": {"one": {"type": "memory"}, "two": {"type": "memory"}}}}
    with pytest.raises(ConfigError, match=r"'one', 'two'.*checkpoints\.active"):
        load_provider(config)
    assert type(load_provider(config, name="two")) is MemoryCheckpointProvider


def test_an_unknown_active_name_is_an_error_listing_the_defined_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", EXAMPLE.replace('active = "main"', 'active = "mian"'))
    match = r"'mian'.*checkpoints\.active.*'main', 'scratch'"
    with pytest.raises(ProviderNotFoundError, match=match):
        load_provider(path)


def test_an_unknown_name_argument_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderNotFoundError, match=r"'nope' \(from name=\)") as info:
        load_provider(write(tmp_path / "c.toml", EXAMPLE), name="nope")
    assert isinstance(info.value, ConfigError)
    # A command line names its own flag instead of the Python argument.
    with pytest.raises(ProviderNotFoundError, match=r"'nope' \(from --provider\)"):
        resolve_provider_config(tmp_path / "c.toml", name="nope", name_option="--provider")
    with pytest.raises(ConfigError, match=r"set it, or pass --provider$"):
        resolve_provider_config({"checkpoints": {"providers": {"a": {"type": "memory"},
                                                               "b": {"type": "memory"}}}},
                                name_option="--provider")


def test_a_name_without_any_config_file_says_there_is_none() -> None:
    with pytest.raises(ProviderNotFoundError, match=r"'nope' \(from name=\): no config file"):
        load_provider(name="nope")


def test_an_unknown_type_lists_the_installed_types() -> None:
    with pytest.raises(ProviderNotFoundError) as info:
        load_provider(memory_config() | {"checkpoints": {"providers": {"x": {"type": "redis"}}}})
    message = str(info.value)
    assert "'redis'" in message and "memory" in message and "peewee" in message
    assert isinstance(info.value, ConfigError) and isinstance(info.value, LookupError)


# -- ${VAR} -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${PC_TEST_VAR}", {"PC_TEST_VAR": "x"}, "x"),
        ("a-${PC_TEST_VAR}-b", {"PC_TEST_VAR": "x"}, "a-x-b"),
        ("${PC_TEST_VAR:-fallback}", {}, "fallback"),
        ("${PC_TEST_VAR:-fallback}", {"PC_TEST_VAR": ""}, "fallback"),
        ("${PC_TEST_VAR:-fallback}", {"PC_TEST_VAR": "set"}, "set"),
        ("${PC_TEST_VAR:-}", {}, ""),
        ("${PC_TEST_VAR}", {"PC_TEST_VAR": ""}, ""),
        ("${PC_TEST_VAR:-sqlite:///a.db?x=1}", {}, "sqlite:///a.db?x=1"),
        ("${A}${B:-2}", {"A": "1"}, "12"),
        ("price: $5 and $$ and $${NOT_A_VAR}", {}, "price: $5 and $ and ${NOT_A_VAR}"),
        ("${PC_TEST_VAR}", {"PC_TEST_VAR": "${OTHER}"}, "${OTHER}"),
    ],
    ids=["whole value", "inside text", "default when unset", "default when empty",
         "value over default", "empty default", "set but empty", "default with colons",
         "two in a row", "dollar escapes", "values are not expanded again"],
)
def test_placeholders_expand_like_the_shell(text: str, env: dict[str, str], expected: str) -> None:
    assert expand_env(text, "here", env) == expected


def test_expansion_reaches_into_lists_and_tables_but_not_keys() -> None:
    value = {"${K}": ["${V}", {"deep": "${V}"}], "n": 3, "b": True}
    assert expand_env(value, "here", {"V": "v", "K": "k"}) == {
        "${K}": ["v", {"deep": "v"}], "n": 3, "b": True}


@pytest.mark.parametrize("text", ["${}", "${1ABC}", "${UNCLOSED", "${A:default}", "${A-b}"])
def test_a_malformed_placeholder_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError, match="malformed placeholder"):
        expand_env(text, "here", {"A": "a"})


def test_an_unset_variable_is_an_error_naming_it_and_where_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", EXAMPLE.replace(":-sqlite:///checkpoints.db", ""))
    with pytest.raises(ConfigError, match=r"c\.toml: checkpoints\.providers\.main\.db_url: "
                                          r"environment variable DATABASE_URL is not set"):
        load_provider(path)


def test_an_unset_variable_in_a_provider_not_used_is_not_an_error(tmp_path: Path) -> None:
    text = EXAMPLE.replace(":-sqlite:///checkpoints.db", "")
    assert type(load_provider(write(tmp_path / "c.toml", text), name="scratch")) is \
        MemoryCheckpointProvider


def test_the_type_itself_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PC_TEST_VAR", "memory")
    config = {"checkpoints": {"providers": {"p": {"type": "${PC_TEST_VAR:-peewee}"}}}}
    assert type(load_provider(config)) is MemoryCheckpointProvider


# -- options ----------------------------------------------------------------------------------


def test_every_key_but_type_is_passed_as_a_keyword_argument(tmp_path: Path) -> None:
    db = tmp_path / "opts.db"
    config = {"checkpoints": {"providers": {"p": {"type": "peewee", "db_url": f"sqlite:///{db}"}}}}
    chosen = resolve_provider_config(config)
    assert (chosen.name, chosen.type, chosen.options) == ("p", "peewee", {"db_url": f"sqlite:///{db}"})
    with load_provider(config) as provider:
        assert isinstance(provider, PeeweeCheckpointProvider)
        assert provider.url == f"sqlite:///{db}"


def test_an_option_the_provider_does_not_accept_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not accept option 'dburl'; it accepts: 'db_url'"):
        load_provider({"checkpoints": {"providers": {"p": {"type": "peewee", "dburl": "x"}}}})
    with pytest.raises(ConfigError, match=r"does not accept options 'a', 'b'; it accepts: none"):
        load_provider(memory_config(a=1, b=2))


def test_an_option_of_the_wrong_type_is_a_config_error_not_a_type_error() -> None:
    with pytest.raises(ConfigError, match="db_url"):
        load_provider({"checkpoints": {"providers": {"p": {"type": "peewee", "db_url": 5}}}})


def test_a_password_in_an_option_never_appears_in_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cret-pw@127.0.0.1:1/db")
    config = {"checkpoints": {"providers": {"p": {
        "type": "peewee", "db_url": "${DATABASE_URL}", "unknown": "s3cret-pw"}}}}
    with pytest.raises(ConfigError) as info:
        load_provider(config)
    assert "s3cret-pw" not in str(info.value)
    assert "s3cret-pw" not in repr(resolve_provider_config(config))


# -- malformed files --------------------------------------------------------------------------


def test_a_toml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", '[checkpoints]\nactive = "main"\ntype = peewee\n')
    with pytest.raises(ConfigError, match=r"broken\.toml: invalid TOML: .*line 3") as info:
        load_provider(path)
    assert info.value.__cause__ is None  # the message says it all; no parser traceback


def test_a_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml.*does not exist"):
        load_provider(tmp_path / "missing.toml")


def test_a_directory_or_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_provider(tmp_path)
    path = tmp_path / "latin1.toml"
    path.write_bytes('[checkpoints]\nactive = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_provider(path)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({}, r"no \[checkpoints\] table"),
        ({"checkpoints": "peewee"}, r"no \[checkpoints\] table"),
        ({"checkpoints": {}}, "no provider is defined"),
        ({"checkpoints": {"providers": {}}}, "no provider is defined"),
        ({"checkpoints": {"providers": {"p": "peewee"}}}, "must be a table"),
        ({"checkpoints": {"providers": {"p": {}}}}, 'needs a type = "..." key'),
        ({"checkpoints": {"providers": {"p": {"type": 3}}}}, 'needs a type = "..." key'),
        ({"checkpoints": {"active": 1, "providers": {"p": {"type": "memory"}}}},
         "active must be a non-empty string"),
        (["not", "a", "mapping"], "config must be a path"),
    ],
    ids=["empty", "checkpoints not a table", "no providers", "empty providers",
         "provider not a table", "no type", "type not a string", "active not a string",
         "a list"],
)
def test_a_config_of_the_wrong_shape_is_a_config_error(config: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_provider(config)


def test_every_error_is_a_checkpoint_error_never_a_raw_key_or_type_error(tmp_path: Path) -> None:
    bad: list[Any] = [
        {}, {"checkpoints": {"providers": {"p": {"type": "nope"}}}}, 42, tmp_path / "x.toml",
        {"checkpoints": {"providers": {"p": {"type": "memory", "x": 1}}}},
        {"checkpoints": {"providers": {"p": {"type": "peewee", "db_url": None}}}},
        {"checkpoints": {"providers": {"p": {"type": "peewee", "db_url": "nosuch://x"}}}},
    ]
    for config in bad:
        with pytest.raises(CheckpointError):
            load_provider(config)
    assert os.environ.get(CONFIG_ENV_VAR) is None
