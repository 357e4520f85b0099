"""LangGraph on this package's storage: the checkpointer ``PeeweeSaver(db_url)`` and the
long-term memory store ``PeeweeStore(db_url)``.

Needs the extra: ``pip install 'peewee-checkpoints[langgraph]'``. The rest of the package
never imports this module, so it works without LangGraph installed.
"""

from __future__ import annotations

try:
    from .saver import PeeweeSaver
    from .store import PeeweeStore
except ImportError as exc:  # pragma: no cover - depends on the environment
    if exc.name and exc.name.split(".")[0] in ("langgraph", "langchain_core"):
        raise ImportError(
            "peewee_checkpoints.langgraph needs LangGraph: "
            "pip install 'peewee-checkpoints[langgraph]'"
        ) from exc
    raise

__all__ = ["PeeweeSaver", "PeeweeStore"]
