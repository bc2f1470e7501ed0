"""`unmentoring report export|import`: the rounds as a table for the organisers' own analysis, and past
rounds from an earlier system (matcher/history.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

import click

from matcher import history
from unmentoring.app import App
from unmentoring.cli_members import ImportRefused, read_spreadsheet_csv
from unmentoring.csv_cells import restore, write_csv


def make_report_group(open_app: Callable[[], App]) -> click.Group:
    @click.group()
    def report() -> None:
        """Export the rounds for your own analysis; import past rounds from an earlier system."""

    @report.command()
    @click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
    @click.option("--contacts", is_flag=True, help="Name members by address (default: by member id).")
    @click.option("--output", type=click.File("w"), default="-", help="File to write (default: stdout).")
    def export(fmt: str, contacts: bool, output: TextIO) -> None:
        """Every round's groups, outcomes and reasons: one row per group. No contact details unless
        --contacts (then the CSV can be imported again with `report import`)."""
        with open_app() as app:
            rows = history.group_rows(app.store, contacts=contacts)
        if fmt == "json":
            json.dump(rows, output, indent=2)
            output.write("\n")
        else:
            write_csv(output, history.COLUMNS, rows)

    @report.command("import")
    @click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="Check every row and report, changing nothing.")
    def import_history(csv_file: Path, dry_run: bool) -> None:
        """Import past rounds: columns date, members (addresses, "; "-separated) and met (yes/no) or
        outcome; `report export --contacts` writes this format.

        Every row is checked first; if any row is bad, the bad rows are reported by line number and
        nothing is imported. Members must be imported first (`members import`)."""
        text = read_spreadsheet_csv(csv_file)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        missing = [c for c in ("date", "members") if c not in columns]
        if missing or not {"met", "outcome"} & set(columns):
            wanted = ", ".join(missing + ([] if {"met", "outcome"} & set(columns) else ["met (or outcome)"]))
            raise ImportRefused(
                f"line 1: no column {wanted} (columns: {', '.join(reader.fieldnames or []) or 'none'}); "
                "nothing imported"
            )
        with open_app() as app:
            plan, problems = history.plan_import(app.store, _rows(reader))
            for problem in problems:
                click.echo(problem, err=True)
            if problems:
                raise ImportRefused(f"{len(problems)} bad row(s); nothing imported")
            if not plan.rounds:
                raise ImportRefused("no rounds in the file; nothing imported")
            what = (
                f"{len(plan.rounds)} rounds ({plan.rounds[0].round_id} to {plan.rounds[-1].round_id}), "
                f"{plan.group_count} groups; {len(plan.earlier_joins)} members' join dates moved back "
                "to their first round"
            )
            if dry_run:
                click.echo(f"dry run: would import {what}")
                return
            history.apply_import(app.store, plan)
        click.echo(f"imported {what}")

    return report


def _rows(reader: csv.DictReader) -> Iterator[tuple[int, Mapping[str, str]]]:
    """Each row with the line it starts on (a quoted cell may span lines), column names lower-cased
    and cells as written before our export neutralised them."""
    start = reader.line_num + 1
    for record in reader:
        cells = {(k or "").strip().lower(): restore(v or "") for k, v in record.items() if isinstance(v, str)}
        yield start, cells
        start = reader.line_num + 1
