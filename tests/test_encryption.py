"""Encryption at rest (encryption_keys): AES-256-GCM after compression, a key id per row,
rotation with rekey, and keys that never show. On every backend."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee as pw
import pytest

from peewee_checkpoints import (
    AppCheckpoint,
    CheckpointError,
    ConfigError,
    NamedCheckpoint,
    PeeweeCheckpointProvider,
    load_provider,
)
from peewee_checkpoints._crypto import EncryptionError, generate_key, parse_keys
from peewee_checkpoints.cli import main
from peewee_checkpoints.testing import CheckpointProviderContract

ROOT = Path(__file__).resolve().parent.parent
OLD = "old-2025:" + base64.b64encode(b"o" * 32).decode()
NEW = "new-2026:" + base64.b64encode(b"n" * 32).decode()
SECRETS = [OLD.split(":", 1)[1], NEW.split(":", 1)[1], "b" * 32, "n" * 32, "o" * 32]
CHAT = {"messages": [{"role": "user", "content": "my card number is 4111 " + "x" * 50}] * 40}


def _cp(i: int = 0, **state: Any) -> NamedCheckpoint:
    return NamedCheckpoint(name=f"cp{i}", agent_id=f"agent{i % 3}", state=state or CHAT)


def _raw(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with PeeweeCheckpointProvider(db_url) as p:
        return p.engine.run("test", lambda: list(p.database.execute_sql(
            sql.replace("?", p.engine.param), params).fetchall()))


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


class TestEncryptedProviderContract(CheckpointProviderContract):
    """The whole conformance kit, with every state encrypted."""

    @pytest.fixture
    def provider(self, db_url: str) -> Iterator[PeeweeCheckpointProvider]:
        with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW, OLD]) as p:
            yield p


def test_states_are_stored_encrypted_under_the_first_key(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW, OLD]) as p:
        cid = p.store_checkpoint(_cp())
        aid = p.store_app_checkpoint(AppCheckpoint(name="app", state=CHAT))
        assert p.retrieve_checkpoint(cid).state == CHAT  # type: ignore[union-attr]
        assert p.retrieve_app_checkpoint(aid).state == CHAT  # type: ignore[union-attr]
    for table, row_id in (("peewee_checkpoints", cid), ("peewee_checkpoints_app", aid)):
        ((key, state),) = _raw(db_url, f"SELECT state_key, state FROM {table} WHERE id = ?",
                               (row_id,))
        assert key == "new-2026"
        assert b"card number" not in bytes(state) and b"role" not in bytes(state)


def test_plain_rows_stay_readable_and_rotation_needs_no_migration(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url) as plain:
        plain_id = plain.store_checkpoint(_cp(1, n=1))
    with PeeweeCheckpointProvider(db_url, encryption_keys=[OLD]) as old:
        old_id = old.store_checkpoint(_cp(2, n=2))
        assert old.retrieve_checkpoint(plain_id).state == {"n": 1}  # type: ignore[union-attr]
    with PeeweeCheckpointProvider(db_url, encryption_keys=f"{NEW}, {OLD}") as both:
        new_id = both.store_checkpoint(_cp(3, n=3))
        assert [both.retrieve_checkpoint(i).state for i in (plain_id, old_id, new_id)] == [  # type: ignore[union-attr]
            {"n": 1}, {"n": 2}, {"n": 3}]
        assert both.pending_migrations() == []


def test_a_row_under_a_removed_key_names_the_key_it_needs(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url, encryption_keys=[OLD]) as old:
        cid = old.store_checkpoint(_cp())
        aid = old.store_app_checkpoint(AppCheckpoint(name="a", state={"x": 1}))
    for keys in ([NEW], None):
        with PeeweeCheckpointProvider(db_url, encryption_keys=keys) as p:
            with pytest.raises(CheckpointError) as info:
                p.retrieve_checkpoint(cid)
            assert isinstance(info.value, EncryptionError)
            assert "old-2025" in str(info.value) and cid in str(info.value)
            _assert_no_secret(str(info.value) + repr(info.value))
            with pytest.raises(EncryptionError, match="old-2025"):
                p.latest_app_checkpoint()
            # Listing never reads states: it still works.
            assert [i.id for i in p.list_checkpoints()] == [cid]
            assert p.list_app_checkpoints()[0].id == aid


@pytest.mark.parametrize("how", ["flip a byte", "truncate", "swap rows", "change the codec"])
def test_a_tampered_row_is_an_error_never_garbage(db_url: str, how: str) -> None:
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW]) as p:
        a = p.store_checkpoint(_cp(0, secret="a" * 3000))
        b = p.store_checkpoint(_cp(1, secret="b" * 10))
        db = p.database
        param = p.engine.param

        def update(sql: str, params: tuple[Any, ...]) -> None:
            p.engine.run("tamper", lambda: db.execute_sql(sql.replace("?", param), params))

        ((state,),) = _raw(db_url, "SELECT state FROM peewee_checkpoints WHERE id = ?", (a,))
        state = bytes(state)
        if how == "flip a byte":
            update("UPDATE peewee_checkpoints SET state = ? WHERE id = ?",
                   (state[:20] + bytes([state[20] ^ 1]) + state[21:], a))
        elif how == "truncate":
            update("UPDATE peewee_checkpoints SET state = ? WHERE id = ?", (state[:10], a))
        elif how == "swap rows":
            update("UPDATE peewee_checkpoints SET state = ? WHERE id = ?", (state, b))
        else:
            update("UPDATE peewee_checkpoints SET state_codec = 1 - state_codec WHERE id = ?",
                   (a,))
        victim = b if how == "swap rows" else a
        with pytest.raises(CheckpointError) as info:
            p.retrieve_checkpoint(victim)
        assert "new-2026" in str(info.value)
        _assert_no_secret(str(info.value))


def test_rekey_moves_every_row_to_the_first_key_then_old_keys_can_go(db_url: str) -> None:
    with PeeweeCheckpointProvider(db_url) as plain:
        ids = [plain.store_checkpoint(_cp(i, n=i)) for i in range(5)]
    with PeeweeCheckpointProvider(db_url, encryption_keys=[OLD]) as old:
        ids += [old.store_checkpoint(_cp(i, n=i)) for i in range(5, 12)]
        app = old.store_app_checkpoint(AppCheckpoint(name="a", state={"i": -1}))
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW, OLD]) as both:
        assert both.rekey() == 13
        assert both.rekey() == 0  # nothing left: running it again is a no-op
    keys = {k for (k,) in _raw(db_url, "SELECT state_key FROM peewee_checkpoints")}
    assert keys == {"new-2026"}
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW]) as new:
        assert [new.retrieve_checkpoint(i).state["n"] for i in ids] == list(range(12))  # type: ignore[union-attr]
        assert new.retrieve_app_checkpoint(app).state == {"i": -1}  # type: ignore[union-attr]
        assert new.rekey(decrypt=True) == 13
    with PeeweeCheckpointProvider(db_url) as plain:
        assert plain.retrieve_checkpoint(ids[7]).state == {"n": 7}  # type: ignore[union-attr]


def test_rekey_killed_with_sigkill_is_finished_by_running_it_again(db_url: str,
                                                                  tmp_path: Path) -> None:
    rows = 600
    with PeeweeCheckpointProvider(db_url, encryption_keys=[OLD]) as old:
        old.import_checkpoints([])  # migrate
        from peewee_checkpoints import StoredCheckpoint

        batch = [StoredCheckpoint(id=f"id{i:05d}", name="n", agent_id="a", state={"i": i},
                                  created_at=i) for i in range(rows)]
        old.import_checkpoints(batch)
    env = {**os.environ, "PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS": f"{NEW},{OLD}",
           "PEEWEE_CHECKPOINTS_REKEY_TEST_PAUSE": "0.05"}
    script = tmp_path / "slow_rekey.py"
    script.write_text(
        "import os, sys, time\n"
        "import peewee_checkpoints._rekey as r\n"
        "from peewee_checkpoints import PeeweeCheckpointProvider\n"
        "p = PeeweeCheckpointProvider(sys.argv[1])\n"
        "def progress(n):\n"
        "    print('batch', n, flush=True)\n"
        "    time.sleep(float(os.environ['PEEWEE_CHECKPOINTS_REKEY_TEST_PAUSE']))\n"
        "r.rekey(p, batch=25, progress=progress)\n"
        "print('done', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script), db_url], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    while seen < 4:  # let a few batches commit, then kill it mid-run
        line = proc.stdout.readline()
        assert line.startswith("batch"), line
        seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    counts = dict(_raw(db_url, "SELECT state_key, COUNT(*) FROM peewee_checkpoints "
                               "GROUP BY state_key"))
    assert counts.get("new-2026", 0) >= 100 and counts.get("old-2025", 0) > 0
    assert sum(counts.values()) == rows
    # Resume through the CLI; it skips what the killed run finished.
    out = subprocess.run([sys.executable, "-m", "peewee_checkpoints", "--db-url", db_url,
                          "rekey", "--json"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert f'"rewritten": {counts["old-2025"]}' in out.stdout
    _assert_no_secret(out.stdout + out.stderr)
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW]) as new:
        assert all(new.retrieve_checkpoint(f"id{i:05d}").state == {"i": i}  # type: ignore[union-attr]
                   for i in range(0, rows, 7))
        assert new.rekey() == 0


# -- keys never show ---------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [
    ["k1:" + base64.b64encode(b"b" * 31).decode()],  # 31 bytes
    ["k1 " + base64.b64encode(b"b" * 32).decode()],  # no colon
    ["k1:" + base64.b64encode(b"b" * 32).decode() + "!"],  # not base64
    ["k1:" + base64.b64encode(b"b" * 32).decode(), "k1:" + base64.b64encode(b"b" * 32).decode()],
    ["bad id!:" + base64.b64encode(b"b" * 32).decode()],
])
def test_a_malformed_key_is_a_config_error_that_never_shows_the_key(keys: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        PeeweeCheckpointProvider("sqlite:///:memory:", encryption_keys=keys)
    text = str(info.value) + repr(info.value)
    assert base64.b64encode(b"b" * 32).decode()[:20] not in text
    assert base64.b64encode(b"b" * 31).decode()[:20] not in text


def test_keys_never_appear_in_reprs_messages_or_logs(db_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with PeeweeCheckpointProvider(db_url, encryption_keys=[NEW, OLD]) as p:
        cid = p.store_checkpoint(_cp())
        p.retrieve_checkpoint(cid)
        p.rekey()
        texts = [repr(p), str(p), repr(p.keyring), repr(p.keyring._keys), p.url]
    with PeeweeCheckpointProvider(db_url, encryption_keys=[OLD]) as p:
        with pytest.raises(CheckpointError) as info:
            p.retrieve_checkpoint(cid)
        texts += [str(info.value), repr(info.value)]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        _assert_no_secret(text)
    assert "new-2026" in repr(p.keyring) or "old-2025" in repr(p.keyring)


def test_keys_from_toml_with_env_placeholders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CP_KEYS", f"{NEW},{OLD}")
    db = tmp_path / "c.db"
    config = tmp_path / "checkpoints.toml"
    config.write_text(
        "[checkpoints.providers.main]\n"
        'type = "peewee"\n'
        f'db_url = "sqlite:///{db}"\n'
        'encryption_keys = ["${CP_KEYS}"]\n'
    )
    # A list holding one string of several keys is split like the string itself.
    with pytest.raises(ConfigError):
        load_provider(config)
    config.write_text(config.read_text().replace('["${CP_KEYS}"]', '"${CP_KEYS}"'))
    with load_provider(config) as p:
        assert isinstance(p, PeeweeCheckpointProvider)
        assert p.keyring.key_ids == ["new-2026", "old-2025"]
        cid = p.store_checkpoint(_cp())
    assert main(["--config", str(config), "show", cid]) == 0
    assert main(["--config", str(config), "-v", "--provider", "main", "status"]) == 0
    monkeypatch.setenv("CP_KEYS", OLD)
    assert main(["--config", str(config), "-v", "show", cid]) == 1
    out = capsys.readouterr()
    assert "new-2026" in out.err
    _assert_no_secret(out.out + out.err)


def test_keyring_basics() -> None:
    key = generate_key()
    assert len(base64.b64decode(key)) == 32
    ring = parse_keys(f"a:{key} b:{generate_key()}")
    assert ring.primary_id == "a" and ring.key_ids == ["a", "b"]
    key_id, blob = ring.encrypt(b"hello", b"aad")
    assert key_id == "a" and ring.decrypt("a", blob, b"aad") == b"hello"
    with pytest.raises(EncryptionError):
        ring.decrypt("a", blob, b"other aad")
    assert parse_keys(None).encrypt(b"x", b"") == ("", b"x")
    assert key not in repr(ring)


def test_the_engine_rejects_nothing_when_a_database_has_no_state_key_yet(db_url: str) -> None:
    """009 adds the column to an existing table; rows written before read as plain."""
    with PeeweeCheckpointProvider(db_url) as p:
        cid = p.store_checkpoint(_cp(n=1))
        assert "009_app_checkpoints" in p.applied_migrations()
        while p.rollback_migration() != "009_app_checkpoints":
            pass
        with pytest.raises(pw.PeeweeException):
            p.database.execute_sql("SELECT state_key FROM peewee_checkpoints")
        p.close()
        assert p.migrate() == ["009_app_checkpoints"]
        assert p.retrieve_checkpoint(cid).state == {"n": 1}  # type: ignore[union-attr]
