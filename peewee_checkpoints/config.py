"""Config-file selection: which provider to use, and its options, from TOML or a mapping.

```toml
[checkpoints]
active = "main"

[checkpoints.providers.main]
type = "peewee"
db_url = "${DATABASE_URL:-sqlite:///checkpoints.db}"
```
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ._defaults import DEFAULT_DB_URL
from .errors import ConfigError, ProviderNotFoundError
from .interface import CheckpointProvider
from .registry import create_provider
from .retention import RetentionPolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG",
    "DEFAULT_CONFIG_FILE",
    "ConfigSource",
    "ProviderConfig",
    "expand_env",
    "load_provider",
    "read_config",
    "resolve_provider_config",
    "resolve_sqlite_path",
]

#: Environment variable naming the config file used when ``load_provider`` gets no config.
CONFIG_ENV_VAR = "PEEWEE_CHECKPOINTS_CONFIG"
#: The file looked for in the working directory next.
DEFAULT_CONFIG_FILE = "checkpoints.toml"
#: Used when neither exists: the Peewee provider on a SQLite file in the working directory.
DEFAULT_CONFIG: Mapping[str, Any] = {
    "checkpoints": {
        "active": "default",
        "providers": {"default": {"type": "peewee", "db_url": DEFAULT_DB_URL}},
    }
}

#: What ``load_provider`` accepts as ``config``.
ConfigSource = Union[str, "os.PathLike[str]", Mapping[str, Any], None]

# $$ is a literal $; ${NAME} and ${NAME:-default} are replaced; any other ${ is a mistake.
_PLACEHOLDER = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\{))"
)


@dataclass(frozen=True)
class ProviderConfig:
    """The provider a config selects: its name, its type and its (expanded) options."""

    name: str
    """The table name under ``[checkpoints.providers]``, e.g. ``"main"``."""
    type: str
    """The entry-point name in ``peewee_checkpoints.providers``, e.g. ``"peewee"``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Every key of the table but ``type``, with ``${VAR}`` replaced: the keyword arguments."""
    source: str = ""
    """Where the config came from (a file path, ``"<mapping>"`` or ``"<default>"``)."""

    def __repr__(self) -> str:
        # Option values can hold passwords; show their names only.
        return (f"ProviderConfig(name={self.name!r}, type={self.type!r}, "
                f"options=<{', '.join(self.options)}>, source={self.source!r})")


def expand_env(value: Any, where: str, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string inside ``value``.

    ``${VAR:-default}`` uses the default when VAR is unset or empty, as the shell does; ``$$``
    is a literal ``$``. Lists and tables are expanded recursively; keys are left alone.

    Raises:
        ConfigError: a ``${VAR}`` whose variable is unset (the message names it and ``where``),
            or a malformed ``${...}``.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            if match["dollar"]:
                return "$"
            if match["bad"]:
                raise ConfigError(
                    f"{where}: malformed placeholder at character {match.start()}; write "
                    "${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $$ for a "
                    "literal $"
                )
            name = match["name"]
            found = env.get(name)
            if match["default"] is not None:
                return found or match["default"]
            if found is None:
                raise ConfigError(
                    f"{where}: environment variable {name} is not set; set it, or give a "
                    f"default with ${{{name}:-default}}"
                )
            return found

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: expand_env(v, f"{where}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    return value


def read_config(config: ConfigSource = None) -> tuple[Mapping[str, Any], str]:
    """Find and parse the config; returns ``(data, source)``, nothing expanded yet.

    ``config`` is a path to a TOML file, a mapping of the same shape, or None for the lookup:
    the file named by ``$PEEWEE_CHECKPOINTS_CONFIG``, else ``./checkpoints.toml`` if present,
    else :data:`DEFAULT_CONFIG`.

    Raises:
        ConfigError: the file does not exist or cannot be read, or is not valid TOML (the
            message names the file and the line).
    """
    if isinstance(config, Mapping):
        return config, "<mapping>"
    if config is None:
        from_env = os.environ.get(CONFIG_ENV_VAR)
        if from_env:
            return _read_toml(Path(from_env), f" (named by ${CONFIG_ENV_VAR})"), from_env
        if Path(DEFAULT_CONFIG_FILE).is_file():
            return _read_toml(Path(DEFAULT_CONFIG_FILE), ""), DEFAULT_CONFIG_FILE
        return DEFAULT_CONFIG, "<default>"
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        return _read_toml(path, ""), str(path)
    raise ConfigError(
        f"config must be a path to a TOML file, a mapping or None, not {type(config).__name__}"
    )


def _read_toml(path: Path, why: str) -> Mapping[str, Any]:
    try:
        with path.open("rb") as file:
            # Typed here: with tomli absent (Python 3.11+), mypy checking for 3.10 sees Any.
            data: dict[str, Any] = tomllib.load(file)
            return data
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r}{why} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line N, column M)".
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}{why}: {exc.strerror}") from exc


def resolve_provider_config(
    config: ConfigSource = None, *, name: str | None = None, name_option: str = "name="
) -> ProviderConfig:
    """Read the config and pick one provider: ``name``, else ``active``, else the only one.

    Only the chosen provider's values (and ``active``) are expanded, so an unset variable in a
    provider that is not used is not an error. A relative SQLite path in a ``db_url`` read
    from a file is relative to that file's folder (see :func:`resolve_sqlite_path`).
    ``name_option`` is how the caller's user passes ``name`` (``"--provider"`` on the command
    line), for messages.

    Raises:
        ConfigError: see :func:`read_config`; a table of the wrong shape; an unset variable.
        ProviderNotFoundError: ``name`` or ``active`` names no provider in the config.
    """
    data, source = read_config(config)
    section = data.get("checkpoints")
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"{source}: no [checkpoints] table; see the example in the documentation "
            "(a [checkpoints.providers.<name>] table with a type = ... key)"
        )
    providers = section.get("providers")
    if not isinstance(providers, Mapping) or not providers:
        raise ConfigError(
            f"{source}: no provider is defined; add a [checkpoints.providers.<name>] table "
            'with type = "peewee" (or another installed provider type)'
        )
    defined = ", ".join(repr(n) for n in providers)
    if name is None:
        active = section.get("active")
        if active is None:
            if len(providers) != 1:
                raise ConfigError(
                    f"{source}: several providers are defined ({defined}) and checkpoints.active "
                    f"does not say which to use; set it, or pass {name_option}"
                )
            name = next(iter(providers))
            asked = "the only one defined"
        else:
            active = expand_env(active, f"{source}: checkpoints.active")
            if not isinstance(active, str) or not active:
                raise ConfigError(f"{source}: checkpoints.active must be a non-empty string")
            name = active
            asked = "from checkpoints.active"
    else:
        asked = f"from {name_option}"
    if source == "<default>" and name not in providers:
        raise ProviderNotFoundError(
            f"no provider named {name!r} ({asked}): no config file was found (neither "
            f"${CONFIG_ENV_VAR} nor ./{DEFAULT_CONFIG_FILE}), so the only provider is the "
            f"default one, on {DEFAULT_DB_URL}"
        )
    if not isinstance(name, str) or name not in providers:
        raise ProviderNotFoundError(
            f"{source}: no provider named {name!r} ({asked}) is defined; defined: {defined}"
        )
    where = f"{source}: checkpoints.providers.{name}"
    table = providers[name]
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table with a type = ... key")
    table = expand_env(table, where)
    kind = table.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(
            f'{where} needs a type = "..." key naming a provider type, such as "peewee" or "memory"'
        )
    options = {k: v for k, v in table.items() if k != "type"}
    if "retention" in options:
        # [checkpoints.providers.<name>.retention]: checked here, so a mistake names the file;
        # create_provider gives the policy to the provider (any type) as retention_policy.
        options["retention"] = RetentionPolicy.from_mapping(options["retention"],
                                                            f"{where}.retention")
    if source not in ("<mapping>", "<default>") and isinstance(options.get("db_url"), str):
        options["db_url"] = resolve_sqlite_path(options["db_url"], Path(source).parent)
    return ProviderConfig(name=name, type=kind, options=options, source=source)


def resolve_sqlite_path(db_url: str, folder: str | os.PathLike[str]) -> str:
    """``db_url`` with a relative SQLite file path made absolute against ``folder``.

    A config file's ``db_url = "sqlite:///checkpoints.db"`` names the file next to the config
    file, wherever the program runs from. Other URLs, absolute paths (four slashes),
    ``:memory:`` and ``file:`` URIs come back unchanged; so does the query string.
    """
    scheme, sep, rest = db_url.partition("://")
    if not sep or scheme.lower().partition("+")[0] != "sqlite" or not rest.startswith("/"):
        return db_url
    path, query_sep, query = rest[1:].partition("?")
    if not path or path == ":memory:" or path.startswith("file:") or os.path.isabs(path):
        return db_url
    resolved = os.path.abspath(os.path.join(folder, path))
    return f"{scheme}:///{resolved}{query_sep}{query}"


def load_provider(config: ConfigSource = None, *, name: str | None = None) -> CheckpointProvider:
    """Build the provider a config file (or mapping) selects.

    Args:
        config: a path to a TOML file, a mapping of the same shape, or None: the file named by
            ``$PEEWEE_CHECKPOINTS_CONFIG``, else ``./checkpoints.toml`` if present, else the
            Peewee provider on ``sqlite:///checkpoints.db``.
        name: which ``[checkpoints.providers.<name>]`` to use; default ``checkpoints.active``
            (or the only provider defined).

    Returns:
        A new provider, built by calling the entry point registered under the chosen
        provider's ``type`` with every other key of its table as keyword arguments.

    Raises:
        ConfigError: missing or unreadable file, invalid TOML, a table of the wrong shape, an
            unset ``${VAR}``, or an option the provider does not accept.
        ProviderNotFoundError: (a ConfigError too) the type is not installed, its import
            failed, or ``name``/``active`` names no provider in the config.
    """
    chosen = resolve_provider_config(config, name=name)
    return create_provider(
        chosen.type, chosen.options, label=f"{chosen.source}: checkpoints.providers.{chosen.name}"
    )
