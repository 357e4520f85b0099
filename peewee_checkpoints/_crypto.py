"""Encryption at rest: AES-256-GCM over stored payloads, with named keys for rotation.

A :class:`Keyring` is built from ``encryption_keys=["<key id>:<base64 of 32 bytes>", ...]``:
the first key encrypts, every key decrypts, and each row records the id of the key its
payload is encrypted under (so rotating is: put the new key first, keep the old ones until
``peewee-checkpoints rekey`` has re-encrypted every row). Payloads are encrypted after
compression. Each encryption draws a fresh random 96-bit nonce; the stored form is::

    b"\\x01" (format) + nonce (12 bytes) + ciphertext + GCM tag (16 bytes)

and the caller binds the payload to where it lives (table, row id, codec) as associated data,
so a payload copied onto another row, or a codec changed under it, fails authentication like
any other tampering: a :class:`EncryptionError`, never garbage.

Key material never appears in messages, reprs or logs: errors name key ids only.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Sequence

from .errors import CheckpointError, ConfigError

__all__ = [
    "EncryptionError",
    "Keyring",
    "generate_key",
    "open_typed",
    "parse_keys",
    "seal",
    "seal_typed",
    "unseal",
]

_FORMAT = b"\x01"
_NONCE = 12
_TAG = 16
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class EncryptionError(CheckpointError):
    """A stored payload cannot be decrypted: its key is missing, or it was altered."""


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded (for ``"<key id>:<this>"``)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


class _Key:
    """One key; holds the AESGCM object and never shows the material."""

    __slots__ = ("aead", "id")

    def __init__(self, key_id: str, material: bytes) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - the extra is not installed
            raise ConfigError(
                "encryption_keys needs the cryptography package: "
                "pip install 'peewee-checkpoints[encryption]'"
            ) from None

        self.id = key_id
        self.aead = AESGCM(material)

    def __repr__(self) -> str:
        return f"<key {self.id}>"


class Keyring:
    """The keys a provider encrypts and decrypts with (build it with :func:`parse_keys`).

    The first key encrypts; every key decrypts. An empty keyring encrypts nothing and can
    only read plain rows.
    """

    def __init__(self, keys: Sequence[_Key] = ()) -> None:
        self._keys = list(keys)
        self._by_id = {k.id: k for k in self._keys}

    @property
    def primary_id(self) -> str:
        """The id of the key new payloads are encrypted under; ``""`` when there is none."""
        return self._keys[0].id if self._keys else ""

    @property
    def key_ids(self) -> list[str]:
        """Every key id, the encrypting one first."""
        return [k.id for k in self._keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r})"

    def encrypt(self, data: bytes, aad: bytes) -> tuple[str, bytes]:
        """``(key id, stored bytes)``; ``("", data)`` unchanged when there is no key."""
        if not self._keys:
            return "", data
        key = self._keys[0]
        nonce = os.urandom(_NONCE)
        return key.id, _FORMAT + nonce + key.aead.encrypt(nonce, data, aad)

    def decrypt(self, key_id: str, data: bytes | memoryview, aad: bytes, *,
                what: str = "a stored state") -> bytes | memoryview:
        """The plain bytes of a payload stored under ``key_id`` (``""``: not encrypted).

        Raises:
            EncryptionError: the key is not in this keyring (the message names its id), or
                the payload fails authentication (altered, truncated, moved to another row).
        """
        if not key_id:
            return data
        key = self._by_id.get(key_id)
        if key is None:
            known = ", ".join(self.key_ids) or "none"
            raise EncryptionError(
                f"{what} is encrypted with key {key_id!r}, which is not among the "
                f"encryption_keys given (key ids: {known}); add that key to read it"
            )
        from cryptography.exceptions import InvalidTag

        raw = bytes(data)
        if len(raw) < 1 + _NONCE + _TAG or raw[:1] != _FORMAT:
            raise EncryptionError(
                f"{what} (key {key_id!r}) is not an encrypted payload of a format this version "
                "knows: it was altered or truncated"
            )
        try:
            return key.aead.decrypt(raw[1:1 + _NONCE], raw[1 + _NONCE:], aad)
        except InvalidTag:
            raise EncryptionError(
                f"{what} failed authentication under key {key_id!r}: it was altered, "
                "truncated or moved from another row"
            ) from None


def parse_keys(value: str | Iterable[str] | Keyring | None, where: str = "encryption_keys"
               ) -> Keyring:
    """Build a :class:`Keyring` from ``["<key id>:<base64 of 32 bytes>", ...]``.

    A single string may hold several entries separated by commas or whitespace (handy for
    ``encryption_keys = "${CHECKPOINT_KEYS}"`` in TOML). None or an empty list: no encryption.

    Raises:
        ConfigError: a malformed entry, a key that is not 32 bytes, or a repeated key id. The
            message says which entry (by position and key id), never the key.
    """
    if value is None:
        return Keyring()
    if isinstance(value, Keyring):
        return value
    entries = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    keys: list[_Key] = []
    for position, entry in enumerate(entries):
        label = f"{where}[{position}]"
        if not isinstance(entry, str):
            raise ConfigError(f"{label} must be a string '<key id>:<base64 of 32 bytes>'")
        key_id, sep, encoded = entry.strip().partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise ConfigError(
                f"{label} is not '<key id>:<base64 of 32 bytes>' (a key id of letters, "
                "digits, '.', '_' or '-', at most 64, then a colon and the key)"
            )
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            material = b""
        if len(material) != 32:
            raise ConfigError(
                f"{label} (key id {key_id!r}): the key must be 32 bytes in base64 (44 "
                "characters); make one with `peewee-checkpoints keygen`"
            )
        if any(k.id == key_id for k in keys):
            raise ConfigError(f"{label}: key id {key_id!r} is given twice")
        keys.append(_Key(key_id, material))
    return Keyring(keys)


#: Where the keys come from when none are passed (the provider, the saver and the session
#: stores read it alike, so one setting encrypts everything in a database).
ENCRYPTION_KEYS_ENV = "PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS"


# The keys of the provider a command-line run chose from its config file (see
# set_configured_keys): what the adapters' stores fall back to before the environment.
_configured: str | Iterable[str] | Keyring | None = None


def set_configured_keys(value: str | Iterable[str] | Keyring | None
                        ) -> str | Iterable[str] | Keyring | None:
    """Make ``value`` the keys :func:`keys_or_env` falls back to in this process; returns the
    previous ones (to put back). The command line sets them from the chosen provider's
    ``encryption_keys``, so that its ``threads``, ``sessions`` and ``adk`` commands and the
    other kinds of ``copy``/``export`` read what that provider's application encrypted.
    """
    global _configured  # one command-line run per process at a time
    previous, _configured = _configured, value
    return previous


def keys_or_env(value: str | Iterable[str] | Keyring | None) -> Keyring:
    """:func:`parse_keys` of ``value``; when None, of the keys the command line configured,
    else of ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS`` (none of them: no encryption)."""
    if value is None:
        value = _configured
    if value is None:
        value = os.environ.get(ENCRYPTION_KEYS_ENV) or None
    return parse_keys(value)


def row_aad(table: str, row_id: str, codec: int) -> bytes:
    """The associated data binding a stored state to its table, row and codec."""
    return f"{table}\x00{row_id}\x00{codec}".encode()


#: How the type column of an encrypted LangGraph value starts: ``"aes:<key id>:<type>"``,
#: ``<type>`` being the serializer's own type name (as LangGraph's ``EncryptedSerializer``
#: records its cipher in the type). A type without it is a plain value.
TYPED_PREFIX = "aes:"
#: Longest type name the saver's type columns hold (migration 003).
MAX_TYPE = 64


def typed_aad(where: Sequence[str], type_: str) -> bytes:
    """The associated data of a typed value: where it lives (table and key columns, never
    the thread id, which a copy changes) and the serializer's type name."""
    return "\x00".join((*where, type_)).encode()


def seal_typed(keyring: Keyring, type_: str, data: bytes, where: Sequence[str]
               ) -> tuple[str, bytes]:
    """``(type column, stored bytes)`` of a serialized value; unchanged without keys."""
    if not keyring:
        return type_, data
    key_id, stored = keyring.encrypt(data, typed_aad(where, type_))
    return f"{TYPED_PREFIX}{key_id}:{type_}", stored


def open_typed(keyring: Keyring, type_: str, data: bytes | memoryview, where: Sequence[str],
               what: str) -> tuple[str, bytes | memoryview]:
    """``(serializer type, plain bytes)`` of a stored typed value (plain ones unchanged).

    Raises:
        EncryptionError: its key is missing (the message names it), or it was altered.
    """
    if not type_.startswith(TYPED_PREFIX):
        return type_, data
    key_id, sep, inner = type_[len(TYPED_PREFIX):].partition(":")
    if not sep or not key_id:
        raise EncryptionError(f"{what} has a malformed encrypted type: it was altered")
    return inner, keyring.decrypt(key_id, data, typed_aad(where, inner), what=what)


#: First byte of a sealed payload (:func:`seal`): never the first byte of UTF-8 JSON or of a
#: zstd frame, so a sealed payload and a plain one tell themselves apart in a column that
#: holds both, and no column needs adding for the key id.
SEALED = b"\xfe"


def seal(keyring: Keyring, data: bytes, aad: bytes) -> bytes:
    """A self-describing encrypted payload: ``0xFE``, the key id's length and the key id,
    then :meth:`Keyring.encrypt`'s bytes. ``data`` unchanged when there is no key."""
    if not keyring:
        return data
    key_id, stored = keyring.encrypt(data, aad)
    kid = key_id.encode("ascii")
    return SEALED + bytes((len(kid),)) + kid + stored


def sealed_key(data: bytes | memoryview | None) -> str:
    """The key id a payload is sealed under; ``""`` if it is plain."""
    head = bytes(data[:66]) if data is not None else b""
    if len(head) < 2 or head[:1] != SEALED:
        return ""
    return head[2:2 + head[1]].decode("ascii", "replace")


def unseal(keyring: Keyring, data: bytes | memoryview, aad: bytes, what: str
           ) -> bytes | memoryview:
    """The plain bytes of a payload :func:`seal` made (a plain payload unchanged).

    Raises:
        EncryptionError: its key is missing (the message names it), or it was altered.
    """
    # bytes(...) of a slice: a memoryview from psycopg2 indexes as bytes, not ints.
    if bytes(data[:1]) != SEALED:
        return data
    raw = bytes(data)
    size = raw[1] if len(raw) > 1 else 0
    key_id = raw[2:2 + size].decode("ascii", "replace")
    if not size or not _KEY_ID.fullmatch(key_id):
        raise EncryptionError(f"{what} has a malformed encryption header: it was altered")
    return keyring.decrypt(key_id, raw[2 + size:], aad, what=what)
