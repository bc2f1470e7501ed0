"""Answers in people's own words, end to end on the sandbox: real follow-ups land in members'
mailboxes, members reply to them from a mail client (SMTP to the sandbox server), the service reads
its inbox, and `round show` and the organisers' summary tell what happened: the answers recorded, a
dispute, and what members wrote that could not be read (also forwarded at once, as configured)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from matcher.calendar import next_round
from matcher.clock import FakeClock
from matcher.model import Group, Result
from matcher.rounds import groups_of_round, members_of
from tests.servers import free_port
from unmentoring.cli import main
from unmentoring.config import Config, Programme, Sandbox
from unmentoring.demo import Simulation, make_people

ORGANISER = "organiser@localhost"
HELPDESK = "helpdesk@localhost"


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_answers_disputes_and_unread_mail_reach_round_show_and_the_summary(tmp_path: Path) -> None:
    config = Config(
        programme=Programme(data_dir=".", organisers=[ORGANISER], forward_unread=[HELPDESK]),
        sandbox=Sandbox(port=free_port()),
        base_dir=tmp_path,
    )
    clock = FakeClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    sim = Simulation(config, clock)
    try:
        people = make_people(4, random.Random(3))
        for person in people:
            sim.send(person, f"join\nname: {person.name}\norg: {person.org}")
        sim.tick()
        for person in people:
            assert sim.reply_to_latest(person, "confirm_join", "Yes please")
        sim.tick()
        dates = next_round(sim.app.calendar, clock.now())
        sim.at(dates.starts_at)
        sim.at(dates.followup_at)
        first, second = groups_of_round(sim.app.store, dates.round_id)
        by_address = {p.address: p for p in people}
        a, b = (by_address[m.address] for m in members_of(sim.app.store, first.members))
        c, d = (by_address[m.address] for m in members_of(sim.app.store, second.members))

        assert sim.reply_to_latest(a, "followup", "Yes we did - lovely chat about open data")
        assert sim.reply_to_latest(b, "followup", "Sadly not, I never heard back")
        assert sim.reply_to_latest(c, "followup", "We're meeting next Tuesday instead")
        sim.send(d, "Is this the coffee thing? What do I do?", "Question")
        sim.send(d, "yes")  # a stray yes, outside any thread: not an outcome
        sim.tick()

        first, second = (sim.app.store.get(Group, g.key) for g in (first, second))
        assert first.result() is Result.DISPUTED
        assert second.outcomes == {}

        answer = [m for m in sim.mailbox(c.address) if m.get("X-UnMentoring-Kind") == "help"][-1]
        said = " ".join(text_of(answer).split())  # as read, whatever the line wrapping
        assert "Sorry, we could not act on your email: it sounds as if you have not met yet: reply" in said
        assert "> We're meeting next Tuesday instead" in said
        assert "Did you mean: met / missed?" in said
        forwarded = [m for m in sim.mailbox(HELPDESK) if m.get("X-UnMentoring-Kind") == "unread"]
        assert len(forwarded) == 3
        assert {str(m["Reply-To"]) for m in forwarded} == {c.address, d.address}

        sim.at(next_round(sim.app.calendar, clock.now()).starts_at)  # closes the round: the summary
        (summary,) = [m for m in sim.mailbox(ORGANISER) if m.get("X-UnMentoring-Kind") == "summary"]
        text = text_of(summary)
        assert "Disputed" in text and f"{a.name}: met (lovely chat about open data)" in text
        assert f"{b.name}: missed (I never heard back)" in text
        section = text.split("What members wrote")[1].split("Paused after silent rounds")[0]
        assert c.name in section and "We're meeting next Tuesday instead" in section
        assert "Is this the coffee thing? What do I do?" in section and "      yes" in section
        assert "I never heard back" not in text.split("Why meetings did not happen")[1].split("Disputed")[0]
    finally:
        sim.close()
    # `round show`, as an organiser runs it (the service has let go of the database).
    shown = CliRunner().invoke(main, ["round", "show", dates.round_id], env=_env(tmp_path, config))
    assert shown.exit_code == 0, shown.output
    assert f"group {first.number}: disputed" in shown.output
    assert "lovely chat about open data" in shown.output and "I never heard back" in shown.output


def _env(tmp_path: Path, config: Config) -> dict[str, str]:
    """A config file for the CLI naming the same data folder and sandbox port as ``config``."""
    path = tmp_path / "unmentoring.toml"
    path.write_text(
        f'[programme]\ndata_dir = "{tmp_path.as_posix()}"\norganisers = ["{ORGANISER}"]\n'
        f"[sandbox]\nport = {config.sandbox.port}\n",
        encoding="utf-8",
    )
    return {"UNMENTORING_CONFIG": str(path)}
