"""Workloads the reliability tests run in child processes and threads.

Every checkpoint written here carries a state derived from its name, so a reader can tell an
intact row from a damaged or partial one without knowing who wrote it.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback
from typing import Any

from peewee_checkpoints import NamedCheckpoint, PeeweeCheckpointProvider, StoredCheckpoint


def state_for(name: str, size: int = 0) -> dict[str, Any]:
    """The state a workload stores under ``name``: checkable from the name alone."""
    body = hashlib.sha256(name.encode()).hexdigest() * (1 + size // 64)
    return {"name": name, "body": body, "n": [len(body), -(2**63), 2**63 - 1], "f": -0.0}


def checkpoint(agent: str, name: str, size: int = 0) -> NamedCheckpoint:
    return NamedCheckpoint(name=name, agent_id=agent, state=state_for(name, size),
                           session_id=f"s-{agent}", agent_type="load")


def is_intact(got: StoredCheckpoint | None, agent: str | None = None) -> bool:
    """True if ``got`` is a whole row that one of these workloads wrote."""
    if got is None:
        return False
    size = len(got.state.get("body", "")) - 64
    return (got.state == state_for(got.name, max(size, 0))
            and (agent is None or got.agent_id == agent)
            and got.session_id == f"s-{got.agent_id}")


def write(db_url: str, agent: str, count: int, out_path: str) -> None:
    """Store ``count`` checkpoints; write the returned ids to ``out_path``, one a line."""
    ids = []
    with PeeweeCheckpointProvider(db_url) as provider:
        for i in range(count):
            ids.append(provider.store_checkpoint(checkpoint(agent, f"{agent}-{i}")))
    with open(out_path, "w") as f:
        f.write("\n".join(ids))


def read_until(db_url: str, stop_path: str, out_path: str) -> None:
    """List and retrieve until ``stop_path`` exists; every row seen must be intact.

    Writes ``<lists> <retrieves>`` to ``out_path``.
    """
    lists = retrieves = 0
    rng = random.Random(os.getpid())
    with PeeweeCheckpointProvider(db_url) as provider:
        while not os.path.exists(stop_path):
            items = provider.list_checkpoints(limit=rng.choice([None, 20]))
            lists += 1
            keys = [(i.created_at, i.id) for i in items]
            if keys != sorted(keys, reverse=True):
                raise AssertionError("listing is not newest first")
            for item in rng.sample(items, min(5, len(items))):
                got = provider.retrieve_checkpoint(item.id)
                retrieves += 1
                if not is_intact(got, item.agent_id):
                    raise AssertionError(f"listed id {item.id} is not intact: {got!r}")
            if items:
                agent = rng.choice(items).agent_id
                if any(i.agent_id != agent for i in provider.list_checkpoints(agent_id=agent)):
                    raise AssertionError("agent_id filter returned another agent's row")
                lists += 1
    with open(out_path, "w") as f:
        f.write(f"{lists} {retrieves}")


def store_forever(db_url: str, agent: str, size: int, fd: int) -> None:
    """Store in a loop, writing each id to ``fd`` once store_checkpoint has returned it.

    A line shorter than PIPE_BUF is written atomically, so every whole line the parent reads
    is an acknowledged write.
    """
    provider = PeeweeCheckpointProvider(db_url)
    i = 0
    while True:
        cid = provider.store_checkpoint(checkpoint(agent, f"{agent}-{i}", size))
        os.write(fd, (cid + "\n").encode())
        i += 1


def run_child(target: str, *args: Any) -> None:
    """Entry point of a forked child: run a workload, report a failure on stderr and exit."""
    try:
        globals()[target](*args)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


def wait_all(procs: list[Any], timeout: float) -> None:
    """Join processes within ``timeout`` seconds overall; fail (and kill them) on a hang."""
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    if hung:
        raise AssertionError(f"{len(hung)} processes still running after {timeout}s (deadlock?)")
