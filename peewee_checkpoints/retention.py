"""Retention: how long checkpoints are kept, applied on demand or by a background sweeper.

A policy comes from a provider's ``[checkpoints.providers.<name>.retention]`` table::

    [checkpoints.providers.main.retention]
    max_age = "30d"          # agent checkpoints older than this go ...
    keep_latest = true       # ... except each agent's newest one (the default)
    max_per_agent = 100      # and all but the newest 100 of each agent
    app_max_age = "90d"      # app checkpoints older than this go
    app_max_total = 1000     # and all but the newest 1000 app checkpoints
    thread_max_age = "30d"   # LangGraph threads whose newest checkpoint is older go, whole
    session_max_age = "30d"  # OpenAI Agents and Google ADK sessions idle this long go, whole
    cleanup_interval = "24h" # how often a sweeper applies it (the default)

or is built in code (``RetentionPolicy(max_age="30d", max_per_agent=100)``), and is applied by
``provider.apply_retention()``, by ``peewee-checkpoints prune --policy``, or every
``cleanup_interval`` by a :class:`RetentionSweeper` that a long-running process starts. Any
number of processes may run a sweeper on one database: each interval, one of them does the
work (it claims the interval with one short conditional UPDATE), the others skip it.

``thread_max_age`` covers the LangGraph threads of
:class:`~peewee_checkpoints.langgraph.PeeweeSaver` on the same database: a thread whose newest
checkpoint (in any namespace) was made longer ago is deleted whole, every checkpoint, blob and
pending write of it. A checkpoint's time is read from its id (LangGraph's ids are time-ordered
UUIDv6); a thread whose newest id is not one is never removed by age. Whole threads only:
pruning inside a thread could break a LangGraph ``DeltaChannel``, whose value is rebuilt from
older checkpoints.

``session_max_age`` covers the agent-framework sessions on the same database: an OpenAI Agents
session (``peewee_checkpoints.openai_agents``) not updated for that long goes with its items and
metadata; a Google ADK session (``peewee_checkpoints.adk``) with its events (the app and user
state that ADK shares between sessions stays).

Thread and session rules count in their report every row they delete (a thread's checkpoints,
blobs and writes; a session's row, items, metadata rows or events) and the bytes of the
payloads in them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .interface import CheckpointProvider

__all__ = [
    "RULES",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionSweeper",
    "RuleResult",
    "parse_duration",
]

log = logging.getLogger("peewee_checkpoints.retention")

#: The rules a report covers, in the order they are applied.
RULES = ("max_age", "max_per_agent", "app_max_age", "app_max_total", "thread_max_age",
         "session_max_age")
#: How often a sweeper applies the policy when ``cleanup_interval`` is not set: 24 hours.
DEFAULT_CLEANUP_INTERVAL_MS = 24 * 3600 * 1000

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d|w)\s*")
_KEYS = ("max_age", "max_per_agent", "keep_latest", "app_max_age", "app_max_total",
         "thread_max_age", "session_max_age", "cleanup_interval")


def parse_duration(value: object, where: str = "duration") -> int:
    """Milliseconds in ``"30d"``, ``"12h"``, ``"15m"``, ``"90s"``, ``"500ms"``, ``"2w"``
    (or several, ``"1d12h"``); an int is taken as seconds.

    Raises:
        ConfigError: anything else, or a duration of zero.
    """
    if type(value) is int:
        total = value * 1000
    elif isinstance(value, str):
        total, pos = 0, 0
        for match in _DURATION.finditer(value):
            if match.start() != pos:
                break
            total += int(match[1]) * _UNITS[match[2]]
            pos = match.end()
        if pos != len(value) or not value.strip():
            raise ConfigError(
                f"{where}: {value!r} is not a duration; write a number and a unit, "
                'such as "30d", "12h", "15m", "90s" (or several: "1d12h")'
            )
    else:
        raise ConfigError(
            f'{where} must be a duration such as "30d" or "12h", not {type(value).__name__}')
    if total <= 0:
        raise ConfigError(f"{where} must be longer than zero")
    return total


def _count(value: object, where: str) -> int:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{where} must be a whole number of checkpoints, at least 1")
    return value


@dataclass(frozen=True)
class RetentionPolicy:
    """What retention keeps. Every rule is optional; durations are in milliseconds.

    Build one from config values with :meth:`from_mapping` (durations as ``"30d"``), or
    directly (``RetentionPolicy(max_age_ms=30 * 86_400_000)``).
    """

    max_age_ms: int | None = None
    """Agent checkpoints created longer ago than this are deleted."""
    max_per_agent: int | None = None
    """All but the newest this many checkpoints of each agent are deleted."""
    keep_latest: bool = True
    """Never delete an agent's newest checkpoint, however old (max_age spares it)."""
    app_max_age_ms: int | None = None
    """App checkpoints created longer ago than this are deleted."""
    app_max_total: int | None = None
    """All but the newest this many app checkpoints are deleted."""
    thread_max_age_ms: int | None = None
    """LangGraph threads whose newest checkpoint is older than this are deleted whole."""
    session_max_age_ms: int | None = None
    """OpenAI Agents and Google ADK sessions not updated for this long are deleted whole."""
    cleanup_interval_ms: int = DEFAULT_CLEANUP_INTERVAL_MS
    """How often a :class:`RetentionSweeper` applies the policy."""

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "retention"
                     ) -> RetentionPolicy:
        """Parse a ``[...retention]`` table.

        Raises:
            ConfigError: an unknown key, a malformed duration or count (the message names
                the key and ``where``).
        """
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table of retention rules")
        unknown = [k for k in table if k not in _KEYS]
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
                f"{', '.join(_KEYS)}"
            )
        keep_latest = table.get("keep_latest", True)
        if type(keep_latest) is not bool:
            raise ConfigError(f"{where}.keep_latest must be true or false")

        def duration(key: str) -> int | None:
            value = table.get(key)
            return None if value is None else parse_duration(value, f"{where}.{key}")

        def count(key: str) -> int | None:
            value = table.get(key)
            return None if value is None else _count(value, f"{where}.{key}")

        return cls(
            max_age_ms=duration("max_age"),
            max_per_agent=count("max_per_agent"),
            keep_latest=keep_latest,
            app_max_age_ms=duration("app_max_age"),
            app_max_total=count("app_max_total"),
            thread_max_age_ms=duration("thread_max_age"),
            session_max_age_ms=duration("session_max_age"),
            cleanup_interval_ms=duration("cleanup_interval") or DEFAULT_CLEANUP_INTERVAL_MS,
        )

    @property
    def is_empty(self) -> bool:
        """True if no rule is set: applying it deletes nothing."""
        return (self.max_age_ms is None and self.max_per_agent is None
                and self.app_max_age_ms is None and self.app_max_total is None
                and self.thread_max_age_ms is None and self.session_max_age_ms is None)


@dataclass
class RuleResult:
    """What one rule removed (or, in a dry run, would remove)."""

    rows: int = 0
    """Rows: checkpoints; for the thread and session rules every row of what they removed."""
    bytes: int = 0
    """Bytes of stored state (as stored: compressed, and encrypted where it is)."""


@dataclass
class RetentionReport:
    """What :meth:`CheckpointProvider.apply_retention` did, rule by rule.

    A checkpoint that several rules would remove is counted once, under the first rule in
    :data:`RULES` order that removes it.
    """

    dry_run: bool = False
    """True if nothing was deleted: the figures say what would be."""
    rules: dict[str, RuleResult] = field(default_factory=lambda: {r: RuleResult() for r in RULES})
    """Per rule name (see :data:`RULES`)."""

    @property
    def rows(self) -> int:
        """Checkpoints removed by every rule together."""
        return sum(r.rows for r in self.rules.values())

    @property
    def bytes(self) -> int:
        """Bytes of stored state removed by every rule together."""
        return sum(r.bytes for r in self.rules.values())

    def add(self, rule: str, rows: int, size: int) -> None:
        """Count ``rows`` removed (``size`` bytes) under ``rule``."""
        result = self.rules[rule]
        result.rows += rows
        result.bytes += size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: ``{"dry_run", "rows", "bytes", "rules": {name: {rows, bytes}}}``."""
        return {
            "dry_run": self.dry_run,
            "rows": self.rows,
            "bytes": self.bytes,
            "rules": {name: {"rows": r.rows, "bytes": r.bytes} for name, r in self.rules.items()},
        }


def require_policy(provider: CheckpointProvider, policy: RetentionPolicy | None
                   ) -> RetentionPolicy:
    """``policy``, else the provider's configured one; ConfigError if there is neither."""
    chosen = policy if policy is not None else provider.retention_policy
    if chosen is None:
        raise ConfigError(
            "no retention policy to apply: set [checkpoints.providers.<name>.retention] "
            "in the config, or pass policy=RetentionPolicy(...)"
        )
    if not isinstance(chosen, RetentionPolicy):
        raise ConfigError(f"policy must be a RetentionPolicy, not {type(chosen).__name__}")
    return chosen


class RetentionSweeper:
    """Applies a provider's retention policy every ``cleanup_interval``, in a daemon thread.

    Start it in a long-running process (``sweeper = RetentionSweeper(provider).start()``) and
    :meth:`stop` it on shutdown (or use it as a context manager). Safe when many processes
    run one on the same database: before each run the sweeper claims the interval from the
    provider (:meth:`CheckpointProvider.claim_retention_run`; the Peewee provider does it with
    one conditional UPDATE of a lease row, holding no lock), so each interval the policy is
    applied once, by whichever process claims it first.

    Args:
        provider: whose ``retention_policy`` (or ``policy``) to apply.
        policy: the policy; default ``provider.retention_policy``.
        poll: seconds between attempts to claim a run; default a tenth of the interval,
            between 1 second and 5 minutes.
    """

    def __init__(self, provider: CheckpointProvider, policy: RetentionPolicy | None = None,
                 *, poll: float | None = None) -> None:
        chosen = require_policy(provider, policy)
        self.provider = provider
        self.policy = chosen
        interval = chosen.cleanup_interval_ms / 1000
        self.poll = poll if poll is not None else min(max(interval / 10, 1.0), 300.0)
        self.runs = 0
        """Runs this sweeper made (claimed intervals)."""
        self.last_report: RetentionReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> RetentionReport | None:
        """Claim the current interval and apply the policy; None if another process has it."""
        if not self.provider.claim_retention_run(self.policy.cleanup_interval_ms):
            return None
        report = self.provider.apply_retention(policy=self.policy)
        self.runs += 1
        self.last_report = report
        log.info("retention removed %d checkpoints (%d bytes)", report.rows, report.bytes)
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep sweeping: the next interval may find the server back
                log.warning("retention sweep failed; trying again in %.0f s", self.poll,
                            exc_info=True)
            self._stop.wait(self.poll)

    def start(self) -> RetentionSweeper:
        """Start the background thread (a daemon: it never keeps the process alive)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="peewee-checkpoints-sweeper",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread, waiting for a run in progress to finish (up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> RetentionSweeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
