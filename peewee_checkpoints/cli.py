"""The ``peewee-checkpoints`` command: look inside a checkpoint store, repair it and move it.

``main(argv=None) -> int`` never raises: errors print ``error: <message>`` on stderr and give
exit code 2 (usage, config, invalid input, a SQLite file that does not exist), 1 (storage, not
found, a database without the package's tables) or 130 (interrupted); the traceback is shown
only with ``-v``, and no password is ever printed. Commands that add no checkpoint (show, list,
status, export, delete, prune, and copy's source) never create or migrate a database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import operator
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, ClassVar

import click

from ._defaults import DEFAULT_DB_URL
from ._redact import Redactor, chain, url_redactor
from .errors import (
    CheckpointError,
    ConfigError,
    InvalidCheckpointError,
    ProviderNotFoundError,
    StorageError,
)

# Peewee (with every driver it finds) and the modules built on it are imported by the commands
# that use them, so that --help starts about as fast as click itself.
if TYPE_CHECKING:
    from . import _cli_kinds as kinds
    from . import _transfer as transfer
    from .interface import CheckpointProvider
    from .peewee_provider import PeeweeCheckpointProvider
    from .records import CheckpointListItem
else:
    class _LazyModule:
        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            import importlib

            return getattr(importlib.import_module(self._name, __package__), attr)

    transfer = _LazyModule("._transfer")
    kinds = _LazyModule("._cli_kinds")

__all__ = ["ENV_DB_URL", "main"]

#: Environment variable naming the database when no ``--db-url`` flag is given.
ENV_DB_URL = "PEEWEE_CHECKPOINTS_DB_URL"

PROG = "peewee-checkpoints"
EXIT_STORAGE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE; click itself exits 1 when it sees the closed pipe

# Option names whose values are secrets, whatever the provider.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "key")

# Errors in what the user gave us (flags, config, input files) exit 2; errors of the store 1.
_USAGE_ERRORS = (ConfigError, ProviderNotFoundError, InvalidCheckpointError)


class Interrupted(click.ClickException):
    """Ctrl-C during long work: the message says what was done and how to resume."""

    exit_code = EXIT_INTERRUPTED


class NotFound(click.ClickException):
    """A checkpoint id that does not exist, or a database without the package's tables."""

    exit_code = EXIT_STORAGE


class Incomplete(click.ClickException):
    """A kind of data the command could not move: the rest was moved, and it says so."""

    exit_code = EXIT_STORAGE


class Failed(Exception):
    """A package error retold with what the command had done before it (same exit code)."""

    def __init__(self, message: str, cause: CheckpointError) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class Session:
    """Global options and what the run has learnt (passwords to hide)."""

    config: str | None = None
    provider_name: str | None = None
    db_url: str | None = None
    verbose: bool = False
    json: bool = False
    urls: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: Whether this run set the configured encryption keys (main() puts the old ones back).
    keys_set: bool = False

    def redactor(self) -> Redactor:
        """Hides every password this run has seen (URLs given, and the chosen config's)."""
        return functools.reduce(operator.or_, map(url_redactor, self.urls),
                                Redactor(*self.secrets))

    def chosen(self) -> str:
        """How the user named the store, for messages."""
        if self.db_url is None and self.provider_name is not None:
            return f"--provider {self.provider_name}"
        return "the chosen provider"

    def open(self, *, create: bool = True) -> CheckpointProvider:
        """The provider the global options select.

        Precedence: ``--db-url``; ``--config``/``--provider``; ``$PEEWEE_CHECKPOINTS_DB_URL``;
        then ``load_provider``'s own search ($PEEWEE_CHECKPOINTS_CONFIG, ./checkpoints.toml,
        the embedded default ``sqlite:///checkpoints.db``). With ``create=False``, a SQLite
        file that does not exist is a ConfigError naming it, and nothing is created.
        """
        if self.db_url is not None:
            if self.config is not None or self.provider_name is not None:
                raise click.UsageError("--db-url cannot be combined with --config or --provider")
            return self._peewee(self.db_url, "--db-url", create=create)
        if self.config is None and self.provider_name is None and os.environ.get(ENV_DB_URL):
            return self._peewee(os.environ[ENV_DB_URL], f"${ENV_DB_URL}", create=create)
        return self.load(self.provider_name, "--provider", create=create)

    def load(self, name: str | None, option: str, *, create: bool = True) -> CheckpointProvider:
        """A provider from the config file (``--config`` or the default search).

        What ``load_provider`` does, in its two steps, so that the chosen provider's option
        values are known first: a traceback (``-v``) can then be scrubbed of any password
        they hold, which the provider's own messages already leave out. ``option`` is the
        flag that gave ``name``, for messages.
        """
        from .config import resolve_provider_config

        chosen = resolve_provider_config(self.config, name=name, name_option=option)
        for key, value in chosen.options.items():
            if isinstance(value, str):
                if "://" in value:
                    self.urls.append(value)
                elif any(word in key.lower() for word in _SECRET_WORDS):
                    self.secrets.append(value)
        label = f"{chosen.source}: checkpoints.providers.{chosen.name}"
        if chosen.type == "peewee":
            self._use_keys(chosen.options.get("encryption_keys"))
        if not create and chosen.type == "peewee":
            _require_sqlite_file(chosen.options.get("db_url", DEFAULT_DB_URL), label)
        from .registry import create_provider

        return create_provider(chosen.type, chosen.options, label=label)

    def database_url(self, what: str, *, create: bool = True) -> str:
        """The ``db_url`` the global options select, for the command groups that work on a
        database rather than a provider (``threads``, ``sessions``, ``adk``).

        Same precedence as :meth:`open`; the chosen provider must be a peewee one. ``what``
        names the data, for the error when it is not. With ``create=False`` a SQLite file that
        does not exist is a ConfigError naming it.
        """
        if self.db_url is not None:
            if self.config is not None or self.provider_name is not None:
                raise click.UsageError("--db-url cannot be combined with --config or --provider")
            url, where = self.db_url, "--db-url"
        elif self.config is None and self.provider_name is None and os.environ.get(ENV_DB_URL):
            url, where = os.environ[ENV_DB_URL], f"${ENV_DB_URL}"
        else:
            from .config import resolve_provider_config

            # With no config file at all, this is the embedded default provider.
            chosen = resolve_provider_config(self.config, name=self.provider_name,
                                             name_option="--provider")
            self._use_keys(chosen.options.get("encryption_keys"))
            value = chosen.options.get("db_url", DEFAULT_DB_URL)
            if chosen.type != "peewee" or not isinstance(value, str):
                raise ConfigError(
                    f"provider {chosen.name!r} ({chosen.type}) has no database: {what} "
                    "live in a peewee provider's database; pass --db-url or choose one "
                    "with --provider")
            url, where = value, f"{chosen.source}: checkpoints.providers.{chosen.name}"
        self.urls.append(url)  # its password is hidden in any message
        if not create:
            _require_sqlite_file(url, where)
        return url

    def _use_keys(self, keys: object) -> None:
        """The chosen provider's ``encryption_keys`` serve the commands that read the
        adapters' data too (LangGraph threads, sessions): they fall back to them."""
        if keys is None or self.keys_set:
            return
        from ._crypto import set_configured_keys

        entries = keys.split(",") if isinstance(keys, str) else keys
        if isinstance(entries, list):
            self.secrets.extend(str(entry) for entry in entries)  # never in a message
        set_configured_keys(keys)  # type: ignore[arg-type]  # parse_keys checks its type
        self.keys_set = True

    def open_target(self, target: str) -> CheckpointProvider:
        """``--to``: a db_url (anything with ``://``) or a provider name from the config."""
        if "://" in target:
            return self._peewee(target, "--to")
        return self.load(target, "--to")

    def _peewee(self, url: str, where: str, *, create: bool = True) -> PeeweeCheckpointProvider:
        self.urls.append(url)
        if not create:
            _require_sqlite_file(url, where)
        from .peewee_provider import PeeweeCheckpointProvider

        return PeeweeCheckpointProvider(url)


def _require_sqlite_file(url: object, where: str) -> None:
    """Refuse a ``sqlite:///PATH`` URL whose file does not exist (commands that add nothing).

    SQLite creates a missing file on connect, and the provider would then migrate it: a
    mistyped path would show as an empty store, and leave a new database behind.
    """
    if not isinstance(url, str):
        return
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower().partition("+")[0] != "sqlite" or not rest.startswith("/"):
        return
    path = rest[1:].partition("?")[0]
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    raise ConfigError(
        f"no SQLite database at {os.path.abspath(path)} (from {where}), and {_command()} does "
        f"not create one: check the path, or create the database with '{PROG} migrate' "
        "(store and import create it too)"
    )


def _command() -> str:
    """The running subcommand's name, for messages."""
    ctx = click.get_current_context(silent=True)
    return f"'{ctx.info_name}'" if ctx is not None and ctx.info_name else "this command"


def _require_tables(provider: CheckpointProvider) -> None:
    """Refuse a database without this package's tables, or on an older schema: commands that
    add no checkpoint never migrate (the provider would on its first call)."""
    from .peewee_provider import PeeweeCheckpointProvider

    if not isinstance(provider, PeeweeCheckpointProvider):
        return
    pending = provider.pending_migrations()
    if not pending:
        return
    if not provider.applied_migrations():
        raise NotFound(f"no peewee-checkpoints tables in {provider.url}; run "
                       f"'{PROG} migrate' to create them (store and import create them too)")
    raise NotFound(f"{provider.url} needs the migration(s) {', '.join(pending)} first, and "
                   f"{_command()} does not migrate: run '{PROG} migrate'")


def _require_persistent(provider: CheckpointProvider, what: str) -> None:
    """Refuse to write into a memory provider: it would be gone when the command exits."""
    from .memory import MemoryCheckpointProvider

    if isinstance(provider, MemoryCheckpointProvider):
        raise ConfigError(
            f"{what} is a memory provider, which keeps checkpoints only while this command "
            "runs: what it wrote would vanish at exit. Use a database (a db_url, or a provider "
            'of type = "peewee")'
        )


pass_session = click.make_pass_decorator(Session)


# -- output helpers ----------------------------------------------------------------------------


def _stdout() -> IO[bytes]:
    return sys.stdout.buffer


def _name(file: IO[bytes]) -> str:
    """A FILE argument's name; ``<stdin>`` for standard input, whatever stream stands for it."""
    return str(getattr(file, "name", "<stdin>"))


def _emit_json(value: Any) -> None:
    out = _stdout()
    out.write(transfer.dumps_pretty(value) + b"\n")
    out.flush()


def _info(message: str) -> None:
    """A human message about what happened (stderr, so stdout stays data)."""
    click.echo(message, err=True)


def local_time(ms: int) -> str:
    """Epoch milliseconds as local time, ``YYYY-MM-DD HH:MM:SS.mmm``."""
    try:
        moment = dt.datetime.fromtimestamp(ms // 1000).replace(microsecond=ms % 1000 * 1000)
    except (OverflowError, OSError, ValueError):
        return str(ms)  # beyond what the platform's calendar handles: show the number
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


if TYPE_CHECKING:  # click 8.5 made ParamType generic; older releases cannot subscript it
    _IntParam = click.ParamType[int, Any]
else:
    _IntParam = click.ParamType


class Moment(_IntParam):
    """A point in time: epoch milliseconds, or ISO 8601 (naive means local time)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        """Epoch milliseconds from ``value``; a usage error (exit 2) if it is neither form."""
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            # Python 3.10's fromisoformat does not know the "Z" suffix.
            moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z"))
                                               else text)
        except ValueError:
            self.fail(
                f"{value!r} is neither epoch milliseconds nor an ISO 8601 time "
                "(2026-01-31, 2026-01-31T12:00, 2026-01-31T12:00:00+02:00)",
                param, ctx,
            )
        if moment.tzinfo is None:
            moment = moment.astimezone()  # naive: the local time zone
        return int(moment.timestamp() * 1000)


class Progress:
    """Progress of long work: a bar on stderr when it is a terminal (silent otherwise), and
    the place where Ctrl-C is turned into a clean stop.

    While it is active, the first Ctrl-C only sets a flag that the work checks after each
    row: it commits what it has written and stops with KeyboardInterrupt, so the target never
    holds part of a row and the reported counts are exact. A second Ctrl-C interrupts at once
    (for a database that hangs); an uncommitted batch is then rolled back, never half kept.
    """

    def __init__(self, label: str, length: Callable[[], int | None] | int | None) -> None:
        self._bar: Any = None
        self._requested = False
        self._previous: Any = None
        # Holds the bar while it is shown: entered and left as any context manager is.
        self._stack = contextlib.ExitStack()
        if sys.stderr.isatty():
            if callable(length):
                length = length()  # a count can cost a scan: only for a bar someone sees
            if length is None:
                self._bar = click.progressbar(itertools.repeat(None), label=label,
                                              show_pos=True, file=sys.stderr)
            else:
                self._bar = click.progressbar(length=length, label=label, file=sys.stderr)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._requested:
            raise KeyboardInterrupt
        self._requested = True

    def __enter__(self) -> Progress:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        if self._bar is not None:
            self._stack.enter_context(self._bar)
        return self

    def advance(self, amount: int) -> None:
        """Count ``amount`` more done."""
        if self._bar is not None:
            self._bar.update(amount)

    def stop_requested(self) -> bool:
        """True once Ctrl-C was pressed."""
        return self._requested

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        self._stack.close()


def _count(session: Session, provider: CheckpointProvider) -> int | None:
    """Rows in the store when that is cheap to know (the Peewee provider), else None.

    The provider's own ``count_checkpoints`` when it has one; else, on the Peewee provider, a
    COUNT(*) whose failure is a StorageError like the provider's own: password removed, and
    the driver's error chained only when it shows no password.
    """
    from .peewee_provider import PeeweeCheckpointProvider

    counter = getattr(provider, "count_checkpoints", None)
    if callable(counter) and not isinstance(provider, PeeweeCheckpointProvider):
        return int(counter())
    if not isinstance(provider, PeeweeCheckpointProvider):
        return None
    import peewee as pw

    failure: pw.PeeweeException
    try:
        return int(provider.model.select().count())
    except pw.PeeweeException as exc:
        failure = exc
    redact = session.redactor()
    error = StorageError(redact(f"could not count checkpoints on {provider.url}: "
                                f"{type(failure).__name__}: {failure}"))
    raise chain(error, failure, redact)


# -- the command group --------------------------------------------------------------------------


class _LazyGroup(click.Group):
    """The main group: the command groups of the adapters and of app checkpoints live in
    modules of their own, imported when one of their commands runs, not for ``--help`` (each
    costs milliseconds of start-up, and start-up is a target: benchmarks/cli_startup.py).
    """

    #: command name -> (module, attribute, the help ``--help`` lists it with). The help must
    #: match the command's own docstring (tests/test_cli.py checks it).
    LAZY: ClassVar[dict[str, tuple[str, str, str]]] = {
        "adk": ("._cli_adk", "adk",
                "Google ADK sessions (peewee_checkpoints.adk) in the same database."),
        "app": ("._cli_app", "app",
                "App checkpoints: snapshots of the whole application's state."),
        "keygen": ("._cli_app", "keygen",
                   "Print a new encryption key entry, KEY_ID:<base64 of 32 random bytes>."),
        "rekey": ("._cli_app", "rekey",
                  "Re-encrypt every stored state under the first encryption key."),
        "sessions": ("._cli_sessions", "sessions",
                     "Agent conversation sessions (OpenAI Agents SDK): list, show, move, "
                     "delete."),
        "threads": ("._cli_threads", "threads",
                    "LangGraph threads (PeeweeSaver) and store items (PeeweeStore) in the "
                    "database."),
    }
    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, attribute, help_text = self.LAZY[cmd_name]
            if self._listing:  # --help: a stand-in with the same help, nothing imported
                return click.Command(cmd_name, help=help_text)
            import importlib

            self.add_command(getattr(importlib.import_module(module, __package__), attribute),
                             cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


@click.group(cls=_LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config", metavar="FILE", type=click.Path(dir_okay=False),
              help="TOML config file [default: $PEEWEE_CHECKPOINTS_CONFIG, else "
                   "./checkpoints.toml].")
@click.option("--provider", "provider_name", metavar="NAME",
              help="Provider name in the config file [default: its 'active' one].")
@click.option("--db-url", "db_url", metavar="URL",
              help=f"Database URL of the Peewee provider [env: {ENV_DB_URL}; default: "
                   f"{DEFAULT_DB_URL}].")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.option("--json", "json_", is_flag=True, help="Print data as JSON (also a command option).")
@click.version_option(package_name="peewee-checkpoints", prog_name=PROG)
@click.pass_context
def cli(  # noqa: PLR0917 - click passes options as arguments
        ctx: click.Context, config: str | None, provider_name: str | None, db_url: str | None,
        verbose: bool, json_: bool) -> None:
    """Inspect, repair and move the checkpoints of an agent deployment.

    The store is chosen by --db-url, else --config/--provider, else $PEEWEE_CHECKPOINTS_DB_URL,
    else the config file ($PEEWEE_CHECKPOINTS_CONFIG or ./checkpoints.toml), else
    sqlite:///checkpoints.db.
    """
    session = ctx.ensure_object(Session)
    session.config, session.provider_name, session.db_url = config, provider_name, db_url
    session.verbose, session.json = verbose, json_
    if db_url is not None:
        session.urls.append(db_url)
    if os.environ.get(ENV_DB_URL):
        session.urls.append(os.environ[ENV_DB_URL])


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "json_", is_flag=True, help="Print JSON.")(f)


def _wants_json(session: Session, flag: bool) -> bool:
    return flag or session.json


@contextlib.contextmanager
def _provider(session: Session, *, create: bool = True) -> Iterator[CheckpointProvider]:
    """The selected provider, closed at the end. ``create=False`` (commands that add nothing):
    a missing SQLite file or a database without the package's tables is an error, and nothing
    is created or migrated."""
    with session.open(create=create) as provider:
        if not create:
            _require_tables(provider)
        yield provider


# -- schema -------------------------------------------------------------------------------------


@cli.command()
@_json_option
@pass_session
def migrate(session: Session, json_: bool) -> None:
    """Apply pending migrations."""
    with _provider(session) as provider:
        run = getattr(provider, "migrate", None)
        applied: list[str] = run() if run is not None else []
        if _wants_json(session, json_):
            _emit_json({"applied": applied})
        elif applied:
            for name in applied:
                click.echo(f"applied {name}")
        else:
            click.echo("up to date: no pending migrations")


@cli.command()
@_json_option
@pass_session
def status(session: Session, json_: bool) -> None:
    """Show the store: backend, URL (password masked), migrations, row count.

    Creates and migrates nothing: a database without the tables shows every migration pending.
    """
    with session.open(create=False) as provider:
        info: dict[str, Any] = {"provider": type(provider).__name__}
        from .peewee_provider import PeeweeCheckpointProvider

        if isinstance(provider, PeeweeCheckpointProvider):
            applied, pending = provider.applied_migrations(), provider.pending_migrations()
            info.update(backend=provider.backend, url=provider.url,
                        applied_migrations=applied, pending_migrations=pending,
                        checkpoints=_count(session, provider) if not pending else None,
                        app_checkpoints=provider.count_app_checkpoints() if not pending
                        else None)
            info.update(dict.fromkeys(kinds.KINDS[1:]))
            if not pending:  # every table exists: count what the adapters keep there too
                info.update(kinds.status_counts(provider.engine, _source_url(provider)))
        else:
            info["checkpoints"] = sum(1 for _ in transfer.iter_items(provider))
            info["app_checkpoints"] = provider.count_app_checkpoints()
            info.update(dict.fromkeys(kinds.KINDS[1:]))  # no table for them behind it
        if _wants_json(session, json_):
            _emit_json(info)
            return
        rows = [("provider", info["provider"])]
        if "backend" in info:
            rows += [
                ("backend", info["backend"]),
                ("url", info["url"]),
                ("applied", ", ".join(info["applied_migrations"]) or "(none)"),
                ("pending", ", ".join(info["pending_migrations"]) or "(none)"),
            ]
        count = info["checkpoints"]
        rows.append(("checkpoints", str(count) if count is not None
                     else "unknown until the pending migrations are applied (run: migrate)"))
        rows += _kind_rows(info)
        for key, value in rows:
            click.echo(f"{key + ':':<13}{value}")


_KIND_ROWS = (("app_checkpoints", "app"), ("langgraph", "langgraph"),
              ("openai_sessions", "openai"), ("adk_sessions", "adk"))


def _kind_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The status lines of the kinds besides agent checkpoints (every kind, even at 0)."""
    rows = []
    for key, label in _KIND_ROWS:
        value = info[key]
        if value is None and "backend" not in info:
            text = f"none: a {info['provider']} keeps agent and app checkpoints only"
        elif value is None:
            text = "unknown until the pending migrations are applied"
        elif isinstance(value, dict):
            text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in value.items())
        else:
            text = f"{value} app checkpoint{'s' * (value != 1)}"
        rows.append((label, text))
    return rows


def _source_url(provider: CheckpointProvider) -> str:
    """The db_url behind the store the global options chose (for the other kinds of data);
    empty when it is not a database."""
    from .peewee_provider import PeeweeCheckpointProvider

    if not isinstance(provider, PeeweeCheckpointProvider):
        return ""
    from ._cli_threads import _db_url

    return _db_url(create=True)


# -- single checkpoints --------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@_json_option
@pass_session
def store(session: Session, file: IO[bytes], json_: bool) -> None:
    """Store a checkpoint given as JSON; prints its new id.

    The JSON object has name, agent_id and state, and optionally session_id, agent_type and
    created_at (epoch ms; default now). FILE defaults to stdin.
    """
    checkpoint = transfer.named_from_json(file.read(), f"the checkpoint in {_name(file)}")
    with _provider(session) as provider:
        _require_persistent(provider, session.chosen())
        checkpoint_id = provider.store_checkpoint(checkpoint)
    if _wants_json(session, json_):
        _emit_json({"id": checkpoint_id})
    else:
        click.echo(checkpoint_id)


@cli.command()
@click.argument("checkpoint_id", metavar="ID")
@click.option("--json", "json_", is_flag=True, help="Print JSON (what show always prints).")
@pass_session
def show(session: Session, checkpoint_id: str, json_: bool) -> None:
    """Print one checkpoint, state included, as JSON."""
    with _provider(session, create=False) as provider:
        checkpoint = provider.retrieve_checkpoint(checkpoint_id)
    if checkpoint is None:
        raise NotFound(f"no checkpoint with id {checkpoint_id!r}")
    _emit_json(transfer.record_to_dict(checkpoint))


@cli.command("list")
@click.option("--agent", help="Only this agent_id.")
@click.option("--session", "session_id", help="Only this session_id.")
@click.option("--type", "agent_type", help="Only this agent_type.")
@click.option("--before", type=Moment(), help="Created before (epoch ms or ISO 8601).")
@click.option("--after", type=Moment(), help="Created after (epoch ms or ISO 8601).")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many (newest first).")
@_json_option
@pass_session
def list_(  # noqa: PLR0917 - click passes options as arguments
        session: Session, agent: str | None, session_id: str | None, agent_type: str | None,
          before: int | None, after: int | None, limit: int | None, json_: bool) -> None:
    """List checkpoints, newest first, as a table (times in local time) or JSON."""
    filters = {"agent_id": agent, "session_id": session_id, "agent_type": agent_type,
               "before": before, "after": after}
    with _provider(session, create=False) as provider:
        items = itertools.islice(transfer.iter_items(provider, **filters), limit)
        if _wants_json(session, json_):
            _write_json_array(items)
        else:
            _write_table(items)


def _write_json_array(items: Iterator[CheckpointListItem]) -> None:
    out = _stdout()
    out.write(b"[")
    count = 0
    for count, item in enumerate(items, start=1):
        out.write((b",\n  " if count > 1 else b"\n  ") + transfer.dumps_compact(vars(item)))
    out.write(b"\n]\n" if count else b"]\n")
    out.flush()


_LISTING = (("ID", "id"), ("NAME", "name"), ("AGENT", "agent_id"), ("SESSION", "session_id"),
            ("TYPE", "agent_type"), ("CREATED (local time)", "created_at"))
_TABLE_SAMPLE = 1000  # column widths come from the first rows; the rest streams


def _write_table(items: Iterator[CheckpointListItem]) -> None:
    rows = ([local_time(item.created_at) if attr == "created_at" else str(getattr(item, attr))
             for _, attr in _LISTING] for item in items)
    if not _print_table([title for title, _ in _LISTING], rows):
        _info("(no checkpoints)")


def _print_table(header: list[str], rows: Iterator[list[str]]) -> int:
    """Print aligned columns, widths from the header and the first rows; returns the rows.

    Rows stream: only the first :data:`_TABLE_SAMPLE` are held to measure the columns (a
    later, longer cell just pushes its line to the right).
    """
    first = list(itertools.islice(rows, _TABLE_SAMPLE))
    widths = [max([len(title), *(len(row[i]) for row in first)])
              for i, title in enumerate(header)]

    def line(row: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    click.echo(line(header))
    count = 0
    for row in itertools.chain(first, rows):
        click.echo(line(row))
        count += 1
    return count


@cli.command()
@click.argument("checkpoint_ids", metavar="ID...", nargs=-1, required=True)
@_json_option
@pass_session
def delete(session: Session, checkpoint_ids: tuple[str, ...], json_: bool) -> None:
    """Delete checkpoints by id; exit code 1 if any id did not exist."""
    deleted: list[str] = []
    missing: list[str] = []
    with _provider(session, create=False) as provider:
        for checkpoint_id in checkpoint_ids:
            (deleted if provider.delete_checkpoint(checkpoint_id) else missing).append(
                checkpoint_id)
    if _wants_json(session, json_):
        _emit_json({"deleted": deleted, "missing": missing})
    else:
        for checkpoint_id in deleted:
            click.echo(f"deleted {checkpoint_id}")
    if missing:
        raise NotFound("no checkpoint with id " + ", ".join(map(repr, missing)))


@cli.command()
@click.option("--before", type=Moment(), help="Delete checkpoints created before TIME.")
@click.option("--keep-last-per-agent", type=click.IntRange(min=0), metavar="N",
              help="Delete all but the newest N checkpoints of each agent.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--policy", is_flag=True, help="Apply the configured retention policy instead "
              "(a dry run unless --yes).")
@click.option("--yes", is_flag=True, help="With --policy: really delete.")
@_json_option
@pass_session
def prune(  # noqa: PLR0917 - click passes options as arguments
        session: Session, before: int | None, keep_last_per_agent: int | None, dry_run: bool,
        json_: bool, policy: bool = False, yes: bool = False) -> None:
    """Delete old checkpoints by age and/or by count per agent.

    With both rules, a checkpoint goes if either rule removes it. Prints how many were (with
    --dry-run, would be) deleted.
    """
    if policy:
        from ._cli_app import apply_policy
        return apply_policy(session, yes and not dry_run, _wants_json(session, json_))
    if before is None and keep_last_per_agent is None:
        raise click.UsageError("prune needs --before and/or --keep-last-per-agent")
    with _provider(session, create=False) as provider:
        count = provider.prune(before=before, keep_last_per_agent=keep_last_per_agent,
                               dry_run=dry_run)
    if _wants_json(session, json_):
        _emit_json({"would_delete" if dry_run else "deleted": count})
    else:
        noun = f"checkpoint{'s' * (count != 1)}"
        click.echo(f"would delete {count} {noun}" if dry_run else f"deleted {count} {noun}")


# -- bulk: export, import, copy ------------------------------------------------------------------


@cli.command("export")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE (atomically, readable by you only) instead of stdout.")
@click.option("--json", "json_", is_flag=True,
              help="With --out, print the summary as JSON on stdout (the data is JSON Lines).")
@pass_session
def export_(session: Session, out_path: str | None, json_: bool) -> None:
    """Write everything the store holds as JSON Lines (streamed).

    Agent checkpoints (one per line, with its id), then app checkpoints, LangGraph threads
    and store items, OpenAI Agents and ADK sessions, each line of those with its "kind".
    """
    report = kinds.Report()
    with (
        _provider(session, create=False) as provider,
        Progress("exporting", functools.partial(_count, session, provider)) as progress,
    ):
        def write(out: IO[bytes]) -> int:
            count = transfer.export_checkpoints(provider, out, progress)
            report[kinds.APP].written = transfer.export_apps(provider, out, progress)
            kinds.export_others(provider, _source_url(provider), out, report, progress)
            return count

        try:
            count = write(_stdout()) if out_path is None else _export_to_file(out_path, write)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; {out_path} was not written" if out_path
                else "interrupted; the output is incomplete"
            ) from None
    if out_path is not None and _wants_json(session, json_):
        summary: dict[str, Any] = {"exported": count, "out": out_path}
        report.add_to(summary, "exported")
        _emit_json(summary)
    else:
        _info(f"exported {count} checkpoint{'s' * (count != 1)}")
        for line in report.lines("exported"):
            _info(line)


def _export_to_file(path: str, write: Callable[[IO[bytes]], int]) -> int:
    from ._output import export_output

    with export_output(path) as out:
        return write(out)


def _kinds_target(session: Session, provider: CheckpointProvider, named: str
                  ) -> tuple[str | None, str]:
    """The db_url the other kinds of data go to, or None and why they cannot go there."""
    from .peewee_provider import PeeweeCheckpointProvider

    if isinstance(provider, PeeweeCheckpointProvider):
        return (_source_url(provider) if not named else _target_url(session, named)), ""
    return None, (f"{named or session.chosen()} ({type(provider).__name__}) keeps agent and "
                  "app checkpoints only; move them to a database (a db_url)")


@cli.command("import")
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@_json_option
@pass_session
def import_(session: Session, file: IO[bytes], json_: bool) -> None:
    """Import JSON Lines (as export writes them), keeping ids; what exists is skipped.

    Every kind export writes is read back (a file of an older version, without kinds, too);
    running it again after an interruption imports only what is missing.
    """
    counts, apps, report = transfer.TransferCounts(), transfer.TransferCounts(), kinds.Report()
    length = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        stat = os.fstat(file.fileno())
        length = stat.st_size if stat.st_size and os.path.isfile(_name(file)) else None
    with _provider(session) as provider, Progress("importing", length) as progress:
        _require_persistent(provider, session.chosen())
        target_url, reason = _kinds_target(session, provider, "")
        with kinds.ImportSink(target_url, report, reason) as sink:
            try:
                transfer.import_lines(provider, file, counts, progress,
                                      "stdin" if _name(file) == "<stdin>" else _name(file),
                                      apps=apps, others=sink)
            except KeyboardInterrupt:
                report.take_apps(apps)
                raise Interrupted(
                    f"interrupted after importing {counts.written} and skipping "
                    f"{counts.skipped}{_so_far(report, 'imported')}; every imported checkpoint "
                    "is complete: run the same import again to finish"
                ) from None
            except CheckpointError as exc:
                report.take_apps(apps)
                if counts.written or report.touched():
                    raise Failed(
                        f"{exc} ({counts.written} imported before it are kept"
                        f"{_so_far(report, 'imported')}, and skipped when you import again)",
                        exc
                    ) from exc
                raise
    report.take_apps(apps)
    _report(session, json_, "imported", counts, report)


def _so_far(report: kinds.Report, verb: str) -> str:
    """What the other kinds had done, for the message of a command that stopped."""
    lines = report.lines(verb)
    return "; " + "; ".join(lines) if lines else ""


@cli.command()
@click.option("--to", "target", required=True, metavar="URL_OR_PROVIDER",
              help="A db_url, or a provider name from the config file.")
@_json_option
@pass_session
def copy(session: Session, target: str, json_: bool) -> None:
    """Copy everything, with ids, to another store; re-runs copy only what is missing.

    Agent and app checkpoints, LangGraph threads and store items, OpenAI Agents and ADK
    sessions; each is reported on its own line.
    """
    counts, apps, report = transfer.TransferCounts(), transfer.TransferCounts(), kinds.Report()
    with (
        _provider(session, create=False) as source,
        session.open_target(target) as dest,
        Progress("copying", functools.partial(_count, session, source)) as progress,
    ):
        _require_persistent(dest, f"--to {target}")
        try:
            transfer.copy_all(source, dest, counts, progress, apps=apps)
            report.take_apps(apps)
            target_url, reason = _kinds_target(session, dest, target)
            kinds.copy_others(source, _source_url(source), target_url, report, progress,
                              target_reason=reason)
        except KeyboardInterrupt:
            report.take_apps(apps)
            raise Interrupted(
                f"interrupted after copying {counts.written} (skipped {counts.skipped} "
                f"already there){_so_far(report, 'copied')}; every copied checkpoint, thread "
                "and session is complete: run the same copy again to finish"
            ) from None
        except CheckpointError as exc:
            report.take_apps(apps)
            raise Failed(f"{exc} (after copying {counts.written} checkpoints"
                         f"{_so_far(report, 'copied')}; run the same copy again to resume)",
                         exc) from exc
    _report(session, json_, "copied", counts, report)


def _target_url(session: Session, target: str) -> str:
    """The db_url behind ``--to`` (a URL, or a peewee provider named in the config)."""
    if "://" in target:
        return target
    from .config import resolve_provider_config

    chosen = resolve_provider_config(session.config, name=target, name_option="--to")
    url = chosen.options.get("db_url")
    if not isinstance(url, str):
        raise ConfigError(f"provider {target!r} (from --to) has no db_url")
    return url


def _report(session: Session, json_: bool, verb: str, counts: transfer.TransferCounts,
            report: kinds.Report) -> None:
    """Say what moved, per kind: agent checkpoints, then every other kind met. A kind that
    could not be moved is then an error (exit code 1)."""
    if _wants_json(session, json_):
        summary: dict[str, Any] = {verb: counts.written, "skipped": counts.skipped,
                                   "vanished": counts.vanished}
        report.add_to(summary, verb)
        _emit_json(summary)
    else:
        text = f"{verb} {counts.written}, skipped {counts.skipped} (id already present)"
        if counts.vanished:
            text += f", {counts.vanished} deleted from the source meanwhile"
        click.echo(text)
        for line in report.lines(verb):
            click.echo(line)
    if report.failures():
        raise Incomplete(report.failure_message(verb))


# -- plugins -------------------------------------------------------------------------------------


@cli.command()
@_json_option
@pass_session
def providers(session: Session, json_: bool) -> None:
    """List the installed provider types and the distributions they come from.

    Each one is imported to check that it loads; exit code 1 if any does not.
    """
    from .registry import available_providers, provider_errors

    found = available_providers()
    problems = provider_errors()
    rows = [
        {"name": info.name, "distribution": info.distribution, "version": info.version,
         "object": info.value, "error": str(problems[name]) if name in problems else None}
        for name, info in found.items()
    ]
    if _wants_json(session, json_):
        _emit_json(rows)
    else:
        table = (
            [info.name, info.distribution or "?", info.version or "?", info.value,
             "broken" if name in problems else "ok"]
            for name, info in found.items()
        )
        if not _print_table(["TYPE", "DISTRIBUTION", "VERSION", "OBJECT", "STATUS"], table):
            _info("(no providers installed)")
    if problems:
        raise click.ClickException("; ".join(str(e) for e in problems.values()))


# -- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 storage, 2 usage, 130 Ctrl-C)."""
    session = Session()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        # A bare command asks what it can do: the help, as --help prints it, and no error.
        with click.Context(cli, info_name=PROG, **cli.context_settings) as ctx:
            click.echo(cli.get_help(ctx))
        return 0
    try:
        return _run(args, session)
    finally:
        if session.keys_set:
            from ._crypto import set_configured_keys

            set_configured_keys(None)


def _run(args: list[str], session: Session) -> int:
    try:
        result = cli.main(args=args, prog_name=PROG, standalone_mode=False, obj=session)
        return result if isinstance(result, int) else 0
    except click.ClickException as exc:
        hint = None
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f"try '{exc.ctx.command_path} --help' for help"
        return _fail(session, exc.format_message(), hint, code=exc.exit_code)
    except click.Abort:
        return _fail(session, "interrupted", code=EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `export | head`): not an error worth a message.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except SystemExit as exc:  # click's own quiet exit when stdout is a closed pipe
        return exc.code if isinstance(exc.code, int) else EXIT_STORAGE
    except Failed as exc:
        return _fail(session, str(exc), code=_exit_code(exc.cause), exc=exc)
    except CheckpointError as exc:
        return _fail(session, str(exc), code=_exit_code(exc), exc=exc)
    except OSError as exc:
        return _fail(session, str(exc), code=EXIT_STORAGE, exc=exc)
    except Exception as exc:  # a bug still gets a one-line report, not a dump
        return _fail(session, f"unexpected {type(exc).__name__}: {exc} (run with -v for the "
                              "traceback and report it)", code=EXIT_STORAGE, exc=exc)


def _exit_code(exc: CheckpointError) -> int:
    return EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_STORAGE


def _fail(session: Session, message: str, hint: str | None = None, *, code: int,
          exc: BaseException | None = None) -> int:
    redact = session.redactor()
    if session.verbose and exc is not None:
        import traceback

        click.echo(redact("".join(traceback.format_exception(exc))).rstrip(), err=True)
    click.echo(redact(f"error: {message.rstrip()}"), err=True)
    if hint:
        click.echo(hint, err=True)
    return code


