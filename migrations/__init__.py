"""peewee-migrate migration files, installed as ``peewee_checkpoints.migrations``.

Each ``NNN_name.py`` is frozen once released: add a new file, never edit a shipped one.
"""
