"""`unmentoring demo`: a small programme simulated end to end on the sandbox, in a fresh temp folder.

Everything goes through the real paths: people's mail is sent by SMTP to the sandbox server, the service reads
its Maildir inbox, answers through its outbox and SMTP, and people read and reply to what lands in their
sandbox mailboxes. Only the clock is simulated, so two monthly rounds take seconds.
"""

from __future__ import annotations

import random
import smtplib
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from matcher.calendar import next_round
from matcher.clock import FakeClock
from matcher.rounds import groups_of_round, members_of
from unmentoring import service
from unmentoring.app import App
from unmentoring.config import Config, Sandbox
from unmentoring.sandbox import SandboxServer, list_maildir
from unmentoring.sandbox_cli import build_message, build_reply

FIRST_NAMES = (
    "Ada Ben Chloe Dev Ed Fatima Gus Hana Ivan Jo Kemi Liam Maya Nils Omar Priya Quinn Rosa Sam Tara "
    "Umar Vera Wes Xia Yusuf Zoe Alex Bea Cai Dina Eli Faye Gil Hugo Iris Jack Kai Lena Milo Nora"
).split()
ORGANISATIONS = (
    "Leeds City Council",
    "NHS Digital",
    "Cabinet Office",
    "Bristol City Council",
    "DVLA",
    "Met Office",
    "Ordnance Survey",
)
MISSED_REASONS = ("she was ill that week", "we could not find a time", "I was on leave", "train strike")


@dataclass(frozen=True)
class Person:
    name: str
    address: str
    org: str


class Simulation:
    """People and a service sharing a sandbox mail server, driven by a fake clock."""

    def __init__(self, config: Config, clock: FakeClock) -> None:
        self.config = config
        self.clock = clock
        self.server = SandboxServer(
            config.sandbox_dir,
            config.programme.address,
            config.sandbox.host,
            config.sandbox.port,
            clock=clock,
        )
        self.server.start()
        try:
            self.app = App.open(config, clock)
        except BaseException:
            self.server.stop()
            raise
        self.source = self.app.inbound_source()
        self.replied: set[str] = set()  # paths of messages already answered

    def close(self) -> None:
        self.source.close()
        self.app.close()
        self.server.stop()

    def tick(self) -> service.TickReport:
        return service.tick(self.app, self.source)

    def at(self, when: datetime) -> service.TickReport:
        self.clock.set(when)
        return self.tick()

    def send(self, person: Person, body: str, subject: str = "") -> None:
        message = build_message(
            f"{person.name} <{person.address}>", [self.config.programme.address], subject, body, self.clock
        )
        self._submit(message, person.address, [self.config.programme.address])

    def reply_to_latest(self, person: Person, kind: str, body: str, *, to_all: bool = False) -> bool:
        """Reply to the newest unanswered email of this kind in the person's mailbox; False if none."""
        for stored in reversed(list_maildir(self.server.mailbox_path(person.address))):
            original = stored.parse()
            if original.get("X-UnMentoring-Kind") != kind or str(stored.path) in self.replied:
                continue
            self.replied.add(str(stored.path))
            reply = build_reply(original, f"{person.name} <{person.address}>", body, self.clock)
            recipients = [a.addr_spec for a in reply["To"].addresses]
            if not to_all:
                recipients = [self.config.programme.address]
            self._submit(reply, person.address, recipients)
            return True
        return False

    def mailbox(self, address: str) -> list[EmailMessage]:
        return [m.parse() for m in list_maildir(self.server.mailbox_path(address))]

    def _submit(self, message: EmailMessage, sender: str, recipients: list[str]) -> None:
        with smtplib.SMTP(self.config.sandbox.host, self.config.sandbox.port, timeout=30) as smtp:
            smtp.send_message(message, from_addr=sender, to_addrs=recipients)


def make_people(count: int, rng: random.Random) -> list[Person]:
    names = rng.sample(FIRST_NAMES, k=min(count, len(FIRST_NAMES)))
    names += [f"Person{i}" for i in range(len(names), count)]
    return [
        Person(
            f"{name} {rng.choice('ABCDEFGHJKLMNPRSTW')}.",
            f"{name.lower()}@example.org",
            rng.choice(ORGANISATIONS),
        )
        for name in names
    ]


def run_demo(
    data_dir: Path, *, people: int = 30, rounds: int = 2, seed: int = 7, say: Callable[[str], None] = print
) -> Path:
    """Simulate the programme; return the folder holding the last summary and its pictures."""
    rng = random.Random(seed)
    config = replace(
        Config(base_dir=data_dir),
        sandbox=Sandbox(port=free_port()),
    )
    config = replace(config, programme=replace(config.programme, data_dir="."))
    clock = FakeClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    sim = Simulation(config, clock)
    try:
        crowd = make_people(people, rng)
        by_address = {p.address: p for p in crowd}
        for person in crowd:
            sim.send(person, f"join\nname: {person.name}\norg: {person.org}\nabout: Works at {person.org}.")
        sim.tick()
        for person in crowd:
            sim.reply_to_latest(person, "confirm_join", "Yes please")
        sim.tick()
        say(f"{people} people joined and confirmed through the sandbox mail server")
        for _ in range(rounds):
            dates = next_round(sim.app.calendar, clock.now())
            sim.at(dates.starts_at)
            sim.at(dates.followup_at)
            answers = {"met": 0, "missed": 0, "silent": 0}
            for group in groups_of_round(sim.app.store, dates.round_id):
                # a group either met or did not; then each person answers, or stays silent
                met = rng.random() < 0.7
                reason = rng.choice(MISSED_REASONS)
                for member in members_of(sim.app.store, group.members):
                    person = by_address[member.address]
                    if rng.random() < 0.25:
                        answers["silent"] += 1
                    elif met:
                        answers["met"] += sim.reply_to_latest(person, "followup", "Met! Great conversation.")
                    else:
                        answers["missed"] += sim.reply_to_latest(person, "followup", f"missed - {reason}")
            sim.tick()
            say(f"round {dates.round_id}: introductions sent, follow-ups answered {answers}")
        closing = next_round(sim.app.calendar, clock.now())
        sim.at(closing.starts_at)
        return export_latest_summary(sim, data_dir / "summary")
    finally:
        sim.close()


def export_latest_summary(sim: Simulation, folder: Path) -> Path:
    """Write the newest summary email received by the first organiser, and its PNG pictures, to ``folder``."""
    organiser = sim.config.programme.organisers[0]
    summaries = [m for m in sim.mailbox(organiser) if m.get("X-UnMentoring-Kind") == "summary"]
    if not summaries:
        raise RuntimeError(f"no summary reached {organiser}")
    latest = summaries[-1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.eml").write_bytes(bytes(latest))
    for part in latest.walk():
        if part.get_content_type() == "image/png" and part.get_filename():
            (folder / part.get_filename()).write_bytes(part.get_payload(decode=True))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_demo_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="unmentoring-demo-"))
