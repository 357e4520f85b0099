"""Constants shared by the provider, the config loader and the CLI, in a module that imports
nothing: the command line's ``--help`` reads them without loading Peewee and the drivers."""

from __future__ import annotations

#: The embedded default: a SQLite file in the working directory.
DEFAULT_DB_URL = "sqlite:///checkpoints.db"
