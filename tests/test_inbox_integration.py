"""The inbox end to end: real messages delivered to a real Dovecot, polled over IMAPS with the real
ImapSource, processed into a real store; folders, store and queued notices checked afterwards."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid
from pathlib import Path

import pytest

import inbox.apply
from inbox.parse import parse_message
from inbox.poll import PollReport, process_source
from inbox.sources.imap import ImapSource
from mailer.outbox import Outbox
from mailer.render import Renderer
from mailer.settings import MailSettings, make_list_id
from mailkit.servers import ImapServer, SmtpServer
from matcher.members import find_member
from matcher.model import Member, MemberStatus, Notice, OutboxEntry, ProcessedMessage
from tests.servers import ImapAccount
from tests.test_apply import ORGANISERS, PROGRAMME, Harness, make_message

MAIL = Path(__file__).parent / "data" / "mail"
LOG = logging.getLogger("test.inbox")


def imap_settings(account: ImapAccount) -> ImapServer:
    return ImapServer(
        host=account.host,
        port=account.imaps_port,
        security="ssl",
        username=account.user,
        password=account.password,
        ca_file=account.ca_file,
        timeout=10.0,
    )


class Poller:
    """Polls like `unmentoring tick` run by cron: each poll connects afresh, and the source's state
    (UIDVALIDITY, last UID) is kept between polls, as the service keeps it in the store."""

    def __init__(self, account: ImapAccount, box: Harness) -> None:
        self.settings = imap_settings(account)
        self.state: dict = {}
        self.box = box

    def poll(self, queue_notices: Callable[[list[Notice]], object]) -> PollReport:
        with ImapSource(self.settings, self.state) as source:
            return process_source(source, self.box.store, self.box.processor, queue_notices, LOG)


@pytest.fixture
def poller(imap_account: ImapAccount, box: Harness) -> Poller:
    return Poller(imap_account, box)


class Queue:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def __call__(self, notices: list[Notice]) -> None:
        self.notices.extend(notices)


def ids_in(account: ImapAccount, folder: str) -> list[str]:
    return sorted(parse_message(raw).message_id or "" for raw in account.list_folder(folder))


def outbox_for(box: Harness, tmp_path: Path) -> Outbox:
    """The real outbox, as the service loop queues into it (rendered, composed, stored)."""
    settings = MailSettings(
        programme_name="UnMentoring",
        programme_address=PROGRAMME,
        organisers=list(ORGANISERS),
        list_id=make_list_id("UnMentoring", PROGRAMME),
        smtp=SmtpServer(per_minute=0, per_day=0, host="127.0.0.1", port=2525, security="none"),
    )
    return Outbox(box.store, box.clock, settings, Renderer(settings), tmp_path / "outbox.journal")


def queued(box: Harness) -> list[tuple[str, list[str]]]:
    return [(e.kind, e.recipients) for e in box.store.all(OutboxEntry)]  # in the order queued


def reply_to_queued(box: Harness, kind: str, address: str, body: str) -> bytes:
    """What a mail client sends when the person presses Reply on the email we queued."""
    [entry] = [e for e in box.store.all(OutboxEntry) if e.kind == kind and address in e.recipients]
    ours = BytesParser(policy=policy.default).parsebytes(entry.raw.encode("ascii"))
    reply = EmailMessage()
    reply["From"] = address
    reply["To"] = str(ours["Reply-To"] or ours["From"])
    reply["Subject"] = f"Re: {ours['Subject']}"
    reply["Message-ID"] = make_msgid(domain="borough.example.org")
    reply["In-Reply-To"] = ours["Message-ID"]
    reply["References"] = ours["Message-ID"]
    quoted = "\n".join(f"> {line}" for line in ours.get_body(("plain",)).get_content().splitlines())
    reply.set_content(f"{body}\n\nOn Monday, UnMentoring wrote:\n{quoted}\n")
    return bytes(reply)


def test_real_messages_are_applied_answered_and_filed(
    box: Harness, poller: Poller, imap_account: ImapAccount, tmp_path: Path
) -> None:
    outbox = outbox_for(box, tmp_path)
    join = (MAIL / "join-plain.eml").read_bytes()
    imap_account.deliver_many(
        [
            join,
            (MAIL / "autoreply-outlook-oof.eml").read_bytes(),
            (MAIL / "bounce-postfix-550.eml").read_bytes(),
            (MAIL / "human-not-command.eml").read_bytes(),
            join,  # delivered twice (e.g. Cc'd to two of our aliases)
        ]
    )

    report = poller.poll(outbox.queue_many)

    assert report == PollReport(applied=2, ignored=2, duplicates=1)
    assert queued(box) == [
        ("confirm_join", ["sam.patel@borough.example.org"]),
        ("help", ["chris.evans@district.example.gov.uk"]),
    ]
    sam = box.member("sam.patel@borough.example.org")
    assert (sam.status, sam.name) == (MemberStatus.PENDING, "")  # the profile waits for the confirmation
    assert imap_account.list_folder("INBOX") == []
    assert len(imap_account.list_folder("Processed")) == 5
    assert {p.status for p in box.store.all(ProcessedMessage)} == {"applied", "ignored"}

    # Sam presses Reply on the confirmation we sent: that confirms.
    sam_says = "sam.patel@borough.example.org"
    imap_account.deliver(reply_to_queued(box, "confirm_join", sam_says, "Yes, count me in."))
    polled = poller.poll(outbox.queue_many)
    assert polled == PollReport(applied=1)
    assert queued(box)[-1] == ("welcome", ["sam.patel@borough.example.org"])
    assert box.member("sam.patel@borough.example.org").status is MemberStatus.ACTIVE
    assert box.member("sam.patel@borough.example.org").name == "Sam Patel"

    # Later Sam answers the welcome email with "stop": a reply to our mail leaves at once.
    box.clock.advance(timedelta(days=2))
    imap_account.deliver(reply_to_queued(box, "welcome", sam_says, "Stop, please."))
    polled = poller.poll(outbox.queue_many)
    assert polled == PollReport(applied=1)
    assert queued(box)[-1] == ("goodbye", ["sam.patel@borough.example.org"])
    assert box.member("sam.patel@borough.example.org").status is MemberStatus.LEFT
    assert imap_account.list_folder("INBOX") == []
    assert len(imap_account.list_folder("Processed")) == 7
    # Nothing comes back on the next poll.
    assert poller.poll(outbox.queue_many) == PollReport()


def test_a_message_that_keeps_failing_is_quarantined_without_blocking_others(
    box: Harness,
    poller: Poller,
    imap_account: ImapAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = inbox.apply.apply_message

    def failing_for_poison(store, settings, now, parsed, command, key):
        if parsed.subject == "poison":
            raise RuntimeError("simulated bug while applying")
        return real(store, settings, now, parsed, command, key)

    monkeypatch.setattr("inbox.processor.apply_message", failing_for_poison)
    poison = make_message("eve@example.org", "join", "poison", message_id="poison-1@example.org")
    imap_account.deliver_many(
        [
            make_message("ann@example.org", "join", message_id="ann-1@example.org"),
            poison,
            make_message("bob@example.org", "join", message_id="bob-1@example.org"),
        ]
    )
    queue = Queue()

    first = poller.poll(queue)
    assert first == PollReport(applied=2, failed=1)
    assert ids_in(imap_account, "INBOX") == ["poison-1@example.org"]

    # A message arriving meanwhile is applied at once, whatever the poison does.
    imap_account.deliver(make_message("cat@example.org", "join", message_id="cat-1@example.org"))
    second = poller.poll(queue)
    assert second == PollReport(applied=1, failed=1)

    third = poller.poll(queue)
    assert third == PollReport(quarantined=1)

    assert imap_account.list_folder("INBOX") == []
    assert ids_in(imap_account, "Quarantine") == ["poison-1@example.org"]
    assert ids_in(imap_account, "Processed") == [
        "ann-1@example.org",
        "bob-1@example.org",
        "cat-1@example.org",
    ]
    record = box.store.get(ProcessedMessage, "poison-1@example.org")
    assert (record.status, record.attempts) == ("quarantined", 3)
    assert record.error == "RuntimeError: simulated bug while applying"
    assert find_member(box.store, "eve@example.org") is None
    assert sorted(m.address for m in box.store.all(Member)) == [
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
    ]
    assert sorted(n.to[0] for n in queue.notices) == [
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
    ]
    assert all(n.token for n in queue.notices)  # each asks to confirm: a reply to it carries the token
    # Quarantined for good: nothing is fetched again.
    assert poller.poll(queue) == PollReport()


def test_a_running_daemon_sees_mail_that_arrives_between_polls(
    box: Harness, imap_account: ImapAccount
) -> None:
    """The daemon keeps one IMAP connection open across polls: mail delivered in between must be
    fetched by the next poll, not only after a reconnect."""
    queue = Queue()
    with ImapSource(imap_settings(imap_account), {}) as source:
        imap_account.deliver(make_message("ann@example.org", "join", message_id="ann-1@example.org"))
        assert process_source(source, box.store, box.processor, queue, LOG) == PollReport(applied=1)
        imap_account.deliver(make_message("bob@example.org", "join", message_id="bob-1@example.org"))
        second = process_source(source, box.store, box.processor, queue, LOG)
    assert second == PollReport(applied=1), "mail delivered after the first poll was not fetched"
    assert [n.to for n in queue.notices] == [["ann@example.org"], ["bob@example.org"]]
    assert imap_account.list_folder("INBOX") == []
