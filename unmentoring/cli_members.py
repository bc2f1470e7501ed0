"""`unmentoring members ...`: list, show, add, remove, import and export members."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from mailkit.addresses import canonical_address
from matcher import members as member_ops
from matcher import tokens
from matcher.history import parse_date
from matcher.model import Member, MemberStatus, Notice
from unmentoring.csv_cells import restore, write_csv

if TYPE_CHECKING:  # rounds, tokens and sending are imported by the commands that use them
    from unmentoring.app import App

EXPORT_FIELDS = (
    "address",
    "name",
    "org",
    "about",
    "status",
    "frequency",
    "pause_until",
    "joined_at",
    "left_at",
)
MAX_FIELD = 500


@dataclass(frozen=True)
class ImportRow:
    line: int
    address: str
    name: str
    org: str
    about: str
    joined_on: date | None = None  # the sign-up form's Timestamp, when --joined-column names it
    frequency: int | None = None


class ImportRefused(click.ClickException):
    exit_code = 1


def make_members_group(open_app: Callable[[], App]) -> click.Group:
    @click.group()
    def members() -> None:
        """List, show, add, remove, import and export members."""

    @members.command("list")
    @click.option("--status", type=click.Choice([s.value for s in MemberStatus]), help="Only this status.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def list_members(status: str | None, as_json: bool) -> None:
        """One line per member: address, status, frequency, name, organisation."""
        with open_app() as app:
            chosen = [
                m
                for m in sorted(app.store.all(Member), key=lambda m: m.address)
                if not m.erased and not (status and m.status != status)
            ]
        if as_json:
            rows = [
                {k: v for k, v in m.to_dict().items() if k in EXPORT_FIELDS} | {"name": m.name}
                for m in chosen
            ]
            click.echo(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
            return
        for m in chosen:
            click.echo(f"{m.address}\t{m.status}\tevery {m.frequency}\t{m.name}\t{m.org}")

    @members.command()
    @click.argument("address")
    def show(address: str) -> None:
        """Everything held about one member, as JSON."""

        with open_app() as app:
            member = _require(app, address)
            click.echo(json.dumps(member_ops.member_data(app.store, member), indent=2, default=str))

    @members.command()
    @click.argument("address")
    @click.option("--name", default="")
    @click.option("--org", default="")
    @click.option("--about", default="")
    def add(address: str, name: str, org: str, about: str) -> None:
        """Add an active member (who agreed elsewhere, e.g. on a sign-up form) and welcome them."""
        try:
            row = _check_row(1, address, name, org, about)
        except click.BadParameter as exc:
            raise click.ClickException(exc.message.removeprefix("line 1: ")) from None
        with open_app() as app, app.store.transaction():
            added = _add_rows(app, [row])
        click.echo(f"added {added} member" + ("" if added == 1 else "s"))

    @members.command()
    @click.argument("address")
    def remove(address: str) -> None:
        """Mark a member as left (no email is sent)."""

        with open_app() as app, app.store.transaction():
            member = _require(app, address)
            member_ops.mark_left(app.store, member, app.clock.now())
        click.echo(f"{address}: left")

    @members.command("import")
    @click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--email-column", default="email", show_default=True)
    @click.option("--name-column", default="name", show_default=True)
    @click.option("--org-column", default="organisation", show_default=True)
    @click.option("--about-column", default="about", show_default=True)
    @click.option("--joined-column", default="", help="Original join dates, e.g. the form's Timestamp.")
    @click.option("--frequency-column", default="", help="Every how many rounds (1, 2 or 3).")
    @click.option("--dry-run", is_flag=True, help="Check every row and report, changing nothing.")
    def import_members(
        csv_file: TextIO,
        email_column: str,
        name_column: str,
        org_column: str,
        about_column: str,
        joined_column: str,
        frequency_column: str,
        dry_run: bool,
    ) -> None:
        """Import members from a CSV export of a sign-up form or spreadsheet.

        Every row is checked first; if any row is bad, the bad rows are reported by line number and nothing
        is imported.
        """
        text = read_spreadsheet_csv(csv_file)
        rows, problems = read_import_rows(
            io.StringIO(text, newline=""),
            email_column,
            name_column,
            org_column,
            about_column,
            (joined_column, frequency_column),
        )
        for problem in problems:
            click.echo(problem, err=True)
        if problems:
            raise ImportRefused(f"{len(problems)} bad row(s); nothing imported")
        from tqdm import tqdm

        with open_app() as app:
            new = [r for r in rows if not member_ops.is_member(member_ops.find_member(app.store, r.address))]
            if dry_run:
                click.echo(f"dry run: {len(new)} to add, {len(rows) - len(new)} already members")
                return
            with app.store.transaction():
                added = _add_rows(app, tqdm(new, desc="importing", unit="member", disable=len(new) < 50))
        click.echo(f"imported {added} members ({len(rows) - len(new)} already members)")

    @members.command()
    @click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
    @click.option("--output", type=click.File("w"), default="-", help="File to write (default: stdout).")
    def export(fmt: str, output: TextIO) -> None:
        """Export members (not erased ones) as CSV or JSON."""
        with open_app() as app:
            rows = [
                _exported(m) for m in sorted(app.store.all(Member), key=lambda m: m.address) if not m.erased
            ]
        if fmt == "json":
            json.dump(rows, output, indent=2)
            output.write("\n")
        else:
            write_csv(output, EXPORT_FIELDS, rows)

    return members


def read_spreadsheet_csv(path: Path) -> str:
    """A CSV file saved from a spreadsheet, as text; ImportRefused saying how to save it otherwise."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            f"{path}: not UTF-8 text (byte {exc.start}); save it from the spreadsheet as "
            "'CSV UTF-8' and try again; nothing imported"
        ) from None


def read_import_rows(
    source: TextIO,
    email_column: str,
    name_column: str,
    org_column: str,
    about_column: str,
    history_columns: tuple[str, str] = ("", ""),
) -> tuple[list[ImportRow], list[str]]:
    """The rows to import and one message per bad row ("line N: ..."); the header is line 1.
    ``history_columns``: the join date and frequency columns, "" for none."""
    reader = csv.DictReader(source)
    columns = reader.fieldnames or []
    for column in (email_column, *history_columns):
        if column and column not in columns:
            return [], [f"line 1: no column {column!r} (columns: {', '.join(columns) or 'none'})"]
    joined_column, frequency_column = history_columns
    rows: list[ImportRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        try:
            row = _check_row(
                line,
                record.get(email_column) or "",
                record.get(name_column) or "",
                record.get(org_column) or "",
                record.get(about_column) or "",
            )
            row = _with_history(line, row, record, joined_column, frequency_column)
        except click.BadParameter as exc:
            problems.append(exc.message)
            continue
        if row.address in seen:
            problems.append(f"line {line}: {row.address} repeats line {seen[row.address]}")
            continue
        seen[row.address] = line
        rows.append(row)
    return rows, problems


def _check_row(line: int, address: str, name: str, org: str, about: str) -> ImportRow:

    canonical = canonical_address(address)
    if not canonical or "@" not in canonical:
        raise click.BadParameter(f"line {line}: not an email address: {address.strip()[:80]!r}")
    for label, value in (("name", name), ("org", org), ("about", about)):
        if len(value) > MAX_FIELD:
            raise click.BadParameter(f"line {line}: {label} is longer than {MAX_FIELD} characters")
    # a cell our own export neutralised ('=...) comes back as it was
    return ImportRow(line, canonical, restore(name.strip()), restore(org.strip()), restore(about.strip()))


def _with_history(
    line: int, row: ImportRow, record: dict[str, str], joined_column: str, frequency_column: str
) -> ImportRow:
    joined = (record.get(joined_column) or "").strip() if joined_column else ""
    frequency = (record.get(frequency_column) or "").strip() if frequency_column else ""
    try:
        joined_on = parse_date(joined) if joined else None
    except ValueError as exc:
        raise click.BadParameter(f"line {line}: {joined_column}: {exc}") from None
    if frequency and frequency not in ("1", "2", "3"):
        raise click.BadParameter(
            f"line {line}: {frequency_column}: expected 1, 2 or 3, got {frequency[:20]!r}"
        )
    return replace(row, joined_on=joined_on, frequency=int(frequency) if frequency else None)


def _add_rows(app: App, rows) -> int:

    now = app.clock.now()
    notices = []
    count = 0
    for row in rows:
        if member_ops.is_member(member_ops.find_member(app.store, row.address)):
            continue
        profile = {"name": row.name, "org": row.org, "about": row.about}
        member = member_ops.start_joining(app.store, row.address, profile, now)
        member = member_ops.activate(app.store, member, now)
        if row.joined_on is not None or row.frequency is not None:
            joined = (
                datetime.combine(row.joined_on, time(0), tzinfo=UTC) if row.joined_on else member.joined_at
            )
            member = replace(member, joined_at=joined, frequency=row.frequency or member.frequency)
            app.store.put(member)
        notices.append(
            Notice(
                kind="welcome",
                to=[member.address],
                values={
                    "name": member.display_name,
                    "next_round_on": app.processor.settings.next_round_on(now),
                    "frequency": member.frequency,
                },
                key=f"welcome:{member.id}",
                unsubscribe_token=tokens.member_token(app.store, member, now).token,
            )
        )
        count += 1
    app.outbox.queue_many(notices)
    return count


def _exported(member: Member) -> dict[str, object]:
    """What `members export` and `members list --json` show of a member."""
    return {k: v for k, v in member.to_dict().items() if k in EXPORT_FIELDS}


def _require(app: App, address: str) -> Member:
    from matcher import members as member_ops

    member = member_ops.find_member(app.store, canonical_address(address))
    if member is None:
        raise click.ClickException(f"no member with address {address}")
    return member
