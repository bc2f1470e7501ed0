"""`unmentoring status`, `round ...`, `outbox ...` and `summary ...`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # what a command needs is imported when it runs: `--help` and `status` start fast
    from matcher.calendar import RoundDates
    from matcher.model import Member, Round
    from matcher.rounds import RoundPreview
    from unmentoring.app import App

OpenApp = Callable[[], "App"]


def make_round_group(open_app: OpenApp) -> click.Group:
    @click.group("round")
    def round_() -> None:
        """Preview, start, follow up, close and show rounds."""

    @round_.command()
    @click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="The round of this date's month.")
    @click.option("--seed", type=int, help="Pairing seed (default: the one the round will use).")
    def preview(on: datetime | None, seed: int | None) -> None:
        """Print the groups the round would make, changing nothing."""
        from matcher import rounds

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
            _check_can_send(app, no_send)
            dates = _dates_for(app, on)
            done = app.cycle.start(dates, app.clock.now(), seed=seed)
            click.echo(", ".join(done) or f"round {dates.round_id} was already started")
            _send(app, no_send)

    @round_.command()
    @click.argument("round_id", required=False)
    @click.option("--no-send", is_flag=True)
    @click.option("--force", is_flag=True, help="Even before the round's meeting week has ended.")
    def followup(round_id: str | None, no_send: bool, force: bool) -> None:
        """Ask every member of the round whether they met (once per round)."""
        with open_app() as app:
            _check_can_send(app, no_send)
            round_id = round_id or _latest_round(app).id
            _check_meeting_week_over(app, round_id, "asking whether people met", force)
            done = app.cycle.send_followups(round_id, app.clock.now())
            click.echo(", ".join(done) or f"round {round_id}: follow-ups were already sent")
            _send(app, no_send)

    @round_.command()
    @click.argument("round_id", required=False)
    @click.option("--no-send", is_flag=True)
    @click.option("--force", is_flag=True, help="Even before the round's meeting week has ended.")
    def close(round_id: str | None, no_send: bool, force: bool) -> None:
        """Close the round (silence becomes "no reply", ghosts are paused) and send the summary."""
        with open_app() as app:
            _check_can_send(app, no_send)
            round_id = round_id or _latest_round(app).id
            _check_meeting_week_over(
                app, round_id, "closing counts everyone who has not answered yet as silent", force
            )
            now = app.clock.now()
            done = app.cycle.close(round_id, now) + app.cycle.send_summary(round_id, now)
            click.echo(", ".join(done) or f"round {round_id} was already closed")
            _send(app, no_send)

    @round_.command()
    @click.argument("round_id", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def show(round_id: str | None, as_json: bool) -> None:
        """The round's groups, hosts and outcomes."""
        from matcher import rounds
        from matcher.model import Round

        with open_app() as app:
            stored = app.store.get(Round, round_id) if round_id else _latest_round(app)
            if stored is None:
                raise click.ClickException(f"no round {round_id}")
            found = rounds.groups_of_round(app.store, stored.id)
            counted = rounds.results_of(found)
            groups = []
            for group in found:
                result = group.result()
                people = []
                for m in rounds.members_of(app.store, group.members):
                    outcome = group.outcomes.get(m.id)
                    people.append(
                        {
                            "name": m.display_name,
                            "address": m.address,
                            "org": m.org,
                            "host": m.id == group.host,
                            "said": outcome.result.value if outcome is not None else None,
                            "reason": outcome.reason if outcome is not None else "",
                        }
                    )
                groups.append(
                    {
                        "number": group.number,
                        "result": result.value if result else None,
                        "rematch": group.rematch,
                        "members": people,
                    }
                )
        shown = {
            "id": stored.id,
            "state": stored.state.value,
            "started": stored.starts_on,
            "seed": stored.seed,
            "steps_done": [str(step) for step in stored.steps_done],
            "results": dataclasses.asdict(counted),
            "groups": groups,
            "unpaired": list(stored.unpaired),
        }
        if as_json:
            _echo_json(shown)
            return
        click.echo(f"round {stored.id} ({stored.state}), started {stored.starts_on}, seed {stored.seed}")
        click.echo(
            f"  {counted.groups} groups: {counted.met} met, {counted.missed} missed, "
            f"{counted.disputed} disputed, {counted.no_reply} no reply or not yet; {counted.rematch_line}"
        )
        for group in groups:
            rematched = " (rematch)" if group["rematch"] else ""
            click.echo(f"  group {group['number']}{rematched}: {group['result'] or 'open'}")
            for m in group["members"]:
                said = "-"
                if m["said"] is not None:
                    said = m["said"] + (f" ({m['reason']})" if m["reason"] else "")
                host = " [host]" if m["host"] else ""
                click.echo(f"    {m['name']} <{m['address']}> {m['org']}{host}: {said}")
        for member_id in stored.unpaired:
            click.echo(f"  unpaired: {member_id}")

    return round_


def make_outbox_group(open_app: OpenApp) -> click.Group:
    @click.group()
    def outbox() -> None:
        """See and retry outgoing mail."""

    @outbox.command("list")
    @click.option("--status", type=click.Choice(["queued", "sent", "failed"]))
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def list_entries(status: str | None, as_json: bool) -> None:
        """One line per email: key, kind, status, attempts, last error."""
        from matcher.model import OutboxEntry

        with open_app() as app:
            app.fold_outbox_journal()
            entries = app.store.find(OutboxEntry, "status", status) if status else app.store.all(OutboxEntry)
            rows = [
                {
                    "key": e.key,
                    "kind": e.kind,
                    "status": str(e.status),
                    "attempts": e.attempts,
                    "last_error": e.last_error,
                    "recipients": list(e.recipients),
                    "message_id": e.message_id,
                    "sent_at": e.sent_at,
                }
                for e in entries
            ]
        if as_json:
            _echo_json(rows)
            return
        for row in rows:
            click.echo(
                f"{row['key']}\t{row['kind']}\t{row['status']}\t{row['attempts']}\t{row['last_error']}"
            )

    @outbox.command()
    @click.argument("keys", nargs=-1)
    @click.option("--all-failed", is_flag=True, help="Retry every failed email.")
    def retry(keys: tuple[str, ...], all_failed: bool) -> None:
        """Queue failed emails again (by key, or --all-failed) and send what is due."""
        from mailer.outbox import OutboxError
        from matcher.model import OutboxEntry

        with open_app() as app:
            _check_can_send(app, no_send=False)
            app.fold_outbox_journal()
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
            from mailer.summary import gallery

            with open_app() as app:
                pictures = gallery(app.store, app.mail)
            gallery_dir.mkdir(parents=True, exist_ok=True)
            for name, png in pictures.items():
                (gallery_dir / name).write_bytes(png)
            click.echo(f"wrote {len(pictures)} diagrams into {gallery_dir}")
            return
        with open_app() as app:
            _check_can_send(app, no_send=preview_dir is not None)
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
        """Members by status, the rounds, the outbox, when the next round starts and how mail is flowing."""
        from matcher.calendar import describe_schedule
        from matcher.model import Member, MemberStatus, OutboxEntry, Round
        from unmentoring.health import health_path, load_health
        from unmentoring.upcoming import upcoming_round

        with open_app() as app:
            now = app.clock.now()
            app.fold_outbox_journal()
            members = [m for m in app.store.all(Member) if not m.erased]
            latest = max(app.store.all(Round), key=lambda r: r.ordinal, default=None)
            info: dict[str, Any] = {
                "mode": app.config.mode,
                "programme": app.config.programme.name,
                "address": app.config.programme.address,
                "members": {s.value: sum(m.status is s for m in members) for s in MemberStatus},
                "latest_round": latest.id if latest else None,
                "latest_round_state": latest.state.value if latest else None,
                "next_round_on": upcoming_round(app.calendar, app.store, now).starts_on.isoformat(),
                "schedule": describe_schedule(app.calendar),
                "outbox": {
                    s: app.store.count(OutboxEntry, "status", s) for s in ("queued", "sent", "failed")
                },
            }
            health = load_health(health_path(app.config.data_dir))
        if as_json:
            _echo_json({**info, **health.to_dict()})
            return
        for key, value in info.items():
            if isinstance(value, dict):
                value = ", ".join(f"{n} {name}" for name, n in value.items())
            elif value is None:
                value = "none"
            click.echo(f"{key}: {value}")
        for line in health.lines():
            click.echo(line)

    return status


def _dates_for(app: App, on: datetime | None) -> RoundDates:
    from matcher.calendar import current_round, next_round, round_dates

    if on is None:
        return (
            current_round(app.calendar, app.clock.now())
            if _current_is_open(app)
            else next_round(app.calendar, app.clock.now())
        )
    return round_dates(app.calendar, on.year, on.month)


def _current_is_open(app: App) -> bool:
    """Whether this month's round can still start: its meeting week has not ended."""
    from matcher.calendar import current_round

    now = app.clock.now()
    dates = current_round(app.calendar, now)
    return now.astimezone(app.calendar.zone).date() <= dates.meeting_week_end


def _check_meeting_week_over(app: App, round_id: str, what: str, force: bool) -> None:
    """Before the meeting week has ended people may still be meeting: say so, and go on only with --force."""
    from matcher.calendar import round_dates_for_id

    try:
        dates = round_dates_for_id(app.calendar, round_id)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    today = app.clock.now().astimezone(app.calendar.zone).date()
    if today > dates.meeting_week_end:
        return
    click.echo(
        f"warning: round {round_id}'s meeting week runs until {dates.meeting_week_end:%A %d %B %Y}; "
        f"{what} now is early",
        err=True,
    )
    if not force:
        raise click.ClickException("nothing done; add --force to do it anyway")


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _latest_round(app: App) -> Round:
    from matcher.model import Round

    latest = max(app.store.all(Round), key=lambda r: r.ordinal, default=None)
    if latest is None:
        raise click.ClickException("no round has been started yet")
    return latest


def _check_can_send(app: App, no_send: bool) -> None:
    """Before a command changes anything: it will send, so the mail server's secrets must be there."""
    if not no_send:
        app.config.require_secrets()


def _send(app: App, no_send: bool) -> None:
    from unmentoring import service

    if no_send:
        return
    report = service.deliver_outbox(app, progress=True)
    click.echo(f"outbox: {service.describe_delivery(report)}")


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
