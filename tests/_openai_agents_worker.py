"""A separate process for tests/test_openai_agents.py.

    python -m tests._openai_agents_worker run URL SESSION TEXT
        one turn of a real agents.Agent run by agents.Runner on a scripted model; prints the
        final output as JSON.
    python -m tests._openai_agents_worker add URL SESSION WORKER BATCHES SIZE START_AT
        BATCHES add_items calls of SIZE items each, from START_AT (epoch seconds).
    python -m tests._openai_agents_worker pop URL SESSION POPS START_AT
        POPS pop_item calls; prints the popped items as a JSON list (null for None).

URL ``sdk-sqlite:PATH`` runs add and pop on the SDK's SQLiteSession instead.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from peewee_checkpoints.openai_agents import PeeweeSessionStore


def _wait(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def scripted_model() -> Any:
    """A ``Model`` answering from the conversation it is given, without any network.

    "my name is X" is remembered from the input; "what is my name?" first calls the
    ``lookup`` tool (so tool items go through the session too), then answers with the name
    found anywhere in the history it was sent.
    """
    from agents import ModelResponse, Usage
    from agents.models.interface import Model
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    def message(text: str) -> ResponseOutputMessage:
        return ResponseOutputMessage(
            id="msg_1", type="message", role="assistant", status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )

    def texts(items: Any) -> list[str]:
        found = []
        for item in items if isinstance(items, list) else [{"content": items}]:
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, str):
                found.append(content)
            elif isinstance(content, list):
                found += [part.get("text", "") for part in content if isinstance(part, dict)]
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                found.append(str(item.get("output")))
        return found

    class Scripted(Model):
        async def get_response(self, system_instructions: Any, input: Any,  # noqa: PLR0917
                               model_settings: Any, tools: Any, output_schema: Any,
                               handoffs: Any, tracing: Any, **kwargs: Any) -> Any:
            said = texts(input)
            last = said[-1] if said else ""
            if last.startswith("what is my name") and tools:
                output: Any = ResponseFunctionToolCall(
                    id="fc_1", type="function_call", call_id="call_1", name="lookup",
                    arguments='{"key": "name"}', status="completed")
            else:
                names = [m.group(1) for text in said
                         for m in [re.search(r"my name is (\w+)", text)] if m]
                if last.startswith("lookup:"):
                    output = message(f"Your name is {names[-1]}" if names
                                     else "I do not know your name")
                elif names and last.startswith("my name is"):
                    output = message(f"Nice to meet you, {names[-1]}")
                else:
                    output = message(f"echo: {last}")
            return ModelResponse(output=[output], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            raise NotImplementedError

    return Scripted()


def run_turn(url: str, session_id: str, text: str) -> str:
    from agents import Agent, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)

    @function_tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"lookup: {key}"

    agent = Agent(name="assistant", instructions="Be brief.", model=scripted_model(),
                  tools=[lookup])
    with PeeweeSessionStore(url) as store:
        session = store.session(session_id, user_id="worker")
        result = asyncio.run(Runner.run(agent, text, session=session))
    return str(result.final_output)


def main(argv: list[str]) -> int:
    command, url, session_id, *rest = argv
    if command == "run":
        print(json.dumps(run_turn(url, session_id, rest[0])))
        return 0
    if url.startswith("sdk-sqlite:"):
        # The SDK's own SQLiteSession on a file, for the same cross-process checks.
        from agents import SQLiteSession

        store: Any = SQLiteSession(session_id, url.removeprefix("sdk-sqlite:"))
        session: Any = store
    else:
        store = PeeweeSessionStore(url)
        session = store.session(session_id)
    try:
        if command == "add":
            worker, batches, size, start_at = int(rest[0]), int(rest[1]), int(rest[2]), \
                float(rest[3])
            _wait(start_at)
            for b in range(batches):
                asyncio.run(session.add_items(
                    [{"role": "user", "content": f"{worker}-{b}-{i}"} for i in range(size)]))
            return 0
        if command == "pop":
            pops, start_at = int(rest[0]), float(rest[1])
            _wait(start_at)
            popped = [asyncio.run(session.pop_item()) for _ in range(pops)]
            print(json.dumps(popped))
            return 0
    finally:
        store.close()
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
