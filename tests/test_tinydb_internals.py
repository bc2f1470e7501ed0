"""The TinyDB internals that matcher/tinydb_internals.py relies on are still there, as they were in
TinyDB 4.9.0. A failure here means the library changed underneath: re-check that module."""

from __future__ import annotations

import inspect
import re

import tinydb
from tinydb.table import Table

from matcher.tinydb_internals import DirectTable, IntKeyedTable, StoreDB


def test_tinydb_is_a_version_this_was_checked_against() -> None:
    assert tinydb.__version__.startswith("4."), tinydb.__version__


def test_table_changes_still_go_through_update_table() -> None:
    assert list(inspect.signature(Table._update_table).parameters) == ["self", "updater"]
    for method in ("insert", "insert_multiple", "update", "update_multiple", "remove", "truncate"):
        assert "self._update_table(" in inspect.getsource(getattr(Table, method)), method
    assert callable(Table.clear_cache) and "_storage" in inspect.getsource(Table.__init__)
    assert StoreDB.table_class is DirectTable


def test_updaters_use_only_what_the_int_keyed_view_offers() -> None:
    used = set(re.findall(r"\btable\.([a-z_]\w*)", inspect.getsource(Table)))
    missing = {name for name in used if not hasattr(IntKeyedTable, name)}
    assert not missing, f"TinyDB's updaters now use {missing} of the table"
