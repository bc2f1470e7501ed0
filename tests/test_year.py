"""A simulated year against a real Dovecot (mail in) and a real aiosmtpd sink (mail out).

Forty people join in four waves through the programme's IMAP inbox, confirm, and are introduced
monthly for twelve rounds (plus the start of a thirteenth, in the tick that closes the twelfth).
They answer follow-ups (met, missed with a reason, or silence, sometimes only after the
reminder); some pause (until a date, for two months, or until they say resume), some change
frequency, three leave by three different paths (one in the middle of a round), and one never
answers and is paused as a ghost. Only the clock is simulated: every message is real bytes
through real servers, and the service runs exactly as the daemon runs it (one long-lived IMAP
source, `service.tick` at the moments that matter).

The assertions are on the emails the sink received. What the service should have sent is worked
out independently, from what the simulated people did and the rules in README.md: who is eligible
in which round, how each group ended, who has been silent for how long.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from itertools import combinations
from pathlib import Path
from zoneinfo import ZoneInfo

import networkx as nx
import pytest
from PIL import Image

from mailkit.addresses import return_path_token
from matcher.calendar import RoundDates, round_dates
from matcher.clock import FakeClock
from matcher.model import OutboxEntry
from tests.helpers.people import Correspondents, Delivered, Person, Postbox
from tests.servers import ImapAccount, SmtpSink
from unmentoring import service
from unmentoring.app import App
from unmentoring.config import Config, Imap, Limits, Programme, Smtp

PROGRAMME = "coffee@unmentoring.example.org"
ORGANISER = "organiser@unmentoring.example.org"
ZONE = ZoneInfo("Europe/London")
START = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)  # after January's meeting week: no round yet
FIRST_ROUND = (2026, 2)
ROUNDS = 12  # closed and summarised; a 13th starts in the tick that closes the 12th
GHOST_ROUNDS = 3

FIRST_NAMES = (
    "Ada Ben Chloe Dev Ed Fatima Gus Hana Ivan Jo Liam Maya Rosa Sam Tara Umar "  # wave 1
    "Kemi Nils Priya Quinn Vera Wes Xia Yusuf Zoe Alex "  # wave 2
    "Omar Bea Cai Dina Eli Faye Gil Hugo "  # wave 3
    "Iris Jack Kai Lena Milo Nora"  # wave 4
).split()
WAVE_SIZES = (16, 10, 8, 6)
SURNAMES = "Adams Baker Clarke Davies Evans Frost Green Hughes Irwin Jones".split()
ORGANISATIONS = (
    ("Leeds City Council", "leeds.example.gov"),
    ("NHS Digital", "nhs.example.net"),
    ("Cabinet Office", "cabinet.example.gov"),
    ("Bristol City Council", "bristol.example.gov"),
    ("DVLA", "dvla.example.gov"),
    ("Met Office", "metoffice.example.gov"),
    ("Ordnance Survey", "os.example.gov"),
    ("Hackney Council", "hackney.example.gov"),
)
ROLES = (
    "Service designer",
    "Data analyst",
    "Policy lead",
    "Developer",
    "User researcher",
    "Delivery manager",
    "Product owner",
    "Housing officer",
)
MISSED_REASONS = (
    "she was ill that week",
    "we could not find a time",
    "I was on leave",
    "train strike, then a deadline",
    "my partner's diary was full",
)
# Answers as people write them (DESIGN "Email grammar"); a reason must reach the summary as written.
MET_FORMS = (
    "Met! Lovely conversation.\n\n{name}",
    "met",
    "Met - we talked about open data for an hour.",
)
MISSED_FORMS = (
    "missed - {reason}",
    "Missed: {reason}",
    "didn't meet - {reason}",
    "missed\n{reason}",
)
NO_ANSWER = "no answer from {name}"
LEFT_PROGRAMME = "{name} left the programme"


def make_waves() -> list[list[Person]]:
    rng = random.Random(2026)
    people = []
    for number, first in enumerate(FIRST_NAMES):
        org, domain = ORGANISATIONS[number % len(ORGANISATIONS)]
        surname = rng.choice(SURNAMES)
        people.append(
            Person(
                name=f"{first} {surname}",
                org=org,
                address=f"{first.lower()}.{surname.lower()}@{domain}",
                about=f"{rng.choice(ROLES)}; happy to talk about anything but sales.",
            )
        )
    waves, start = [], 0
    for size in WAVE_SIZES:
        waves.append(people[start : start + size])
        start += size
    return waves


# -- what should happen ---------------------------------------------------------------------------


@dataclass
class Expected:
    """One person as the rules say the service should see them."""

    person: Person
    joined: bool = False
    left: bool = False
    ghost: bool = False
    paused: bool = False  # until they say resume
    paused_until: date | None = None  # resumes by itself on that date
    frequency: int = 1
    last_round: int | None = None  # index of the last round they were introduced in
    silent: int = 0  # rounds in a row without an answer
    never_answers: bool = False  # the scenario's ghost

    def active_on(self, day: date) -> bool:
        if not self.joined or self.left or self.ghost or self.paused:
            return False
        return self.paused_until is None or self.paused_until <= day

    def due_in(self, index: int) -> bool:
        return self.last_round is None or index - self.last_round >= self.frequency


@dataclass
class GroupLog:
    members: tuple[str, ...]  # addresses, as the intro's To (each got their own copy)
    intro: Delivered  # one member's copy
    copies: dict[str, Delivered] = field(default_factory=dict)  # address -> their own copy
    replies: dict[str, str] = field(default_factory=dict)  # address -> "met" | "missed"
    reason_of: dict[str, str] = field(default_factory=dict)  # address -> the reason written
    late: bool = False  # answered only after the reminder
    left_during: set[str] = field(default_factory=set)

    @property
    def reasons(self) -> list[str]:
        return list(self.reason_of.values())

    @property
    def result(self) -> str:
        """Met beats missed beats no reply (DESIGN: a group met when anyone says so)."""
        said = set(self.replies.values())
        return "met" if "met" in said else "missed" if "missed" in said else "no_reply"


@dataclass
class RoundLog:
    index: int
    dates: RoundDates
    eligible: set[str]  # who the rules say is introduced
    groups: list[GroupLog] = field(default_factory=list)
    followup_expected: set[str] = field(default_factory=set)
    reminder_expected: set[str] = field(default_factory=set)
    ghosts_expected: set[str] = field(default_factory=set)  # paused when this round closes

    @property
    def round_id(self) -> str:
        return self.dates.round_id

    def group_of(self, address: str) -> GroupLog | None:
        return next((g for g in self.groups if address in g.members), None)


@dataclass(frozen=True)
class OwedAnswer:
    """A person's message and the kind of answer the programme owes them for it."""

    who: str
    message_id: str
    kind: str


class Year:
    """The programme, its people, and the record of what the rules say should have happened."""

    def __init__(self, app: App, sink: SmtpSink, account: ImapAccount, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock
        self.source = app.inbound_source()
        self.postbox = Postbox(sink)
        self.people = Correspondents(account, PROGRAMME, clock)
        self.expected: dict[str, Expected] = {}
        self.by_name: dict[str, Person] = {}
        self.rounds: list[RoundLog] = []
        self.owed: list[OwedAnswer] = []
        self.repeated_ticks: list[tuple[datetime, int]] = []  # (when, emails the repeat sent)

    # -- driving the service

    def tick(self, when: datetime | None = None) -> None:
        """Deliver what people wrote into the INBOX, then one service pass at ``when``."""
        if when is not None:
            self.clock.set(when)
        when = self.clock.now()
        posted = self.people.post()
        report = service.tick(self.app, self.source)
        inbox, delivery = report.inbox, report.delivery
        assert inbox.failed == 0 and inbox.quarantined == 0, f"tick at {when}: inbox {inbox}"
        assert inbox.total == posted, (
            f"tick at {when}: {posted} messages were in the INBOX, the tick read {inbox}"
        )
        assert delivery.failed == 0 and delivery.deferred == 0, f"tick at {when}: {delivery}"

    def tick_again(self) -> None:
        """A second pass at the same moment (a cron job run twice): it must send nothing."""
        before = self.postbox.count
        self.tick()
        self.repeated_ticks.append((self.clock.now(), self.postbox.count - before))

    def person(self, first_name: str) -> Person:
        return self.by_name[first_name]

    def owe(self, person: Person, message: EmailMessage, kind: str) -> None:
        self.owed.append(OwedAnswer(person.address, message["Message-ID"].strip("<>"), kind))

    # -- people acting

    def join(self, wave: list[Person]) -> None:
        """Each person mails "join" with a profile, then replies to the confirmation request."""
        for p in wave:
            self.by_name[p.first_name] = p
            self.expected[p.address] = Expected(p)
            profile = f"join\nname: {p.name}\norg: {p.org}\nabout: {p.about}"
            self.owe(p, self.people.write(p, profile, "Join"), "confirm_join")
        self.tick()
        self.clock.advance(timedelta(hours=1))
        for p in wave:
            question = self.postbox.latest(p.address, "confirm_join")
            assert question is not None, f"{p.address} got no confirmation request after joining"
            self.owe(p, self.people.reply(p, question, "Yes please, count me in."), "welcome")
        self.tick()
        for p in wave:
            self.expected[p.address].joined = True

    def pause(self, person: Person, text: str, until: date | None) -> None:
        self.owe(person, self._answer_latest(person, text), "paused")
        state = self.expected[person.address]
        if until is None:
            state.paused = True
        else:
            state.paused_until = until

    def resume(self, person: Person) -> None:
        self.owe(person, self._answer_latest(person, "resume"), "resumed")
        state = self.expected[person.address]
        state.paused, state.paused_until = False, None

    def set_frequency(self, person: Person, text: str, frequency: int, *, fresh: bool = False) -> None:
        """In reply to our latest email to them alone (proof of mailbox: done at once); ``fresh``:
        a new message, which proves nothing, so the change waits for their reply to a confirmation."""
        if fresh:
            self.owe(person, self.people.write(person, text), "confirm_change")
            self.tick()
            question = self.postbox.latest(person.address, "confirm_change")
            assert question is not None, f"{person.address} was not asked to confirm {text!r}"
            self.owe(person, self.people.reply(person, question, "Yes"), "frequency_changed")
        else:
            self.owe(person, self._answer_latest(person, text), "frequency_changed")
        self.expected[person.address].frequency = frequency

    def _answer_latest(self, person: Person, text: str) -> EmailMessage:
        """``text`` in reply to our latest email to them alone (not an intro: replies go to the group)."""
        kinds = ("welcome", "followup", "reminder", "paused", "resumed", "frequency_changed", "ghost")
        latest = self.postbox.latest(person.address, *kinds)
        assert latest is not None, f"{person.address} has no email of ours to answer"
        return self.people.reply(person, latest, text)

    def leave_by_reply(self, person: Person) -> None:
        """ "leave" in reply to our latest email to them proves the mailbox: done at once."""
        latest = self.postbox.latest(person.address, "followup", "reminder", "welcome")
        assert latest is not None
        self._left(person, self.people.reply(person, latest, "leave\n\nThanks for everything!"))

    def leave_by_list_unsubscribe(self, person: Person) -> None:
        """What a mail client's unsubscribe button does: mail the List-Unsubscribe link."""
        latest = self.postbox.latest(person.address, "followup", "reminder", "welcome")
        assert latest is not None
        subject = latest.unsubscribe_subject()
        assert subject.startswith("leave "), f"List-Unsubscribe of a {latest.kind}: {subject!r}"
        self._left(person, self.people.write(person, "", subject))

    def leave_with_confirmation(self, person: Person) -> None:
        """A fresh "leave" proves nothing about the mailbox: it is confirmed by a reply."""
        asking = self.people.write(person, "Please take me off the list.\nleave")
        self.owe(person, asking, "confirm_leave")
        self.tick()
        self.clock.advance(timedelta(hours=1))
        question = self.postbox.latest(person.address, "confirm_leave")
        assert question is not None, f"{person.address} was not asked to confirm leaving"
        self._left(person, self.people.reply(person, question, "Yes, I'm sure."))
        self.tick()

    def _left(self, person: Person, message: EmailMessage) -> None:
        self.owe(person, message, "goodbye")
        self.expected[person.address].left = True
        group = self.rounds[-1].group_of(person.address) if self.rounds else None
        if group is not None:
            group.left_during.add(person.address)

    # -- a round

    def start_round(self, index: int, dates: RoundDates) -> RoundLog:
        if self.rounds:
            self._expect_close(self.rounds[-1], dates.starts_at)
        eligible = {a for a, s in self.expected.items() if s.active_on(dates.starts_on) and s.due_in(index)}
        log = RoundLog(index, dates, eligible)
        first = self.postbox.count
        self.tick(dates.starts_at)
        self.tick_again()
        # Each member gets their own copy of the group's introduction, the whole group in To.
        copies: dict[tuple[str, ...], list[Delivered]] = {}
        for intro in (d for d in self.postbox.since(first) if d.kind == "intro"):
            copies.setdefault(intro.to, []).append(intro)
        for members, group_copies in copies.items():
            envelopes = sorted(a for copy in group_copies for a in copy.envelope_to)
            assert envelopes == sorted(members), f"intro copies went to {envelopes}, To {members}"
            assert len({copy.message_id for copy in group_copies}) == len(group_copies)
            own = {copy.envelope_to[0]: copy for copy in group_copies}
            log.groups.append(GroupLog(members, group_copies[0], own))
            for address in members:
                if address in self.expected:
                    self.expected[address].last_round = index
        self.rounds.append(log)
        return log

    def follow_up(self, log: RoundLog, rng: random.Random) -> None:
        """Follow-ups go out; most answer within hours, some only after the reminder."""
        dates = log.dates
        assert dates.reminder_at is not None
        log.followup_expected = {a for g in log.groups for a in g.members if not self.expected[a].left}
        self.tick(dates.followup_at)
        for group in log.groups:
            self._decide_answers(group, rng)
        self.clock.advance(timedelta(hours=3))
        self._send_answers(log, rng, late=False)
        self.tick()
        log.reminder_expected = {
            a
            for g in log.groups
            if g.late or g.result == "no_reply"
            for a in g.members
            if not self.expected[a].left
        }
        self.tick(dates.reminder_at)
        self.clock.advance(timedelta(hours=3))
        self._send_answers(log, rng, late=True)
        self.tick()

    def _decide_answers(self, group: GroupLog, rng: random.Random) -> None:
        """Ghosts and leavers never answer and their partners say they missed; other groups met,
        missed (with reasons) or, now and then, stayed silent."""
        quiet = [a for a in group.members if self.expected[a].never_answers or a in group.left_during]
        talkers = [a for a in group.members if a not in quiet]
        if not talkers:
            return
        if quiet:
            name = self.expected[quiet[0]].person.first_name
            template = LEFT_PROGRAMME if quiet[0] in group.left_during else NO_ANSWER
            for address in talkers:
                self._say(group, address, "missed", template.format(name=name))
            return
        roll = rng.random()
        group.late = rng.random() < 0.25
        if roll < 0.15 and all(self.expected[a].silent <= 1 for a in talkers):
            group.late = False
            return
        result, chance = ("met", 0.5) if roll < 0.65 else ("missed", 0.3)
        for position, address in enumerate(talkers):
            # A partner's "missed" does not excuse the silent: nobody but the scenario's ghost
            # stays quiet a third round running.
            must = position == 0 or (result == "missed" and self.expected[address].silent >= 1)
            if must or rng.random() < chance:
                reason = rng.choice(MISSED_REASONS) if result == "missed" else ""
                self._say(group, address, result, reason)

    @staticmethod
    def _say(group: GroupLog, address: str, result: str, reason: str) -> None:
        group.replies[address] = result
        if result == "missed":
            group.reason_of[address] = reason

    def _send_answers(self, log: RoundLog, rng: random.Random, *, late: bool) -> None:
        kind = "reminder" if late else "followup"
        for group in log.groups:
            if group.late != late:
                continue
            for address, result in group.replies.items():
                person = self.expected[address].person
                asked = self.postbox.latest(address, kind)
                assert asked is not None and asked.round_id == log.round_id, (
                    f"{address} has no {kind} for round {log.round_id} to answer"
                )
                form = rng.choice(MET_FORMS if result == "met" else MISSED_FORMS)
                body = form.format(reason=group.reason_of.get(address, ""), name=person.first_name)
                self.people.reply(person, asked, body)

    def _expect_close(self, log: RoundLog, closes_at: datetime) -> None:
        """Closing: an answer (or a partner's "met") resets the silence count; 3 makes a ghost."""
        day = closes_at.date()
        for group in log.groups:
            for address in group.members:
                state = self.expected[address]
                answered = address in group.replies or group.result == "met"
                state.silent = 0 if answered else state.silent + 1
                if state.silent >= GHOST_ROUNDS and state.active_on(day):
                    state.ghost = True
                    log.ghosts_expected.add(address)


# -- the scenario ---------------------------------------------------------------------------------


def make_config(base: Path, account: ImapAccount, sink: SmtpSink) -> Config:
    return Config(
        programme=Programme(
            name="UnMentoring",
            address=PROGRAMME,
            organisers=[ORGANISER],
            timezone="Europe/London",
            cadence="first Monday",
            start_time="09:00",
            followup_day="Monday",
            reminder_after_days=5,
        ),
        imap=Imap(
            host=account.host,
            port=account.imap_port,
            security="none",
            username=account.user,
            password=account.password,
            timeout=10.0,
        ),
        # No sending limit: the throttle waits in real time, and the fake clock would never move.
        smtp=Smtp(host=sink.host, port=sink.port, security="none", timeout=10.0, per_minute=0, per_day=0),
        limits=Limits(ghost_rounds=GHOST_ROUNDS),
        source="test_year.py",
        base_dir=base,
    )


def month_after(year: int, month: int, count: int) -> tuple[int, int]:
    total = year * 12 + month - 1 + count
    return total // 12, total % 12 + 1


def local_day(when: datetime) -> date:
    return when.astimezone(ZONE).date()


@pytest.fixture
def year(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink):
    clock = FakeClock(START)
    app = App.open(make_config(tmp_path, imap_account, smtp_sink), clock)
    sim = Year(app, smtp_sink, imap_account, clock)
    try:
        yield sim
    finally:
        sim.source.close()
        app.close()


def run_the_year(year: Year, waves: list[list[Person]]) -> None:
    year.join(waves[0])
    year.clock.set(START + timedelta(days=1))
    year.set_frequency(year.person("Jo"), "frequency 2", 2)
    year.tick()
    year.expected[year.person("Gus").address].never_answers = True
    for index in range(ROUNDS + 1):
        dates = round_dates(year.app.calendar, *month_after(*FIRST_ROUND, index))
        log = year.start_round(index, dates)
        if index == ROUNDS:
            break  # that tick closed the last round and sent its summary
        if index == 7:  # two days into the round, before the follow-ups
            year.clock.set(dates.starts_at + timedelta(days=2))
            year.leave_with_confirmation(year.person("Omar"))
        year.follow_up(log, random.Random(f"answers {log.round_id}"))
        assert dates.reminder_at is not None
        year.clock.set(dates.reminder_at + timedelta(days=2))
        between_rounds(year, index, waves)


def between_rounds(year: Year, index: int, waves: list[list[Person]]) -> None:
    """The scripted changes after round ``index``'s reminders, before the next round starts."""
    if index == 1:
        year.join(waves[1])
    elif index == 2:
        year.pause(year.person("Hana"), "pause until 2026-06-10", date(2026, 6, 10))
        year.set_frequency(year.person("Kemi"), "every 2 months please", 2)
    elif index == 3:
        year.leave_by_reply(year.person("Maya"))
        year.set_frequency(year.person("Liam"), "frequency 3", 3)
    elif index == 4:
        year.join(waves[2])
        year.pause(year.person("Ivan"), "pause", None)
    elif index == 5:
        today = local_day(year.clock.now())
        in_two_months = date(*month_after(today.year, today.month, 2), today.day)
        year.pause(year.person("Priya"), "pause 2 months", in_two_months)
        year.leave_by_list_unsubscribe(year.person("Nils"))
    elif index == 6:
        year.resume(year.person("Ivan"))
    elif index == 7:
        year.join(waves[3])
    elif index == 9:
        year.set_frequency(year.person("Liam"), "monthly please", 1, fresh=True)
    if year.people.pending:
        year.tick()


@pytest.mark.timeout(180)
def test_a_simulated_year(year: Year) -> None:
    waves = make_waves()
    run_the_year(year, waves)
    check_answers(year)
    check_joining(year, waves)
    check_introductions(year)
    check_no_avoidable_repeats(year)
    check_pauses(year)
    check_frequencies(year)
    check_leavers(year)
    check_follow_ups(year)
    check_ghosts(year)
    check_summaries(year)
    check_nothing_sent_twice(year)


# -- the checks, all on delivered email -----------------------------------------------------------


def check_answers(year: Year) -> None:
    """Every command got its own answer, threaded to it, to that person only."""
    for owed in year.owed:
        answers = [d for d in year.postbox.to(owed.who) if d.in_reply_to == owed.message_id]
        assert [(d.kind, d.to) for d in answers] == [(owed.kind, (owed.who,))], (
            f"{owed.who} is owed a {owed.kind}; answers: {[d.kind for d in answers]}"
        )


def check_joining(year: Year, waves: list[list[Person]]) -> None:
    """Confirmation, then welcome, then introductions from the next round on."""
    for wave in waves:
        for p in wave:
            mail = year.postbox.to(p.address)
            kinds = [d.kind for d in mail]
            assert kinds[:2] == ["confirm_join", "welcome"], f"{p.address} first got {kinds[:3]}"
            assert "intro" in kinds[2:], f"{p.address} was never introduced"


def check_introductions(year: Year) -> None:
    """One intro per group, To and Reply-To all its members; exactly the eligible introduced."""
    assert len(year.rounds) == ROUNDS + 1
    for log in year.rounds:
        introduced: Counter[str] = Counter()
        for group in log.groups:
            intro = group.intro
            assert 2 <= len(group.members) <= 3, f"{log.round_id}: group of {len(group.members)}"
            assert set(intro.to) == set(group.members) == set(intro.reply_to), (
                f"{log.round_id}: intro To {intro.to}, Reply-To {intro.reply_to}, envelope {group.members}"
            )
            assert intro.round_id == log.round_id, f"intro names round {intro.round_id!r}"
            for address in group.members:
                name = year.expected[address].person.name
                assert name in intro.text, f"{log.round_id}: {name} not named in their intro"
            introduced.update(group.members)
        twice = sorted(a for a, n in introduced.items() if n > 1)
        assert not twice, f"{log.round_id}: introduced more than once: {twice}"
        got = set(introduced)
        assert got == log.eligible, (
            f"{log.round_id}: introduced but not eligible {sorted(got - log.eligible)}; "
            f"eligible but not introduced {sorted(log.eligible - got)}"
        )
    assert all(sent == 0 for _, sent in year.repeated_ticks), year.repeated_ticks


def check_no_avoidable_repeats(year: Year) -> None:
    met_before: set[frozenset[str]] = set()
    for log in year.rounds:
        pairs = [frozenset(p) for g in log.groups for p in combinations(g.members, 2)]
        repeats = [tuple(sorted(p)) for p in pairs if p in met_before]
        if repeats:
            people = sorted({a for g in log.groups for a in g.members})
            assert not repeat_free_grouping_exists(people, met_before), (
                f"{log.round_id}: repeated pairs {repeats} though a grouping without any existed"
            )
        met_before.update(pairs)


def repeat_free_grouping_exists(people: list[str], met: set[frozenset[str]]) -> bool:
    """Pairs (and one triple when the count is odd) in which nobody meets anyone again."""
    fresh = nx.Graph()
    fresh.add_nodes_from(people)
    fresh.add_edges_from(p for p in combinations(people, 2) if frozenset(p) not in met)

    def perfect(nodes: list[str]) -> bool:
        matching = nx.max_weight_matching(fresh.subgraph(nodes), maxcardinality=True)
        return 2 * len(matching) == len(nodes)

    if len(people) % 2 == 0:
        return perfect(people)
    for triple in combinations(people, 3):
        if all(fresh.has_edge(a, b) for a, b in combinations(triple, 2)):
            if perfect([p for p in people if p not in triple]):
                return True
    return False


def intro_rounds(year: Year, address: str) -> list[int]:
    return [log.index for log in year.rounds if log.group_of(address) is not None]


def check_pauses(year: Year) -> None:
    """Paused: no intro until resumed (by date, or by "resume"), intros again afterwards."""
    hana, ivan, priya = (year.person(n).address for n in ("Hana", "Ivan", "Priya"))
    for address, until in ((hana, date(2026, 6, 10)), (priya, None), (ivan, None)):
        mail = year.postbox.to(address)
        kinds = [d.kind for d in mail]
        assert "paused" in kinds and "resumed" in kinds, f"{address}: {kinds}"
        paused = next(d for d in mail if d.kind == "paused")
        resumed = next(d for d in mail if d.kind == "resumed" and d.index > paused.index)
        while_paused = [
            d.round_id for d in mail if paused.index < d.index < resumed.index and d.kind == "intro"
        ]
        assert not while_paused, f"{address} introduced while paused: {while_paused}"
        assert any(d.kind == "intro" for d in mail if d.index > resumed.index), (
            f"{address} never introduced again after resuming"
        )
        if until is not None:
            resumed_on = local_day(resumed.message["Date"].datetime)
            assert resumed_on >= until, f"{address} resumed on {resumed_on}, paused until {until}"
    rounds = {year.rounds[i].round_id for i in intro_rounds(year, hana)}
    assert not rounds & {"2026-05", "2026-06"} and "2026-07" in rounds, sorted(rounds)


def check_frequencies(year: Year) -> None:
    for name, since in (("Jo", 0), ("Kemi", 2)):
        indexes = [i for i in intro_rounds(year, year.person(name).address) if i >= since]
        assert len(indexes) >= 5, f"{name}: introduced in rounds {indexes}"
        gaps = {b - a for a, b in zip(indexes, indexes[1:], strict=False)}
        assert gaps == {2}, f"{name} (every 2 months) introduced in rounds {indexes}"
    # Every month, every 3 months after round 3, monthly again after round 9.
    liam = intro_rounds(year, year.person("Liam").address)
    assert liam == [0, 1, 2, 3, 6, 9, 10, 11, 12], f"Liam introduced in rounds {liam}"


def check_leavers(year: Year) -> None:
    """Whoever leaves gets a goodbye and then nothing, whatever was under way."""
    for name in ("Maya", "Nils", "Omar"):
        mail = year.postbox.to(year.person(name).address)
        goodbyes = [d for d in mail if d.kind == "goodbye"]
        assert len(goodbyes) == 1, f"{name}: {[d.kind for d in mail]}"
        after = [(d.kind, d.round_id) for d in mail if d.index > goodbyes[0].index]
        assert not after, f"{name} left but then got {after}"
    omar = [d.kind for d in year.postbox.to(year.person("Omar").address)]
    assert omar[-2:] == ["confirm_leave", "goodbye"], omar


def check_follow_ups(year: Year) -> None:
    """One follow-up per member per round (reminders: only where nobody answered), each
    threaded to that member's own copy of their group's intro."""
    for log in year.rounds[:ROUNDS]:
        for kind, expected in (("followup", log.followup_expected), ("reminder", log.reminder_expected)):
            sent = [d for d in year.postbox.all() if d.kind == kind and d.round_id == log.round_id]
            recipients = Counter(a for d in sent for a in d.envelope_to)
            assert set(recipients) == expected and set(recipients.values()) <= {1}, (
                f"{log.round_id} {kind}s: unexpected {sorted(set(recipients) - expected)}, "
                f"missing {sorted(expected - set(recipients))}, counts {recipients}"
            )
            for d in sent:
                (address,) = d.envelope_to
                group = log.group_of(address)
                assert group is not None, f"{kind} to {address}, who had no group in {log.round_id}"
                own = group.copies[address].message_id  # their own copy of the intro
                assert d.in_reply_to == own, f"{kind} to {address} not threaded"
                assert own in d.references


def check_ghosts(year: Year) -> None:
    """Three silent rounds: the ghost email, and no introduction after it."""
    gus = year.person("Gus").address
    expected = {a for log in year.rounds for a in log.ghosts_expected}
    assert expected == {gus}, f"the scenario makes one ghost, the rules say {sorted(expected)}"
    ghosted = [d for d in year.postbox.all() if d.kind == "ghost"]
    assert sorted(a for d in ghosted for a in d.envelope_to) == [gus]
    later = [x.round_id for x in year.postbox.to(gus, ["intro"]) if x.index > ghosted[0].index]
    assert not later, f"{gus} paused as a ghost but introduced in {later}"
    assert intro_rounds(year, gus) == [0, 1, 2]


def figure(text: str, label: str) -> str:
    matched = re.search(rf"^{re.escape(label)}\s+(\S+)\s*$", text, re.MULTILINE)
    assert matched is not None, f"no figure {label!r} in the summary text"
    return matched.group(1)


def figures_of(text: str) -> list[tuple[str, str]]:
    """The summary's figure lines: label, then the value after two or more spaces."""
    return re.findall(r"^(\S.*?)\s{2,}(\S+)[ \t\r]*$", text, re.MULTILINE)


def check_summaries(year: Year) -> None:
    """Twelve summaries to the organiser: pictures inline by cid, figures as people answered."""
    summaries = [d for d in year.postbox.all() if d.kind == "summary"]
    joined: list[int] = []
    assert [d.round_id for d in summaries] == [log.round_id for log in year.rounds[:ROUNDS]]
    for log, summary in zip(year.rounds, summaries, strict=False):
        assert summary.envelope_to == (ORGANISER,) and summary.to == (ORGANISER,)
        inline = summary.inline_images()
        assert {"growth", "network"} <= set(inline) <= {"growth", "network", "met_network"}, (
            f"summary {log.round_id}: inline images {sorted(inline)}"
        )
        for cid, png in inline.items():
            assert f"cid:{cid}" in summary.html, f"summary {log.round_id}: {cid} not in the HTML"
            with Image.open(io.BytesIO(png)) as picture:
                assert picture.format == "PNG" and picture.width >= 400 and picture.height >= 300
        text = summary.text
        results = Counter(g.result for g in log.groups)
        assert figure(text, "Groups formed") == str(len(log.groups))
        for label, result in (("Met", "met"), ("Missed", "missed"), ("No reply", "no_reply")):
            assert figure(text, label) == str(results[result]), f"{log.round_id}: {results}"
        assert figure(text, "Ghosts paused") == str(len(log.ghosts_expected))
        assert figure(text, "Disputed") == "0"  # in this year nobody contradicts a partner
        # Every reason as written, in the attached CSV; the text groups them by theme.
        attached = {
            part.get_filename(): part.get_payload(decode=True).decode("utf-8")
            for part in summary.message.iter_attachments()
            if part.get_content_type() == "text/csv"
        }
        reasons_csv = attached[f"reasons-{log.round_id}.csv"]
        rows = list(csv.DictReader(io.StringIO(reasons_csv)))
        given = [r for g in log.groups for r in g.reasons]
        assert sorted(row["reason"] for row in rows) == sorted(given), f"summary {log.round_id}"
        for theme, count in Counter(row["theme"] for row in rows).items():
            assert f"  {theme}: {count}" in text.splitlines(), f"summary {log.round_id}: theme {theme}"
        joined.append(int(next(v for k, v in figures_of(text) if k.startswith("Joined "))))
    # Joins are counted since the summary before, so each join is counted exactly once.
    assert sum(joined) == sum(WAVE_SIZES), joined


def check_nothing_sent_twice(year: Year) -> None:
    """By what makes an email unique: kind, recipient and round (or the message answered)."""
    identities: Counter[tuple[str, ...]] = Counter()
    for d in year.postbox.all():
        sender = d.message["From"].addresses[0].addr_spec
        assert sender == PROGRAMME, sender
        # VERP: one recipient, its own return path on the programme address; several: the address
        if len(d.envelope_to) == 1:
            assert return_path_token(d.envelope_from, PROGRAMME), d.envelope_from
        else:
            assert d.envelope_from == PROGRAMME, d.envelope_from
        if d.kind in ("intro", "followup", "reminder", "summary"):
            identity = (d.kind, d.round_id)
        elif d.kind == "ghost":
            identity = (d.kind,)
        else:  # an answer to one message of theirs
            identity = (d.kind, d.in_reply_to)
        for address in d.envelope_to:
            identities[(*identity, address)] += 1
    twice = [identity for identity, n in identities.items() if n > 1]
    assert not twice, f"sent more than once: {twice}"
    message_ids = Counter(d.message_id for d in year.postbox.all())
    assert set(message_ids.values()) == {1}
    failed = year.app.store.find(OutboxEntry, "status", "failed")
    assert not failed, [(e.key, e.last_error) for e in failed]
