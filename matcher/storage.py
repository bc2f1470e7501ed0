"""The database file and TinyDB's extension points.

- ``AtomicJSONStorage`` (a ``Storage``) writes the whole document to a temp file in the same folder,
  flushes, fsyncs, ``os.replace``s it over the old file and fsyncs the folder: a kill at any instant leaves
  the old or the new file, never a broken one.
- ``TransactionMiddleware`` (a ``Middleware``) reads the file once and keeps changes in memory until the
  transaction commits, so a transaction costs exactly one durable write, and a transaction that raises writes
  nothing.
- ``StoreDB``'s table class changes documents in place: stock TinyDB copies the whole table twice per insert
  or update, which made every ``put`` cost O(table). It reaches into TinyDB's internals, so it lives apart,
  marked, in matcher/tinydb_internals.py.

The file is still one JSON object, laid out one table per line with a last line of CRC-32s
(``"~checksums"``). Opening checks the checksums but decodes a table only when it is first used, and a
commit encodes again only the tables the transaction changed (the others are copied, in the kernel, from the
file being replaced): opening 100,000 members and 600,000 groups, or committing a change to members, does
not pay for decoding or encoding the groups. A file in any other layout (older versions, hand edits) is
read as plain JSON and rewritten in this layout at the next commit.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb.middlewares import Middleware
from tinydb.storages import Storage

# The file's last line: {table: [CRC-32, length]} of every table line. Not a TinyDB table: the storage
# strips it when reading.
CHECKSUMS_KEY = "~checksums"


class StoreError(Exception):
    """A problem with the database file, naming the file."""


class StoreCorrupt(StoreError):
    pass


# -- the document in memory and on disk


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a large table is decoded, encoded or indexed.

    JSON data has no reference cycles, but building millions of dicts and lists sets off a collection every
    few hundred allocations, each walking the objects built so far: decoding took twice as long with it on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def encode_table(table: Mapping[str, Any]) -> bytes:
    """A table as compact JSON (UTF-8, no newline inside: the layout relies on that)."""
    with gc_paused():
        text = json.dumps(table, separators=(",", ":"), ensure_ascii=False, check_circular=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (undecodable input kept as text) has no UTF-8 form; \u escapes keep it.
        with gc_paused():
            return json.dumps(table, separators=(",", ":"), check_circular=False).encode()


class DocumentFile:
    """The database file as last read or written, held open: committed tables are decoded from it when
    first used and copied from it (in the kernel) into the next file, so an unchanged table never passes
    through Python again. A replaced file stays readable through this descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def read_all(self) -> bytes:
        size = os.fstat(self.fd).st_size
        return self.read(0, size)

    def read(self, offset: int, length: int) -> bytes:
        chunks = []
        while length > 0:
            chunk = os.pread(self.fd, length, offset)
            if not chunk:
                raise StoreCorrupt(f"{self.path}: file ended early (changed while open?)")
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True)
class Segment:
    """One committed table: where its JSON text is in the open database file, and that text's CRC-32."""

    source: DocumentFile
    offset: int
    length: int
    crc: int

    def decode(self, name: str) -> dict[str, Any]:
        text = self.source.read(self.offset, self.length)
        if zlib.crc32(text) != self.crc:
            raise StoreCorrupt(f"{self.source.path}: table {name!r} changed on disk since it was opened")
        where = f"{self.source.path}: table {name!r}"
        return json_object(text, f"{where} is not readable", f"{where} is not an object")


class Tables(MutableMapping[str, Any]):
    """The document TinyDB works on: table name -> {document id (str): document}.

    ``committed`` locates every table as last written or read; a table is decoded from there on first
    access. ``touched`` names the tables changed since (``for_update`` is how our table class changes one):
    only they are encoded again at commit, and only they are reverted by a rollback. For a file that was not
    in our layout ``committed`` is None: everything was decoded up front, and a rollback must read the file.
    """

    def __init__(
        self,
        committed: dict[str, Segment] | None,
        decoded: Mapping[str, Any] | None = None,
    ) -> None:
        self.committed = committed
        self._decoded: dict[str, Any] = dict(decoded or {})
        self._names: dict[str, None] = dict.fromkeys(committed if committed is not None else self._decoded)
        self.touched: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        table = self._decoded.get(name)
        if table is not None:
            return table
        if name not in self._names or self.committed is None or name not in self.committed:
            raise KeyError(name)
        table = self._decoded[name] = self.committed[name].decode(name)
        return table

    def __setitem__(self, name: str, table: Any) -> None:
        self._decoded[name] = table
        self._names[name] = None
        self.touched.add(name)

    def __delitem__(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(name)
        del self._names[name]
        self._decoded.pop(name, None)
        self.touched.add(name)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def for_update(self, name: str) -> dict[str, Any]:
        """The table's live dict (created empty if missing), marked as changed."""
        self.touched.add(name)
        try:
            return self[name]
        except KeyError:
            self[name] = {}
            return self[name]

    def touch_all(self) -> None:
        """Mark every table changed (a migration may rewrite any of them in place)."""
        self.touched.update(self._names)

    def replace_all(self, tables: Mapping[str, Any]) -> None:
        for name in list(self._names):
            del self[name]
        for name, table in tables.items():
            self[name] = table

    def to_write(self) -> dict[str, Segment | bytes]:
        """What the next file must hold: changed tables encoded again, the others as committed."""
        committed = self.committed or {}
        unchanged = committed.keys() - self.touched
        return {
            name: committed[name] if name in unchanged else encode_table(self[name]) for name in self._names
        }

    def mark_committed(self, segments: dict[str, Segment]) -> None:
        self.committed = segments
        self.touched.clear()

    def revert(self) -> set[str] | None:
        """Drop the changes since the last commit; the names of the reverted tables, or None when the
        committed state is not held (the caller must read the file again)."""
        if self.committed is None:
            return None
        reverted = set(self.touched)
        for name in reverted:
            self._decoded.pop(name, None)
        self._names = dict.fromkeys(self.committed)
        self.touched.clear()
        return reverted


_TABLE_LINE = re.compile(rb'"([A-Za-z0-9_.~-]+)":')


def split_layout(data: bytes, source: DocumentFile) -> dict[str, Segment] | None:
    """The tables of a file in our layout, checksums verified; None for any other file."""
    if not (data.startswith(b"{") and data.endswith(b"}\n")):
        return None
    view = memoryview(data)
    body_end = len(data) - 2
    found: dict[str, tuple[int, int]] = {}
    start = 1
    while start <= body_end:
        newline = data.find(b"\n", start, body_end)
        end = body_end if newline == -1 else newline - 1
        if newline != -1 and data[end : end + 1] != b",":
            return None
        match = _TABLE_LINE.match(data, start, end)
        if match is None or match.group(1).decode() in found:
            return None
        found[match.group(1).decode()] = (match.end(), end)
        if newline == -1:
            break
        start = newline + 1
    checks_at = found.pop(CHECKSUMS_KEY, None)
    if checks_at is None:
        return None
    try:
        checks = json.loads(data[checks_at[0] : checks_at[1]])
    except ValueError:
        return None
    if not isinstance(checks, dict) or set(checks) != set(found):
        return None
    segments = {}
    for name, (begin, end) in found.items():
        crc = zlib.crc32(view[begin:end])
        if checks[name] != [crc, end - begin]:
            return None
        segments[name] = Segment(source, begin, end - begin, crc)
    return segments


@dataclass(frozen=True)
class FileRange:
    """Bytes to copy from an open file."""

    fd: int
    offset: int
    length: int


Piece = bytes | FileRange


def layout(tables: Mapping[str, Segment | bytes]) -> tuple[list[Piece], dict[str, tuple[int, int, int]]]:
    """The file's pieces (one table per line, then the checksums line) and where each table lands:
    name -> (offset, length, CRC-32)."""
    pieces: list[Piece] = [b"{"]
    placed: dict[str, tuple[int, int, int]] = {}
    position = 1
    for name, table in tables.items():
        prefix = json.dumps(name).encode() + b":"
        position += len(prefix)
        if isinstance(table, Segment):
            pieces += [prefix, FileRange(table.source.fd, table.offset, table.length), b",\n"]
            placed[name] = (position, table.length, table.crc)
        else:
            pieces += [prefix, table, b",\n"]
            placed[name] = (position, len(table), zlib.crc32(table))
        position += placed[name][1] + 2
    checks = {name: [crc, length] for name, (_, length, crc) in placed.items()}
    pieces += [json.dumps(CHECKSUMS_KEY).encode() + b":" + json.dumps(checks).encode() + b"}\n"]
    return pieces, placed


def decode_document(data: bytes, path: Path) -> dict[str, Any]:
    unreadable = f"{path}: not a readable database"
    document = json_object(data, unreadable, f"{unreadable} (top level is not an object)")
    document.pop(CHECKSUMS_KEY, None)
    return document


def json_object(data: bytes, unreadable: str, not_an_object: str) -> dict[str, Any]:
    """The JSON object in ``data``; StoreCorrupt saying ``unreadable`` (and why) or ``not_an_object``."""
    try:
        with gc_paused():
            value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreCorrupt(f"{unreadable} ({exc})") from None
    if not isinstance(value, dict):
        raise StoreCorrupt(not_an_object)
    return value


# -- TinyDB extension points


class AtomicJSONStorage(Storage):
    """JSON storage whose every write is all-or-nothing on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._source: DocumentFile | None = None  # the file the committed tables are in

    def read(self) -> Tables:
        try:
            source = DocumentFile(self.path)
        except FileNotFoundError:
            self._replace_source(None)
            return Tables({})
        try:
            data = source.read_all()
            segments = split_layout(data, source)
            if segments is not None:
                self._replace_source(source)
                return Tables(segments)
            tables = Tables(None, decode_document(data, self.path))
        finally:
            if source is not self._source:
                source.close()
        self._replace_source(None)
        return tables

    def write(self, data: Mapping[str, Any]) -> None:
        tables = data if isinstance(data, Tables) else Tables(None, data)
        pieces, placed = layout(tables.to_write())
        write_atomically(self.path, pieces)
        source = DocumentFile(self.path)
        self._replace_source(source)
        tables.mark_committed({name: Segment(source, *where) for name, where in placed.items()})

    def _replace_source(self, source: DocumentFile | None) -> None:
        if self._source is not None and self._source is not source:
            self._source.close()
        self._source = source

    def close(self) -> None:
        self._replace_source(None)


def write_atomically(path: Path, payload: bytes | Iterable[Piece]) -> None:
    """Replace ``path`` with ``payload`` (bytes, or pieces written in order) so that a crash leaves either
    the old or the new content."""
    pieces = [payload] if isinstance(payload, bytes) else payload
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            for piece in pieces:
                if isinstance(piece, FileRange):
                    _copy_range(piece, fd)
                else:
                    _write_all(fd, piece)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_range(piece: FileRange, fd: int) -> None:
    offset, left = piece.offset, piece.length
    while left > 0:
        try:
            copied = os.copy_file_range(piece.fd, fd, left, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            copied = 0  # not supported here: copy through memory
        if copied == 0:
            chunk = os.pread(piece.fd, min(left, 1 << 24), offset)
            if not chunk:
                raise StoreError("the database file being copied from ended early (changed while open?)")
            _write_all(fd, chunk)
            copied = len(chunk)
        offset += copied
        left -= copied


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
        self.cache: Tables | None = None
        self.in_transaction = False

    def read(self) -> Tables:
        if self.cache is None:
            self.cache = self.storage.read()
        return self.cache

    def write(self, data: Mapping[str, Any]) -> None:
        if data is not self.cache:
            self.read().replace_all(data)  # TinyDB.drop_tables writes a new, empty document
        if not self.in_transaction:
            self.rollback()  # TinyDB changed the cached document in place before calling us
            raise StoreError("write outside a transaction: wrap changes in `with store.transaction():`")

    @property
    def dirty(self) -> bool:
        return self.cache is not None and bool(self.cache.touched)

    def commit(self) -> None:
        if self.dirty:
            self.storage.write(self.cache)

    def rollback(self) -> set[str] | None:
        """Forget uncommitted changes; the names of the tables that changed back, None for all."""
        reverted = self.cache.revert() if self.cache is not None else None
        if reverted is None:
            self.cache = self.storage.read()
        return reverted
