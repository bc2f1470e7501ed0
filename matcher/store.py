"""The store: every piece of state in one TinyDB JSON document, written atomically.

Built from TinyDB's own extension points:

- ``AtomicJSONStorage`` (a ``Storage``) writes the whole document to a temp file in the same folder,
  flushes, fsyncs, ``os.replace``s it over the old file and fsyncs the folder: a kill at any instant leaves
  the old or the new file, never a broken one.
- ``TransactionMiddleware`` (a ``Middleware``) reads the file once and keeps changes in memory until the
  transaction commits, so a transaction costs exactly one durable write, and a transaction that raises writes
  nothing.

``Store`` adds what TinyDB lacks for our hot paths: in-memory indexes (member by address, token by value,
processed message by key...) so no lookup scans a table, a schema version with migrations, a process lock, and
backups of the last good versions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout
from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage

from matcher.model import Group, Member, OutboxEntry, ProcessedMessage, Record, Round, Token

SCHEMA_VERSION = 1
BACKUPS_KEPT = 3
META_TABLE = "meta"

R = TypeVar("R", bound=Record)


class StoreError(Exception):
    """A problem with the database file, naming the file."""


class StoreCorrupt(StoreError):
    pass


class StoreLocked(StoreError):
    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"already running (pid {pid}): {path} is locked by another process")
        self.pid = pid


class ProcessLock:
    """An exclusive lock on a file that tells whoever else tries which process holds it."""

    def __init__(self, path: Path, subject: Path) -> None:
        self.path = path            # the lock file
        self.subject = subject      # what it protects, for the message
        self._lock = FileLock(path, timeout=0)
        self._pid_path = path.with_suffix(".pid")

    def acquire(self, wait: float = 0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; StoreLocked (naming the holder's pid) if not."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=wait)
        except Timeout:
            raise StoreLocked(self.subject, self._holder()) from None
        self._pid_path.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(FileNotFoundError):
                self._pid_path.unlink()
            self._lock.release()

    def _holder(self) -> str:
        try:
            return self._pid_path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"


# -- TinyDB extension points


class AtomicJSONStorage(Storage):
    """JSON storage whose every write is all-or-nothing on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorrupt(f"{self.path}: not a readable database ({exc})") from None
        if not isinstance(data, dict):
            raise StoreCorrupt(f"{self.path}: not a readable database (top level is not an object)")
        return data

    def write(self, data: Mapping[str, Any]) -> None:
        write_atomically(self.path, json.dumps(data, separators=(",", ":")).encode())

    def close(self) -> None:
        pass


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so that a crash leaves either the old or the new content."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class TransactionMiddleware(Middleware):
    """Keeps the document in memory; the storage is written only by ``commit``."""

    def __init__(self, storage_cls: type[Storage] = AtomicJSONStorage) -> None:
        super().__init__(storage_cls)
        self.cache: dict[str, Any] | None = None
        self.dirty = False
        self.in_transaction = False

    def read(self) -> dict[str, Any] | None:
        if self.cache is None:
            self.cache = self.storage.read() or {}
        return self.cache

    def write(self, data: dict[str, Any]) -> None:
        if not self.in_transaction:
            self.rollback()  # TinyDB changed the cached document in place before calling us
            raise StoreError("write outside a transaction: wrap changes in `with store.transaction():`")
        self.cache = data
        self.dirty = True

    def commit(self) -> None:
        if self.dirty:
            self.storage.write(self.cache)
            self.dirty = False

    def rollback(self) -> None:
        self.cache = self.storage.read() or {}
        self.dirty = False


# -- indexes


@dataclass(frozen=True)
class TableSpec:
    name: str
    record: type[Record]
    primary: Callable[[Mapping[str, Any]], str]
    # secondary index name -> value(s) of a stored document; unique=False indexes may hold many documents
    secondary: Mapping[str, Callable[[Mapping[str, Any]], Any]]


TABLES: tuple[TableSpec, ...] = (
    TableSpec("members", Member, lambda d: d["id"], {"address": lambda d: d["address"] or None}),
    TableSpec("rounds", Round, lambda d: d["id"], {}),
    TableSpec(
        "groups",
        Group,
        lambda d: f"{d['round_id']}:{d['number']}",
        {
            "round_id": lambda d: d["round_id"],
            "member": lambda d: tuple(d["members"]),
            "intro_message_id": lambda d: d.get("intro_message_id"),
        },
    ),
    TableSpec("processed", ProcessedMessage, lambda d: d["key"], {"status": lambda d: d["status"]}),
    TableSpec(
        "tokens",
        Token,
        lambda d: d["token"],
        {
            "member_id": lambda d: d["member_id"],
            "address": lambda d: d["address"],
            "message_id": lambda d: d.get("message_id"),
        },
    ),
    TableSpec(
        "outbox",
        OutboxEntry,
        lambda d: d["key"],
        {"status": lambda d: d["status"], "message_id": lambda d: d["message_id"]},
    ),
)
SPEC_BY_RECORD: Mapping[type[Record], TableSpec] = {t.record: t for t in TABLES}


class Index:
    """value -> document ids, for one field (or a tuple of values) of one table."""

    def __init__(self, value_of: Callable[[Mapping[str, Any]], Any]) -> None:
        self.value_of = value_of
        self.ids: dict[Any, set[int]] = {}

    def _values(self, doc: Mapping[str, Any]) -> tuple[Any, ...]:
        value = self.value_of(doc)
        if value is None:
            return ()
        return value if isinstance(value, tuple) else (value,)

    def add(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        for v in self._values(doc):
            self.ids.setdefault(v, set()).add(doc_id)

    def discard(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        for v in self._values(doc):
            bucket = self.ids.get(v)
            if bucket is not None:
                bucket.discard(doc_id)
                if not bucket:
                    del self.ids[v]

    def lookup(self, value: Any) -> set[int]:
        return self.ids.get(value, set())


# -- migrations

# MIGRATIONS[n] upgrades a raw document from schema n to n + 1, in place.
Migration = Callable[[dict[str, Any]], None]
MIGRATIONS: Mapping[int, Migration] = {}


def migrate(data: dict[str, Any], path: Path, migrations: Mapping[int, Migration]) -> bool:
    """Bring ``data`` to SCHEMA_VERSION; returns whether anything changed."""
    meta = data.setdefault(META_TABLE, {}).setdefault("1", {})
    version = meta.get("schema_version", SCHEMA_VERSION if len(data) == 1 else 0)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this program understands "
            f"({SCHEMA_VERSION}); upgrade unmentoring"
        )
    changed = version != meta.get("schema_version")
    while version < SCHEMA_VERSION:
        step = migrations.get(version)
        if step is None:
            raise StoreError(f"{path}: no migration from schema version {version}")
        step(data)
        version += 1
        changed = True
    meta["schema_version"] = version
    return changed


# -- the store


class Store:
    """The service's state. Open it with ``Store.open(path)``; change it inside ``transaction()``."""

    def __init__(self, path: Path, *, migrations: Mapping[int, Migration] = MIGRATIONS) -> None:
        self.path = Path(path)
        self._migrations = migrations
        self._lock = ProcessLock(self.path.with_name(self.path.name + ".lock"), self.path)
        self._db: TinyDB | None = None
        self._depth = 0
        self._indexes: dict[str, dict[str, Index]] = {}
        self._primary: dict[str, dict[str, int]] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        wait: float = 0,
        migrations: Mapping[int, Migration] = MIGRATIONS,
    ) -> Store:
        """Open the database, waiting up to ``wait`` seconds for another process to close it."""
        store = cls(Path(path), migrations=migrations)
        store._lock.acquire(wait)
        try:
            store._load(first=True)
        except BaseException:
            store.close()
            raise
        return store

    # -- lifecycle

    def _load(self, *, first: bool = False) -> None:
        middleware = TransactionMiddleware(AtomicJSONStorage)
        db = TinyDB(str(self.path), storage=middleware)
        try:
            data = middleware.read()
        except StoreCorrupt as exc:
            backups = ", ".join(p.name for p in self._backups()) or "none"
            raise StoreCorrupt(
                f"{exc}. The file was left untouched. Backups of the last good versions: {backups}; "
                "to restore, stop the service and copy a backup over the database file"
            ) from None
        assert data is not None
        if first:
            self._remove_torn_temp_files()
            if data:
                self._keep_backup()
            elif self._backups():
                raise StoreCorrupt(
                    f"{self.path}: missing, but backups exist ({self._backups()[0].name}...); "
                    "restore one by copying it to the database path"
                )
            if migrate(data, self.path, self._migrations):
                middleware.in_transaction = True
                middleware.write(data)
                middleware.commit()
                middleware.in_transaction = False
        self._db = db
        self._build_indexes()

    def _remove_torn_temp_files(self) -> None:
        # write_atomically's temp files are never read; one left behind means a write was killed midway
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backups: the last good versions, taken when a good file is opened

    def _backups(self) -> list[Path]:
        return [p for i in range(1, BACKUPS_KEPT + 1) if (p := self._backup_path(i)).exists()]

    def _backup_path(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.bak{n}")

    def _keep_backup(self) -> None:
        newest = self._backup_path(1)
        if (
            newest.exists()
            and newest.stat().st_size == self.path.stat().st_size
            and newest.read_bytes() == self.path.read_bytes()
        ):
            return  # unchanged since the last backup: keep the older versions rather than a duplicate
        for n in range(BACKUPS_KEPT - 1, 0, -1):
            older = self._backup_path(n)
            if older.exists():
                os.replace(older, self._backup_path(n + 1))
        copy = self._backup_path(1)
        tmp = copy.with_suffix(".tmp")
        shutil.copyfile(self.path, tmp)
        os.replace(tmp, copy)

    # -- transactions

    @property
    def _middleware(self) -> TransactionMiddleware:
        assert self._db is not None, "store is closed"
        return self._db.storage  # type: ignore[return-value]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """All changes inside are written together, once, at the end; an exception discards them all.

        Nested transactions join the outermost one.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        middleware = self._middleware
        middleware.in_transaction = True
        self._depth = 1
        try:
            yield self
            middleware.commit()
        except BaseException:
            middleware.rollback()
            self._reset_tinydb_caches()
            self._build_indexes()
            raise
        finally:
            self._depth = 0
            middleware.in_transaction = False

    def _reset_tinydb_caches(self) -> None:
        # TinyDB tables cache query results and the next document id; both may describe rolled-back data.
        assert self._db is not None
        self._db._tables.clear()

    # -- indexes

    def _build_indexes(self) -> None:
        self._indexes = {t.name: {n: Index(f) for n, f in t.secondary.items()} for t in TABLES}
        self._primary = {t.name: {} for t in TABLES}
        data = self._middleware.read() or {}
        for spec in TABLES:
            for doc_id, doc in data.get(spec.name, {}).items():
                self._index_add(spec, int(doc_id), doc)

    def _index_add(self, spec: TableSpec, doc_id: int, doc: Mapping[str, Any]) -> None:
        self._primary[spec.name][spec.primary(doc)] = doc_id
        for index in self._indexes[spec.name].values():
            index.add(doc_id, doc)

    def _index_discard(self, spec: TableSpec, doc_id: int, doc: Mapping[str, Any]) -> None:
        self._primary[spec.name].pop(spec.primary(doc), None)
        for index in self._indexes[spec.name].values():
            index.discard(doc_id, doc)

    # -- records

    def _table(self, spec: TableSpec):  # noqa: ANN202 - tinydb.table.Table
        assert self._db is not None, "store is closed"
        return self._db.table(spec.name)

    def _raw(self, spec: TableSpec, doc_id: int) -> Mapping[str, Any]:
        return self._table(spec).get(doc_id=doc_id)

    def put(self, record: Record) -> None:
        """Insert the record, or replace the stored one with the same primary key."""
        spec = SPEC_BY_RECORD[type(record)]
        doc = record.to_dict()
        table = self._table(spec)
        doc_id = self._primary[spec.name].get(spec.primary(doc))
        if doc_id is None:
            doc_id = table.insert(doc)
        else:
            self._index_discard(spec, doc_id, self._raw(spec, doc_id))
            table.update(_replace_with(doc), doc_ids=[doc_id])
        self._index_add(spec, doc_id, doc)

    def put_many(self, records: list[R]) -> None:
        """Insert many new records of one type in one table operation (primary keys must be new)."""
        if not records:
            return
        spec = SPEC_BY_RECORD[type(records[0])]
        docs = [r.to_dict() for r in records]
        known = [spec.primary(d) for d in docs if spec.primary(d) in self._primary[spec.name]]
        if known:
            raise StoreError(f"put_many: {spec.name} already holds {known[:3]}")
        for doc_id, doc in zip(self._table(spec).insert_multiple(docs), docs, strict=True):
            self._index_add(spec, doc_id, doc)

    def update_many(self, records: list[R]) -> None:
        """Replace many stored records of one type in one table operation."""
        if not records:
            return
        spec = SPEC_BY_RECORD[type(records[0])]
        new_docs = {spec.primary(d): d for d in (r.to_dict() for r in records)}
        doc_ids = []
        for key, doc in new_docs.items():
            doc_id = self._primary[spec.name][key]
            self._index_discard(spec, doc_id, self._raw(spec, doc_id))
            self._index_add(spec, doc_id, doc)
            doc_ids.append(doc_id)

        def replace(stored: dict[str, Any]) -> None:
            new = new_docs[spec.primary(stored)]
            stored.clear()
            stored.update(new)

        self._table(spec).update(replace, doc_ids=doc_ids)

    def delete(self, record: Record) -> None:
        spec = SPEC_BY_RECORD[type(record)]
        doc_id = self._primary[spec.name].get(spec.primary(record.to_dict()))
        if doc_id is None:
            return
        self._index_discard(spec, doc_id, self._raw(spec, doc_id))
        self._table(spec).remove(doc_ids=[doc_id])

    def get(self, kind: type[R], key: str) -> R | None:
        """The record of type ``kind`` with this primary key."""
        spec = SPEC_BY_RECORD[kind]
        doc_id = self._primary[spec.name].get(key)
        return None if doc_id is None else kind.from_dict(self._raw(spec, doc_id))

    def find(self, kind: type[R], index: str, value: Any) -> list[R]:
        """Records whose indexed field ``index`` holds ``value``, in insertion order."""
        spec = SPEC_BY_RECORD[kind]
        ids = sorted(self._indexes[spec.name][index].lookup(value))
        return [kind.from_dict(self._raw(spec, i)) for i in ids]

    def find_one(self, kind: type[R], index: str, value: Any) -> R | None:
        found = self.find(kind, index, value)
        return found[0] if found else None

    def count(self, kind: type[R], index: str, value: Any) -> int:
        return len(self._indexes[SPEC_BY_RECORD[kind].name][index].lookup(value))

    def all(self, kind: type[R]) -> list[R]:
        spec = SPEC_BY_RECORD[kind]
        return [kind.from_dict(doc) for doc in self._table(spec).all()]

    # -- meta: small named values (schema version, IMAP UIDVALIDITY, schedule marks...)

    def get_meta(self, key: str, default: Any = None) -> Any:
        doc = self._meta_doc()
        return doc.get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        table = self._db.table(META_TABLE)  # type: ignore[union-attr]
        table.update({key: value}, doc_ids=[1])

    def _meta_doc(self) -> Mapping[str, Any]:
        return self._db.table(META_TABLE).get(doc_id=1) or {}  # type: ignore[union-attr]

    @property
    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))


def _replace_with(doc: Mapping[str, Any]) -> Callable[[dict[str, Any]], None]:
    def replace(stored: dict[str, Any]) -> None:
        stored.clear()
        stored.update(doc)

    return replace
