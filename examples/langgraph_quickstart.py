"""A LangGraph graph that checkpoints into peewee-checkpoints, stops for review and resumes.

    pip install '.[langgraph]'                                 # from a clone
    python examples/langgraph_quickstart.py                    # SQLite file ./langgraph.db
    python examples/langgraph_quickstart.py postgresql://user:pass@host/db   # or mysql://...

Run it twice: the second run finds the thread where the first one left it.
"""

from __future__ import annotations

import operator
import sys
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

from peewee_checkpoints.langgraph import PeeweeSaver


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def draft(state: State) -> dict[str, list[str]]:
    return {"steps": ["draft"]}


def review(state: State) -> dict[str, list[str]]:
    return {"steps": ["review"]}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", END)


def main() -> None:
    db_url = sys.argv[1] if len(sys.argv) > 1 else "sqlite:///langgraph.db"
    # No setup() call: the tables are created on first use, safely from many workers at once.
    with PeeweeSaver(db_url) as saver:
        graph = builder.compile(checkpointer=saver, interrupt_before=["review"])
        config = {"configurable": {"thread_id": "article-1"}}
        state = graph.get_state(config)
        if not state.values:
            graph.invoke({"steps": ["input"]}, config)
            print("stopped before:", graph.get_state(config).next)   # ('review',)
        elif state.next:
            print("resumed:", graph.invoke(None, config)["steps"])  # ['input', 'draft', 'review']
        for snapshot in graph.get_state_history(config):             # newest first
            print(snapshot.metadata["step"], snapshot.next, snapshot.values.get("steps"))


if __name__ == "__main__":
    main()
