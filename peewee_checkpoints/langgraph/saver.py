"""``PeeweeSaver``: a LangGraph checkpointer on SQLite, PostgreSQL or MySQL/MariaDB."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from .._codec import CODEC_LZ4, CODEC_ZSTD, compress_json, decompress
from .._crypto import MAX_TYPE, Keyring, keys_or_env, open_typed, seal_typed
from .._engine import Engine
from .._migrations import LOCK_TIMEOUT
from .._validation import text_problem
from ..errors import ConfigError, InvalidCheckpointError
from ._sql import BLOBS, CHECKPOINTS, CHUNK, WRITES, SaverSQL

__all__ = ["PeeweeSaver"]

_T = TypeVar("_T")

# Column sizes of migration 003 (the MySQL index limit decides them); the same limits apply on
# every backend so that a graph that runs on SQLite also runs on MySQL.
_MAX_THREAD_ID = 255
# A namespace of any depth LangGraph makes: the column holds a key form of at most 255
# characters (see _ns_key and migration 008), the checkpoint row the whole namespace.
_MAX_NS = 1 << 16
_NS_RAW_MAX = 190
_MAX_CHECKPOINT_ID = 64
_MAX_CHANNEL = 191
_MAX_TASK_ID = 128
_MAX_RUN_ID = 255

# Metadata keys that LangGraph's DeltaChannel leaves on a thread's checkpoints (see prune).
_DELTA_MARKERS = ("counters_since_delta_snapshot", "delta_writes_versioned")

_Row = tuple[Any, ...]
# Module-level aliases: inside the class, "list" names the saver's method.
_Tuples = list[CheckpointTuple]
_Params = list[Any]
_WriteRow = tuple[str, str, int, str, str, Any]
_Blobs = dict[tuple[str, str, str, str], tuple[str, Any]]
_WriteRows = list[_WriteRow]
_Writes = dict[tuple[str, str, str], _WriteRows]
_Doomed = list[tuple[str, dict[str, Any]]]
_Rows = list[_Row]
_PICKLE = "pickle"
# How the type of an encrypted value says it was compressed first ("aes:k1:zstd+msgpack").
_PACKED = {CODEC_ZSTD: "zstd+", CODEC_LZ4: "lz4+"}
# Room left in the 64-character type column for "aes:<key id>:" (longest serializer type
# LangGraph's JsonPlusSerializer writes: "bytearray", 9).
_MAX_SAVER_KEY_ID = 40
#: Longest string kept inline in the checkpoint row instead of a blob of its own.
_INLINE_STR_MAX = 256


def _check_key(field: str, value: object, max_length: int) -> str:
    problem = text_problem(value, max_length)
    if problem is not None:
        raise InvalidCheckpointError(f"{field} {problem}")
    return value  # type: ignore[return-value]  # text_problem checked it is a str


def _is_key(value: object, max_length: int) -> bool:
    # The common case (short ASCII text) without text_problem's encode; reads call this often.
    if type(value) is str and len(value) <= max_length and value.isascii():
        return "\x00" not in value
    return text_problem(value, max_length) is None


def _ns_key(ns: str) -> str:
    """The form of ``ns`` stored in the ``checkpoint_ns`` key columns (migration 008).

    Up to 190 characters the namespace itself; a longer one its first 190 characters, ``#``
    and its SHA-256 (255 characters, which no namespace stored as is reaches).
    """
    if len(ns) <= _NS_RAW_MAX:
        return ns
    digest = hashlib.sha256(ns.encode("utf-8")).hexdigest()
    return f"{ns[:_NS_RAW_MAX]}#{digest}"


def _metadata_values(metadata: dict[str, Any], key: str) -> list[Any]:
    """The values a filter key names in ``metadata``: the key itself, and for a dotted key
    (``"user.access-level"``) the nested value along that path, as ``SqliteSaver`` reads it.
    A key that names nothing gives ``[None]``."""
    found = []
    if key in metadata:
        found.append(metadata[key])
    if "." in key:
        current: Any = metadata
        for part in key.split("."):
            if not isinstance(current, dict) or part not in current:
                break
            current = current[part]
        else:
            found.append(current)
    return found or [None]


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _inlinable(value: Any) -> bool:
    """True for values stored inside the checkpoint row rather than as a blob."""
    if value is None or isinstance(value, (bool, float)):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64  # what msgpack holds natively
    return isinstance(value, str) and len(value) <= _INLINE_STR_MAX


def _blob_pairs(checkpoint: dict[str, Any]) -> list[tuple[str, str]]:
    """(channel, version) of the blobs a stored checkpoint refers to (not its inline values)."""
    inline = checkpoint.get("channel_values") or {}
    return [
        (channel, str(version))
        for channel, version in checkpoint.get("channel_versions", {}).items()
        if channel not in inline
    ]


def _contains(actual: Any, expected: Any) -> bool:
    """Metadata filter match: equal values, or for dicts every expected key contained."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def _refuse_pickle(serde: object) -> None:
    """Raise ConfigError if ``serde`` (or a serializer it wraps) may unpickle stored bytes."""
    seen: set[int] = set()
    current: object = serde
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "pickle_fallback", False):
            raise ConfigError(
                "PeeweeSaver refuses a serializer with pickle_fallback=True: unpickling bytes "
                "read from the database runs code chosen by whoever can write to it. Pass "
                "JsonPlusSerializer() (the default) or a serializer without pickle"
            )
        current = getattr(current, "serde", None)


class PeeweeSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer that stores threads in this package's database tables.

    One class for SQLite, PostgreSQL and MySQL/MariaDB, chosen by ``db_url`` as for
    :class:`~peewee_checkpoints.PeeweeCheckpointProvider`. Its tables come from the package's
    migrations, applied on first use under a database-wide lock, so any number of workers may
    start at once and no ``setup()`` call is needed.

    Storage follows LangGraph's PostgreSQL saver: a checkpoint row without its channel values,
    one blob per ``(channel, version)`` (a value that did not change between checkpoints is
    stored once), and the pending writes of each checkpoint. Every value goes through ``serde``
    and is stored as its type name plus bytes.

    Args:
        db_url: ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` or
            ``mysql://user:pass@host:port/db`` (each also ``+pool``).
        serde: the serializer; LangGraph's ``JsonPlusSerializer`` (msgpack, no pickle) by
            default. A serializer with ``pickle_fallback=True``, or wrapping one, is refused.
        encryption_keys: ``["<key id>:<base64 of 32 bytes>", ...]`` to encrypt every stored
            value (checkpoints, their metadata, channel blobs and pending writes) with
            AES-256-GCM: the first key encrypts, all decrypt (see
            :class:`~peewee_checkpoints.PeeweeCheckpointProvider`). The type column records
            the key id (``"aes:<key id>:msgpack"``); unencrypted rows stay readable, and
            ``peewee-checkpoints rekey`` moves every row to the first key. A value under a
            key not given raises :class:`~peewee_checkpoints.EncryptionError` naming the key
            id; an altered one raises it too. Key ids here are at most 40 characters.
            Default: ``$PEEWEE_CHECKPOINTS_ENCRYPTION_KEYS``, else no encryption.

    Raises:
        ConfigError: ``db_url`` is malformed or unsupported, ``serde`` would unpickle, or an
            encryption key is malformed (the message never shows a key).

    The async methods run the sync ones in a worker thread (each thread keeps its own
    connection). Database errors are raised as :class:`~peewee_checkpoints.StorageError`;
    ids and names longer than the columns hold as
    :class:`~peewee_checkpoints.InvalidCheckpointError`.
    """

    def __init__(self, db_url: str, *, serde: SerializerProtocol | None = None,
                 migration_lock_timeout: float = LOCK_TIMEOUT,
                 encryption_keys: str | Sequence[str] | Keyring | None = None) -> None:
        _refuse_pickle(serde)
        keyring = keys_or_env(encryption_keys)
        if len(keyring.primary_id) > _MAX_SAVER_KEY_ID:
            raise ConfigError(
                f"encryption_keys: the first key's id {keyring.primary_id!r} is longer than "
                f"{_MAX_SAVER_KEY_ID} characters; the saver records it in a 64-character "
                "type column, so give it a shorter id")
        self._keyring = keyring
        super().__init__(serde=serde)
        engine = self._engine = Engine(db_url, migration_lock_timeout=migration_lock_timeout)
        self._db = engine.database
        self._sql = SaverSQL(engine.profile, engine.param)
        self._binary_is_bytes = engine.profile.binary_is_bytes

    # -- plumbing -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ``db_url`` with its password replaced by ``***``."""
        return self._engine.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> PeeweeSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this saver opened (later calls reconnect)."""
        self._engine.close()

    async def __aenter__(self) -> PeeweeSaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    @classmethod
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        migration_lock_timeout: float = LOCK_TIMEOUT,
        encryption_keys: str | Sequence[str] | Keyring | None = None,
    ) -> PeeweeSaver:
        """A saver on ``conn_string`` (a ``db_url``), used as LangGraph's own savers are.

        ``with PeeweeSaver.from_conn_string(url) as saver:`` or ``async with ...``: leaving
        the block closes every connection the saver opened.
        """
        return cls(conn_string, serde=serde, migration_lock_timeout=migration_lock_timeout,
                   encryption_keys=encryption_keys)

    def setup(self) -> None:
        """Apply pending migrations now; optional, the first call does it anyway."""
        self._engine.migrate()

    async def asetup(self) -> None:
        """Async :meth:`setup`."""
        await asyncio.to_thread(self.setup)

    def _run(self, action: str, fn: Callable[[], _T]) -> _T:
        # Every statement the saver runs is idempotent (upserts, deletes, copies that keep
        # existing rows), so a dropped connection or a deadlock runs the call again.
        self._engine.ensure_ready()
        return self._engine.run(action, fn)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute_sql(sql, params)

    def _transaction(self, *, writes_after_reads: bool = False) -> AbstractContextManager[Any]:
        return self._engine.transaction(write=writes_after_reads)

    def _bytes(self, value: Any) -> bytes:
        return value if self._binary_is_bytes or value is None else bytes(value)

    def _load(self, type_: str, data: Any) -> Any:
        if type_ == _PICKLE:
            # Whatever the serializer: bytes from the database are never unpickled.
            raise InvalidCheckpointError(
                f"refusing to unpickle a stored value on {self.url}: PeeweeSaver never "
                "deserializes pickle (whoever can write to the database would choose the code "
                "it runs)"
            )
        return self.serde.loads_typed((type_, self._bytes(data)))

    def _dump(self, value: Any, *where: str) -> tuple[str, bytes]:
        """``(type, bytes)`` to store for ``value`` at ``where`` (table and key columns but
        the thread: a copied thread's rows must stay readable), encrypted if there are keys.
        """
        type_, data = self.serde.dumps_typed(value)
        if type_ == _PICKLE:
            raise InvalidCheckpointError(
                f"the serializer pickled a {type(value).__name__}; PeeweeSaver stores no pickle. "
                "Make the value serializable by LangGraph's JsonPlusSerializer (msgpack)"
            )
        if self._keyring:
            # Compressed before it is encrypted: ciphertext does not compress, so the
            # database's own compression (PostgreSQL's TOAST) no longer would.
            codec, data = compress_json(data)
            if codec:
                type_ = f"{_PACKED[codec]}{type_}"
            type_, data = seal_typed(self._keyring, type_, data, where)
            if len(type_) > MAX_TYPE:
                raise InvalidCheckpointError(
                    f"the serializer's type name for a {type(value).__name__} is too long to "
                    "record with the encryption key id; use a shorter key id")
        return type_, data

    def _open(self, type_: str, data: Any, *where: str) -> tuple[str, Any]:
        """The serializer's ``(type, bytes)`` of a stored value (decrypted if it is)."""
        if type_[:4] != "aes:":  # the common, unencrypted case without a call
            return type_, data
        inner, plain = open_typed(self._keyring, type_, self._bytes(data), where,
                                  f"a LangGraph value in {where[0]}")
        for codec, prefix in _PACKED.items():
            if inner.startswith(prefix):
                return inner[len(prefix):], decompress(codec, plain)
        return inner, plain

    def _load_checkpoint(self, row: _Row) -> Any:
        """The checkpoint of a row in CHECKPOINT_COLUMNS order."""
        return self._load(*self._open(row[4], row[5], CHECKPOINTS, "checkpoint", row[1], row[2]))

    def _load_metadata(self, row: _Row) -> Any:
        """The metadata of a row in CHECKPOINT_COLUMNS order."""
        return self._load(*self._open(row[6], row[7], CHECKPOINTS, "metadata", row[1], row[2]))

    # -- the saver interface --------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint``; only channels in ``new_versions`` get a new blob."""
        conf = config.get("configurable") or {}
        if "thread_id" not in conf:
            raise InvalidCheckpointError("put needs config['configurable']['thread_id']")
        thread_id = _check_key("thread_id", str(conf["thread_id"]), _MAX_THREAD_ID)
        ns = _check_key("checkpoint_ns", conf.get("checkpoint_ns", ""), _MAX_NS)
        ns_key = _ns_key(ns)
        checkpoint_id = _check_key("checkpoint id", checkpoint["id"], _MAX_CHECKPOINT_ID)
        parent_id = conf.get("checkpoint_id")
        if parent_id is not None:
            _check_key("parent checkpoint_id", parent_id, _MAX_CHECKPOINT_ID)

        stored: dict[str, Any] = dict(checkpoint)
        values = stored.pop("channel_values", None) or {}
        # Small scalars ride inside the checkpoint row (as LangGraph's PostgreSQL saver does):
        # repeating a few bytes is cheaper than a blob row and its lookup. Everything else is
        # one blob per (channel, version), written only when the version is new. A channel
        # that changed to empty gets no blob: a missing blob loads as an absent channel.
        inline = {k: v for k, v in values.items() if _inlinable(v)}
        stored["channel_values"] = inline
        blob_params: _Params = []
        for channel, version in new_versions.items():
            _check_key("channel", channel, _MAX_CHANNEL)
            version_key = _check_key("channel version", str(version), _MAX_CHECKPOINT_ID)
            if channel in values and channel not in inline:
                type_, data = self._dump(values[channel], BLOBS, ns_key, channel, version_key)
                blob_params += (thread_id, ns_key, channel, version_key, type_, data)
        md = get_serializable_checkpoint_metadata(config, metadata)
        run_id = md.get("run_id")
        run_key = str(run_id) if run_id is not None else None
        if run_key is not None:
            _check_key("metadata run_id", run_key, _MAX_RUN_ID)
        ck_type, ck_data = self._dump(stored, CHECKPOINTS, "checkpoint", ns_key, checkpoint_id)
        md_type, md_data = self._dump(md, CHECKPOINTS, "metadata", ns_key, checkpoint_id)
        refs = orjson.dumps(dict(_blob_pairs(stored))).decode()
        params = (
            thread_id, ns_key, checkpoint_id, parent_id, run_key,
            ck_type, ck_data, md_type, md_data, refs, ns if ns_key != ns else None,
        )

        chunks = list(_chunks(blob_params, CHUNK * 6))

        def run() -> None:
            if not chunks:
                self._execute(self._sql.put_checkpoint, params)
            elif len(chunks) == 1 and self._engine.profile.writable_cte:
                # One statement: one round trip instead of four (BEGIN, two inserts, COMMIT).
                sql = self._sql.put_with_blobs(len(blob_params) // 6)
                self._execute(sql, [*blob_params, *params])
            else:
                with self._transaction():
                    for chunk in chunks:
                        self._execute(self._sql.insert_blobs(len(chunk) // 6), chunk)
                    self._execute(self._sql.put_checkpoint, params)

        self._run("store a LangGraph checkpoint", run)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
            }
        }

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for the checkpoint ``config`` names.

        A second call with the same task and index keeps the first write, except for the
        special channels of ``WRITES_IDX_MAP`` (errors, interrupts, ...), which replace it.
        """
        conf = config["configurable"]
        thread_id = _check_key("thread_id", str(conf["thread_id"]), _MAX_THREAD_ID)
        ns = _ns_key(_check_key("checkpoint_ns", conf.get("checkpoint_ns", ""), _MAX_NS))
        checkpoint_id = _check_key("checkpoint_id", conf["checkpoint_id"], _MAX_CHECKPOINT_ID)
        task_id = _check_key("task_id", task_id, _MAX_TASK_ID)
        task_path = _check_key("task_path", task_path, 1 << 16)
        if not writes:
            return
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        params: _Params = []
        for idx, (channel, value) in enumerate(writes):
            _check_key("channel", channel, _MAX_CHANNEL)
            position = WRITES_IDX_MAP.get(channel, idx)
            type_, data = self._dump(value, WRITES, ns, checkpoint_id, task_id, str(position),
                                     channel)
            params += (
                thread_id, ns, checkpoint_id, task_id, task_path, position, channel, type_, data,
            )

        def run() -> None:
            chunks = list(_chunks(params, CHUNK * 9))
            with self._transaction() if len(chunks) > 1 else nullcontext():
                for chunk in chunks:
                    self._execute(self._sql.insert_writes(len(chunk) // 9, replace), chunk)

        self._run("store LangGraph writes", run)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest in its namespace; else None."""
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        checkpoint_id = conf.get("checkpoint_id")
        if not (_is_key(thread_id, _MAX_THREAD_ID) and _is_key(ns, _MAX_NS)):
            return None
        if checkpoint_id is not None and not _is_key(checkpoint_id, _MAX_CHECKPOINT_ID):
            return None

        ns_key = _ns_key(ns)
        get_one = self._sql.get_one.get(checkpoint_id is None)
        if get_one is not None:
            key = (thread_id, ns_key, thread_id, ns_key) if checkpoint_id is None else (
                thread_id, ns_key, checkpoint_id
            )
            return self._run(
                "read a LangGraph checkpoint",
                lambda: self._one(thread_id, ns, self._execute(get_one, key * 3).fetchall()),
            )

        def run() -> _Tuples:
            if checkpoint_id is None:
                row = self._execute(self._sql.get_latest, (thread_id, ns_key)).fetchone()
            else:
                row = self._execute(
                    self._sql.get_checkpoint, (thread_id, ns_key, checkpoint_id)
                ).fetchone()
            return self._assemble([row]) if row is not None else []

        found = self._run("read a LangGraph checkpoint", run)
        return found[0] if found else None

    def _one(self, thread_id: str, ns: str, rows: Sequence[_Row]) -> CheckpointTuple | None:
        """The tuple from the rows of SaverSQL.get_one, or None if there is no checkpoint."""
        found = None
        ns_key = _ns_key(ns)
        channel_blobs: dict[str, tuple[str, Any]] = {}
        pending: _WriteRows = []
        for kind, a, b, c, d, e, f, g in rows:
            if kind == 2:
                # In CHECKPOINT_COLUMNS order: the key form, then the whole namespace.
                found = (thread_id, ns_key, a, b, c, d, e, f, ns)
            elif kind == 0:
                channel_blobs[a] = self._open(c, d, BLOBS, ns_key, a, b)
            else:
                pending.append((b, a, int(g), e, c, d))
        if found is None:
            return None
        return self._tuple(found, self._load_checkpoint(found), channel_blobs, pending)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (by checkpoint id), with their values and pending writes.

        ``config`` narrows to a thread, and to a namespace if it has ``checkpoint_ns``;
        ``filter`` keeps checkpoints whose metadata contains these key/value pairs; ``before``
        keeps ids older than its ``checkpoint_id``; ``limit`` caps the count.
        """
        return iter(self._list(config, filter=filter, before=before, limit=limit))

    def _list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> _Tuples:
        conf = (config or {}).get("configurable") or {}
        params: _Params = []
        shape = []
        for key, max_length in (
            ("thread_id", _MAX_THREAD_ID),
            ("checkpoint_ns", _MAX_NS),
            ("checkpoint_id", _MAX_CHECKPOINT_ID),
        ):
            value = conf.get(key)
            present = value is not None
            if present:
                value = str(value) if key == "thread_id" else value
                if not _is_key(value, max_length):
                    return []
                params.append(_ns_key(str(value)) if key == "checkpoint_ns" else value)
            shape.append(present)
        before_id = (before or {}).get("configurable", {}).get("checkpoint_id")
        if before_id is not None:
            params.append(str(before_id))
        if limit is not None and limit <= 0:
            return []
        # Metadata is filtered in Python (it is stored through serde, not as SQL JSON), so a
        # filtered listing stops at `limit` matches instead of cutting the rows in SQL.
        limited = limit is not None and not filter
        if limited:
            params.append(limit)
        sql = self._sql.list(shape[0], shape[1], shape[2], before_id is not None, limited)

        def run() -> _Tuples:
            cursor = self._execute(sql, params)
            rows: _Rows = []
            if not filter:
                rows = cursor.fetchall()
            else:
                for row in cursor:
                    md = self._load_metadata(row)
                    if all(
                        any(_contains(found, v) for found in _metadata_values(md, k))
                        for k, v in filter.items()
                    ):
                        rows.append(row)
                        if limit is not None and len(rows) >= limit:
                            break
                cursor.close()
            return self._assemble(rows)

        return self._run("list LangGraph checkpoints", run)

    def _assemble(self, rows: Sequence[_Row]) -> _Tuples:
        """Build checkpoint tuples from checkpoint rows: one more query per namespace."""
        if len(rows) == 1:
            return [self._assemble_one(rows[0])]
        decoded = [(row, self._load_checkpoint(row)) for row in rows]
        groups: dict[tuple[str, str], list[tuple[_Row, dict[str, Any]]]] = {}
        for row, checkpoint in decoded:
            groups.setdefault((row[0], row[1]), []).append((row, checkpoint))
        blobs: _Blobs = {}
        writes: _Writes = {}
        for (thread_id, ns), members in groups.items():
            pairs = sorted(
                {pair for _, checkpoint in members for pair in _blob_pairs(checkpoint)}
            )
            ids = [row[2] for row, _ in members]
            self._fetch_values(thread_id, ns, pairs, ids, blobs=blobs, writes=writes)
        result = []
        for row, checkpoint in decoded:
            thread_id, ns, checkpoint_id = row[0], row[1], row[2]
            channel_blobs = {}
            for channel, version in _blob_pairs(checkpoint):
                blob = blobs.get((thread_id, ns, channel, version))
                if blob is not None:
                    channel_blobs[channel] = blob
            pending = writes.get((thread_id, ns, checkpoint_id), [])
            result.append(self._tuple(row, checkpoint, channel_blobs, pending))
        return result

    def _assemble_one(self, row: _Row) -> CheckpointTuple:
        """The tuple of one checkpoint row (get_tuple's hot path: one more query)."""
        checkpoint = self._load_checkpoint(row)
        pairs = _blob_pairs(checkpoint)
        if len(pairs) > CHUNK:
            blobs: _Blobs = {}
            writes: _Writes = {}
            self._fetch_values(row[0], row[1], pairs, [row[2]], blobs=blobs, writes=writes)
            channel_blobs = {key[2]: blob for key, blob in blobs.items()}
            return self._tuple(row, checkpoint, channel_blobs, writes.get(row[:3], []))
        params: _Params = []
        if pairs:
            params += row[:2]
            for pair in pairs:
                params += pair
        params += row[:3]
        channel_blobs = {}
        pending: _WriteRows = []
        for kind, ref, task_id, task_path, idx, channel, type_, data in self._execute(
            self._sql.values(len(pairs), 1), params
        ).fetchall():
            if kind == 0:
                # Each channel has one version, so each blob row is a different channel.
                channel_blobs[channel] = self._open(type_, data, BLOBS, row[1], channel, ref)
            else:
                pending.append((task_path, task_id, int(idx), channel, type_, data))
        return self._tuple(row, checkpoint, channel_blobs, pending)

    def _tuple(
        self,
        row: _Row,
        checkpoint: dict[str, Any],
        channel_blobs: dict[str, tuple[str, Any]],
        pending: _WriteRows,
    ) -> CheckpointTuple:
        thread_id, checkpoint_id, parent_id = row[0], row[2], row[3]
        # The whole namespace, where the key column holds its hashed form (migration 008).
        ns = row[8] if len(row) > 8 and row[8] is not None else row[1]
        values = checkpoint.get("channel_values") or {}
        for channel, (type_, data) in channel_blobs.items():
            if type_ != "empty":
                values[channel] = self._load(type_, data)
        checkpoint["channel_values"] = values
        # LangGraph wants pending writes in writes_sort_key order: (task_path, task_id, idx).
        pending.sort(key=lambda w: w[:3])
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint=checkpoint,  # type: ignore[arg-type]
            metadata=self._load_metadata(row),
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            pending_writes=[
                (task_id, channel, self._load(*self._open(
                    type_, data, WRITES, row[1], checkpoint_id, task_id, str(idx), channel)))
                for _path, task_id, idx, channel, type_, data in pending
            ],
        )

    def _fetch_values(
        self,
        thread_id: str,
        ns: str,
        pairs: Sequence[tuple[str, str]],
        ids: Sequence[str],
        *,
        blobs: _Blobs,
        writes: _Writes,
    ) -> None:
        key = (thread_id, ns)
        pair_chunks = list(_chunks(pairs))
        id_chunks = list(_chunks(ids))
        for n in range(max(len(pair_chunks), len(id_chunks))):
            some_pairs = pair_chunks[n] if n < len(pair_chunks) else ()
            some_ids = id_chunks[n] if n < len(id_chunks) else ()
            params: _Params = []
            if some_pairs:
                params += key
                for pair in some_pairs:
                    params += pair
            if some_ids:
                params += key
                params += some_ids
            sql = self._sql.values(len(some_pairs), len(some_ids))
            for kind, ref, task_id, task_path, idx, channel, type_, data in self._execute(
                sql, params
            ).fetchall():
                if kind == 0:
                    blobs[(thread_id, ns, channel, ref)] = self._open(
                        type_, data, BLOBS, ns, channel, ref)
                else:
                    # Sorted by LangGraph's writes_sort_key: (task_path, task_id, idx).
                    writes.setdefault((thread_id, ns, ref), []).append(
                        (task_path, task_id, int(idx), channel, type_, data)
                    )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of ``thread_id``, in all namespaces."""
        thread_id = str(thread_id)
        if not _is_key(thread_id, _MAX_THREAD_ID):
            return

        def run() -> None:
            with self._transaction():
                for sql in self._sql.delete_thread:
                    self._execute(sql, (thread_id,))

        self._run("delete a LangGraph thread", run)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is one of ``run_ids``.

        Their pending writes go with them, and blobs no remaining checkpoint refers to. A
        checkpoint whose parent is deleted is left with no parent.
        """
        ids = sorted({str(r) for r in run_ids if _is_key(str(r), _MAX_RUN_ID)})
        if not ids:
            return

        def run() -> None:
            with self._transaction(writes_after_reads=True):
                doomed: dict[tuple[str, str], _Doomed] = {}
                for chunk in _chunks(ids):
                    sql = self._sql.in_list(self._sql.checkpoints_of_runs, len(chunk))
                    for row in self._execute(sql, chunk).fetchall():
                        doomed.setdefault((row[0], row[1]), []).append(
                            (row[2], self._load_checkpoint(row))
                        )
                for (thread_id, ns), members in doomed.items():
                    self._delete_checkpoints(thread_id, ns, members, kept=None)

        self._run("delete LangGraph runs", run)

    def _delete_checkpoints(
        self,
        thread_id: str,
        ns: str,
        doomed: Sequence[tuple[str, dict[str, Any]]],
        kept: Sequence[dict[str, Any]] | None,
    ) -> None:
        """Delete checkpoints of one namespace with their writes and the blobs they alone used.

        ``kept`` are the namespace's remaining checkpoints, or None to read them after the
        deletion.
        """
        key = (thread_id, ns)
        ids = [checkpoint_id for checkpoint_id, _ in doomed]
        for chunk in _chunks(ids):
            for statement in (
                self._sql.delete_writes_of,
                self._sql.delete_checkpoints_of,
                self._sql.orphan_children_of,
            ):
                self._execute(self._sql.in_list(statement, len(chunk)), (*key, *chunk))
        freed = {pair for _, checkpoint in doomed for pair in _blob_pairs(checkpoint)}
        if not freed:
            return
        if kept is None:
            rows = self._execute(self._sql.namespace_checkpoints, key).fetchall()
            kept = [
                self._load(*self._open(type_, data, CHECKPOINTS, "checkpoint", ns, checkpoint_id))
                for type_, data, checkpoint_id in rows
            ]
        for checkpoint in kept:
            for channel, version in checkpoint.get("channel_versions", {}).items():
                freed.discard((channel, str(version)))
        for pairs in _chunks(sorted(freed)):
            params: _Params = [*key]
            for pair in pairs:
                params += pair
            self._execute(self._sql.delete_blobs(len(pairs)), params)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another.

        Ids, parents, metadata and namespaces are kept, so the copy lists in the same order.
        Rows the target already has with the same key are left as they are.
        """
        source = _check_key("source_thread_id", str(source_thread_id), _MAX_THREAD_ID)
        target = _check_key("target_thread_id", str(target_thread_id), _MAX_THREAD_ID)
        if source == target:
            return

        def run() -> None:
            with self._transaction(writes_after_reads=True):
                for sql in self._sql.copy_thread:
                    self._execute(sql, (target, source))

        self._run("copy a LangGraph thread", run)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``"keep_latest"`` or ``"delete"``.

        ``"delete"`` removes every checkpoint, blob and write of the threads. ``"keep_latest"``
        keeps the latest checkpoint of each namespace with its pending writes and the blobs it
        refers to, and deletes the rest; the kept checkpoint loses its parent link if the
        parent was deleted. Each call runs in one transaction. A run appending to a thread
        meanwhile is safe; forking from a checkpoint being deleted is not.

        ``"keep_latest"`` refuses (InvalidCheckpointError, nothing deleted) threads that use a
        LangGraph ``DeltaChannel``, whose latest value is rebuilt from older checkpoints.
        """
        if isinstance(thread_ids, str):
            raise InvalidCheckpointError("thread_ids must be a sequence of thread ids, not a str")
        if strategy not in ("keep_latest", "delete"):
            raise InvalidCheckpointError(
                f"unknown prune strategy {strategy!r}; use 'keep_latest' or 'delete'"
            )
        threads = sorted({str(t) for t in thread_ids if _is_key(str(t), _MAX_THREAD_ID)})
        if not threads:
            return
        if strategy == "delete":

            def delete() -> None:
                with self._transaction():
                    for table in self._sql.TABLES:
                        for chunk in _chunks(threads):
                            sql = self._sql.in_list(self._sql.delete_threads(table), len(chunk))
                            self._execute(sql, chunk)

            self._run("prune LangGraph threads", delete)
            return

        def keep_latest() -> None:
            with self._transaction(writes_after_reads=True):
                plans = [self._keep_latest_plan(t) for t in threads]
                for thread_id, namespaces in zip(threads, plans, strict=True):
                    for ns, (latest, doomed) in namespaces.items():
                        if doomed:
                            self._delete_checkpoints(thread_id, ns, doomed, kept=[latest])

        self._run("prune LangGraph threads", keep_latest)

    def _keep_latest_plan(
        self, thread_id: str
    ) -> dict[str, tuple[dict[str, Any], _Doomed]]:
        """Per namespace: the latest checkpoint and the (id, checkpoint) pairs to delete."""
        rows = self._execute(self._sql.thread_checkpoints, (thread_id,)).fetchall()
        by_ns: dict[str, _Rows] = {}
        for row in rows:
            metadata = self._load_metadata(row)
            if any(marker in metadata for marker in _DELTA_MARKERS):
                raise InvalidCheckpointError(
                    f"prune(strategy='keep_latest') can't prune thread {thread_id!r}: it uses a "
                    "LangGraph DeltaChannel, whose latest value is rebuilt from older "
                    "checkpoints. Nothing was deleted; use strategy='delete' or delete_thread"
                )
            by_ns.setdefault(row[1], []).append(row)
        plan = {}
        for ns, members in by_ns.items():
            members.sort(key=lambda r: r[2], reverse=True)
            latest = self._load_checkpoint(members[0])
            doomed = [(r[2], self._load_checkpoint(r)) for r in members[1:]]
            plan[ns] = (latest, doomed)
        return plan

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A zero-padded counter plus a random fraction, as LangGraph's PostgreSQL saver.

        The fraction keeps two forks of one checkpoint from giving a changed channel the same
        version, which would make them share one blob.
        """
        # LangGraph may hand back an int version written by another saver.
        value: object = current
        if value is None:
            current_v = 0
        elif isinstance(value, int):
            current_v = value
        else:
            current_v = int(str(value).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"  # noqa: S311 - not a secret

    # -- async: the same methods in a worker thread ---------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        found = await asyncio.to_thread(
            self._list, config, filter=filter, before=before, limit=limit
        )
        for item in found:
            yield item

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
