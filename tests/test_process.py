"""The processor: dedup, machine mail never answered, bounces, the daily reply cap, size limit,
failures and quarantine, and the poll loop over a real Maildir source."""

from __future__ import annotations

import logging
import mailbox
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inbox.apply
from inbox.classify import classify
from inbox.parse import parse_message
from inbox.poll import PollReport, process_source
from inbox.processor import EXPIRED_TOKENS_KEPT_DAYS, describe_error
from inbox.read_ahead import ReadAhead
from inbox.reading import read_message
from inbox.settings import InboxSettings, inbox_settings_from_config
from inbox.sources.base import Incoming
from inbox.sources.maildir import MaildirSource
from mailer.outbox import Outbox
from mailer.render import Renderer
from mailer.settings import MailSettings, make_list_id
from mailkit.servers import SmtpServer
from matcher import tokens
from matcher.limits import Limits
from matcher.members import find_member
from matcher.model import Group, Member, MemberStatus, Notice, ProcessedMessage, Result, Token, UnreadMessage
from tests.test_apply import (
    ORGANISERS,
    PROGRAMME,
    START,
    Harness,
    add_round,
    add_sent,
    make_harness,
    make_message,
    only,
    returned_from,
)
from unmentoring.config import load_config

MAIL = Path(__file__).parent / "data" / "mail"
MACHINE_PREFIXES = ("autoreply-", "bounce-", "dsn-", "list-", "loop-", "mdn-", "noreply-")


def data_file(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """The same message as delivered again with a new Message-ID (e.g. a second bounce)."""
    return re.sub(rb"(?im)^Message-Id:[^\r\n]*", f"Message-Id: <{message_id}>".encode(), raw, count=1)


def machine_files() -> list[str]:
    return sorted(p.name for p in MAIL.glob("*.eml") if p.name.startswith(MACHINE_PREFIXES))


def human_files() -> list[str]:
    return sorted(p.name for p in MAIL.glob("*.eml") if not p.name.startswith(MACHINE_PREFIXES))


# -- every message at most once


def test_a_message_seen_twice_is_applied_once(box: Harness) -> None:
    raw = data_file("join-plain.eml")
    first = box.send(raw)
    second = box.send(raw)
    assert first.status == "applied" and [n.kind for n in first.notices] == ["confirm_join"]
    assert second.status == "duplicate" and second.notices == []
    assert len(box.store.all(Member)) == 1 and len(box.store.all(Token)) == 1
    record = box.store.get(ProcessedMessage, "join-1741017840-1@borough.example.org")
    assert record.status == "applied" and record.at == START
    assert "join" in record.summary and "sam.patel" not in record.summary


def test_a_message_without_message_id_is_remembered_by_its_bytes(box: Harness) -> None:
    raw = make_message("ann@example.org", "join", message_id=None)
    assert box.send(raw).status == "applied"
    assert box.send(raw).status == "duplicate"
    assert box.send(raw + b"\n").status == "applied"  # other bytes: another message
    [key] = [p.key for p in box.store.all(ProcessedMessage) if p.key.startswith("sha256:")][:1]
    assert len(key) == len("sha256:") + 64


# -- never an automatic reply to machines


@pytest.mark.parametrize("name", machine_files())
def test_machine_mail_is_never_answered(box: Harness, name: str) -> None:
    result = box.send(data_file(name))
    assert result.notices == []
    assert result.status == "ignored"
    assert box.store.all(Member) == []


@pytest.mark.parametrize("name", human_files())
def test_a_persons_mail_gets_at_most_one_answer_to_that_person(box: Harness, name: str) -> None:
    raw = data_file(name)
    result = box.send(raw)
    sender = parse_message(raw).sender
    assert len(result.notices) <= 1
    for notice in result.notices:
        assert notice.to == [sender] and notice.auto_reply
        message_id = parse_message(raw).message_id
        assert notice.thread[-1:] == ([message_id] if message_id else [])


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"List-Id": "<staff.example.org>"},
        {"X-Autoreply": "yes"},
    ],
)
def test_automatic_mail_from_a_member_is_not_answered(box: Harness, headers: dict) -> None:
    box.join("ann@example.org")
    result = box.say("ann@example.org", "status", "status", headers=headers)
    assert result.status == "ignored" and result.notices == []


@pytest.mark.parametrize(
    "sender", [PROGRAMME, "coffee+abc@unmentoring.example.org", "postmaster@example.org"]
)
def test_our_own_and_daemon_addresses_are_not_answered(box: Harness, sender: str) -> None:
    assert box.say(sender, "join").notices == []
    assert box.store.all(Member) == []


# -- bounces


def test_permanent_bounces_disable_a_member_and_tell_the_organisers(box: Harness) -> None:
    box.join("old.member@council.example.org", name="Old Member")
    bounce = returned_from(box, "old.member@council.example.org", data_file("bounce-postfix-550.eml"))
    results = [box.send(with_message_id(bounce, f"b{n}@mx.example")) for n in range(4)]

    assert [r.notices for r in results[:2]] == [[], []]
    assert box.member("old.member@council.example.org").bounce_score == 4
    [notice] = results[2].notices
    assert notice.kind == "bounce_disabled" and notice.to == ORGANISERS
    member = box.member("old.member@council.example.org")
    assert notice.values == {
        "address": "old.member@council.example.org",
        "name": "Old Member",
        "score": 3,
    }
    assert notice.key == f"bounce_disabled:{member.id}:2026-01-05"
    assert not notice.auto_reply
    assert member.status is MemberStatus.DISABLED
    assert results[3].notices == []  # told once


def test_temporary_bounces_are_only_logged(box: Harness, caplog: pytest.LogCaptureFixture) -> None:
    box.join("priya.shah@health.example.net")
    with caplog.at_level(logging.INFO, logger="inbox.apply"):
        result = box.send(data_file("bounce-postfix-delayed.eml"))
    assert result.notices == [] and result.status == "ignored"
    assert box.member("priya.shah@health.example.net").bounce_score == 0
    assert "temporary delivery failure" in caplog.text


def test_a_disabled_member_who_writes_resume_is_back(box: Harness) -> None:
    box.join("old.member@council.example.org")
    bounce = returned_from(box, "old.member@council.example.org", data_file("bounce-postfix-550.eml"))
    for n in range(3):
        box.send(with_message_id(bounce, f"b{n}@mx.example"))
    assert box.member("old.member@council.example.org").status is MemberStatus.DISABLED
    only(box.reply_as("old.member@council.example.org", "resume"), "resumed")
    member = box.member("old.member@council.example.org")
    assert (member.status, member.bounce_score) == (MemberStatus.ACTIVE, 0)


# -- a real reply from the corpus, attributed by its threading


def test_a_gmail_reply_to_a_followup_records_met_for_that_group(box: Harness) -> None:
    bob = box.join("bob.jones.example@gmail.com", name="Bob Jones")
    alice = box.join("alice.brown@contoso.example.com", name="Alice Brown")
    cat = box.join("cat@example.org")
    add_round(box, "2025-02", 24301, [Group("2025-02", 3, [alice.id, bob.id], host=alice.id)])
    add_round(box, "2025-03", 24302, [Group("2025-03", 1, [bob.id, cat.id], host=bob.id)])
    followup_id = add_sent(
        box, f"followup:2025-02:3:{bob.id}", ["bob.jones.example@gmail.com"], group_id="2025-02:3"
    )
    raw = data_file("reply-gmail-met.eml").replace(
        b"174168360001.3305.5555@unmentoring.example.org", followup_id.encode()
    )
    result = box.send(raw)
    assert result.status == "applied" and result.notices == []
    assert box.store.get(Group, "2025-02:3").outcomes[bob.id].result is Result.MET
    assert box.store.get(Group, "2025-03:1").outcomes == {}


# -- at most N automatic replies per sender per day


def test_the_eleventh_reply_of_the_day_is_dropped(box: Harness, caplog: pytest.LogCaptureFixture) -> None:
    answered = []
    with caplog.at_level(logging.INFO, logger="inbox.processor"):
        for n in range(11):
            answered.append(len(box.say("ann@example.org", f"help {n}").notices))
    assert answered == [1] * 10 + [0]
    assert "help not sent: this sender already had the 10 automatic replies" in caplog.text
    assert "ann@example.org" not in caplog.text
    # A limit doing its job is information, not a fault.
    assert all(r.levelno == logging.INFO for r in caplog.records)
    # Somebody else is not affected; the same sender is answered again the next (UTC) day.
    assert len(box.say("bob@example.org", "help").notices) == 1
    box.clock.advance(timedelta(hours=14))  # 2026-01-06 00:00 UTC
    assert len(box.say("ann@example.org", "help").notices) == 1
    counts = box.store.get_meta("inbox_reply_counts")
    assert counts["day"] == "2026-01-06" and list(counts["counts"].values()) == [1]
    assert "ann@example.org" not in repr(counts)


def test_organiser_notices_are_not_capped(tmp_path: Path) -> None:
    box = make_harness(tmp_path, bounce_threshold=1)
    try:
        box.join("left.the.council@example.gov.uk")
        for n in range(10):  # the organiser has used up their automatic replies for today
            box.say(ORGANISERS[0], f"help {n}")
        assert box.say(ORGANISERS[0], "help").notices == []
        report = data_file("bounce-sendmail-rfc3464-mixed.eml")
        notices = box.send(returned_from(box, "left.the.council@example.gov.uk", report)).notices
        assert [(n.kind, n.to) for n in notices] == [("bounce_disabled", ORGANISERS)]
    finally:
        box.store.close()


# -- size


def test_a_message_over_the_size_limit_is_ignored_unread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = make_harness(tmp_path)
    try:
        huge = make_message("ann@example.org", "join\n" + "x" * 76 + "\n", "join")
        huge += b"y" * (box.settings.limits.max_message_bytes + 1)
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="inbox.processor"):
            result = box.send(huge)
        elapsed = time.perf_counter() - started
        assert result.status == "ignored" and result.notices == []
        assert find_member(box.store, "ann@example.org") is None
        assert "ignored (limit 25000000)" in caplog.text
        assert elapsed < 2.0, f"a 25 MB message took {elapsed:.2f}s: it was read in full"
        assert box.send(huge).status == "duplicate"
    finally:
        box.store.close()


# -- failures and quarantine


def test_failures_are_counted_then_quarantined(box: Harness) -> None:
    raw = make_message("ann@example.org", "join")
    secret = tokens.new_token_value()
    with box.store.transaction():
        assert box.processor.record_failure(raw, KeyError(f"boom {secret}")) is False
    with box.store.transaction():
        assert box.processor.record_failure(raw, ValueError("again")) is False
    key = parse_message(raw).message_id
    record = box.store.get(ProcessedMessage, key)
    assert (record.status, record.attempts, record.error) == ("failed", 2, "ValueError: again")
    with box.store.transaction():
        assert box.processor.record_failure(raw, RuntimeError("third")) is True
    record = box.store.get(ProcessedMessage, key)
    assert (record.status, record.attempts) == ("quarantined", 3)
    assert box.send(raw).status == "quarantined"
    assert find_member(box.store, "ann@example.org") is None


def test_a_failed_message_is_retried_and_keeps_its_attempt_count(box: Harness) -> None:
    raw = make_message("ann@example.org", "join")
    with box.store.transaction():
        box.processor.record_failure(raw, OSError("disk hiccup"))
    result = box.send(raw)
    assert result.status == "applied" and [n.kind for n in result.notices] == ["confirm_join"]
    record = box.store.get(ProcessedMessage, parse_message(raw).message_id)
    assert (record.status, record.attempts) == ("applied", 1)


def test_errors_are_stored_without_tokens() -> None:
    secret = tokens.new_token_value()
    text = describe_error(KeyError(f"no token {secret} here"))
    assert text.startswith("KeyError: ") and secret not in text and "[token]" in text
    assert len(describe_error(ValueError("x" * 5000))) == 500


def test_summaries_never_carry_tokens(box: Harness) -> None:
    asked = only(box.say("ann@example.org", "join"), "confirm_join")
    token = asked.values["token"]
    result = box.say("ann@example.org", f"confirm {token}", f"confirm {token}")
    assert [n.kind for n in result.notices] == ["welcome"]
    assert token not in result.summary
    assert all(token not in p.summary for p in box.store.all(ProcessedMessage))


# -- pruning


def test_old_processed_messages_and_long_expired_tokens_are_pruned_daily(box: Harness) -> None:
    asked = only(box.say("ann@example.org", "join"), "confirm_join")
    with box.store.transaction():
        box.store.put(ProcessedMessage(key="old@x", status="applied", at=START - timedelta(days=401)))
        box.store.put(ProcessedMessage(key="recent@x", status="applied", at=START - timedelta(days=399)))
        for key, days in (("old-unread@x", 401), ("recent-unread@x", 399)):
            box.store.put(UnreadMessage(key, START - timedelta(days=days), "cy@example.org", "", "hm", "why"))
    box.clock.advance(timedelta(days=1))
    box.say("bob@example.org", "help")
    assert box.store.get(ProcessedMessage, "old@x") is None
    assert box.store.get(ProcessedMessage, "recent@x") is not None
    assert box.store.get(UnreadMessage, "old-unread@x") is None
    assert box.store.get(UnreadMessage, "recent-unread@x") is not None
    assert box.store.get(Token, asked.values["token"]) is not None
    box.clock.advance(timedelta(days=7 + EXPIRED_TOKENS_KEPT_DAYS))
    box.say("bob@example.org", "help")
    assert box.store.get(Token, asked.values["token"]) is None


# -- the poll loop, over a real Maildir


class Queue:
    """Collects queued notices; can be told to fail for one recipient."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.fail_for: str | None = None

    def __call__(self, notices: list[Notice]) -> None:
        if self.fail_for and any(self.fail_for in n.to for n in notices):
            raise OSError("outbox unavailable")
        self.notices.extend(notices)


def maildir_count(path: Path) -> int:
    return sum(1 for sub in ("new", "cur") for _ in (path / sub).iterdir()) if path.exists() else 0


@pytest.fixture
def poison_subject(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make applying any message with this subject raise, as a bug would."""
    subject = "poison pill"
    real = inbox.apply.apply_message

    def apply_message(store, settings, now, parsed, command, key):
        if parsed.subject == subject:
            raise RuntimeError("simulated bug while applying")
        return real(store, settings, now, parsed, command, key)

    monkeypatch.setattr("inbox.processor.apply_message", apply_message)
    return subject


def test_poll_applies_each_message_once_and_quarantines_a_poison_one(
    box: Harness, tmp_path: Path, poison_subject: str
) -> None:
    maildir_path = tmp_path / "inbox"
    source = MaildirSource(maildir_path)
    drop = mailbox.Maildir(maildir_path)
    drop.add(make_message("ann@example.org", "join"))
    drop.add(make_message("eve@example.org", "join", poison_subject))
    drop.add(make_message("bob@example.org", "join"))
    queue = Queue()
    log = logging.getLogger("test.poll")

    reports = [process_source(source, box.store, box.processor, queue, log) for _ in range(3)]

    assert reports == [
        PollReport(applied=2, failed=1),
        PollReport(failed=1),
        PollReport(quarantined=1),
    ]
    assert sorted(n.to[0] for n in queue.notices) == ["ann@example.org", "bob@example.org"]
    assert find_member(box.store, "eve@example.org") is None
    assert maildir_count(maildir_path) == 0
    assert maildir_count(maildir_path / ".Processed") == 2
    assert maildir_count(maildir_path / ".Quarantine") == 1
    [poison] = [p for p in box.store.all(ProcessedMessage) if p.status == "quarantined"]
    assert poison.attempts == 3 and poison.error == "RuntimeError: simulated bug while applying"
    assert process_source(source, box.store, box.processor, queue, log) == PollReport()


def test_a_failure_to_queue_rolls_the_message_back(box: Harness, tmp_path: Path) -> None:
    maildir_path = tmp_path / "inbox"
    source = MaildirSource(maildir_path)
    mailbox.Maildir(maildir_path).add(make_message("ann@example.org", "join"))
    queue = Queue()
    queue.fail_for = "ann@example.org"
    log = logging.getLogger("test.poll")

    assert process_source(source, box.store, box.processor, queue, log) == PollReport(failed=1)
    # Nothing of the message stuck: no member, no token, and it is still waiting in the inbox.
    assert box.store.all(Member) == [] and box.store.all(Token) == []
    assert maildir_count(maildir_path) == 1

    queue.fail_for = None
    assert process_source(source, box.store, box.processor, queue, log) == PollReport(applied=1)
    assert [n.kind for n in queue.notices] == ["confirm_join"]
    assert box.member("ann@example.org").status is MemberStatus.PENDING
    assert maildir_count(maildir_path / ".Processed") == 1


# -- batches: one transaction each, notices queued once, read ahead in workers


def fill_maildir(path: Path, raws: list[bytes]) -> MaildirSource:
    drop = mailbox.Maildir(path)
    for raw in raws:
        drop.add(raw)
    return MaildirSource(path)


def mixed_mail(count: int) -> list[bytes]:
    """Joins, helps, and the corpus' machine mail (new Message-IDs so none is a duplicate)."""
    machine = [data_file(name) for name in machine_files()]
    raws = []
    for n in range(count):
        if n % 3 == 0:
            raws.append(with_message_id(machine[n % len(machine)], f"m{n}@mx.example"))
        elif n % 3 == 1:
            raws.append(make_message(f"person{n}@example.org", "join", message_id=f"j{n}@x.org"))
        else:
            raws.append(make_message(f"person{n}@example.org", "what is this?", message_id=f"h{n}@x"))
    return raws


class Recorder:
    """Records each queue_notices call (one per committed batch)."""

    def __init__(self) -> None:
        self.calls: list[list[Notice]] = []

    def __call__(self, notices: list[Notice]) -> None:
        self.calls.append(list(notices))

    @property
    def notices(self) -> list[Notice]:
        return [n for call in self.calls for n in call]


def test_a_poll_applies_a_batch_in_one_transaction_and_queues_its_notices_once(
    box: Harness, tmp_path: Path
) -> None:
    source = fill_maildir(tmp_path / "inbox", [make_message(f"p{n}@example.org", "join") for n in range(5)])
    queue = Recorder()
    report = process_source(source, box.store, box.processor, queue, logging.getLogger("t"), batch_size=2)
    assert report == PollReport(applied=5)
    assert [len(call) for call in queue.calls] == [2, 2, 1]
    assert maildir_count(tmp_path / "inbox" / ".Processed") == 5


def test_the_daily_reply_cap_holds_within_a_batch(box: Harness, tmp_path: Path) -> None:
    raws = [make_message("ann@example.org", f"help {n}") for n in range(12)]
    queue = Recorder()
    source = fill_maildir(tmp_path / "inbox", raws)
    report = process_source(source, box.store, box.processor, queue, logging.getLogger("t"))
    assert report == PollReport(applied=12)
    assert len(queue.calls) == 1 and len(queue.notices) == 10
    counts = box.store.get_meta("inbox_reply_counts")
    assert list(counts["counts"].values()) == [10]


def test_a_stop_request_finishes_the_batch_in_hand_and_starts_no_other(box: Harness, tmp_path: Path) -> None:
    source = fill_maildir(tmp_path / "inbox", [make_message(f"p{n}@example.org", "join") for n in range(5)])
    asked = iter([False, False, True, True, True, True])
    report = process_source(
        source,
        box.store,
        box.processor,
        Recorder(),
        logging.getLogger("t"),
        batch_size=2,
        should_stop=lambda: next(asked),
    )
    assert report == PollReport(applied=2)
    assert maildir_count(tmp_path / "inbox") == 3


def read_poll(tmp_path: Path, raws: list[bytes], ahead: ReadAhead) -> tuple[PollReport, list, list]:
    """Poll ``raws`` into a fresh programme: the report, the notices, what the store remembers."""
    harness = make_harness(tmp_path)
    try:
        harness.join("member@example.org")
        queue = Recorder()
        source = fill_maildir(tmp_path / "inbox", raws)
        report = process_source(
            source,
            harness.store,
            harness.processor,
            queue,
            logging.getLogger("t"),
            batch_size=16,
            read_ahead=ahead,
        )
        ours = {parse_message(raw).message_id for raw in raws}
        remembered = sorted(
            (p.key, p.status, p.summary) for p in harness.store.all(ProcessedMessage) if p.key in ours
        )
        return report, [(n.kind, n.to) for n in queue.notices], remembered
    finally:
        harness.store.close()


def test_a_worker_process_reads_messages_as_they_are_read_in_process(box: Harness) -> None:
    raws = mixed_mail(40) + [b"", b"\x00garbage", data_file("malformed-broken-mime.eml")]
    incoming = [Incoming(ref=str(n), raw=raw) for n, raw in enumerate(raws)]
    ahead = ReadAhead(min_messages=10, chunk=7, ahead_messages=20, workers=1, steal=False)
    pairs = list(ahead.readings(incoming, box.settings))
    assert [item for item, _ in pairs] == incoming
    for item, reading in pairs:
        assert reading is not None, f"message {item.ref} was not read by the worker"
        here = read_message(item.raw, box.settings.limits.max_message_bytes)
        found = classify(item.raw, here.parsed, own_addresses=box.settings.own_addresses)
        assert (reading.key, reading.too_large) == (here.key, here.too_large)
        assert reading.parsed == here.parsed and reading.parsed.text == here.parsed.text
        assert reading.classification == replace(found, command=None)


@pytest.mark.parametrize("steal", [False, True])
def test_reading_ahead_in_a_worker_process_changes_nothing(tmp_path: Path, steal: bool) -> None:
    raws = mixed_mail(60)
    in_process = read_poll(tmp_path / "a", raws, ReadAhead(workers=0))
    ahead = read_poll(
        tmp_path / "b",
        raws,
        ReadAhead(min_messages=20, chunk=7, ahead_messages=25, workers=1, steal=steal),
    )
    assert in_process == ahead
    assert in_process[0].total == 60 and in_process[0].applied >= 40


def dying_reader(raws: list[bytes], max_message_bytes: int, own: frozenset[str]) -> list:
    os._exit(3)  # a worker killed mid-task (out of memory, a signal...)


def failing_reader(raws: list[bytes], max_message_bytes: int, own: frozenset[str]) -> list:
    raise RuntimeError("simulated bug in the worker")


@pytest.mark.parametrize("reader", [dying_reader, failing_reader])
def test_messages_a_worker_cannot_read_are_read_in_process(
    tmp_path: Path, reader: Callable[..., list], caplog: pytest.LogCaptureFixture
) -> None:
    raws = mixed_mail(30)
    in_process = read_poll(tmp_path / "a", raws, ReadAhead(workers=0))
    with caplog.at_level(logging.WARNING, logger="inbox.read_ahead"):
        broken = read_poll(
            tmp_path / "b",
            raws,
            ReadAhead(min_messages=10, chunk=5, ahead_messages=10, workers=1, steal=False, reader=reader),
        )
    assert broken == in_process
    assert "reading in-process" in caplog.text or "could not read" in caplog.text


# -- the contract with the mailer


def mail_settings() -> MailSettings:
    return MailSettings(
        programme_name="UnMentoring",
        programme_address=PROGRAMME,
        organisers=list(ORGANISERS),
        list_id=make_list_id("UnMentoring", PROGRAMME),
        smtp=SmtpServer(per_minute=0, per_day=0, host="127.0.0.1", port=2525, security="none"),
    )


def test_every_notice_the_inbox_produces_renders_and_composes(box: Harness, tmp_path: Path) -> None:
    """Every kind the inbox says is accepted by the real mailer (templates, values, headers)."""
    notices: list[Notice] = []

    def say(sender: str, body: str, **options: object) -> None:
        notices.extend(box.say(sender, body, **options).notices)  # type: ignore[arg-type]

    say("Ann <ann@example.org>", "join\norg: Council")
    say("ann@example.org", f"confirm {notices[-1].values['token']}")
    for text in ("join", "pause", "pause 2 months", "resume", "frequency 2", "status", "help"):
        notices.extend(box.reply_as("ann@example.org", text).notices)
    say("ann@example.org", "frequency 3")  # without proof of mailbox: a confirmation
    box.clock.advance(timedelta(days=1))  # a fresh day's allowance of automatic replies
    notices.extend(box.reply_as("ann@example.org", "profile\nabout: Roads & <bridges>").notices)
    say("ann@example.org", "met")
    say("ann@example.org", "my data")
    say("ann@example.org", "leave")
    say("ann@example.org", f"confirm {notices[-1].values['token']}")
    say("stranger@example.org", "status")
    box.join("bob@example.org")
    say("bob@example.org", "forget me")
    say("bob@example.org", f"confirm {notices[-1].values['token']}")
    box.join("old.member@council.example.org")
    bounce = returned_from(box, "old.member@council.example.org", data_file("bounce-postfix-550.eml"))
    for n in range(3):
        notices.extend(box.send(with_message_id(bounce, f"b{n}@x")).notices)

    settings = mail_settings()
    outbox = Outbox(box.store, box.clock, settings, Renderer(settings), tmp_path / "journal")
    with box.store.transaction():
        entries = outbox.queue_many(notices)

    kinds = {n.kind for n in notices}
    assert kinds == {
        "confirm_join",
        "confirm_change",
        "welcome",
        "already_active",
        "paused",
        "resumed",
        "frequency_changed",
        "profile_updated",
        "status",
        "help",
        "no_group",
        "my_data",
        "confirm_leave",
        "goodbye",
        "not_member",
        "confirm_forget",
        "forgotten",
        "bounce_disabled",
    }
    assert [e.status for e in entries] == ["queued"] * len(notices)
    assert len({e.key for e in entries}) == len(notices)
    confirm_join = next(e for e in entries if e.kind == "confirm_join")
    assert f"Reply-To: coffee+{notices[0].values['token']}@unmentoring.example.org" in confirm_join.raw
    assert confirm_join.message_id == notices[0].message_id


# -- settings


def test_settings_come_from_the_configuration() -> None:
    config = load_config(None)  # the built-in sandbox defaults
    settings = inbox_settings_from_config(config, next_round_on=lambda now: now.date())
    assert settings.address == config.programme.address
    assert settings.organisers == list(config.programme.organisers)
    assert settings.limits is config.limits
    assert str(settings.zone) == config.programme.timezone
    # 23:30 UTC on 31 March is already 1 April in London (BST): "pause 2 months" counts from there.
    assert settings.today(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == date(2026, 4, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("programme_address", "nobody"), ("limits", Limits(replies_per_sender_per_day=0))],
)
def test_settings_refuse_values_that_cannot_work(field: str, value: object) -> None:
    values: dict = {
        "programme_address": PROGRAMME,
        "organisers": ORGANISERS,
        "next_round_on": lambda now: now.date(),
    }
    with pytest.raises(ValueError, match=field):
        InboxSettings(**{**values, field: value})


@pytest.mark.parametrize("message_id", ["no-at-sign", "spaces in it@example.org", "é@example.org"])
def test_a_strange_message_id_costs_the_answer_its_threading_only(
    box: Harness, tmp_path: Path, message_id: str
) -> None:
    raw = with_message_id(make_message("ann@example.org", "join"), message_id)
    result = box.send(raw)
    [notice] = result.notices
    assert notice.kind == "confirm_join" and notice.thread == []
    outbox = Outbox(box.store, box.clock, mail_settings(), Renderer(mail_settings()), tmp_path / "j")
    with box.store.transaction():
        [entry] = outbox.queue_many(result.notices)
    assert entry.status == "queued"
    assert box.send(raw).status == "duplicate"


# -- whatever people write, the processor answers and never crashes

_WORDS = st.sampled_from(
    [
        "join",
        "leave",
        "pause",
        "resume",
        "frequency",
        "met",
        "missed",
        "profile",
        "status",
        "help",
        "my data",
        "forget me",
        "confirm",
        "until",
        "months",
        "2027-02-30",
        "name:",
        "org:",
        "about:",
        "every",
        "0",
        "3",
        "99999",
        "yes",
        "no",
        "Re:",
        ">",
        "--",
        "\n",
        "\t",
        "é",
        "☕",
        "<script>",
        "coffee+abc@unmentoring.example.org",
    ]
)
_TEXT = st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=12).map(" ".join)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=_TEXT, subject=_TEXT, member=st.booleans())
def test_any_text_gets_a_clear_outcome(box: Harness, body: str, subject: str, member: bool) -> None:
    sender = "ann@example.org" if member else "stranger@example.org"
    if member and find_member(box.store, sender) is None:
        box.join(sender)
    box.clock.advance(timedelta(days=1))  # keep clear of the daily reply cap
    result = box.say(sender, body, " ".join(subject.splitlines()))
    assert result.status in ("applied", "ignored")
    assert len(result.notices) <= 1
    for notice in result.notices:
        assert notice.to == [sender] or notice.kind in ("confirm_leave", "welcome", "goodbye")
