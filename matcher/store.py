"""The store: every piece of state in one TinyDB JSON document (see matcher.storage for the file and
TinyDB's extension points), changed in transactions.

``Store`` adds what TinyDB lacks for our hot paths: in-memory indexes (member by address, token by value,
processed message by key...), built per table on first use, so no lookup scans a table; a schema version
with migrations; a process lock; backups of the last good versions; and ``before_commit`` callbacks (files
that must be durable before the transaction that refers to them commits).
"""

from __future__ import annotations

import contextlib
import copy
import operator
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout
from tinydb import TinyDB
from tinydb.table import Table

from matcher.model import Group, Member, OutboxEntry, ProcessedMessage, Record, Round, Token, UnreadMessage
from matcher.private_files import PRIVATE_FILE, create_private, private_folder, write_private
from matcher.storage import (
    AtomicJSONStorage,
    StoreCorrupt,
    StoreError,
    TransactionMiddleware,
    gc_paused,
)
from matcher.tinydb_internals import StoreDB

SCHEMA_VERSION = 2
BACKUPS_KEPT = 3
META_TABLE = "meta"

R = TypeVar("R", bound=Record)


class StoreLocked(StoreError):
    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"already running (pid {pid}): {path} is locked by another process")
        self.pid = pid


class ProcessLock:
    """An exclusive lock on a file that tells whoever else tries which process holds it."""

    def __init__(self, path: Path, subject: Path) -> None:
        self.path = path  # the lock file
        self.subject = subject  # what it protects, for the message
        self._lock = FileLock(path, timeout=0, mode=PRIVATE_FILE)
        self._pid_path = path.with_suffix(".pid")

    def acquire(self, wait: float = 0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; StoreLocked (naming the holder's pid) if not."""
        private_folder(self.path.parent)
        try:
            self._lock.acquire(timeout=wait)
        except Timeout:
            raise StoreLocked(self.subject, self._holder()) from None
        write_private(self._pid_path, str(os.getpid()).encode())

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


# -- indexes


@dataclass(frozen=True)
class TableSpec:
    name: str
    record: type[Record]
    primary: Callable[[Mapping[str, Any]], str]
    # secondary index name -> value(s) of a stored document (a function of it, or the name of its field);
    # an index may hold many documents per value
    secondary: Mapping[str, Callable[[Mapping[str, Any]], Any] | str]


def _by_field(*names: str) -> dict[str, str]:
    return {name: name for name in names}


def _body_name(doc: Mapping[str, Any]) -> str | None:
    return os.path.basename(doc.get("body_file") or "") or None


TABLES: tuple[TableSpec, ...] = (
    TableSpec("members", Member, lambda d: d["id"], {"address": lambda d: d["address"] or None}),
    TableSpec("rounds", Round, lambda d: d["id"], {}),
    TableSpec(
        "groups",
        Group,
        lambda d: f"{d['round_id']}:{d['number']}",
        {**_by_field("round_id"), "member": lambda d: tuple(d["members"])},
    ),
    TableSpec("processed", ProcessedMessage, lambda d: d["key"], _by_field("status")),
    TableSpec("tokens", Token, lambda d: d["token"], _by_field("member_id", "address", "message_id")),
    TableSpec(
        "outbox",
        OutboxEntry,
        lambda d: d["key"],
        # body_name: the file name of a spooled message, so the outbox finds files nothing refers to
        {
            **_by_field("status", "message_id"),
            "group_id": lambda d: d.get("group_id") or None,
            "body_name": _body_name,
            "return_token": lambda d: d.get("return_token") or None,
        },
    ),
    TableSpec(
        "unread",
        UnreadMessage,
        lambda d: d["key"],
        {"member_id": lambda d: d["member_id"] or None, "sender": lambda d: d["sender"] or None},
    ),
)
SPEC_BY_RECORD: Mapping[type[Record], TableSpec] = {t.record: t for t in TABLES}


class Index:
    """value -> document ids, for one field (or a tuple of values) of one table."""

    def __init__(self, value_of: Callable[[Mapping[str, Any]], Any] | str) -> None:
        self.value_of = value_of if callable(value_of) else operator.methodcaller("get", value_of)
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


class TableIndexes:
    """The indexes of one table, each built from the table's current documents when first used (a lookup
    by address does not pay for indexing groups), then kept up to date by ``add`` and ``discard``."""

    def __init__(self, spec: TableSpec, table: Callable[[], Mapping[str, Any]]) -> None:
        self.spec = spec
        self._table = table
        self._primary: dict[str, int] | None = None
        self._secondary: dict[str, Index] = {}

    @property
    def primary(self) -> dict[str, int]:
        """primary key -> document id"""
        if self._primary is None:
            key_of = self.spec.primary
            with gc_paused():
                self._primary = {key_of(doc): int(doc_id) for doc_id, doc in self._table().items()}
        return self._primary

    def secondary(self, name: str) -> Index:
        index = self._secondary.get(name)
        if index is None:
            index = Index(self.spec.secondary[name])
            with gc_paused():
                for doc_id, doc in self._table().items():
                    index.add(int(doc_id), doc)
            self._secondary[name] = index
        return index

    def add(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        if self._primary is not None:
            self._primary[self.spec.primary(doc)] = doc_id
        for index in self._secondary.values():
            index.add(doc_id, doc)

    def discard(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        if self._primary is not None:
            self._primary.pop(self.spec.primary(doc), None)
        for index in self._secondary.values():
            index.discard(doc_id, doc)


# -- migrations

# MIGRATIONS[n] upgrades a raw document (table name -> {id: document}) from schema n to n + 1, in place.
Migration = Callable[[MutableMapping[str, Any]], None]


def _typed_outbox_references(data: MutableMapping[str, Any]) -> None:
    """Schema 1 -> 2: outbox entries name their round and group in fields (round_id, group_id) instead
    of inside their key, and a group's introduction is known by its outbox entry, not by a Message-ID
    kept on the group. Schema-1 keys are read here, once; nothing else takes a key apart."""
    outbox = data.setdefault("outbox", {})
    for doc in outbox.values():
        kind, *rest = str(doc.get("key", "")).split(":")
        if kind in ("intro", "followup", "reminder") and len(rest) >= 2 and rest[1].isdigit():
            doc["round_id"], doc["group_id"] = rest[0], f"{rest[0]}:{rest[1]}"
        elif kind in ("ghost", "summary") and rest:
            doc["round_id"] = rest[0]
    introduced = {doc.get("message_id"): doc for doc in outbox.values()}
    for group in data.get("groups", {}).values():
        message_id = group.pop("intro_message_id", None)
        group_id = f"{group['round_id']}:{group['number']}"
        if not message_id:
            continue
        entry = introduced.get(message_id)
        if entry is None:  # its entry is gone: keep what a reply needs to find the group
            entry = {"key": f"intro:{group_id}", "kind": "intro", "envelope_from": "", "recipients": []}
            entry.update(message_id=message_id, status="sent")
            outbox[str(max((int(i) for i in outbox), default=0) + 1)] = entry
        entry["round_id"], entry["group_id"] = group["round_id"], group_id


MIGRATIONS: Mapping[int, Migration] = {1: _typed_outbox_references}


def migrate(data: MutableMapping[str, Any], path: Path, migrations: Mapping[int, Migration]) -> bool:
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
        self._indexes: dict[str, TableIndexes] = {}  # per table, built on first use
        self._before_commit: list[Callable[[], None]] = []

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        wait: float = 0,
        backup_every: float = 0,
        migrations: Mapping[int, Migration] = MIGRATIONS,
    ) -> Store:
        """Open the database, waiting up to ``wait`` seconds for another process to close it.

        A changed database is backed up at open, but not if the newest backup is younger than
        ``backup_every`` seconds: a service that opens it for every pass keeps hours-old versions, not
        seconds-old ones.
        """
        store = cls(Path(path), migrations=migrations)
        store._lock.acquire(wait)
        try:
            store._load(backup_every)
        except BaseException:
            store.close()
            raise
        return store

    # -- lifecycle

    def _load(self, backup_every: float) -> None:
        middleware = TransactionMiddleware(AtomicJSONStorage)
        self._db = StoreDB(str(self.path), storage=middleware)  # so that close() releases the file
        try:
            data = middleware.read()
        except StoreCorrupt as exc:
            backups = ", ".join(p.name for p in self._backups()) or "none"
            raise StoreCorrupt(
                f"{exc}. The file was left untouched. Backups of the last good versions: {backups}; "
                "to restore, stop the service and copy a backup over the database file"
            ) from None
        self._remove_torn_temp_files()
        if data:
            self._keep_backup(backup_every)
        elif self._backups():
            raise StoreCorrupt(
                f"{self.path}: missing, but backups exist ({self._backups()[0].name}...); "
                "restore one by copying it to the database path"
            )
        if migrate(data, self.path, self._migrations):
            data.touch_all()
            middleware.in_transaction = True
            middleware.write(data)
            middleware.commit()
            middleware.in_transaction = False
        self._indexes = {}

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

    def _keep_backup(self, backup_every: float) -> None:
        newest = self._backup_path(1)
        if newest.exists():
            if _same_content(newest, self.path):
                return  # unchanged since the last backup: keep the older versions rather than a duplicate
            # the backup's mtime is its original's (see _same_content); ctime is when it was made
            if time.time() - newest.stat().st_ctime < backup_every:
                return
        for n in range(BACKUPS_KEPT - 1, 0, -1):
            older = self._backup_path(n)
            if older.exists():
                os.replace(older, self._backup_path(n + 1))
        tmp = newest.with_suffix(".tmp")
        os.close(create_private(tmp))  # copyfile keeps an existing file's mode: a backup is as private
        shutil.copyfile(self.path, tmp)  # copy_file_range/sendfile: the bytes stay in the kernel
        current = self.path.stat()
        os.utime(tmp, ns=(current.st_atime_ns, current.st_mtime_ns))  # see _same_content
        os.replace(tmp, newest)

    def replace_backups(self) -> None:
        """Delete every backup and take one of the current file: what an erasure removed must not stay in
        older versions."""
        for backup in self._backups():
            backup.unlink()
        self._backup_path(1).with_suffix(".tmp").unlink(missing_ok=True)  # a copy a crash left behind
        if self.path.exists():
            self._keep_backup(0)

    # -- transactions

    @property
    def _middleware(self) -> TransactionMiddleware:
        assert self._db is not None, "store is closed"
        return self._db.storage  # type: ignore[return-value]

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

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
            self._run_before_commit()
            middleware.commit()
        except BaseException:
            self._forget(middleware.rollback())
            raise
        finally:
            self._depth = 0
            self._before_commit = []
            middleware.in_transaction = False

    def before_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the current transaction commits, just before its durable write (callbacks
        run in the order registered; one that raises rolls the transaction back). A callback already
        registered in this transaction is not added again; a rolled-back transaction drops them all."""
        if not self._depth:
            raise StoreError("before_commit outside a transaction: call it inside `store.transaction()`")
        if callback not in self._before_commit:
            self._before_commit.append(callback)

    def _run_before_commit(self) -> None:
        done = 0
        while done < len(self._before_commit):  # a callback may register another
            self._before_commit[done]()
            done += 1

    def _forget(self, tables: set[str] | None) -> None:
        """Drop what describes rolled-back data: the indexes and TinyDB's per-table caches (query results,
        next document id) of these tables (None: all)."""
        assert self._db is not None
        names = set(self._indexes) | set(self._db._tables) if tables is None else tables
        for name in names:
            self._indexes.pop(name, None)
            self._db._tables.pop(name, None)

    def _require_transaction(self) -> None:
        if not self._depth:
            raise StoreError("write outside a transaction: wrap changes in `with store.transaction():`")

    # -- records

    def _table(self, spec: TableSpec) -> Table:
        assert self._db is not None, "store is closed"
        return self._db.table(spec.name)

    def _index(self, spec: TableSpec) -> TableIndexes:
        indexes = self._indexes.get(spec.name)
        if indexes is None:
            indexes = self._indexes[spec.name] = TableIndexes(
                spec, lambda: self._middleware.read().get(spec.name, {})
            )
        return indexes

    def _raw(self, spec: TableSpec, doc_id: int) -> Mapping[str, Any]:
        return self._table(spec).get(doc_id=doc_id)  # type: ignore[return-value]

    def put(self, record: Record) -> None:
        """Insert the record, or replace the stored one with the same primary key."""
        self._require_transaction()
        spec = SPEC_BY_RECORD[type(record)]
        doc = record.to_dict()
        table = self._table(spec)
        indexes = self._index(spec)
        doc_id = indexes.primary.get(spec.primary(doc))
        if doc_id is None:
            doc_id = table.insert(doc)
        else:
            indexes.discard(doc_id, self._raw(spec, doc_id))
            table.update(_replace_with(doc), doc_ids=[doc_id])
        indexes.add(doc_id, doc)

    def _batch(self, records: list[R]) -> tuple[TableSpec, TableIndexes]:
        """The table of a batch of records of one type, and its indexes; only inside a transaction."""
        self._require_transaction()
        spec = SPEC_BY_RECORD[type(records[0])]
        return spec, self._index(spec)

    def put_many(self, records: list[R]) -> None:
        """Insert many new records of one type in one table operation (primary keys must be new)."""
        if not records:
            return
        spec, indexes = self._batch(records)
        docs = [r.to_dict() for r in records]
        known = [spec.primary(d) for d in docs if spec.primary(d) in indexes.primary]
        if known:
            raise StoreError(f"put_many: {spec.name} already holds {known[:3]}")
        for doc_id, doc in zip(self._table(spec).insert_multiple(docs), docs, strict=True):
            indexes.add(doc_id, doc)

    def update_many(self, records: list[R]) -> None:
        """Replace many stored records of one type in one table operation."""
        if not records:
            return
        spec, indexes = self._batch(records)
        new_docs = {spec.primary(d): d for d in (r.to_dict() for r in records)}
        doc_ids = []
        for key, doc in new_docs.items():
            doc_id = indexes.primary[key]
            indexes.discard(doc_id, self._raw(spec, doc_id))
            indexes.add(doc_id, doc)
            doc_ids.append(doc_id)

        def replace(stored: dict[str, Any]) -> None:
            new = new_docs[spec.primary(stored)]
            stored.clear()
            stored.update(new)

        self._table(spec).update(replace, doc_ids=doc_ids)

    def delete(self, record: Record) -> None:
        self._require_transaction()
        spec = SPEC_BY_RECORD[type(record)]
        indexes = self._index(spec)
        doc_id = indexes.primary.get(spec.primary(record.to_dict()))
        if doc_id is None:
            return
        indexes.discard(doc_id, self._raw(spec, doc_id))
        self._table(spec).remove(doc_ids=[doc_id])

    def get(self, kind: type[R], key: str) -> R | None:
        """The record of type ``kind`` with this primary key."""
        spec = SPEC_BY_RECORD[kind]
        doc_id = self._index(spec).primary.get(key)
        return None if doc_id is None else kind.from_dict(self._raw(spec, doc_id))

    def find(self, kind: type[R], index: str, value: Any) -> list[R]:
        """Records whose indexed field ``index`` holds ``value``, in insertion order."""
        spec = SPEC_BY_RECORD[kind]
        ids = sorted(self._index(spec).secondary(index).lookup(value))
        return [kind.from_dict(self._raw(spec, i)) for i in ids]

    def find_one(self, kind: type[R], index: str, value: Any) -> R | None:
        found = self.find(kind, index, value)
        return found[0] if found else None

    def count(self, kind: type[R], index: str, value: Any) -> int:
        return len(self._index(SPEC_BY_RECORD[kind]).secondary(index).lookup(value))

    def all(self, kind: type[R]) -> list[R]:
        spec = SPEC_BY_RECORD[kind]
        return [kind.from_dict(doc) for doc in self._table(spec).all()]

    # -- meta: small named values (schema version, IMAP UIDVALIDITY, schedule marks...)

    def get_meta(self, key: str, default: Any = None) -> Any:
        # a copy: changing the stored value in place would bypass the transaction
        return copy.deepcopy(self._meta_doc().get(key, default))

    def set_meta(self, key: str, value: Any) -> None:
        self._require_transaction()
        table = self._db.table(META_TABLE)  # type: ignore[union-attr]
        table.update({key: copy.deepcopy(value)}, doc_ids=[1])

    def _meta_doc(self) -> Mapping[str, Any]:
        return self._db.table(META_TABLE).get(doc_id=1) or {}  # type: ignore[union-attr]

    @property
    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))


def _same_content(backup: Path, path: Path) -> bool:
    """Whether ``backup`` holds the bytes of ``path``, without reading a large file twice on every open.

    A backup is given its original's mtime, and every commit writes a new file (with a new mtime); the end
    of the file (in our layout: the CRC-32 of every table) guards against a coarse clock.
    """
    a, b = backup.stat(), path.stat()
    if a.st_size != b.st_size:
        return False
    if a.st_mtime_ns == b.st_mtime_ns:
        return _tail(backup) == _tail(path)
    return backup.read_bytes() == path.read_bytes()


def _tail(path: Path, size: int = 64 * 1024) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - size))
        return f.read()


def _replace_with(doc: Mapping[str, Any]) -> Callable[[dict[str, Any]], None]:
    def replace(stored: dict[str, Any]) -> None:
        stored.clear()
        stored.update(doc)

    return replace
