"""Keeping passwords out of what the package shows: messages, tracebacks, chained errors."""

from __future__ import annotations

import contextlib
from typing import TypeVar
from urllib.parse import unquote, urlparse

__all__ = ["Redactor", "chain", "url_redactor"]

_E = TypeVar("_E", bound=BaseException)


class Redactor:
    """Replaces a password by ``***`` in any text before it leaves the package."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{len(self._secrets)} secrets>)"

    def __or__(self, other: Redactor) -> Redactor:
        """A redactor hiding the secrets of both."""
        return Redactor(*self._secrets, *other._secrets)

    def exposed_in(self, exc: BaseException) -> bool:
        """True if a secret shows anywhere in ``exc`` or the exceptions chained to it.

        Looks at what a user, a log handler or a debugger prints: ``str``, ``repr``, ``args``
        and attributes of every exception reachable through ``__cause__``, ``__context__``
        and ``args``. Such an exception must not be chained to one the package raises.
        """
        if not self._secrets:
            return False
        seen: set[int] = set()
        todo: list[BaseException] = [exc]
        while todo:
            e = todo.pop()
            if id(e) in seen:
                continue
            seen.add(id(e))
            try:
                text = f"{e}\n{e!r}\n{e.args!r}\n{vars(e)!r}"
            except Exception:  # an exception whose repr fails: assume the worst
                return True
            if any(secret in text for secret in self._secrets):
                return True
            todo.extend(x for x in (e.__cause__, e.__context__, *e.args)
                        if isinstance(x, BaseException))
        return False


def url_redactor(url: str) -> Redactor:
    """A :class:`Redactor` for the password of ``url``, as written and percent-decoded.

    A URL without a password, or one too malformed to parse, gives a redactor that hides
    nothing.
    """
    password: str | None = None
    with contextlib.suppress(ValueError):
        password = urlparse(url).password
    return Redactor(password, unquote(password) if password else None)


def chain(error: _E, cause: BaseException, redact: Redactor) -> _E:
    """Set ``cause`` as ``error.__cause__`` unless it would expose a secret; return ``error``.

    Raise the result outside the ``except`` block that caught ``cause``: raised inside it,
    Python would attach ``cause`` as ``__context__`` anyway.
    """
    if not redact.exposed_in(cause):
        error.__cause__ = cause
    return error
