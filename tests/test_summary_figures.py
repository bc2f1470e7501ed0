"""The summary's figures agree: every figure in the text is checked against the chart data it is
drawn from and against a recount from the store, on a programme with joins, leaves, a disabled
address, pauses, disputes and reasons, built with the domain operations a real year uses."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mailer.insight import theme_of
from mailer.render import Renderer
from mailer.settings import mail_settings_from_config
from mailer.summary import build_summary
from matcher import members as ops
from matcher import rounds
from matcher.calendar import round_dates
from matcher.clock import FakeClock
from matcher.model import Member, MemberStatus, Result, Round
from unmentoring.app import App, calendar_from_config, summary_notice
from unmentoring.config import Config, Programme

REASONS = [
    "diary clash",
    "Diary clash with a board meeting",
    "she was ill",
    "on annual leave",
    "too busy this month",
    "never heard back",
    "the cat ate my laptop",
]


def figures_of(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\S.*?)\s{2,}(\S+)$", text.split("Schedule:")[0], re.MULTILINE))


@pytest.fixture
def app(tmp_path: Path):
    clock = FakeClock(datetime(2026, 1, 1, 8, tzinfo=UTC))
    config = Config(programme=Programme(data_dir=str(tmp_path / "data")), base_dir=tmp_path)
    with App.open(config, clock) as opened:
        yield opened


def join(app: App, n: int, when: datetime) -> Member:
    member = ops.start_joining(
        app.store, f"p{n}@example.org", {"name": f"P{n} Person", "org": f"Org {n % 4}"}, when
    )
    return ops.activate(app.store, member, when)


def run_round(app: App, year: int, month: int, answers: int) -> Round:
    """Start the round, record answers for the groups (met, missed with reasons, disputed), close."""
    with app.store.transaction():  # one unit of work, as the cycle runs it
        dates = round_dates(calendar_from_config(app.config), year, month)
        started = rounds.start_round(app.store, dates, dates.starts_at)
        for number, group in enumerate(rounds.groups_of_round(app.store, started.id)):
            kind = (number + answers) % 4
            first, second = group.members[:2]
            when = dates.starts_at + timedelta(days=8)
            if kind == 0:
                rounds.record_outcome(app.store, group.key, first, Result.MET, "", when)
            elif kind == 1:
                reason = REASONS[(number + answers) % len(REASONS)]
                rounds.record_outcome(app.store, group.key, first, Result.MISSED, reason, when)
            elif kind == 2:
                rounds.record_outcome(app.store, group.key, first, Result.MET, "", when)
                rounds.record_outcome(app.store, group.key, second, Result.MISSED, "not really", when)
        rounds.close_round(app.store, started.id, dates.closes_at)
    return app.store.get(Round, started.id)


def test_every_figure_agrees_with_the_chart_data_and_a_recount(app: App) -> None:
    start = datetime(2026, 1, 5, 12, tzinfo=UTC)
    with app.store.transaction():
        people = [join(app, n, start) for n in range(14)]
    first = run_round(app, 2026, 2, answers=0)
    # Between the two rounds: three join, one leaves, one address is disabled by bounces, one pauses.
    between = first.closed_at + timedelta(days=3)
    with app.store.transaction():
        newcomers = [join(app, n, between) for n in range(14, 17)]
        ops.mark_left(app.store, people[0], between)
        disabled = app.store.get(Member, people[1].id)
        for _ in range(3):
            disabled, _ = ops.record_bounce(app.store, disabled, threshold=3)
        ops.pause(app.store, app.store.get(Member, people[2].id), date(2026, 12, 1))
    run_round(app, 2026, 3, answers=1)
    second = app.store.get(Round, "2026-03")
    assert second.closed_at is not None

    notice = summary_notice(
        app.store, "2026-03", second.closed_at, app.mail, app.config, calendar_from_config(app.config)
    )
    text = Renderer(app.mail).render("summary", notice.values, to=notice.to).text
    shown = figures_of(text)
    pictures = notice.values["pictures"]

    # Recount from the store, independently of the summary code.
    members = app.store.all(Member)
    current = [m for m in members if m.status in (MemberStatus.ACTIVE, MemberStatus.PAUSED)]
    groups = rounds.groups_of_round(app.store, "2026-03")
    results = Counter(g.result() or Result.NO_REPLY for g in groups)
    every_group = groups + rounds.groups_of_round(app.store, "2026-02")
    since = first.closed_at

    assert shown["Members (active and paused)"] == str(len(current)) == str(pictures.growth[-1].members)
    assert disabled.status is MemberStatus.DISABLED and disabled.id not in {m.id for m in current}
    assert shown["Active"] == str(sum(m.status is MemberStatus.ACTIVE for m in members))
    assert shown["Paused"] == str(sum(m.status is MemberStatus.PAUSED for m in members))
    label = f"since {since.date().isoformat()}"
    assert shown[f"Joined {label}"] == str(len(newcomers)) == "3"
    assert shown[f"Left {label}"] == "1"
    assert shown["Disabled by bounces"] == "1"
    assert shown["Groups formed"] == str(len(groups)) == str(pictures.rounds[-1].groups)
    assert shown["People paired"] == str(sum(len(g.members) for g in groups))
    assert shown["Met"] == str(results[Result.MET]) == str(pictures.rounds[-1].met)
    assert shown["Missed"] == str(results[Result.MISSED])
    assert shown["Disputed"] == str(results[Result.DISPUTED]) != "0"
    assert shown["No reply"] == str(results[Result.NO_REPLY])
    assert sum(results.values()) == len(groups)
    assert shown["Met rate"] == f"{round(100 * results[Result.MET] / len(groups))}%"
    held = sum(g.result() is Result.MET for g in every_group)
    assert shown["Conversations held so far"] == str(held) == str(sum(p.met for p in pictures.rounds))
    # The chart's round network draws each pairing of this round once, coloured by its result.
    drawn = Counter(edge.outcome for edge in pictures.edges)
    assert drawn[Result.DISPUTED.value] == sum(
        len(g.members) * (len(g.members) - 1) // 2 for g in groups if g.result() is Result.DISPUTED
    )
    # Who has met whom shows every current member, also those who have met nobody.
    assert {m.id for m in current} <= {node.id for node in pictures.met_nodes}

    # Reasons: grouped by theme with counts in the text, every one as written in the CSV.
    attached = notice.values["attachments"]["reasons-2026-03.csv"].decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(attached)))
    missed_reasons = [
        o.reason
        for g in groups
        if g.result() is Result.MISSED
        for o in g.outcomes.values()
        if o.result is Result.MISSED and o.reason
    ]
    assert sorted(r["reason"] for r in rows) == sorted(missed_reasons)
    for theme, count in Counter(r["theme"] for r in rows).items():
        assert f"  {theme}: {count}" in text.splitlines()
    assert "not really" not in attached  # a disputed group's reason is not a missed conversation's


def test_the_first_summary_counts_everyone_who_has_joined(app: App) -> None:
    with app.store.transaction():
        for n in range(10):
            join(app, n, datetime(2026, 1, 20, tzinfo=UTC))
    closed = run_round(app, 2026, 2, answers=0)
    notice = build_summary(app.store, closed.id, mail_settings_from_config(app.config))
    shown = dict(notice.values["figures"])
    assert shown["Joined so far"] == 10 and shown["Members (active and paused)"] == 10


@pytest.mark.parametrize(
    ("reason", "theme"),
    [
        ("Diary clash", "diary clash"),
        ("we couldn't find a time that suited", "diary clash"),
        ("She was ill", "illness"),
        ("off sick with flu", "illness"),
        ("I was on holiday", "leave"),
        ("annual leave", "leave"),
        ("swamped with deadlines", "too busy"),
        ("never heard back from Sam", "partner didn't reply"),
        ("no reply to my emails", "partner didn't reply"),
        ("forgot", "other"),
    ],
)
def test_reasons_fall_into_themes(reason: str, theme: str) -> None:
    assert theme_of(reason) == theme
