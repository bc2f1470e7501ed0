"""`unmentoring status`, `round ...`, `outbox ...` and `summary ...`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from mailer.outbox import OutboxError
from mailer.summary import gallery
from matcher import rounds
from matcher.calendar import RoundDates, current_round, describe_schedule, next_round, round_dates
from matcher.model import Member, MemberStatus, OutboxEntry, Round
from matcher.rounds import RoundPreview
from unmentoring import service
from unmentoring.app import App

OpenApp = Callable[[], App]


def make_round_group(open_app: OpenApp) -> click.Group:
    @click.group("round")
    def round_() -> None:
        """Preview, start, follow up, close and show rounds."""

    @round_.command()
    @click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="The round of this date's month.")
    @click.option("--seed", type=int, help="Pairing seed (default: the one the round will use).")
    def preview(on: datetime | None, seed: int | None) -> None:
        """Print the groups the round would make, changing nothing."""
        with open_app() as app:
            dates = _dates_for(app, on)
            click.echo(format_preview(rounds.preview_round(app.store, dates, seed=seed)))

    @round_.command()
    @click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="The round of this date's month.")
    @click.option("--seed", type=int, help="Pairing seed (default: one fixed per round; stored with it).")
    @click.option("--no-send", is_flag=True, help="Queue the introductions without sending them now.")
    def start(on: datetime | None, seed: int | None, no_send: bool) -> None:
        """Start the round now (pair everyone eligible) and send the introductions."""
        with open_app() as app:
            dates = _dates_for(app, on)
            done = app.cycle.start(dates, app.clock.now(), seed=seed)
            click.echo(", ".join(done) or f"round {dates.round_id} was already started")
            _send(app, no_send)

    @round_.command()
    @click.argument("round_id", required=False)
    @click.option("--no-send", is_flag=True)
    def followup(round_id: str | None, no_send: bool) -> None:
        """Ask every member of the round whether they met (once per round)."""
        with open_app() as app:
            round_id = round_id or _latest_round(app).id
            done = app.cycle.send_followups(round_id, app.clock.now())
            click.echo(", ".join(done) or f"round {round_id}: follow-ups were already sent")
            _send(app, no_send)

    @round_.command()
    @click.argument("round_id", required=False)
    @click.option("--no-send", is_flag=True)
    def close(round_id: str | None, no_send: bool) -> None:
        """Close the round (silence becomes "no reply", ghosts are paused) and send the summary."""
        with open_app() as app:
            round_id = round_id or _latest_round(app).id
            now = app.clock.now()
            done = app.cycle.close(round_id, now) + app.cycle.send_summary(round_id, now)
            click.echo(", ".join(done) or f"round {round_id} was already closed")
            _send(app, no_send)

    @round_.command()
    @click.argument("round_id", required=False)
    def show(round_id: str | None) -> None:
        """The round's groups, hosts and outcomes."""
        with open_app() as app:
            stored = app.store.get(Round, round_id) if round_id else _latest_round(app)
            if stored is None:
                raise click.ClickException(f"no round {round_id}")
            click.echo(f"round {stored.id} ({stored.state}), started {stored.starts_on}, seed {stored.seed}")
            for group in rounds.groups_of_round(app.store, stored.id):
                people = rounds.members_of(app.store, group.members)
                result = group.result()
                click.echo(f"  group {group.number}: {result.value if result else 'open'}")
                for m in people:
                    outcome = group.outcomes.get(m.id)
                    said = "-"
                    if outcome is not None:
                        said = outcome.result.value + (f" ({outcome.reason})" if outcome.reason else "")
                    host = " [host]" if m.id == group.host else ""
                    click.echo(f"    {m.display_name} <{m.address}> {m.org}{host}: {said}")
            for member_id in stored.unpaired:
                click.echo(f"  unpaired: {member_id}")

    return round_


def make_outbox_group(open_app: OpenApp) -> click.Group:
    @click.group()
    def outbox() -> None:
        """See and retry outgoing mail."""

    @outbox.command("list")
    @click.option("--status", type=click.Choice(["queued", "sent", "failed"]))
    def list_entries(status: str | None) -> None:
        """One line per email: key, kind, status, attempts, last error."""
        with open_app() as app:
            app.outbox.fold_journal()
            entries = app.store.find(OutboxEntry, "status", status) if status else app.store.all(OutboxEntry)
            for e in entries:
                click.echo(f"{e.key}\t{e.kind}\t{e.status}\t{e.attempts}\t{e.last_error}")

    @outbox.command()
    @click.argument("keys", nargs=-1)
    @click.option("--all-failed", is_flag=True, help="Retry every failed email.")
    def retry(keys: tuple[str, ...], all_failed: bool) -> None:
        """Queue failed emails again (by key, or --all-failed) and send what is due."""
        with open_app() as app:
            app.outbox.fold_journal()
            with app.store.transaction():
                chosen = (
                    app.store.find(OutboxEntry, "status", "failed")
                    if all_failed
                    else [e for k in keys if (e := app.store.get(OutboxEntry, k)) is not None]
                )
                missing = set(keys) - {e.key for e in chosen}
                if missing:
                    raise click.ClickException(f"no outbox entry {sorted(missing)[0]}")
                try:
                    app.outbox.requeue(chosen)
                except OutboxError as exc:
                    raise click.ClickException(str(exc)) from None
            click.echo(f"queued again: {len(chosen)}")
            _send(app, no_send=False)

    return outbox


def make_summary_command(open_app: OpenApp) -> click.Command:
    @click.command()
    @click.argument("round_id", required=False)
    @click.option(
        "--preview",
        "preview_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write the summary .eml and its PNG pictures into this folder; send nothing.",
    )
    @click.option("--send", is_flag=True, help="Send the summary to the organisers now.")
    @click.option(
        "--gallery",
        "gallery_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write one diagram per round of the whole history into this folder (for a blog post).",
    )
    def summary(round_id: str | None, preview_dir: Path | None, send: bool, gallery_dir: Path | None) -> None:
        """The organisers' summary of a round (default: the latest)."""
        if [bool(preview_dir), send, bool(gallery_dir)].count(True) != 1:
            raise click.UsageError("give exactly one of --preview DIR, --send or --gallery DIR")
        if gallery_dir is not None:
            with open_app() as app:
                pictures = gallery(app.store, app.mail)
            gallery_dir.mkdir(parents=True, exist_ok=True)
            for name, png in pictures.items():
                (gallery_dir / name).write_bytes(png)
            click.echo(f"wrote {len(pictures)} diagrams into {gallery_dir}")
            return
        with open_app() as app:
            round_id = round_id or _latest_round(app).id
            notice = app.cycle.summarise(app.store, round_id, app.clock.now())
            if preview_dir is not None:
                preview_dir.mkdir(parents=True, exist_ok=True)
                message = app.outbox.compose(notice)
                (preview_dir / f"summary-{round_id}.eml").write_bytes(bytes(message))
                # the pictures as a mail client saves them: the attached files
                names = []
                for part in message.iter_attachments():
                    name = part.get_filename() or ""
                    (preview_dir / name).write_bytes(part.get_payload(decode=True))
                    names.append(name)
                click.echo(f"wrote {preview_dir / f'summary-{round_id}.eml'} and {', '.join(names)}")
                return
            notice.key = f"summary:{round_id}:manual:{app.clock.now().isoformat()}"
            with app.store.transaction():
                app.outbox.queue_many([notice])
            _send(app, no_send=False)

    return summary


def make_status_command(open_app: OpenApp) -> click.Command:
    @click.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def status(as_json: bool) -> None:
        """Members by status, the rounds, the outbox and when the next round starts."""
        with open_app() as app:
            now = app.clock.now()
            app.outbox.fold_journal()
            members = [m for m in app.store.all(Member) if not m.erased]
            latest = max(app.store.all(Round), key=lambda r: r.ordinal, default=None)
            info = {
                "mode": app.config.mode,
                "programme": app.config.programme.name,
                "address": app.config.programme.address,
                "members": {s.value: sum(m.status is s for m in members) for s in MemberStatus},
                "latest_round": latest.id if latest else None,
                "latest_round_state": latest.state.value if latest else None,
                "next_round_on": next_round(app.calendar, now).starts_on.isoformat(),
                "schedule": describe_schedule(app.calendar),
                "outbox": {
                    s: app.store.count(OutboxEntry, "status", s) for s in ("queued", "sent", "failed")
                },
            }
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        for key, value in info.items():
            click.echo(f"{key}: {value}")

    return status


def _dates_for(app: App, on: datetime | None) -> RoundDates:
    if on is None:
        return (
            current_round(app.calendar, app.clock.now())
            if _current_is_open(app)
            else next_round(app.calendar, app.clock.now())
        )
    return round_dates(app.calendar, on.year, on.month)


def _current_is_open(app: App) -> bool:
    """Whether this month's round can still start: its meeting week has not ended."""
    now = app.clock.now()
    dates = current_round(app.calendar, now)
    return now.astimezone(app.calendar.zone).date() <= dates.meeting_week_end


def _latest_round(app: App) -> Round:
    latest = max(app.store.all(Round), key=lambda r: r.ordinal, default=None)
    if latest is None:
        raise click.ClickException("no round has been started yet")
    return latest


def _send(app: App, no_send: bool) -> None:
    if no_send:
        return
    report = service.deliver_outbox(app, progress=True)
    click.echo(f"outbox: {report}")


def format_preview(preview: RoundPreview) -> str:
    """Plain text for the organiser: each group with names, organisations and any warnings."""
    state = "already started; recorded groups" if preview.already_started else "preview"
    lines = [
        f"Round {preview.round_id} starting {preview.starts_on.isoformat()} ({state}, seed {preview.seed})",
        f"{preview.people} people in {len(preview.groups)} groups; "
        f"{preview.repeats} repeated pairs, {preview.same_org} same-organisation pairs",
        "",
    ]
    for group in preview.groups:
        people = "; ".join(_describe(m) for m in group.members)
        lines.append(f"Group {group.number}: {people}  [host: {_name(group.host)}]")
        for a, b, round_id in group.repeats:
            lines.append(f"    repeat: {_name(a)} and {_name(b)} last met in round {round_id}")
        for a, b in group.same_org:
            lines.append(f"    same organisation: {_name(a)} and {_name(b)} ({a.org.strip()})")
        if not group.repeats and not group.same_org:
            lines.append("    no repeat, no shared organisation")
    if preview.unpaired:
        lines.append("")
        names = ", ".join(_describe(m) for m in preview.unpaired)
        lines.append(f"Unpaired (nobody to pair with): {names}")
    if not preview.groups and not preview.unpaired:
        lines.append("Nobody is eligible for this round.")
    return "\n".join(lines) + "\n"


def _name(member: Member) -> str:
    if member.erased or not (member.name or member.address):
        return f"(erased member {member.id})"
    return member.display_name


def _describe(member: Member) -> str:
    org = member.org.strip()
    return f"{_name(member)} ({org})" if org else f"{_name(member)} (no organisation)"
