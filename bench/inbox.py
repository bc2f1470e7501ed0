"""Bench: processing 10,000 inbound messages from IMAP vs the floor (fetch + parse, nothing else).

A private Dovecot (tests/servers.py) gets two identical mailboxes of realistic mail, appended with
IMAP APPEND: joins from thousands of distinct senders, confirmations replying to the confirmation
emails the service actually sent, met / missed replies threaded to the follow-ups of a real round,
automatic replies (Outlook, Gmail, Sieve styles) and bounces (Postfix, Exim, Gmail-style DSNs, some
only delays).

Setup (not timed): members for the round are created through ``matcher.members``, a round is started
and followed up through the cycle (``matcher.rounds``), other people's joins go through the real
inbox path, and everything queued is delivered to an aiosmtpd sink, whose copies are what the
replies answer.

Timed: ``service.poll_inbox`` with the service's own ``ImapSource`` (what ``unmentoring tick``
does): fetch, parse, classify, apply, queue the answers (rendered and composed), commit, move to
"Processed". The floor, on the second mailbox: imapclient ``BODY.PEEK[]`` in batches and
``email.message_from_bytes(policy=default)`` of each message, nothing else; run before and after
ours, the faster run counts.

Prints ONE JSON line (setup steps are timed on stderr):
  messages             how many messages each side read
  seconds              our processing of all of them
  floor_seconds        fetch + parse only (the faster of two runs)
  ratio                seconds / floor_seconds; targets: ratio <= 2 and seconds <= 60
  floor_runs           both floor runs
  floor_parse_seconds  the parsing part of the counted floor run
  report               what the poll reported (applied, ignored, duplicates, failed, quarantined)
  answers_queued       the emails the poll queued, by kind
  mix, message_bytes   the mailbox: messages by kind, mean size
  setup_seconds        everything before the timed poll

Run: .venv/bin/python bench/inbox.py [--messages 10000] [--seed N] [--profile FILE]
     [--save-setup DIR]
A large poll reads messages ahead in worker processes when the machine has a spare core (see
inbox.read_ahead.ReadAhead); `taskset -c 0 .venv/bin/python bench/inbox.py` measures one core.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import email
import json
import random
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from inbox.sources.imap import FETCH_BATCH  # noqa: E402
from matcher import members as ops  # noqa: E402
from matcher import tokens  # noqa: E402
from matcher.calendar import round_dates  # noqa: E402
from matcher.clock import FakeClock  # noqa: E402
from matcher.model import Group, Member, OutboxEntry  # noqa: E402
from tests.servers import Dovecot, ImapAccount, ReceivedMessage, SmtpSink  # noqa: E402
from unmentoring import service  # noqa: E402
from unmentoring.app import App  # noqa: E402
from unmentoring.config import Config, Imap, Limits, Programme, Smtp  # noqa: E402
from unmentoring.sandbox_cli import build_message, build_reply  # noqa: E402

PROGRAMME = "coffee@unmentoring.example.org"
ORGANISER = "organiser@unmentoring.example.org"
KIND_HEADER = "X-UnMentoring-Kind"
ROUND = (2026, 2)  # first Monday: 2 February 2026

# Shares of the mailbox, in the order the kinds are dealt out (then shuffled).
MIX = {
    "join": 0.20,
    "confirm": 0.25,
    "met": 0.20,
    "missed": 0.10,
    "auto_reply": 0.125,
    "bounce": 0.125,
}

FIRST = (
    "Ada Ben Chloe Dev Ed Fatima Gus Hana Ivan Jo Liam Maya Rosa Sam Tara Umar Kemi Nils Priya "
    "Quinn Vera Wes Xia Yusuf Zoe Alex Omar Bea Cai Dina Eli Faye Gil Hugo Iris Jack Kai Lena Milo "
    "Nora Ola Pia Rui Siân Tomás Ursula Zoë Émile Åsa"
).split()
SURNAMES = (
    "Adams Baker Clarke Davies Evans Frost Green Hughes Irwin Jones Khan Lewis Morgan Nolan "
    "O'Brien Patel Quigley Roberts Singh Turner Underwood Vaughan Walsh Young Zhang"
).split()
ORGS = (
    ("Leeds City Council", "leeds.example.gov"),
    ("NHS Digital", "nhs.example.net"),
    ("Cabinet Office", "cabinet.example.gov"),
    ("Bristol City Council", "bristol.example.gov"),
    ("DVLA", "dvla.example.gov"),
    ("Met Office", "metoffice.example.gov"),
    ("Ordnance Survey", "os.example.gov"),
    ("Hackney Council", "hackney.example.gov"),
    ("Environment Agency", "environment.example.gov"),
    ("HM Land Registry", "landregistry.example.gov"),
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
ABOUTS = (
    "I work on {topic} and would love to hear how other teams do it.",
    "Ten years in {topic}; happy to talk about anything but sales.",
    "New to {topic}, curious about everything, coffee lover.",
    "Building things for {topic}. Ask me about accessibility.",
)
TOPICS = ("open data", "housing repairs", "digital forms", "procurement", "user research", "APIs")
MET_FORMS = (
    "Met! Lovely conversation.\n\n{first}",
    "met",
    "Met - we talked about open data for an hour.",
    "Met on Tuesday - thanks for setting it up!\n\nBest,\n{first}",
    "met\n\n-- \n{name}\n{role}, {org}\nTel 0113 496 0{n:03d}",
)
MISSED_FORMS = (
    "missed - {reason}",
    "Missed: {reason}",
    "didn't meet - {reason}",
    "missed\n{reason}\n\nSent from my iPhone",
)
REASONS = (
    "she was ill that week",
    "we could not find a time",
    "I was on leave",
    "train strike, then a deadline",
    "my partner's diary was full",
)
CONFIRM_FORMS = (
    "Yes, count me in.",
    "yes please",
    "Confirmed, thank you!\n\n{first}",
    "Yes\n\nSent from Outlook for iOS",
    "",  # a bare reply: the quoted confirmation is all there is
)


@dataclass(frozen=True)
class Person:
    name: str
    org: str
    address: str
    role: str
    about: str

    @property
    def first(self) -> str:
        return self.name.split()[0]

    @property
    def mailbox(self) -> str:
        return str(Address(display_name=self.name, addr_spec=self.address))


def make_people(count: int, start: int, rng: random.Random) -> list[Person]:
    """Distinct people (distinct addresses), from ``start`` on so two calls never overlap."""
    people = []
    for n in range(start, start + count):
        first, surname = rng.choice(FIRST), rng.choice(SURNAMES)
        org, domain = ORGS[n % len(ORGS)]
        local = f"{first}.{surname}".lower().replace("'", "")
        local = local.encode("ascii", "ignore").decode() or "member"
        people.append(
            Person(
                name=f"{first} {surname}",
                org=org,
                address=f"{local}.{n}@{domain}",
                role=rng.choice(ROLES),
                about=rng.choice(ABOUTS).format(topic=rng.choice(TOPICS)),
            )
        )
    return people


# -- the programme -------------------------------------------------------------------------------


def make_config(base: Path, account: ImapAccount, sink: SmtpSink) -> Config:
    return Config(
        programme=Programme(
            name="UnMentoring",
            address=PROGRAMME,
            organisers=[ORGANISER],
            timezone="Europe/London",
        ),
        imap=Imap(
            host=account.host,
            port=account.imap_port,
            security="none",
            username=account.user,
            password=account.password,
            timeout=30.0,
        ),
        # No sending limit: the throttle waits in real time and the fake clock never moves.
        smtp=Smtp(host=sink.host, port=sink.port, security="none", timeout=30.0, per_minute=0, per_day=0),
        limits=Limits(),
        source="bench/inbox.py",
        base_dir=base,
    )


def add_active_members(app: App, people: Sequence[Person], now: datetime) -> None:
    """Members who joined and confirmed long ago (their join mail is not what is measured)."""
    with app.store.transaction():
        for person in people:
            fields = {"name": person.name, "org": person.org, "about": person.about}
            member = ops.start_joining(app.store, person.address, fields, now)
            member = ops.activate(app.store, member, now)
            tokens.member_token(app.store, member, now)


def deliver(app: App, sink: SmtpSink) -> list[ReceivedMessage]:
    """Send what the outbox holds; return what the sink received this time."""
    before = len(sink.messages)
    report = service.deliver_outbox(app)
    if report.failed or report.held:
        raise SystemExit(f"setup: delivery failed: {report}")
    return sink.messages[before:]


def parsed(received: ReceivedMessage) -> EmailMessage:
    return email.message_from_bytes(received.raw, policy=policy.default)  # type: ignore[return-value]


def by_kind(received: Sequence[ReceivedMessage], kind: str) -> list[EmailMessage]:
    messages = [parsed(r) for r in received]
    return [m for m in messages if m.get(KIND_HEADER) == kind]


# -- the messages people write ------------------------------------------------------------------


def join_message(person: Person, n: int, clock: FakeClock) -> bytes:
    lines = ["join", f"name: {person.name}", f"org: {person.org}", f"about: {person.about}"]
    if n % 3 == 0:
        lines = ["Please sign me up!", "", *lines[1:]]
        subject = "join"
    elif n % 3 == 1:
        subject = "Joining UnMentoring"
    else:
        subject = ""
    signature = f"\n\n-- \n{person.name}\n{person.role}, {person.org}\n"
    message = build_message(person.mailbox, [PROGRAMME], subject, "\n".join(lines) + signature, clock)
    return _as_delivered(message, person.address)


def confirm_reply(person: Person, confirmation: EmailMessage, n: int, clock: FakeClock) -> bytes:
    body = CONFIRM_FORMS[n % len(CONFIRM_FORMS)].format(first=person.first)
    reply = build_reply(confirmation, person.mailbox, body, clock)
    return _as_delivered(_maybe_html(reply, body, n), person.address)


def outcome_reply(person: Person, followup: EmailMessage, kind: str, n: int, clock: FakeClock) -> bytes:
    forms = MET_FORMS if kind == "met" else MISSED_FORMS
    body = forms[n % len(forms)].format(
        first=person.first,
        name=person.name,
        role=person.role,
        org=person.org,
        n=n % 1000,
        reason=REASONS[n % len(REASONS)],
    )
    reply = build_reply(followup, person.mailbox, body, clock)
    return _as_delivered(_maybe_html(reply, body, n), person.address)


def _maybe_html(reply: EmailMessage, body: str, n: int) -> EmailMessage:
    """Every other reply is multipart/alternative with an HTML part, as Gmail and Outlook send."""
    if n % 2:
        return reply
    text = reply.get_content()
    quote_at = text.find("\nOn ")
    quoted = text[quote_at:] if quote_at >= 0 else ""
    paragraphs = "".join(f"<div>{line or '<br>'}</div>" for line in body.splitlines())
    html = (
        f'<div dir="ltr">{paragraphs}</div><br><div class="gmail_quote">'
        f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid">'
        f"{quoted.replace(chr(10), '<br>')}</blockquote></div>"
    )
    reply.add_alternative(html, subtype="html")
    return reply


def auto_reply(person: Person, followup: EmailMessage, n: int, clock: FakeClock) -> bytes:
    """Out-of-office answers in the three common dialects."""
    subject = str(followup["Subject"])
    style = n % 3
    if style == 0:  # Exchange / Outlook
        body = (
            f"Thank you for your email. I am out of the office until {10 + n % 18} February "
            f"with limited access to email.\n\nFor urgent matters please contact the team.\n\n"
            f"{person.name}\n{person.role}"
        )
        message = build_message(person.mailbox, [PROGRAMME], f"Automatic reply: {subject}", body, clock)
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message["Thread-Topic"] = subject
        message.add_alternative(f"<p>{body.replace(chr(10), '<br>')}</p>", subtype="html")
        return_path = person.address
    elif style == 1:  # Gmail vacation responder
        body = f"Hi,\n\nI'm on holiday and will reply when I'm back.\n\n{person.first}"
        message = build_message(person.mailbox, [PROGRAMME], f"Re: {subject}", body, clock)
        message["Auto-Submitted"] = "auto-replied"
        message["Precedence"] = "bulk"
        return_path = person.address
    else:  # Sieve vacation (RFC 5230): null envelope sender
        body = f"I am away until the end of the month.\n\n{person.name}"
        message = build_message(person.mailbox, [PROGRAMME], f"Out of office: {subject}", body, clock)
        message["Auto-Submitted"] = "auto-replied (vacation)"
        return_path = ""
    message["In-Reply-To"] = str(followup["Message-ID"])
    message["References"] = str(followup["Message-ID"])
    return _as_delivered(message, return_path)


def bounce(person: Person, followup: bytes, n: int, clock: FakeClock) -> bytes:
    """A delivery status notification for our follow-up to ``person``: mostly permanent failures
    from Postfix (the whole original attached), Exim (plain text, X-Failed-Recipients) or Gmail-style
    relays (original headers only); one in eight is a delay warning."""
    style = n % 3
    delayed = n % 8 == 7
    mx = f"mx{n % 7}.{person.address.rpartition('@')[2]}"
    status, action = ("4.4.1", "delayed") if delayed else ("5.1.1", "failed")
    diagnostic = (
        "smtp; 450 4.4.1 Connection timed out"
        if delayed
        else f"smtp; 550 5.1.1 <{person.address}>: Recipient address rejected: User unknown"
    )
    if style == 1:  # Exim: plain text, no DSN
        message = EmailMessage(policy=policy.default)
        message["From"] = f"Mail Delivery System <Mailer-Daemon@{mx}>"
        message["To"] = PROGRAMME
        message["Subject"] = (
            "Warning: message delayed" if delayed else "Mail delivery failed: returning message to sender"
        )
        if not delayed:
            message["X-Failed-Recipients"] = person.address
        message["Auto-Submitted"] = "auto-replied"
        message["Date"] = format_datetime(clock.now())
        message["Message-ID"] = f"<E1v{n:08d}-000{n % 10}Xy-0A@{mx}>"
        intro = (
            "This message was created automatically by mail delivery software.\n\n"
            + (
                "A message that you sent has not yet been delivered to one or more of its\n"
                "recipients after more than 24 hours on the queue. No action is required on your\n"
                "part. Delivery attempts will continue for some time.\n\n"
                if delayed
                else "A message that you sent could not be delivered to one or more of its\n"
                "recipients. This is a permanent error. The following address(es) failed:\n\n"
            )
            + f"  {person.address}\n    {diagnostic[6:]}\n\n"
            "------ This is a copy of the message, including all the headers. ------\n\n"
        )
        message.set_content(intro + followup.decode("ascii").replace("\r\n", "\n"))
        return _as_delivered(message, "")
    message = EmailMessage(policy=policy.default)
    message["From"] = f"MAILER-DAEMON@{mx} (Mail Delivery System)"
    message["To"] = PROGRAMME
    message["Subject"] = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    message["Auto-Submitted"] = "auto-replied"
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = f"<20260216{n:08d}.{n % 97}@{mx}>"
    message.set_content(
        f"This is the mail system at host {mx}.\n\n"
        + (
            "####################################################################\n"
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
            "####################################################################\n\n"
            if delayed
            else "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients. It's attached below.\n\n"
        )
        + f"<{person.address}>: {diagnostic[6:]}\n"
    )
    message.make_mixed()
    report = (
        f"Reporting-MTA: dns; {mx}\nX-Postfix-Queue-ID: 4Q{n:08X}\n"
        f"Arrival-Date: {format_datetime(clock.now() - timedelta(hours=2))}\n\n"
        f"Final-Recipient: rfc822; {person.address}\nOriginal-Recipient: rfc822;{person.address}\n"
        f"Action: {action}\nStatus: {status}\nRemote-MTA: dns; {mx}\n"
        f"Diagnostic-Code: {diagnostic}\n"
    )
    # Parsed rather than built: the email package keeps a delivery-status body as header blocks.
    status_part = email.message_from_string(
        f"Content-Type: message/delivery-status\n\n{report}", policy=policy.default
    )
    message.attach(status_part)
    original = email.message_from_bytes(followup, policy=policy.default)
    if style == 0:  # Postfix: the whole message
        message.add_attachment(original)
    else:  # the headers only
        headers = EmailMessage(policy=policy.default)
        headers.set_content("".join(f"{k}: {v}\n" for k, v in original.items()), subtype="rfc822-headers")
        headers.replace_header("Content-Type", "text/rfc822-headers")
        message.attach(headers)
    message.replace_header(
        "Content-Type", message["Content-Type"].replace("multipart/mixed", "multipart/report")
    )
    message.set_param("report-type", "delivery-status")
    return _as_delivered(message, "")


def _as_delivered(message: EmailMessage, return_path: str) -> bytes:
    """The bytes as the MTA hands them to Dovecot: Return-Path and Received on top, CRLF."""
    queue_id = zlib.crc32(str(message["Message-ID"]).encode())
    received = (
        f"Received: from relay.example.net (relay.example.net [192.0.2.25])\r\n"
        f"\tby mx.unmentoring.example.org (Postfix) with ESMTPS id 4Q{queue_id:08X}\r\n"
        f"\tfor <{PROGRAMME}>; {message['Date']}\r\n"
    )
    head = f"Return-Path: <{return_path}>\r\n{received}".encode()
    return head + message.as_bytes(policy=policy.SMTP)


# -- the two sides -------------------------------------------------------------------------------


@dataclass
class Mailbox:
    raws: list[bytes]
    mix: Counter


@contextlib.contextmanager
def phase(what: str) -> Iterator[None]:
    """Say on stderr how long a setup step took (stdout carries only the JSON line)."""
    start = time.perf_counter()
    yield
    print(f"setup: {what}: {time.perf_counter() - start:.1f} s", file=sys.stderr)


def build_mailbox(
    app: App, account: ImapAccount, sink: SmtpSink, clock: FakeClock, total: int, seed: int
) -> Mailbox:
    """Set the programme up (untimed) and write the messages of the timed poll."""
    rng = random.Random(seed)
    counts = {kind: int(total * share) for kind, share in MIX.items()}
    counts["join"] += total - sum(counts.values())

    # Members of the round: the met/missed replies, out-of-office answers and bounces are theirs.
    answering = counts["met"] + counts["missed"]
    in_round = make_people(answering + counts["auto_reply"] // 2 + counts["bounce"], 0, rng)
    dates = round_dates(app.calendar, *ROUND)
    clock.set(dates.starts_at - timedelta(days=20))
    with phase(f"{len(in_round)} members"):
        add_active_members(app, in_round, clock.now())

    with phase("round started, introductions and follow-ups queued"):
        clock.set(dates.starts_at)
        app.cycle.start(dates, clock.now())
        clock.set(dates.followup_at)
        app.cycle.send_followups(dates.round_id, clock.now())
    with phase("introductions and follow-ups sent"):
        sent = deliver(app, sink)
    followup_raw = {r.rcpt_tos[0].lower(): r.raw for r in sent if _kind_of(r) == "followup"}
    if len(followup_raw) != len(in_round):
        raise SystemExit(f"setup: {len(followup_raw)} follow-ups for {len(in_round)} members")

    # People who asked to join yesterday: their joins go through the real inbox path, and the
    # confirmation emails the service sent are what their confirmations answer.
    clock.set(dates.followup_at + timedelta(hours=6))
    joiners = make_people(counts["confirm"], len(in_round), rng)
    with phase(f"{len(joiners)} joins processed"):
        deliver_and_poll(app, account, [join_message(p, n, clock) for n, p in enumerate(joiners)])
    with phase("confirmations sent"):
        confirmations = {
            m["To"].addresses[0].addr_spec.lower(): m for m in by_kind(deliver(app, sink), "confirm_join")
        }
    if len(confirmations) != len(joiners):
        raise SystemExit(f"setup: {len(confirmations)} confirmations for {len(joiners)} joins")

    # The timed mailbox, the next morning.
    started = time.perf_counter()
    clock.set(dates.followup_at + timedelta(days=1))
    newcomers = make_people(counts["join"], len(in_round) + len(joiners), rng)
    raws: list[bytes] = []
    mix: Counter = Counter()

    def add(kind: str, raw: bytes) -> None:
        raws.append(raw)
        mix[kind] += 1

    for n, person in enumerate(newcomers):
        add("join", join_message(person, n, clock))
    for n, person in enumerate(joiners):
        add("confirm", confirm_reply(person, confirmations[person.address], n, clock))
    repliers = in_round[:answering]
    for n, person in enumerate(repliers):
        kind = "met" if n < counts["met"] else "missed"
        followup = email.message_from_bytes(followup_raw[person.address], policy=policy.default)
        add(kind, outcome_reply(person, followup, kind, n, clock))  # type: ignore[arg-type]
    # Out-of-office answers: half from members who also reply, half from others.
    away = (
        repliers[: counts["auto_reply"] - counts["auto_reply"] // 2]
        + in_round[answering : answering + counts["auto_reply"] // 2]
    )
    for n, person in enumerate(away):
        followup = email.message_from_bytes(followup_raw[person.address], policy=policy.default)
        add("auto_reply", auto_reply(person, followup, n, clock))  # type: ignore[arg-type]
    for n, person in enumerate(in_round[len(in_round) - counts["bounce"] :]):
        add("bounce", bounce(person, followup_raw[person.address], n, clock))
    rng.shuffle(raws)
    print(f"setup: {len(raws)} messages written: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return Mailbox(raws, mix)


def _kind_of(received: ReceivedMessage) -> str:
    head = received.raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(KIND_HEADER.lower().encode() + b":"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def deliver_and_poll(app: App, account: ImapAccount, raws: list[bytes]) -> None:
    """Setup: mail to the programme's own mailbox, polled at once (untimed)."""
    account.deliver_many(raws)
    source = app.inbound_source()
    try:
        report = service.poll_inbox(app, source)
    finally:
        source.close()
    if report.applied != len(raws):
        raise SystemExit(f"setup: {report} for {len(raws)} joins")


def floor_run(account: ImapAccount) -> tuple[float, float]:
    """Fetch every message (BODY.PEEK[], in batches) and parse each with the email package.
    Returns the total time and the part of it spent parsing."""
    start = time.perf_counter()
    parsing = 0.0
    client = IMAPClient(account.host, port=account.imap_port, ssl=False, timeout=30)
    client.login(account.user, account.password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["ALL"]))
    for at in range(0, len(uids), FETCH_BATCH):
        response = client.fetch(uids[at : at + FETCH_BATCH], ["BODY.PEEK[]"])
        started = time.perf_counter()
        for data in response.values():
            email.message_from_bytes(data[b"BODY[]"], policy=policy.default)
        parsing += time.perf_counter() - started
    client.logout()
    return time.perf_counter() - start, parsing


def check_outcome(
    app: App, account: ImapAccount, report: object, mailbox: Mailbox, answers: Counter, outcomes: int
) -> None:
    """The poll did the work, not just went through the messages: every message read and filed,
    each join asked to confirm, each confirmation welcomed, each met/missed recorded."""
    left = len(account.list_folder("INBOX"))
    mix = mailbox.mix
    problems = []
    if report.total != len(mailbox.raws) or left:  # type: ignore[attr-defined]
        problems.append(f"the poll saw {report} and left {left} in the INBOX")
    if answers["confirm_join"] != mix["join"] or answers["welcome"] != mix["confirm"]:
        problems.append(f"answers {dict(answers)} for {dict(mix)}")
    if outcomes != mix["met"] + mix["missed"]:
        problems.append(f"{outcomes} outcomes recorded for {mix['met'] + mix['missed']} replies")
    if problems:
        raise SystemExit("; ".join(problems))


def save_setup(target: Path, mailbox: Mailbox, base: Path) -> None:
    """The messages (one .eml each, in order) and the programme's data as the poll finds them,
    for profiling the processing again without Dovecot."""
    (target / "mail").mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(mailbox.raws):
        (target / "mail" / f"{n:05d}.eml").write_bytes(raw)
    shutil.copytree(base / "data", target / "data", dirs_exist_ok=True)


def timed(what: Callable[[], object], profile: str | None) -> tuple[float, object]:
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = what()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--profile", help="write a cProfile of the timed poll to this file")
    parser.add_argument(
        "--save-setup", help="copy the mailbox and the data folder here before the timed poll"
    )
    args = parser.parse_args()

    setup_started = time.perf_counter()
    dovecot = Dovecot().start()
    sink = SmtpSink().start()
    try:
        dovecot.add_user("programme", "programme-password")
        dovecot.add_user("floor", "floor-password")
        ours = ImapAccount(dovecot, "programme", "programme-password")
        floor = ImapAccount(dovecot, "floor", "floor-password")
        with tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp:
            clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
            with App.open(make_config(Path(tmp), ours, sink), clock) as app:
                mailbox = build_mailbox(app, ours, sink, clock, args.messages, args.seed)
                with phase("both mailboxes filled (IMAP APPEND)"):
                    ours.deliver_many(mailbox.raws)
                    floor.deliver_many(mailbox.raws)
                queued_before = len(app.store.all(OutboxEntry))
                if args.save_setup:
                    save_setup(Path(args.save_setup), mailbox, Path(tmp))
                setup_seconds = time.perf_counter() - setup_started

                floor_runs = [floor_run(floor)]
                source = app.inbound_source()
                try:
                    seconds, report = timed(lambda: service.poll_inbox(app, source), args.profile)
                finally:
                    source.close()
                floor_runs.append(floor_run(floor))

                answers = Counter(e.kind for e in app.store.all(OutboxEntry)[queued_before:])
                outcomes = sum(len(group.outcomes) for group in app.store.all(Group))
                scored = sum(1 for member in app.store.all(Member) if member.bounce_score)
                check_outcome(app, ours, report, mailbox, answers, outcomes)
    finally:
        sink.stop()
        dovecot.cleanup()

    floor_seconds, floor_parsing = min(floor_runs)
    size = sum(len(r) for r in mailbox.raws) / max(len(mailbox.raws), 1)
    print(
        json.dumps(
            {
                "messages": args.messages,
                "seconds": round(seconds, 3),
                "floor_seconds": round(floor_seconds, 3),
                "ratio": round(seconds / floor_seconds, 3),
                "floor_runs": [round(s, 3) for s, _ in floor_runs],
                "floor_parse_seconds": round(floor_parsing, 3),
                "report": vars(report),
                "answers_queued": dict(answers),
                "outcomes_recorded": outcomes,
                "members_bounce_scored": scored,
                "mix": dict(mailbox.mix),
                "message_bytes": round(size),
                "setup_seconds": round(setup_seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
