"""A nudge in the middle of the meeting week to the groups nobody has heard from: once, threaded to
their introduction, replies going to the group; none once the follow-ups are due; none when off."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

from matcher import rounds
from matcher.calendar import round_dates
from matcher.clock import FakeClock
from matcher.members import activate, start_joining
from matcher.model import OutboxEntry, Result
from unmentoring.app import App, calendar_from_config
from unmentoring.config import Config, Programme


def programme(tmp_path: Path, nudge_after_days: int) -> tuple[Config, FakeClock]:
    clock = FakeClock(datetime(2026, 2, 20, 8, tzinfo=UTC))
    config = Config(
        programme=Programme(data_dir=str(tmp_path / "data"), nudge_after_days=nudge_after_days),
        base_dir=tmp_path,
    )
    with App.open(config, clock) as app, app.store.transaction():
        for n in range(6):
            joining = start_joining(app.store, f"p{n}@example.org", {"name": f"P{n} Person"}, clock.now())
            activate(app.store, joining, clock.now())
    return config, clock


def run_until(config: Config, clock: FakeClock, until: datetime) -> None:
    """The service's passes, every three hours (as a tick timer would run them)."""
    while clock.now() < until:
        with App.open(config, clock) as app:
            app.cycle.run_due(clock.now())
        clock.advance(timedelta(hours=3))


def sent(config: Config, clock: FakeClock, kind: str) -> list[OutboxEntry]:
    with App.open(config, clock) as app:
        return [e for e in app.store.all(OutboxEntry) if e.kind == kind]


def test_groups_nobody_has_heard_from_are_nudged_once_mid_week(tmp_path: Path) -> None:
    config, clock = programme(tmp_path, nudge_after_days=3)
    dates = round_dates(calendar_from_config(config), 2026, 3)
    run_until(config, clock, dates.starts_at + timedelta(hours=4))
    with App.open(config, clock) as app:
        groups = rounds.groups_of_round(app.store, dates.round_id)
        answered = groups[0]
        with app.store.transaction():
            rounds.record_outcome(app.store, answered.key, answered.members[0], Result.MET, "", clock.now())
        address = {
            m.id: m.address for m in rounds.members_of(app.store, [i for g in groups for i in g.members])
        }
    assert dates.nudge_at == datetime(2026, 3, 5, 9, tzinfo=UTC)  # Thursday of the meeting week, 09:00 London
    run_until(config, clock, dates.nudge_at - timedelta(minutes=1))
    assert sent(config, clock, "nudge") == []

    run_until(config, clock, dates.followup_at + timedelta(days=1))
    nudges = sent(config, clock, "nudge")
    # One copy per member (as the introduction), each in the thread of that member's own introduction.
    assert sorted(e.group_id for e in nudges) == sorted(g.key for g in groups[1:] for _ in g.members)
    intros = {(e.group_id, e.recipients[0]): e for e in sent(config, clock, "intro")}
    for entry in nudges:
        group = next(g for g in groups if g.key == entry.group_id)
        message = email.message_from_string(entry.raw, policy=policy.default)
        recipients = sorted(a.addr_spec for a in message["To"].addresses)
        assert recipients == sorted(address[m] for m in group.members)
        assert all(a.display_name for a in message["To"].addresses)  # "Name <address>", as the intro
        assert sorted(a.addr_spec for a in message["Reply-To"].addresses) == recipients
        (own,) = entry.recipients
        assert message["In-Reply-To"] == f"<{intros[(group.key, own)].message_id}>"
        assert "have you found a time" in " ".join(message.get_body(("plain",)).get_content().split())


def test_no_nudge_when_it_is_off_or_the_meeting_week_is_over(tmp_path: Path) -> None:
    config, clock = programme(tmp_path / "off", nudge_after_days=0)
    dates = round_dates(calendar_from_config(config), 2026, 3)
    assert dates.nudge_at is None
    run_until(config, clock, dates.followup_at + timedelta(days=1))
    assert sent(config, clock, "nudge") == [] and sent(config, clock, "followup")

    # The service was down through the meeting week: the follow-up goes out, the nudge does not.
    config, clock = programme(tmp_path / "late", nudge_after_days=3)
    dates = round_dates(calendar_from_config(config), 2026, 3)
    run_until(config, clock, dates.starts_at + timedelta(hours=4))
    clock.advance(dates.followup_at - clock.now() + timedelta(hours=1))
    run_until(config, clock, clock.now() + timedelta(hours=4))
    assert sent(config, clock, "nudge") == [] and sent(config, clock, "followup")
