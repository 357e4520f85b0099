"""Store, list and restore a checkpoint on embedded SQLite (./checkpoints.db by default)."""

from __future__ import annotations

import sys

from peewee_checkpoints import NamedCheckpoint, PeeweeCheckpointProvider


def main(db_url: str = "sqlite:///checkpoints.db") -> None:
    with PeeweeCheckpointProvider(db_url) as provider:
        state = {
            "messages": [
                {"role": "user", "content": "Summarise the release notes."},
                {"role": "assistant", "content": "Version 0.1 adds checkpoint storage."},
            ],
            "tool_state": {"open_files": ["NOTES.md"], "step": 2},
        }
        checkpoint_id = provider.store_checkpoint(
            NamedCheckpoint(name="after-summary", agent_id="writer-1", state=state,
                            session_id="demo", agent_type="writer")
        )
        print(f"stored {checkpoint_id}")
        for item in provider.list_checkpoints(agent_id="writer-1", limit=5):
            print(f"{item.id}  {item.name:<16} session={item.session_id} at={item.created_at}")
        restored = provider.retrieve_checkpoint(checkpoint_id)
        if restored is None or restored.state != state:
            raise SystemExit("the restored state differs from the stored one")
        print(f"restored {restored.name}: {len(restored.state['messages'])} messages")


if __name__ == "__main__":
    main(*sys.argv[1:])
