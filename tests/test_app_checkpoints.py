"""App checkpoints beyond the conformance kit: the CLI's app group, export/import/copy, and
the interface's defaults for a provider that does not store them."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from peewee_checkpoints import (
    AppCheckpoint,
    CheckpointError,
    MemoryCheckpointProvider,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    StoredAppCheckpoint,
)
from peewee_checkpoints import _transfer as transfer
from peewee_checkpoints.cli import main
from tests.test_listing_order import LegacyProvider

STATE = {"agents": {"coder": "01J..."}, "big": 2**70, "text": "ünïcødé 😀"}


def test_app_group_store_show_latest_list_delete(db_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--db-url", db_url]
    file = tmp_path / "app.json"
    file.write_text(json.dumps({"name": "nightly", "state": STATE, "created_at": 1000}))
    assert main([*base, "app", "store", str(file)]) == 0
    first = capsys.readouterr().out.strip()
    file.write_text(json.dumps({"name": "later", "state": {"n": 2}}))
    assert main([*base, "app", "store", "--json", str(file)]) == 0
    second = json.loads(capsys.readouterr().out)["id"]
    assert main([*base, "app", "show", first]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"id": first, "name": "nightly", "created_at": 1000, "state": STATE}
    assert main([*base, "app", "latest"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == second
    assert main([*base, "app", "list", "--json"]) == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [second, first]
    assert main([*base, "app", "list", "--limit", "1"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert main([*base, "app", "delete", second, "nope"]) == 1
    captured = capsys.readouterr()
    assert f"deleted {second}" in captured.out and "'nope'" in captured.err
    file.write_text(json.dumps({"name": "x", "state": {}, "agent_id": "a"}))
    assert main([*base, "app", "store", str(file)]) == 2
    assert "agent_id" in capsys.readouterr().err
    assert main([*base, "app", "show", second]) == 1


def test_export_import_and_copy_carry_app_checkpoints(db_url: str, tmp_path: Path) -> None:
    source = PeeweeCheckpointProvider(db_url)
    agent = source.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={"x": 1}))
    apps = [source.store_app_checkpoint(AppCheckpoint(name=f"app{i}", state={"i": i, **STATE},
                                                      created_at=100 + i)) for i in range(3)]
    out = io.BytesIO()
    assert transfer.export_lines(source, out) == 4
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("kind") for line in lines] == [None, "app", "app", "app"]
    # Import into an empty store; again: everything skipped.
    target = MemoryCheckpointProvider()
    for expected in ((4, 0), (0, 4)):
        counts = transfer.TransferCounts()
        transfer.import_lines(target, io.BytesIO(out.getvalue()), counts)
        assert (counts.written, counts.skipped) == expected
    assert [target.retrieve_app_checkpoint(i) for i in apps] == \
        [source.retrieve_app_checkpoint(i) for i in apps]
    # Copy to another database, twice.
    other = f"sqlite:///{tmp_path}/other.db"
    with PeeweeCheckpointProvider(other) as dest:
        for expected in ((4, 0), (0, 4)):
            counts = transfer.TransferCounts()
            transfer.copy_all(source, dest, counts)
            assert (counts.written, counts.skipped) == expected
        assert dest.latest_app_checkpoint() == source.latest_app_checkpoint()
        assert dest.retrieve_checkpoint(agent) == source.retrieve_checkpoint(agent)
    source.close()


def test_a_bad_app_record_names_its_line() -> None:
    line = json.dumps({"kind": "app", "id": "x", "name": "", "state": {}}).encode()
    with pytest.raises(CheckpointError, match="line 1 of input"):
        transfer.import_lines(MemoryCheckpointProvider(), [line], transfer.TransferCounts())


def test_a_provider_without_app_checkpoints_keeps_working() -> None:
    legacy = LegacyProvider()
    assert legacy.supports_app_checkpoints is False
    assert MemoryCheckpointProvider().supports_app_checkpoints is True
    with pytest.raises(CheckpointError, match="does not store app checkpoints"):
        legacy.store_app_checkpoint(AppCheckpoint(name="x", state={}))
    with pytest.raises(CheckpointError):
        legacy.import_app_checkpoint(StoredAppCheckpoint(id="i", name="x", state={}))
    assert legacy.list_app_checkpoints() == []
    assert legacy.latest_app_checkpoint() is None
    assert legacy.retrieve_app_checkpoint("x") is None
    assert legacy.delete_app_checkpoint("x") is False
    assert legacy.count_app_checkpoints() == 0
    legacy.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={}))
    out = io.BytesIO()
    assert transfer.export_lines(legacy, out) == 1
    counts = transfer.TransferCounts()
    transfer.copy_all(legacy, MemoryCheckpointProvider(), counts)
    assert counts.written == 1


def test_keygen_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "prod-1"]) == 0
    entry = capsys.readouterr().out.strip()
    key_id, key = entry.split(":", 1)
    assert key_id == "prod-1" and len(base64.b64decode(key)) == 32
    with PeeweeCheckpointProvider("sqlite:///:memory:", encryption_keys=[entry]) as p:
        cid = p.store_app_checkpoint(AppCheckpoint(name="a", state={"k": 1}))
        assert p.retrieve_app_checkpoint(cid).state == {"k": 1}  # type: ignore[union-attr]


def test_the_async_wrapper_has_the_new_methods() -> None:
    import asyncio

    from peewee_checkpoints import AsyncCheckpointProvider, RetentionPolicy

    async def run() -> None:
        async with AsyncCheckpointProvider(MemoryCheckpointProvider()) as ap:
            for t in (3, 1, 2):
                await ap.store_checkpoint(NamedCheckpoint(name="n", agent_id="a", state={},
                                                          created_at=t))
            assert [i.created_at for i in await ap.list_checkpoints(order="asc")] == [1, 2, 3]
            page = await ap.page_checkpoints(limit=2, order="asc")
            assert [i.created_at for i in page.items] == [1, 2]
            assert [i.created_at async for i in ap.iter_checkpoints(order="asc")] == [1, 2, 3]
            assert await ap.count_checkpoints(after=1) == 2
            cid = await ap.store_app_checkpoint(AppCheckpoint(name="x", state={"a": 1}))
            assert (await ap.latest_app_checkpoint()).id == cid  # type: ignore[union-attr]
            assert (await ap.retrieve_app_checkpoint(cid)).state == {"a": 1}  # type: ignore[union-attr]
            assert [i.id for i in await ap.list_app_checkpoints()] == [cid]
            report = await ap.apply_retention(policy=RetentionPolicy(max_per_agent=1))
            assert report.rows == 2
            assert await ap.delete_app_checkpoint(cid) is True

    asyncio.run(run())
