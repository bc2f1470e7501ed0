"""Wishes about partners end to end: real Dovecot in, real SMTP sink out, the service run as the
daemon runs it (tests/test_year.py's simulation), only the clock simulated.

Four people are introduced in two pairs. Both members of one pair reply "meet again" to their
follow-up; one member of the other pair replies "never pair me with" and the other's address. In
the next round the first pair meets again, and the second pair cannot be grouped, so one of them
joins the pair meeting again and the other sits out and is told kindly. In the round after that
the pair that met twice is not grouped again, and the never pair never is.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from matcher.calendar import round_dates
from matcher.clock import FakeClock
from matcher.model import Member
from tests.helpers.people import Delivered
from tests.servers import ImapAccount, SmtpSink
from tests.test_year import FIRST_ROUND, START, Year, make_config, make_waves, month_after
from unmentoring.app import App


@pytest.fixture
def sim(tmp_path, imap_account: ImapAccount, smtp_sink: SmtpSink):
    clock = FakeClock(START)
    app = App.open(make_config(tmp_path, imap_account, smtp_sink), clock)
    year = Year(app, smtp_sink, imap_account, clock)
    try:
        yield year
    finally:
        year.source.close()
        app.close()


def _groups(delivered: list[Delivered]) -> list[frozenset[str]]:
    return [frozenset(d.envelope_to) for d in delivered if d.kind == "intro"]


def _run_round(sim: Year, index: int) -> tuple[list[frozenset[str]], list[Delivered]]:
    dates = round_dates(sim.app.calendar, *month_after(*FIRST_ROUND, index))
    first = sim.postbox.count
    sim.tick(dates.starts_at)
    started = sim.postbox.since(first)
    sim.tick(dates.followup_at)
    return _groups(started), started


def test_meet_again_and_never_pair_me_with_through_the_real_servers(sim: Year) -> None:
    people = make_waves()[0][:4]
    sim.join(people)
    by_address = {p.address: p for p in people}

    first_groups, _ = _run_round(sim, 0)
    assert sorted(map(len, first_groups)) == [2, 2]
    again, never = (sorted(group) for group in first_groups)
    for address in again:
        followup = sim.postbox.latest(address, "followup")
        assert followup is not None
        sim.people.reply(by_address[address], followup, "We met - what a great chat. Keep talking!")
    asker, avoided = never
    followup = sim.postbox.latest(asker, "followup")
    assert followup is not None
    sim.people.reply(by_address[asker], followup, f"Never pair me with {avoided} again, please.")
    before = sim.postbox.count
    sim.tick(sim.clock.now() + timedelta(hours=2))
    answers = sim.postbox.since(before)

    assert sorted((d.kind, d.envelope_to) for d in answers) == sorted(
        [("meet_again", (address,)) for address in again] + [("never_pair", (asker,))]
    )
    # Asking alone reveals nothing: nobody else heard of either wish.
    assert {d.envelope_to[0] for d in answers} == {*again, asker}
    told = next(d for d in answers if d.kind == "never_pair")
    assert avoided in told.text and "they are not told" in told.text

    second_groups, started = _run_round(sim, 1)
    together = next(group for group in second_groups if set(again) <= group)
    assert len(second_groups) == 1 and len(together) == 3 and together & {asker, avoided}
    sat_out = ({asker, avoided} - together).pop()
    kind_word = [d for d in started if d.kind == "sit_out"]
    assert [d.envelope_to for d in kind_word] == [(sat_out,)]
    assert "could not find you a partner" in " ".join(kind_word[0].text.split())
    assert "never" not in kind_word[0].text.lower() and asker not in kind_word[0].text
    with sim.app.store.transaction():
        assert all(m.meet_again == [] for m in sim.app.store.all(Member))

    third_groups, _ = _run_round(sim, 2)
    assert sorted(map(len, third_groups)) == [2, 2]
    assert frozenset(again) not in third_groups
    for group in second_groups + third_groups:
        assert not {asker, avoided} <= group
    # The person avoided never received anything about it.
    for delivered in sim.postbox.to(avoided):
        assert delivered.kind in {"confirm_join", "welcome", "intro", "followup", "sit_out"}
        assert "never pair" not in delivered.text.lower()
