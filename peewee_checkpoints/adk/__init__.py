"""Google ADK session service on this package's storage: ``PeeweeSessionService(db_url)``.

Needs the extra: ``pip install 'peewee-checkpoints[adk]'``. The rest of the package never
imports ADK: the storage layer under the service (``peewee_checkpoints.adk._store``, which the
command line uses) imports nothing from it, and this module loads the service only when it is
asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import EventPage, PeeweeSessionService, SessionPage

__all__ = ["EventPage", "PeeweeSessionService", "SessionPage"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import service
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if exc.name and exc.name.split(".")[0] in ("google", "pydantic", "pydantic_core"):
            raise ImportError(
                "peewee_checkpoints.adk needs Google ADK: pip install 'peewee-checkpoints[adk]'"
            ) from exc
        raise
    return getattr(service, name)
