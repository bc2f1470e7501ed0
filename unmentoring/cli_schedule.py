"""`unmentoring round skip`: skip one round (or take the skip back); the rest of the schedule is config."""

from __future__ import annotations

from collections.abc import Callable

import click

from matcher.calendar import describe_schedule, next_round
from matcher.skips import skip_round, unskip_round
from unmentoring.app import App

OpenApp = Callable[[], App]


def make_skip_command(open_app: OpenApp) -> click.Command:
    @click.command("skip")
    @click.argument("round_id", required=False)
    @click.option("--undo", is_flag=True, help="Hold the round after all.")
    def skip(round_id: str | None, undo: bool) -> None:
        """Skip one round (default: the next one, YYYY-MM); the round before it stays open until the
        next round that is held."""
        with open_app() as app:
            round_id = round_id or next_round(app.calendar, app.clock.now()).round_id
            if undo:
                if not unskip_round(app.store, round_id):
                    raise click.ClickException(f"round {round_id} was not skipped")
                click.echo(f"round {round_id} will be held")
                return
            try:
                skip_round(app.store, round_id)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"round {round_id} skipped")
        with open_app() as app:
            click.echo(f"schedule: {describe_schedule(app.calendar)}")
            click.echo(f"next round: {next_round(app.calendar, app.clock.now()).starts_on.isoformat()}")

    return skip
