"""The outbox with a real store and SMTP sink: idempotent queueing, journal, retries, bounces."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.outbox import Outbox, OutboxError, body_file_name
from mailer.render import Renderer, RenderError
from mailer.settings import MailSettings
from mailer.smtp import SmtpSender
from mailkit.servers import SmtpServer
from matcher.clock import FakeClock
from matcher.model import Notice, OutboxEntry
from matcher.store import Store
from tests.servers import SmtpSink, free_port
from tests.test_render import ALICE, BOB, CARA, SAMPLE_VALUES, make_settings

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@dataclasses.dataclass
class Rig:
    store: Store
    clock: FakeClock
    settings: MailSettings
    outbox: Outbox
    sink: SmtpSink
    journal: Path

    def sender(self, **smtp: object) -> SmtpSender:
        settings = dataclasses.replace(self.settings.smtp, **smtp)
        return SmtpSender(
            settings, clock=self.clock, sleep=lambda s: self.clock.advance(timedelta(seconds=s))
        )

    def deliver(self, **smtp: object):
        return self.outbox.deliver_pending(self.sender(**smtp))

    def queue(self, *notices: Notice) -> list[OutboxEntry]:
        with self.store.transaction():
            return self.outbox.queue_many(notices)

    def entry(self, key: str) -> OutboxEntry:
        entry = self.store.get(OutboxEntry, key)
        assert entry is not None
        return entry


@pytest.fixture
def rig(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Rig]:
    smtp = SmtpServer(
        per_minute=0,
        per_day=0,
        host="127.0.0.1",
        port=smtp_sink.port,
        security="none",
        timeout=5.0,
        envelope_from="bounces@example.org",
    )
    settings = dataclasses.replace(make_settings(), smtp=smtp)
    clock = FakeClock(START)
    store = Store.open(tmp_path / "db.json")
    journal = tmp_path / "outbox.journal"
    outbox = Outbox(store, clock, settings, Renderer(settings), journal)
    try:
        yield Rig(store, clock, settings, outbox, smtp_sink, journal)
    finally:
        store.close()


def welcome(key: str = "reply:m1:welcome", to: str = "alice@example.org") -> Notice:
    return Notice("welcome", [to], dict(SAMPLE_VALUES["welcome"]), key=key)


def intro(number: int = 1, members: list[dict] | None = None) -> Notice:
    members = members or [ALICE, BOB]
    addresses = [f"{m['name'].split()[0].lower()}@example.org" for m in members]
    values = dict(
        SAMPLE_VALUES["intro"],
        members=[dict(m, address=a) for m, a in zip(members, addresses, strict=True)],
        host=members[0]["name"],
    )
    key, group_id = f"intro:2026-12:{number}", f"2026-12:{number}"
    return Notice("intro", addresses, values, key=key, round_id="2026-12", group_id=group_id)


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_queueing_the_same_key_twice_sends_one_message(rig: Rig) -> None:
    first = rig.queue(welcome())[0]
    again = rig.queue(welcome())[0]
    assert again == first
    both = rig.queue(welcome("k2"), welcome("k2"))
    assert both[0] == both[1]
    report = rig.deliver()
    assert report.sent == 2 and report.attempted == 2
    rig.queue(welcome())
    assert rig.deliver().sent == 0
    received = rig.sink.wait_for(2)
    assert len(received) == 2 and rig.sink.count == 2


def test_unkeyed_notices_are_each_sent(rig: Rig) -> None:
    entries = rig.queue(
        Notice("help", ["x@example.org"], {"reason": "", "commands": []}),
        Notice("help", ["x@example.org"], {"reason": "", "commands": []}),
    )
    assert entries[0].key != entries[1].key and entries[0].key.startswith("help:")
    assert rig.deliver().sent == 2


def test_a_sent_entry_is_remembered_without_its_body(rig: Rig) -> None:
    entry = rig.queue(welcome())[0]
    assert entry.status == "queued" and entry.raw.isascii() and entry.raw.startswith("Subject:")
    assert rig.outbox.pending() == [entry]
    rig.clock.advance(timedelta(minutes=1))
    assert rig.deliver().sent == 1
    stored = rig.entry(entry.key)
    assert stored.status == "sent" and stored.raw == "" and stored.sent_at == rig.clock.now()
    assert rig.store.find_one(OutboxEntry, "message_id", entry.message_id).key == entry.key
    assert rig.journal.read_bytes() == b""
    assert rig.outbox.pending() == []
    message = rig.sink.wait_for(1)[0]
    # VERP: the envelope sender is this message's own return path on the configured bounce address.
    assert stored.return_token and message.mail_from == f"bounces+bounce-{stored.return_token}@example.org"
    assert message.rcpt_tos == ("alice@example.org",) and stored.envelope_from == message.mail_from
    assert parsed(message.raw)["Message-ID"] == f"<{entry.message_id}>"


def test_what_the_server_receives_parses_with_the_headers(rig: Rig) -> None:
    notice = welcome()
    notice.unsubscribe_token = "member-token-1"
    rig.queue(notice)
    rig.deliver()
    msg = parsed(rig.sink.wait_for(1)[0].raw)
    assert str(msg["From"]) == "Coffee Trials <coffee@example.org>"
    assert msg["To"].addresses[0].addr_spec == "alice@example.org"
    assert msg["Date"].datetime == START
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Id"] == "<coffee-trials.example.org>"
    assert msg["List-Unsubscribe"] == "<mailto:coffee@example.org?subject=leave%20member-token-1>"
    assert msg["X-UnMentoring-Kind"] == "welcome"
    assert msg.get_body(("plain",)).get_content().startswith("Hi Alice,")


def test_a_triple_intro_reaches_all_three_and_follow_ups_thread_to_it(rig: Rig) -> None:
    intro_entry = rig.queue(intro(1, [ALICE, BOB, CARA]))[0]
    assert rig.deliver().sent == 1
    received = rig.sink.wait_for(1)[0]
    assert received.rcpt_tos == ("alice@example.org", "bob@example.org", "cara@example.org")
    msg = parsed(received.raw)
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == list(received.rcpt_tos)
    assert [a.display_name for a in msg["To"].addresses] == ["Alice Able", "Bob Baker", "Cara Cole"]
    followup = Notice(
        "followup",
        ["bob@example.org"],
        dict(SAMPLE_VALUES["followup"], partners=["Alice Able", "Cara Cole"]),
        key="followup:2026-12:1:bob",
        round_id="2026-12",
        group_id="2026-12:1",
    )
    assert (intro_entry.round_id, intro_entry.group_id) == ("2026-12", "2026-12:1")
    rig.queue(followup)
    rig.deliver()
    reply = parsed(rig.sink.wait_for(2)[1].raw)
    assert reply["In-Reply-To"] == msg["Message-ID"]
    assert reply["References"] == msg["Message-ID"]
    assert str(reply["Reply-To"]) == "coffee@example.org"
    assert reply["Subject"] == "Did you meet Alice Able and Cara Cole?"


def test_421_reconnects_and_sends_in_the_same_run(rig: Rig) -> None:
    rig.queue(welcome("a"), welcome("b"))
    rig.sink.fail_next(1, 421)
    report = rig.deliver()
    assert (report.sent, report.deferred, report.failed) == (2, 0, 0)
    assert rig.sink.count == 2
    assert rig.sink.rejections[0][1].startswith("421")


def test_451_is_deferred_with_backoff_then_sent(rig: Rig) -> None:
    rig.queue(welcome("a"), welcome("b"))
    rig.sink.fail_next(3, 451)  # every quick attempt of the first message
    report = rig.deliver()
    assert (report.sent, report.deferred, report.failed) == (1, 1, 0)
    deferred = rig.entry("a")
    assert deferred.status == "queued" and deferred.attempts == 1 and deferred.last_error.startswith("451")
    assert deferred.next_attempt_at == rig.clock.now() + timedelta(minutes=5)
    assert rig.outbox.pending() == []
    rig.clock.advance(timedelta(minutes=5))
    assert [e.key for e in rig.outbox.pending()] == ["a"]
    rig.sink.fail_next(3, 451)
    rig.deliver()
    assert rig.entry("a").next_attempt_at == rig.clock.now() + timedelta(minutes=10)
    rig.clock.advance(timedelta(minutes=10))
    assert rig.deliver().sent == 1
    assert rig.entry("a").status == "sent" and rig.entry("a").attempts == 3
    assert rig.sink.count == 2


def test_temporary_failures_give_up_eventually_and_count_as_bounces(rig: Rig) -> None:
    rig.outbox.max_attempts = 2
    rig.queue(welcome("a"))
    rig.sink.fail_recipient("alice@example.org", 451)
    assert rig.deliver().deferred == 1
    rig.clock.advance(timedelta(hours=1))
    report = rig.deliver()
    assert report.failed == 1
    assert report.bounces[0][0] == "alice@example.org" and "gave up after 2 attempts" in report.bounces[0][1]
    assert rig.entry("a").status == "failed"


def test_550_fails_the_message_and_reports_a_bounce(rig: Rig) -> None:
    rig.queue(welcome("a", to="gone@example.org"), welcome("b"))
    rig.sink.fail_recipient("gone@example.org", 550)
    report = rig.deliver()
    assert (report.sent, report.failed) == (1, 1)
    assert [a for a, _ in report.bounces] == ["gone@example.org"]
    assert report.bounces[0][1].startswith("550")
    failed = rig.entry("a")
    assert failed.status == "failed" and "550" in failed.last_error and failed.raw
    rig.clock.advance(timedelta(days=1))
    assert rig.deliver().attempted == 0


def test_a_partial_refusal_delivers_to_the_rest(rig: Rig) -> None:
    rig.queue(intro(1, [ALICE, BOB, CARA]))
    rig.sink.fail_recipient("bob@example.org", 550)
    rig.sink.fail_recipient("cara@example.org", 452, count=3)
    report = rig.deliver()
    assert report.deferred == 1 and [a for a, _ in report.bounces] == ["bob@example.org"]
    assert rig.sink.wait_for(1)[0].rcpt_tos == ("alice@example.org",)
    assert rig.entry("intro:2026-12:1").recipients == ["cara@example.org"]
    rig.clock.advance(timedelta(minutes=5))
    assert rig.deliver().sent == 1
    assert rig.sink.wait_for(2)[1].rcpt_tos == ("cara@example.org",)


def test_an_unreachable_server_leaves_everything_queued(rig: Rig) -> None:
    rig.queue(welcome("a"), welcome("b"))
    report = rig.deliver(port=free_port())
    assert report.held == 2 and report.attempted == 0 and "cannot connect" in report.error
    assert [e.status for e in rig.outbox.pending()] == ["queued", "queued"]
    assert rig.deliver().sent == 2


def test_the_daily_limit_holds_across_runs_and_processes(rig: Rig) -> None:
    rig.queue(*(welcome(f"k{i}", to=f"p{i}@example.org") for i in range(5)))
    report = rig.deliver(per_day=3)
    assert report.sent == 3 and report.held == 2 and "limit" in report.error
    rig.clock.advance(timedelta(hours=1))
    assert rig.deliver(per_day=3).sent == 0  # a fresh sender learns the day's sends from the store
    rig.clock.advance(timedelta(hours=23))
    assert rig.deliver(per_day=3).sent == 2


def test_the_journal_is_folded_and_a_torn_line_ignored(rig: Rig) -> None:
    a, b, c = rig.queue(welcome("a"), welcome("b"), welcome("c"))
    when = START.isoformat()
    rig.journal.write_bytes(
        f"a\tsent\t{when}\t1\t\n".encode()
        + b"garbage line\n"
        + f"nobody\tsent\t{when}\t1\t\n".encode()
        + f"b\tsent\t{when}\t1".encode()  # torn: the process died mid-write
    )
    assert [e.key for e in rig.outbox.pending()] == ["b", "c"]
    rig.outbox.fold_journal()
    assert rig.journal.read_bytes() == b""
    assert rig.entry("a").status == "sent" and rig.entry("b").status == "queued"
    report = rig.deliver()
    assert report.sent == 2 and rig.sink.count == 2


def test_a_bad_address_is_recorded_as_failed_and_the_transaction_commits(rig: Rig) -> None:
    with rig.store.transaction():
        bad, good = rig.outbox.queue_many([welcome("bad", to="not an address"), welcome("good")])
    assert bad.status == "failed" and "invalid email address" in bad.last_error
    assert good.status == "queued"
    assert rig.deliver().sent == 1


def test_a_missing_template_value_rolls_the_caller_back(rig: Rig) -> None:
    broken = Notice("welcome", ["alice@example.org"], {"name": "Alice"}, key="broken")
    with pytest.raises(RenderError, match="next_round_on"), rig.store.transaction():
        rig.outbox.queue_many([welcome("fine"), broken])
    assert rig.store.get(OutboxEntry, "fine") is None


def test_one_log_line_per_email_sent(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailer")
    entry = rig.queue(intro(7))[0]
    rig.deliver()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sent ")]
    assert lines == [f"sent intro:2026-12:7 message-id <{entry.message_id}> to 2 recipient(s)"]


def test_routine_sending_logs_information_not_faults(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A send, a greylisted recipient tried again, and the housekeeping after them (the sent messages'
    files deleted): nothing at WARNING or above, and each line says what happened."""
    caplog.set_level(logging.DEBUG, logger="mailer")
    rig.queue(welcome("a"), welcome("b"))
    rig.sink.fail_next(3, 451)  # every quick attempt of the first message
    first = rig.deliver()
    rig.clock.advance(timedelta(minutes=5))
    second = rig.deliver()
    assert (first.sent, first.deferred, second.sent) == (1, 1, 1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    said = [r.getMessage() for r in caplog.records]
    assert any("the server said try again later (attempt 1)" in line for line in said)
    assert any("no longer needed" in line for line in said)
    assert not any("no entry refers to" in line for line in said)


def test_failed_entries_can_be_queued_again(rig: Rig) -> None:
    rig.queue(welcome("a", to="gone@example.org"), welcome("b"))
    rig.sink.fail_recipient("gone@example.org", 550, count=1)
    assert rig.deliver().failed == 1
    with rig.store.transaction():
        again = rig.outbox.requeue([rig.entry("a")])
    assert again[0].status == "queued" and again[0].attempts == 0
    assert rig.deliver().sent == 1
    assert rig.sink.wait_for(2)[1].rcpt_tos == ("gone@example.org",)
    with pytest.raises(OutboxError, match="no longer stored"), rig.store.transaction():
        rig.outbox.requeue([rig.entry("a"), rig.entry("b")])
    assert rig.entry("a").status == "sent"


def test_compose_previews_without_storing(rig: Rig) -> None:
    notice = intro(3)
    message = rig.outbox.compose(notice)
    raw = bytes(message)
    assert raw.isascii() and b"\r\n" in raw
    assert parsed(raw)["X-UnMentoring-Kind"] == "intro"
    assert rig.store.get(OutboxEntry, notice.key) is None


def test_a_stop_request_leaves_the_rest_for_the_next_run(rig: Rig) -> None:
    rig.queue(*(welcome(f"k{i}", to=f"p{i}@example.org") for i in range(4)))
    report = rig.outbox.deliver_pending(rig.sender(), should_stop=lambda: rig.sink.count >= 2)
    assert (report.sent, report.held, report.error) == (2, 2, "stopped on request")
    assert rig.deliver().sent == 2 and rig.sink.count == 4


def test_the_cli_progress_bar(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.queue(welcome("a"), welcome("b"))
    assert rig.outbox.deliver_pending(rig.sender(), progress=True).sent == 2
    err = capsys.readouterr().err
    assert "sending" in err and "2/2" in err


# -- message bodies in the spool folder


def spooled(rig: Rig) -> list[str]:
    spool = rig.outbox.spool
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def test_bodies_are_spool_files_not_part_of_the_database(rig: Rig) -> None:
    entry = rig.queue(welcome())[0]
    assert Path(entry.body_file).parent == rig.store.path.parent / "outbox"
    assert spooled(rig) == [Path(entry.body_file).name]
    body = Path(entry.body_file).read_bytes()
    assert body.startswith(b"Subject:") and b"\r\n" in body and entry.raw == body.decode("ascii")
    database = rig.store.path.read_text()
    assert entry.message_id in database and "Subject:" not in database
    assert rig.entry(entry.key).raw == entry.raw
    assert rig.deliver().sent == 1
    assert rig.sink.wait_for(1)[0].raw.replace(b"\r\n", b"\n") == body.replace(b"\r\n", b"\n")
    assert spooled(rig) == [], "a sent message's file is deleted once the journal is folded"


def test_body_files_are_durable_before_the_entry_commits(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync = os.fsync
    storage = rig.store._middleware.storage
    real_write = storage.write

    def fsync(fd: int) -> None:
        events.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(storage, "write", lambda data: (events.append("commit"), real_write(data)))
    a, b = rig.queue(welcome("a"), welcome("b"))
    synced = events[: events.index("commit")]
    assert a.body_file in synced and b.body_file in synced
    assert str(rig.outbox.spool) in synced, "the folder too (the new names)"
    assert synced.count(str(rig.outbox.spool)) == 1, "once per transaction"


def test_bodies_of_a_rolled_back_transaction_are_removed(rig: Rig) -> None:
    with pytest.raises(RuntimeError), rig.store.transaction():
        rig.outbox.queue_many([welcome("gone")])
        assert len(spooled(rig)) == 1
        raise RuntimeError("the caller failed after queueing")
    assert rig.store.get(OutboxEntry, "gone") is None
    rig.outbox.fold_journal()
    assert spooled(rig) == []
    # and the same key queued again gets a file of its own
    rig.queue(welcome("gone"))
    assert len(spooled(rig)) == 1 and rig.deliver().sent == 1


def test_a_new_outbox_removes_files_no_entry_refers_to(rig: Rig) -> None:
    kept = rig.queue(welcome("kept"))[0]
    orphan = rig.outbox.spool / body_file_name("killed-before-commit")
    orphan.write_bytes(b"Subject: never committed\r\n\r\n")
    foreign = rig.outbox.spool / "README.txt"
    foreign.write_text("not ours")
    Outbox(rig.store, rig.clock, rig.settings, Renderer(rig.settings), rig.journal)
    assert spooled(rig) == sorted([Path(kept.body_file).name, "README.txt"])


def test_a_missing_body_fails_that_message_only(rig: Rig) -> None:
    lost, fine = rig.queue(welcome("lost"), welcome("fine"))
    Path(lost.body_file).unlink()
    report = rig.deliver()
    assert (report.sent, report.failed) == (1, 1)
    assert rig.entry("lost").status == "failed"
    assert "message file" in rig.entry("lost").last_error
    assert rig.sink.count == 1
    with pytest.raises(OutboxError, match="no longer stored"), rig.store.transaction():
        rig.outbox.requeue([rig.entry("lost")])


def test_folding_inside_a_transaction_is_refused(rig: Rig) -> None:
    rig.queue(welcome("a"))
    with pytest.raises(OutboxError, match="inside a store transaction"), rig.store.transaction():
        rig.outbox.fold_journal()
    assert rig.entry("a").status == "queued" and rig.entry("a").raw
