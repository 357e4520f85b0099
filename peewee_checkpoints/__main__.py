"""``python -m peewee_checkpoints``: the same command line as ``peewee-checkpoints``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
