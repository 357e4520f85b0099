"""A real ADK agent with a scripted model, for tests/test_adk.py (run in-process or as a script).

The model never calls a network: on a user message it calls the ``remember`` tool with the
message's text; on the tool's answer it replies with what it has seen in the conversation
history ADK sent it (how many user messages, and the notes so far), so a turn run in another
process proves that the whole history and the state came back from the database.

Script: ``python _adk_agent.py DB_URL SESSION_ID MESSAGE`` runs one turn and prints the reply.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import BaseSessionService
from google.adk.tools.tool_context import ToolContext
from google.genai import types

APP = "notes_app"
USER = "ada"


class ScriptedLlm(BaseLlm):
    """Calls ``remember`` for each user message, then summarises the history it was given."""

    model: str = "scripted"

    async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False
                                     ) -> AsyncGenerator[LlmResponse, None]:
        contents = llm_request.contents or []
        last = contents[-1]
        response = next((p.function_response for p in last.parts or [] if p.function_response),
                        None)
        if response is None:
            text = "".join(p.text or "" for p in last.parts or [])
            call = types.FunctionCall(name="remember", args={"note": text})
            yield LlmResponse(content=types.Content(role="model",
                                                    parts=[types.Part(function_call=call)]))
            return
        user_texts = [
            "".join(p.text or "" for p in c.parts or [])
            for c in contents
            if c.role == "user" and any(p.text for p in c.parts or [])
        ]
        notes = (response.response or {}).get("notes")
        reply = f"seen {len(user_texts)} user messages: {' | '.join(user_texts)}; notes={notes}"
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=reply)]))


def remember(note: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember a note for this user."""
    notes = list(tool_context.state.get("user:notes", []))
    notes.append(note)
    tool_context.state["user:notes"] = notes
    tool_context.state["turns"] = tool_context.state.get("turns", 0) + 1
    tool_context.state["temp:scratch"] = "never stored"
    tool_context.state["app:last_note"] = note
    return {"notes": notes}


def make_runner(session_service: BaseSessionService) -> Runner:
    agent = LlmAgent(name="noter", model=ScriptedLlm(), instruction="Take notes.",
                     tools=[remember], output_key="last_reply")
    return Runner(app_name=APP, agent=agent, session_service=session_service)


async def run_turn(session_service: BaseSessionService, session_id: str, message: str) -> str:
    """Run one user turn through the Runner; returns the agent's final text."""
    runner = make_runner(session_service)
    final = ""
    async for event in runner.run_async(
        user_id=USER, session_id=session_id,
        new_message=types.Content(role="user", parts=[types.Part(text=message)]),
    ):
        if event.is_final_response() and event.content and event.content.parts:
            final = "".join(p.text or "" for p in event.content.parts)
    return final


async def _main(db_url: str, session_id: str, message: str) -> None:
    from peewee_checkpoints.adk import PeeweeSessionService

    async with PeeweeSessionService(db_url) as service:
        print(await run_turn(service, session_id, message))


if __name__ == "__main__":
    asyncio.run(_main(*sys.argv[1:4]))
