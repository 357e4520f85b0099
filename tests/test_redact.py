"""Password redaction: one implementation, shared by the database layer and the CLI."""

from __future__ import annotations

from peewee_checkpoints import _database, _engine, _migrations, _redact, cli


def test_one_redactor_serves_the_database_layer_and_the_cli() -> None:
    assert _database.Redactor is _redact.Redactor
    assert _engine.Redactor is _redact.Redactor
    assert _engine.chain is _redact.chain
    assert _migrations.chain is _redact.chain
    assert cli.Redactor is _redact.Redactor


def test_url_redactor_hides_the_password_as_written_and_decoded() -> None:
    redact = _redact.url_redactor("postgresql://u:p%40ss@h:5432/db")
    assert redact("postgresql://u:p%40ss@h/db said p@ss") == "postgresql://u:***@h/db said ***"
    assert repr(redact) == "Redactor(<2 secrets>)"
    for url in ("sqlite:///c.db", "mysql://root@h/db", "http://[malformed", ""):
        assert _redact.url_redactor(url)("unchanged") == "unchanged"


def test_redactors_combine_and_chain_refuses_a_cause_that_shows_a_secret() -> None:
    both = _redact.url_redactor("mysql://u:one@h/db") | _redact.Redactor("two")
    assert both("one two three") == "*** *** three"
    leaky = ValueError("password one rejected")
    assert _redact.chain(RuntimeError("x"), leaky, both).__cause__ is None
    clean = ValueError("refused")
    assert _redact.chain(RuntimeError("x"), clean, both).__cause__ is clean
