"""CSV that a spreadsheet opens as data, never as formulas: every CSV file we write goes through
``write_csv``.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice
and Google Sheets as a formula (a member's name "=HYPERLINK(...)" becomes a link that leaks the sheet, or
worse); OWASP's advice is to prefix such a cell with ``'``, which spreadsheets show as text. ``restore``
undoes it when one of our exports is imported again.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    """The cell's text, prefixed with ``'`` when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def restore(text: str) -> str:
    """A cell as it was before ``neutralise`` (a cell it did not change is returned as it is)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def write_csv(output: TextIO, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A header line and one line per row, every cell neutralised."""
    writer = csv.writer(output)
    writer.writerow([neutralise(name) for name in fieldnames])
    writer.writerows([neutralise(row.get(name)) for name in fieldnames] for row in rows)
