"""`my data` end to end on the sandbox: a member sends it from a mail client (SMTP to the sandbox
server), the service answers, and the member reads the email as a client would: the words say what
we hold, and the attached my-data.json is the same record the store holds."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

from matcher.calendar import next_round
from matcher.clock import FakeClock
from matcher.members import find_member, member_data
from matcher.rounds import groups_of_round, members_of
from tests.servers import free_port
from unmentoring.config import Config, Programme, Sandbox
from unmentoring.demo import Simulation, make_people


def test_my_data_is_a_readable_email_with_the_record_attached(tmp_path: Path) -> None:
    config = Config(
        programme=Programme(data_dir=".", organisers=["organiser@localhost"]),
        sandbox=Sandbox(port=free_port()),
        base_dir=tmp_path,
    )
    clock = FakeClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    sim = Simulation(config, clock)
    try:
        people = make_people(2, random.Random(5))
        for person in people:
            sim.send(person, f"join\nname: {person.name}\norg: {person.org}")
        sim.tick()
        for person in people:
            assert sim.reply_to_latest(person, "confirm_join", "yes")
        sim.tick()
        dates = next_round(sim.app.calendar, clock.now())
        sim.at(dates.starts_at)
        sim.at(dates.followup_at)
        ann, bob = people
        assert sim.reply_to_latest(ann, "followup", "Sadly not, Bob was ill")
        sim.send(ann, "my data")
        sim.tick()

        (mail,) = [m for m in sim.mailbox(ann.address) if m.get("X-UnMentoring-Kind") == "my_data"]
        text = mail.get_body(("plain",)).get_content()
        words = " ".join(text.split())
        assert f"Name: {ann.name}" in words and f"Organisation: {ann.org}" in words
        assert "Status: active" in words and "Frequency: every month" in words
        [group] = groups_of_round(sim.app.store, dates.round_id)
        partner = next(m for m in members_of(sim.app.store, group.members) if m.address != ann.address)
        assert f"Round {dates.round_id}" in words and f"with {partner.name}" in words
        assert 'Your answer: missed ("Bob was ill")' in words
        assert "WHAT WE KEEP AND FOR HOW LONG" in text
        # Words, not data: no JSON, no Python reprs, no ISO timestamps.
        for leftover in ("{", "}", '": ', "None", "True", "False", "[", "T10:"):
            assert leftover not in text, leftover
        html = mail.get_body(("html",)).get_content()
        assert f"with {partner.name}" in html

        (attached,) = list(mail.iter_attachments())
        assert attached.get_filename() == "my-data.json"
        assert attached.get_content_type() == "application/json"
        record = json.loads(attached.get_content())
        member = find_member(sim.app.store, ann.address)
        assert member is not None
        assert record == member_data(sim.app.store, member)
        assert record["groups"][0]["your_answer"]["reason"] == "Bob was ill"
    finally:
        sim.close()
