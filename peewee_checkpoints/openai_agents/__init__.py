"""OpenAI Agents SDK sessions on SQLite, PostgreSQL and MySQL/MariaDB.

Install with ``pip install 'peewee-checkpoints[openai-agents]'``::

    from agents import Agent, Runner
    from peewee_checkpoints.openai_agents import PeeweeSessionStore

    store = PeeweeSessionStore("postgresql://app@db/agents")   # one per process
    session = store.session("conversation-42", user_id="alice")
    result = await Runner.run(agent, "Hello", session=session)
"""

from __future__ import annotations

from .._sessions import SessionInfo, SessionPage
from .session import PeeweeSession, PeeweeSessionStore

__all__ = ["PeeweeSession", "PeeweeSessionStore", "SessionInfo", "SessionPage"]
