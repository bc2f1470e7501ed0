"""Cadence experiments: every 1, 2 or 3 months, months skipped every year, and one round skipped once
(`round skip`), seen through the calendar, the configuration, a year of the cycle and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from matcher.calendar import Calendar, current_round, describe_schedule, next_round, round_dates
from matcher.clock import FakeClock
from matcher.members import activate, start_joining
from matcher.model import Round
from matcher.skips import skip_round
from tests.helpers.cli_env import CliEnv, write_config
from tests.servers import free_port
from unmentoring.app import App
from unmentoring.config import Config, ConfigError, Programme, load_config

ZONE = ZoneInfo("Europe/London")


def calendar(**changes) -> Calendar:
    base = {
        "zone": ZONE,
        "which": 0,
        "weekday": 0,
        "start_time": time(9, 0),
        "meeting_week": 1,
        "followup_weekday": 0,
        "reminder_after_days": 5,
    }
    return Calendar(**(base | changes))


def held_in(cal: Calendar, year: int) -> list[str]:
    """The rounds a year holds, found by walking next_round from New Year."""
    found = []
    now = datetime(year, 1, 1, tzinfo=UTC)
    while True:
        dates = next_round(cal, now)
        if dates.starts_on.year != year:
            return found
        found.append(dates.round_id)
        now = dates.starts_at


def test_every_two_or_three_months_counts_from_january() -> None:
    assert held_in(calendar(every_months=2), 2026) == [f"2026-{m:02d}" for m in (1, 3, 5, 7, 9, 11)]
    assert held_in(calendar(every_months=3), 2026) == ["2026-01", "2026-04", "2026-07", "2026-10"]
    assert len(held_in(calendar(), 2026)) == 12


def test_a_round_stays_open_until_the_next_round_held() -> None:
    cal = calendar(every_months=2, skip_months=frozenset({9}))
    july = round_dates(cal, 2026, 7)
    assert july.closes_at == round_dates(cal, 2026, 11).starts_at  # September skipped
    assert july.schedule == "every 2 months, meeting week 1"
    in_august = datetime(2026, 8, 20, 12, tzinfo=UTC)
    assert current_round(cal, in_august).round_id == "2026-07"
    assert next_round(cal, in_august).round_id == "2026-11"


def test_skipped_months_and_a_one_off_skip() -> None:
    cal = calendar(skip_months=frozenset({8, 12}), skipped=frozenset({"2026-05"}))
    held = held_in(cal, 2026)
    assert "2026-08" not in held and "2026-12" not in held and "2026-05" not in held
    assert len(held) == 9
    assert round_dates(cal, 2026, 4).closes_at == round_dates(cal, 2026, 6).starts_at
    assert describe_schedule(cal) == (
        "the first Monday of every month, meeting week 1; no round in August, December; skipped once: 2026-05"
    )


def test_a_calendar_without_any_round_is_refused() -> None:
    with pytest.raises(ValueError, match="every_months"):
        calendar(every_months=4)
    with pytest.raises(ValueError, match="no month"):
        calendar(every_months=3, skip_months=frozenset({1, 4, 7, 10}))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("every_months = 4", "programme.every_months: expected 1, 2 or 3, got 4"),
        ('skip = ["Augst"]', "programme.skip: expected month names like 'August', got 'Augst'"),
        ('every_months = 6\nskip = ["Jan"]', "programme.every_months: expected 1, 2 or 3, got 6"),
        ('every_months = 3\nskip = ["Jan", "apr", "July", "October"]', "programme.skip: skips every month"),
        ('skip = "August"', "programme.skip: expected a list of strings, got str 'August'"),
    ],
)
def test_schedule_keys_are_checked(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "unmentoring.toml"
    path.write_text(f"[programme]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert problem in str(info.value)


def test_a_year_of_the_cycle_holds_only_the_rounds_the_schedule_says(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 8, tzinfo=UTC))
    config = Config(
        programme=Programme(data_dir=str(tmp_path / "data"), every_months=2, skip=["July"]),
        base_dir=tmp_path,
    )
    with App.open(config, clock) as app, app.store.transaction():
        for n in range(4):
            joining = start_joining(app.store, f"p{n}@example.org", {"name": f"P{n}"}, clock.now())
            activate(app.store, joining, clock.now())
    skipped_once = False
    while clock.now().year == 2026:
        with App.open(config, clock) as app:
            if not skipped_once and clock.now().month == 4:
                skip_round(app.store, "2026-05")
                skipped_once = True
                continue  # the next pass reads the skip, as the daemon's next pass would
            app.cycle.run_due(clock.now())
        clock.advance(timedelta(hours=12))
    with App.open(config, clock) as app:
        held = sorted(r.id for r in app.store.all(Round))
        schedules = {r.schedule for r in app.store.all(Round)}
        march = app.store.get(Round, "2026-03")
        assert march is not None and march.closed_at is not None
    assert held == ["2026-01", "2026-03", "2026-09", "2026-11"]
    assert schedules == {"every 2 months, meeting week 1"}
    # March's round stayed open through the skipped May and July rounds, until September's began.
    assert march.closed_at.date() >= round_dates(calendar(), 2026, 9).starts_on


def test_round_skip_and_status_show_the_schedule(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "programme", sandbox_port=free_port())
    write_config(
        env.config_path,
        data_dir=env.data_dir,
        sandbox_port=env.sandbox_port,
        extra='every_months = 3\nskip = ["October"]',
    )
    before = env.status()
    assert before["schedule"] == (
        "the first Monday of every 3 months (January, April, July, October), meeting week 1;"
        " no round in October"
    )
    upcoming = before["next_round_on"][:7]

    said = env.ok("round", "skip").stdout
    assert f"round {upcoming} skipped" in said
    after = env.status()
    assert after["schedule"].endswith(f"; skipped once: {upcoming}")
    assert after["next_round_on"] > before["next_round_on"]

    assert "will be held" in env.ok("round", "skip", upcoming, "--undo").stdout
    assert env.status() == before
    refused = env.invoke("round", "skip", "2026-13")
    assert refused.exit_code == 1 and "not a round id" in refused.output
