"""Provider discovery: the ``peewee_checkpoints.providers`` entry-point group.

Any installed distribution can add a provider by declaring an entry point in that group whose
object is a callable (usually the provider class) returning a :class:`CheckpointProvider` when
called with the provider's options as keyword arguments::

    [project.entry-points."peewee_checkpoints.providers"]
    redis = "my_package.provider:RedisCheckpointProvider"

Discovery reads metadata only; a provider's module is imported when that provider is used, so
one whose import fails does not affect the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import ConfigError, ProviderNotFoundError
from .interface import CheckpointProvider
from .retention import RetentionPolicy

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderFactory",
    "ProviderInfo",
    "available_providers",
    "create_provider",
    "get_provider",
    "provider_errors",
]

#: The entry-point group providers register in.
ENTRY_POINT_GROUP = "peewee_checkpoints.providers"

#: What an entry point names: called with the provider's options as keyword arguments.
ProviderFactory = Callable[..., CheckpointProvider]


@dataclass(frozen=True)
class ProviderInfo:
    """One provider type found in the entry-point group, before anything is imported."""

    name: str
    """The type name used in config files (the entry point's name), e.g. ``"peewee"``."""
    value: str
    """Where the factory lives, ``"module:attribute"``."""
    distribution: str | None
    """The distribution that registered it, e.g. ``"peewee-checkpoints"`` (None if unknown)."""
    version: str | None
    """That distribution's version (None if unknown)."""

    @property
    def origin(self) -> str:
        """``"distribution version"``, for messages."""
        if self.distribution is None:
            return "an unknown distribution"
        return f"{self.distribution} {self.version}" if self.version else self.distribution

    def load(self) -> ProviderFactory:
        """Import and return the factory.

        Raises:
            ProviderNotFoundError: the import failed or the object is not callable; the
                message names the provider and its distribution, the cause is chained.
        """
        try:
            factory = EntryPoint(self.name, self.value, ENTRY_POINT_GROUP).load()
        except Exception as exc:
            raise ProviderNotFoundError(
                f"checkpoint provider {self.name!r} (registered by {self.origin} as "
                f"{self.value!r}) could not be loaded: {type(exc).__name__}: {exc}. "
                f"Reinstall or upgrade {self.distribution or 'the package that provides it'}"
            ) from exc
        if not callable(factory):
            raise ProviderNotFoundError(
                f"checkpoint provider {self.name!r} (registered by {self.origin}) names "
                f"{self.value!r}, which is a {type(factory).__name__}, not a callable"
            )
        return factory  # type: ignore[no-any-return]


def _discover() -> dict[str, list[ProviderInfo]]:
    found: dict[str, list[ProviderInfo]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        info = ProviderInfo(
            name=ep.name,
            value=ep.value,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        same = found.setdefault(ep.name, [])
        # One distribution seen twice on sys.path (an editable install run from its source
        # tree, say) registers the same object twice: that is not a conflict.
        if all(other.value != info.value for other in same):
            same.append(info)
    return found


def available_providers() -> dict[str, ProviderInfo]:
    """Every registered provider type by name, sorted; nothing is imported.

    When two distributions register the same name for different objects, the first one on
    ``sys.path`` is listed here; using that type raises (see :func:`get_provider`).
    """
    return {name: infos[0] for name, infos in sorted(_discover().items())}


def get_provider(type_name: str) -> ProviderFactory:
    """Import and return the factory registered under ``type_name``.

    Raises:
        ProviderNotFoundError: no such type is installed (the message lists the installed
            ones), two distributions register it for different objects, or its import failed.
    """
    found = _discover()
    infos = found.get(type_name)
    if not infos:
        installed = ", ".join(sorted(found)) or "none"
        raise ProviderNotFoundError(
            f"no checkpoint provider of type {type_name!r} is installed; installed types: "
            f"{installed}. Install the package that provides it, or fix the type"
        )
    if len(infos) > 1:
        # Picking one silently would make behaviour depend on install order.
        owners = "; ".join(f"{i.origin} as {i.value!r}" for i in infos)
        raise ProviderNotFoundError(
            f"checkpoint provider type {type_name!r} is registered more than once, by {owners}; "
            "uninstall one of them"
        )
    return infos[0].load()


def provider_errors() -> dict[str, ProviderNotFoundError]:
    """Try to load every registered provider; returns the ones that fail, by name.

    Meant for diagnostics (``peewee-checkpoints providers``, a health check): each error names
    the provider and the distribution that registered it.
    """
    problems: dict[str, ProviderNotFoundError] = {}
    for name in available_providers():
        try:
            get_provider(name)
        except ProviderNotFoundError as exc:
            problems[name] = exc
    return problems


def create_provider(
    type_name: str, options: Mapping[str, Any] | None = None, *, label: str | None = None
) -> CheckpointProvider:
    """Build a provider of type ``type_name`` with ``options`` as keyword arguments.

    ``label`` names the provider in messages (for example ``"checkpoints.providers.main"``).
    Option values never appear in messages: they may hold passwords.

    Raises:
        ProviderNotFoundError: see :func:`get_provider`; also when the factory returns
            something that is not a CheckpointProvider.
        ConfigError: an option the factory does not accept, a missing required option, or a
            TypeError/ValueError the factory raised about its options.
    """
    factory = get_provider(type_name)
    options = dict(options or {})
    where = f"{label} (type {type_name!r})" if label else f"provider type {type_name!r}"
    # The retention table is for every provider type: it becomes provider.retention_policy.
    policy = options.pop("retention", None)
    if policy is not None and not isinstance(policy, RetentionPolicy):
        policy = RetentionPolicy.from_mapping(policy, f"{where}: retention")
    _check_options(factory, options, where)
    try:
        provider = factory(**options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"{where} refused its options: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(provider, CheckpointProvider):
        raise ProviderNotFoundError(
            f"{where} returned a {type(provider).__name__}, not a CheckpointProvider; the "
            "entry point must name a CheckpointProvider subclass or a function returning one"
        )
    if policy is not None:
        provider.retention_policy = policy
    return provider


def _check_options(factory: ProviderFactory, options: dict[str, Any], where: str) -> None:
    """Name unknown and missing options before calling, rather than relay a TypeError."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # no signature to check against (a builtin): the call itself will tell
    params = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        accepted = None  # takes **kwargs: anything goes
    else:
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [key for key in options if key not in accepted]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            choices = ", ".join(repr(k) for k in accepted) or "none"
            raise ConfigError(
                f"{where} does not accept option{'s' if len(unknown) > 1 else ''} {names}; "
                f"it accepts: {choices}"
            )
    missing = [
        p.name for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in options
    ]
    if missing:
        raise ConfigError(
            f"{where} needs option{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(k) for k in missing)
        )
