"""Where the export commands write: stdout, or a file that appears only when complete."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["export_output"]


@contextlib.contextmanager
def export_output(path: str | None) -> Iterator[IO[bytes]]:
    """``path`` opened for an export (``None`` or ``-``: stdout).

    A file is written as a temporary file in the same folder and renamed over ``path`` only
    when the block ends without an exception, so an interrupted or failed export never leaves
    a truncated file under the requested name (nor replaces an earlier complete one).
    mkstemp creates it mode 0600: exports hold private data.
    """
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                prefix=".export-", suffix=".jsonl.tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
