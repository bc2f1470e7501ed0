"""The sandbox mail server and the `sandbox send` / `sandbox read` commands, against a real
aiosmtpd server on 127.0.0.1 (and swaks, a real SMTP client)."""

from __future__ import annotations

import email
import errno
import mailbox
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from inbox.receiving import MailServerStartError
from mailkit.maildir import MaildirWriter
from matcher.clock import FakeClock
from tests.servers import HOST, free_port
from unmentoring.config import Config, Imap, Programme, Sandbox, Smtp
from unmentoring.sandbox import SandboxServer, banner, list_maildir, mailbox_folder_name
from unmentoring.sandbox_cli import make_sandbox_group

PROGRAMME = "unmentoring@localhost"
NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: unmentoring@localhost\r\n"
    b"Subject: join\r\n"
    b"Message-ID: <sandbox-1@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Bonjour, je voudrais participer \xe2\x98\x95\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b"end\r\n"
)
STORED = RAW.replace(b"\r\n", b"\n")  # a Maildir file ends lines with LF, as Postfix writes


def start_sandbox(sandbox_dir: Path, **kwargs: object) -> SandboxServer:
    last: Exception | None = None
    for _ in range(5):  # another process may take the picked port before we bind it
        server = SandboxServer(sandbox_dir, PROGRAMME, HOST, free_port(), **kwargs)  # type: ignore[arg-type]
        try:
            server.start()
            return server
        except MailServerStartError as exc:
            last = exc
    raise AssertionError(f"sandbox server could not start: {last}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SandboxServer]:
    running = start_sandbox(Config(base_dir=tmp_path).sandbox_dir, clock=FakeClock(NOW))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def config(tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """Sandbox mode with data in tmp_path, pointing at the test's server if it has one (else at
    a port nobody listens on)."""
    if "server" in request.fixturenames:
        port = request.getfixturevalue("server").port
    else:
        port = free_port()
    return Config(sandbox=Sandbox(port=port), base_dir=tmp_path)


def stored(path: Path) -> list[bytes]:
    """Messages of a Maildir as mailbox.Maildir reads them, in delivery order."""
    box = mailbox.Maildir(path, factory=None, create=False)
    return [box.get_bytes(key) for key in box.keys()] if path.exists() else []


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def run_cli(config: Config, *args: str, clock: FakeClock | None = None, stdin: str = "") -> Result:
    group = make_sandbox_group(lambda: config, clock=clock or FakeClock(NOW))
    return CliRunner().invoke(group, list(args), input=stdin)


# -- the server ---------------------------------------------------------------------------------


def test_mail_to_the_programme_lands_in_the_inbox_bytes_intact(server: SandboxServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        refused = client.sendmail("alice@example.org", [PROGRAMME], RAW)
    assert refused == {}
    (raw,) = stored(server.inbox_path)
    assert raw.endswith(STORED)
    trace = raw[: -len(STORED)]
    assert trace.startswith(
        b"Return-Path: <alice@example.org>\nDelivered-To: unmentoring@localhost\nReceived: "
    )
    assert b"3 Mar 2025 09:30:00 +0000" in trace
    assert parse(raw).get_content() == (
        "Bonjour, je voudrais participer \u2615\n.a line that starts with a dot\n..two dots\nend\n"
    )
    assert list(server.layout.mailboxes_path.iterdir()) == []


def test_plus_and_upper_case_programme_addresses_reach_the_inbox(server: SandboxServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail("alice@example.org", ["UnMentoring+Reply-42@LOCALHOST"], RAW)
    (raw,) = stored(server.inbox_path)
    assert b"Delivered-To: UnMentoring+Reply-42@LOCALHOST\n" in raw


def test_mail_to_anyone_else_lands_in_their_own_mailbox(server: SandboxServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail(PROGRAMME, ["Bob@Example.org", "carol@example.org", "bob@example.org"], RAW)
    bob = server.layout.mailboxes_path / "bob@example.org"
    carol = server.layout.mailboxes_path / "carol@example.org"
    assert server.mailbox_path("BOB@example.org") == bob
    assert server.mailbox_path("unmentoring+x@localhost") == server.inbox_path
    # The same person twice in one envelope gets one copy.
    assert [r.endswith(STORED) for r in stored(bob)] == [True]
    assert [r.endswith(STORED) for r in stored(carol)] == [True]
    assert b"Delivered-To: carol@example.org" in stored(carol)[0]
    assert stored(server.inbox_path) == []


def test_strange_addresses_get_safe_distinct_readable_folders(server: SandboxServer) -> None:
    assert mailbox_folder_name("Alice.Smith+tag@Example.ORG") == "alice.smith+tag@example.org"
    weird = ["../../etc@x.org", "a/b@x.org", "a_b@x.org", "o'brien@x.org", "zoë@x.org"]
    names = [mailbox_folder_name(a) for a in weird]
    assert len(set(names)) == len(names)
    for name in names:
        assert all(ch.isascii() and (ch.isalnum() or ch in "@._+-") for ch in name)
        assert not name.startswith(".") and "/" not in name
    assert names[2] == "a_b@x.org"
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail("x@example.org", ["../../etc@x.org", "o'brien@x.org"], RAW)
    folders = sorted(p.name for p in server.layout.mailboxes_path.iterdir())
    assert folders == sorted([names[0], names[3]])
    for folder in folders:
        assert len(stored(server.layout.mailboxes_path / folder)) == 1


def test_busy_port_is_reported_at_once(server: SandboxServer, tmp_path: Path) -> None:
    other = SandboxServer(tmp_path / "other", PROGRAMME, server.host, server.port)
    started = time.monotonic()
    with pytest.raises(MailServerStartError, match=rf"sandbox.*:{server.port}.*already in use"):
        other.start()
    assert time.monotonic() - started < 1.0


def test_a_failed_store_refuses_the_whole_message_and_leaves_no_copy(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = MaildirWriter.prepare

    def disk_full_for_carol(self: MaildirWriter, data: bytes) -> Path:
        if b"Delivered-To: carol@example.org" in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_prepare(self, data)

    monkeypatch.setattr(MaildirWriter, "prepare", disk_full_for_carol)
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as failure:
            client.sendmail("x@example.org", ["bob@example.org", "carol@example.org"], RAW)
    assert failure.value.smtp_code == 451
    assert b"insufficient storage" in failure.value.smtp_error
    bob = server.mailbox_path("bob@example.org")
    assert stored(bob) == []
    assert list((bob / "tmp").iterdir()) == []


def test_swaks_can_send_to_the_sandbox(server: SandboxServer) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is not installed (Debian package swaks): the test command installs it"
    result = subprocess.run(
        [
            swaks,
            "--server",
            f"{server.host}:{server.port}",
            "--from",
            "dan@example.org",
            "--to",
            PROGRAMME,
            "--header",
            "Subject: from swaks",
            "--body",
            "swaks says hi",
        ],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    (raw,) = stored(server.inbox_path)
    message = parse(raw)
    assert message["Subject"] == "from swaks"
    assert message["Return-Path"] == "<dan@example.org>"
    assert "swaks says hi" in message.get_content()


def test_banner_tells_where_to_send_and_how_to_read(config: Config) -> None:
    text = banner(config)
    assert f"127.0.0.1:{config.sandbox.port}" in text
    assert PROGRAMME in text
    assert "unmentoring sandbox read" in text
    assert str(config.sandbox_dir) in text


# -- the commands -------------------------------------------------------------------------------


def test_send_writes_a_proper_message_to_the_programme(server: SandboxServer, config: Config) -> None:
    result = run_cli(config, "send", "--from", "alice@example.org", "Hello, I would like to join.")
    assert result.exit_code == 0, result.output
    assert PROGRAMME in result.output
    (raw,) = stored(server.inbox_path)
    message = parse(raw)
    assert message["From"] == "alice@example.org"
    assert message["To"] == PROGRAMME
    assert message["Subject"] == "Hello, I would like to join."
    assert message["Date"].datetime == NOW
    assert message["Message-ID"].endswith("@example.org>")
    assert message["Return-Path"] == "<alice@example.org>"
    assert message.get_content().strip() == "Hello, I would like to join."


def test_send_takes_the_text_from_stdin_and_an_explicit_subject_and_recipient(
    server: SandboxServer, config: Config
) -> None:
    result = run_cli(
        config,
        "send",
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.org",
        "--subject",
        "Coffee?",
        stdin="First line\nsecond line\n",
    )
    assert result.exit_code == 0, result.output
    (raw,) = stored(server.mailbox_path("bob@example.org"))
    message = parse(raw)
    assert message["Subject"] == "Coffee?"
    assert message.get_content() == "First line\nsecond line\n"


def test_read_lists_and_shows_a_members_mail(server: SandboxServer, config: Config) -> None:
    for n in (1, 2):
        outgoing = EmailMessage()
        outgoing["From"] = f"UnMentoring <{PROGRAMME}>"
        outgoing["To"] = "alice@example.org"
        outgoing["Subject"] = f"Your coffee match #{n}"
        outgoing["Date"] = f"Mon, 0{n} Mar 2025 09:00:00 +0000"
        outgoing["Message-ID"] = f"<intro-{n}@localhost>"
        outgoing.set_content(f"Meet Bob, message {n}.")
        outgoing.add_attachment(
            b"BEGIN:VCALENDAR", maintype="text", subtype="calendar", filename="invite.ics"
        )
        with smtplib.SMTP(server.host, server.port, timeout=10) as client:
            client.send_message(outgoing)
    listing = run_cli(config, "read", "alice@example.org")
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert "alice@example.org" in lines[0]
    assert lines[1].split()[:3] == ["1", "2025-03-01", "09:00"]
    assert lines[1].endswith("Your coffee match #1")
    assert lines[2].split()[0] == "2" and lines[2].endswith("Your coffee match #2")
    shown = run_cli(config, "read", "alice@example.org", "2")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"From: UnMentoring <{PROGRAMME}>\nTo: alice@example.org\n")
    assert "Subject: Your coffee match #2\n" in shown.output
    assert "Meet Bob, message 2." in shown.output
    assert "[attachment: invite.ics (text/calendar, 15 bytes)]" in shown.output


def test_read_handles_empty_mailboxes_and_missing_messages(server: SandboxServer, config: Config) -> None:
    empty = run_cli(config, "read", "nobody@example.org")
    assert empty.exit_code == 0 and "No mail for nobody@example.org" in empty.output
    missing = run_cli(config, "read", "nobody@example.org", "3")
    assert missing.exit_code != 0 and "no mail for nobody@example.org" in missing.output
    run_cli(config, "send", "--from", "x@example.org", "--to", "nobody@example.org", "hi")
    beyond = run_cli(config, "read", "nobody@example.org", "3")
    assert beyond.exit_code != 0 and "messages 1 to 1; there is no message 3" in beyond.output


def test_reply_to_message_threads_to_the_reply_to_address(server: SandboxServer, config: Config) -> None:
    intro = EmailMessage()
    intro["From"] = f"UnMentoring <{PROGRAMME}>"
    intro["Reply-To"] = "unmentoring+r-abc123@localhost"
    intro["To"] = "alice@example.org"
    intro["Subject"] = "Did you meet Bob?"
    intro["Date"] = "Mon, 03 Mar 2025 09:00:00 +0000"
    intro["Message-ID"] = "<followup-1@localhost>"
    intro["References"] = "<intro-0@localhost>"
    intro.set_content("Reply yes or no.\n")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(intro)
    assert len(list_maildir(server.mailbox_path("alice@example.org"))) == 1

    result = run_cli(config, "send", "--from", "alice@example.org", "--reply-to-message", "1", "yes")
    assert result.exit_code == 0, result.output
    (raw,) = stored(server.inbox_path)
    reply = parse(raw)
    assert reply["To"] == "unmentoring+r-abc123@localhost"
    assert reply["Delivered-To"] == "unmentoring+r-abc123@localhost"
    assert reply["Subject"] == "Re: Did you meet Bob?"
    assert reply["In-Reply-To"] == "<followup-1@localhost>"
    assert reply["References"] == "<intro-0@localhost> <followup-1@localhost>"
    body = reply.get_content()
    assert body.startswith("yes\n")
    assert "> Reply yes or no." in body

    # Replying to a reply keeps "Re:" single and goes to From when there is no Reply-To.
    run_cli(
        config,
        "send",
        "--from",
        "bob@example.org",
        "--to",
        "alice@example.org",
        "--subject",
        "Re: lunch",
        "shall we?",
    )
    second = run_cli(
        config, "send", "--from", "alice@example.org", "--reply-to-message", "2", "--no-quote", "sure"
    )
    assert second.exit_code == 0, second.output
    (to_bob,) = stored(server.mailbox_path("bob@example.org"))
    answer = parse(to_bob)
    assert answer["Subject"] == "Re: lunch"
    assert answer["To"] == "bob@example.org"
    assert answer["In-Reply-To"].startswith("<") and answer["References"] == answer["In-Reply-To"]
    assert answer.get_content().strip() == "sure"


def test_send_without_a_running_server_says_so(config: Config) -> None:
    result = run_cli(config, "send", "--from", "alice@example.org", "hello")
    assert result.exit_code != 0
    assert f"nothing is listening on 127.0.0.1:{config.sandbox.port}" in result.output


def test_send_rejects_bad_input_clearly(server: SandboxServer, config: Config) -> None:
    no_text = run_cli(config, "send", "--from", "alice@example.org")
    assert no_text.exit_code == 2 and "no message text" in no_text.output
    bad_from = run_cli(config, "send", "--from", "not-an-address", "hello")
    assert bad_from.exit_code == 2 and "expected an email address" in bad_from.output
    no_such = run_cli(config, "send", "--from", "alice@example.org", "--reply-to-message", "9", "x")
    assert no_such.exit_code == 1 and "no mail for alice@example.org" in no_such.output
    assert stored(server.inbox_path) == []


def test_commands_refuse_outside_sandbox_mode(tmp_path: Path) -> None:
    production = Config(
        programme=Programme(address="coffee@example.org"),
        imap=Imap(host="imap.example.org"),
        smtp=Smtp(host="smtp.example.org"),
        base_dir=tmp_path,
    )
    result = run_cli(production, "read", "alice@example.org")
    assert result.exit_code == 1 and "production mode" in result.output


def test_group_is_a_click_group() -> None:
    group = make_sandbox_group(lambda: Config())
    assert isinstance(group, click.Group)
    assert set(group.commands) == {"send", "read"}
