"""Nobody stranded, end to end: real Dovecot in, real SMTP sink out, the service run pass by pass as
the daemon runs it (tests/test_year.py's simulation), only the clock simulated.

Eight people are introduced in four pairs. One partner's address is refused by the SMTP server
(disabled at once: bounce threshold 1), one partner leaves, one pauses and one stays silent. The
three members whose partner is gone are told kindly and reply "rematch" in their own words; the one
whose partner is silent asks after the middle of the meeting week. They are grouped with each other,
introduced, followed up (about the new group only), and the summary counts the rematches.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from matcher import rounds
from matcher.calendar import round_dates
from matcher.clock import FakeClock
from tests.helpers.people import Delivered
from tests.servers import ImapAccount, SmtpSink
from tests.test_year import FIRST_ROUND, START, Year, make_config, make_waves
from unmentoring import service
from unmentoring.app import App


@pytest.fixture
def sim(tmp_path, imap_account: ImapAccount, smtp_sink: SmtpSink):
    clock = FakeClock(START)
    config = make_config(tmp_path, imap_account, smtp_sink)
    config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, bounce_threshold=1))
    app = App.open(config, clock)
    year = Year(app, smtp_sink, imap_account, clock)
    try:
        yield year
    finally:
        year.source.close()
        app.close()


def _shown(d: Delivered) -> frozenset[str]:
    return frozenset(a.addr_spec.lower() for a in d.message["To"].addresses)


def _tick_with_refusals(sim: Year, when: datetime) -> None:
    """A pass whose delivery meets a refusal (tests/test_year.py's tick insists on none)."""
    sim.clock.set(when)
    sim.people.post()
    report = service.tick(sim.app, sim.source)
    assert report.inbox.failed == 0 and report.delivery.deferred == 0


def _words(d: Delivered) -> str:
    return " ".join(d.text.split())


def test_bounced_left_paused_and_silent_partners_lead_to_rematches(sim: Year, smtp_sink: SmtpSink) -> None:
    people = make_waves()[0][:8]
    sim.join(people)
    by_address = {p.address: p for p in people}
    dates = round_dates(sim.app.calendar, *FIRST_ROUND)

    refused = people[0].address
    smtp_sink.fail_recipient(refused, 550, f"5.1.1 <{refused}>: mailbox unavailable")
    first = sim.postbox.count
    _tick_with_refusals(sim, dates.starts_at)
    intros = [d for d in sim.postbox.since(first) if d.kind == "intro"]
    groups = {_shown(d) for d in intros}
    assert sorted(map(len, groups)) == [2, 2, 2, 2]

    def partner(address: str) -> str:
        (group,) = [g for g in groups if address in g]
        return next(iter(group - {address}))

    bounced_partner = partner(refused)
    others = sorted(g for g in groups if refused not in g)
    (leaver, left_alone), (pauser, paused_alone), (silent, asker) = (sorted(g) for g in others)

    # The same day: the refused address is disabled, the leaver leaves; their partners are told.
    sim.leave_by_reply(by_address[leaver])
    before = sim.postbox.count
    sim.tick(dates.starts_at + timedelta(hours=1))
    notes = [d for d in sim.postbox.since(before) if d.kind == "stranded"]
    assert sorted(d.envelope_to for d in notes) == sorted([(bounced_partner,), (left_alone,)])
    for note in notes:
        words = _words(note).lower()
        assert "can no longer take part" in words and '"rematch"' in words
        assert (
            "bounced" not in words
            and "refused" not in words
            and " left" not in words
            and refused not in words
        )
    before = sim.postbox.count
    sim.tick(dates.starts_at + timedelta(hours=2))
    assert sim.postbox.since(before) == [], "told twice"

    # Both reply in their own words; at the pass they are grouped together and introduced.
    note_to = {d.envelope_to[0]: d for d in notes}
    sim.people.reply(by_address[bounced_partner], note_to[bounced_partner], "rematch please")
    sim.people.reply(by_address[left_alone], note_to[left_alone], "Can I be matched with someone else?")
    before = sim.postbox.count
    sim.tick(dates.starts_at + timedelta(hours=3))
    sent = sim.postbox.since(before)
    assert sorted(d.envelope_to[0] for d in sent if d.kind == "rematch") == sorted(
        [bounced_partner, left_alone]
    )
    assert all("we will group you" in _words(d) for d in sent if d.kind == "rematch")
    rematch_intros = [d for d in sent if d.kind == "intro"]
    assert {_shown(d) for d in rematch_intros} == {frozenset({bounced_partner, left_alone})}
    assert sorted(d.envelope_to[0] for d in rematch_intros) == sorted([bounced_partner, left_alone])

    # Silence is no reason before the middle of the meeting week.
    sim.people.write(by_address[asker], "rematch")
    before = sim.postbox.count
    sim.tick(datetime.combine(dates.meeting_week_start, START.timetz()))
    (early,) = sim.postbox.since(before)
    assert early.kind == "rematch" and "still has time to meet" in _words(early)

    # In the middle of the week: a pause strands one more, and the silent partner's pair asks.
    middle = dates.meeting_week_start + (dates.meeting_week_end - dates.meeting_week_start) / 2
    sim.pause(by_address[pauser], "pause", None)
    sim.people.write(by_address[asker], "New partner please")
    before = sim.postbox.count
    sim.tick(datetime.combine(middle, START.timetz()))
    sent = sim.postbox.since(before)
    (note,) = [d for d in sent if d.kind == "stranded"]
    assert note.envelope_to == (paused_alone,) and "paused" not in _words(note).lower()
    sim.people.reply(by_address[paused_alone], note, "rematch")
    before = sim.postbox.count
    sim.tick(datetime.combine(middle, START.timetz()) + timedelta(hours=1))
    sent = sim.postbox.since(before)
    assert {_shown(d) for d in sent if d.kind == "intro"} == {frozenset({asker, paused_alone})}

    # Follow-ups: the rematched are asked about their new group only; the silent partner and the one
    # who paused (paused members are asked as before: they may have met first) about theirs.
    before = sim.postbox.count
    sim.tick(dates.followup_at)
    followups = [d for d in sim.postbox.since(before) if d.kind == "followup"]
    asked = sorted(d.envelope_to[0] for d in followups)
    assert asked == sorted([bounced_partner, left_alone, asker, paused_alone, silent, pauser])
    about = {d.envelope_to[0]: _words(d) for d in followups}
    assert by_address[left_alone].first_name in about[bounced_partner]
    assert by_address[paused_alone].first_name in about[asker]
    sim.people.reply(by_address[bounced_partner], sim.postbox.latest(bounced_partner, "followup"), "met")
    sim.people.reply(by_address[asker], sim.postbox.latest(asker, "followup"), "missed - no time after all")
    sim.tick(dates.followup_at + timedelta(hours=1))

    with sim.app.store.transaction():
        counted = rounds.results_of(rounds.groups_of_round(sim.app.store, dates.round_id))
    assert counted.rematch_line == "2 rematches, 1 met"

    before = sim.postbox.count
    sim.tick(dates.closes_at)
    (summary,) = [d for d in sim.postbox.since(before) if d.kind == "summary"]
    assert "2 rematches, 1 met" in _words(summary)


def test_nobody_else_waiting_by_the_end_of_the_meeting_week_is_told(sim: Year) -> None:
    people = make_waves()[0][:4]
    sim.join(people)
    by_address = {p.address: p for p in people}
    dates = round_dates(sim.app.calendar, *FIRST_ROUND)
    first = sim.postbox.count
    sim.tick(dates.starts_at)
    leaver, alone = sorted(_shown(next(d for d in sim.postbox.since(first) if d.kind == "intro")))
    sim.leave_by_reply(by_address[leaver])
    sim.tick(dates.starts_at + timedelta(hours=1))
    note = sim.postbox.latest(alone, "stranded")
    assert note is not None
    sim.people.reply(by_address[alone], note, "rematch")
    before = sim.postbox.count
    sim.tick(datetime.combine(dates.meeting_week_end, START.timetz()))
    assert [d.kind for d in sim.postbox.since(before) if alone in d.envelope_to] == ["rematch"]

    before = sim.postbox.count
    sim.tick(datetime.combine(dates.meeting_week_end + timedelta(days=1), START.timetz()))
    (told,) = [d for d in sim.postbox.since(before) if d.kind == "rematch_none"]
    assert told.envelope_to == (alone,)
    assert "in the next round as usual" in _words(told)
    sim.tick_again()
    assert sim.repeated_ticks[-1][1] == 0
    with sim.app.store.transaction():
        assert rounds.results_of(rounds.groups_of_round(sim.app.store, dates.round_id)).rematches == 0
