"""Where we reach into TinyDB's internals for speed. Checked against TinyDB 4.8.0 to 4.9.0 (tinydb/table.py);
tests/test_tinydb_internals.py fails loudly when a name or signature used here changes.

Stock TinyDB changes a table through ``Table._update_table(updater)``: it reads the whole document, copies
the table into a new dict with int document ids, runs the updater on the copy, and copies it back with str
ids. ``DirectTable`` overrides that one method so the updater works on the stored table itself, seen with int
ids through ``IntKeyedTable``: an insert, or an update or removal by document id, costs O(1) instead of two
copies of the whole table. It relies on the storage being ours (``Tables.for_update``, matcher/storage.py)
and on ``Table._storage`` and ``Table.clear_cache``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from tinydb import TinyDB
from tinydb.table import Table


class IntKeyedTable(MutableMapping[int, Any]):
    """A stored table (str document ids, as JSON has them) seen with int ids, as TinyDB's updaters expect,
    without copying it."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def __getitem__(self, doc_id: int) -> Any:
        return self.raw[str(doc_id)]

    def __setitem__(self, doc_id: int, doc: Any) -> None:
        self.raw[str(doc_id)] = doc

    def __delitem__(self, doc_id: int) -> None:
        del self.raw[str(doc_id)]

    def __contains__(self, doc_id: object) -> bool:
        return str(doc_id) in self.raw

    def __iter__(self) -> Iterator[int]:
        return (int(doc_id) for doc_id in list(self.raw))

    def __len__(self) -> int:
        return len(self.raw)

    def clear(self) -> None:
        self.raw.clear()


class DirectTable(Table):
    """A TinyDB table whose writes change the stored table in place: an insert, or an update or removal by
    document id, costs O(1) instead of two copies of the whole table."""

    def _update_table(self, updater: Callable[[dict[int, Mapping]], None]) -> None:
        tables = self._storage.read()
        updater(IntKeyedTable(tables.for_update(self.name)))  # type: ignore[arg-type]
        self._storage.write(tables)
        self.clear_cache()


class StoreDB(TinyDB):
    table_class = DirectTable
