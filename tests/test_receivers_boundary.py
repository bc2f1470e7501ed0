"""Issue 11 item 8: our two receivers (the LMTP server and the sandbox's SMTP server) answer whatever a
client sends with a proper reply: 2xx when the message is stored, else 4xx/5xx, never a 250 followed by
a 500 and a traceback. Spoken to over a raw socket, byte by byte, as a broken or hostile client would.
And `explain` refuses a message larger than max_message_bytes without reading it all.
"""

from __future__ import annotations

import logging
import mailbox
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inbox.lmtp import LmtpServer
from inbox.receiving import ReceivingServer
from tests.helpers.cli_env import CliEnv, write_config
from tests.servers import HOST, free_port
from unmentoring.sandbox import SandboxServer

PROGRAMME = "unmentoring@example.test"
LIMIT = 2000
ENVELOPE = (b"MAIL FROM:<a@example.org>", f"RCPT TO:<{PROGRAMME}>".encode())
MESSAGE = b"From: a@example.org\r\nSubject: x\r\n\r\nhello\r\n"


@dataclass
class Receiver:
    server: ReceivingServer
    greeting: bytes  # LHLO or EHLO
    spool: Path  # where mail for the programme is stored

    def stored(self) -> list[bytes]:
        if not self.spool.exists():
            return []
        box = mailbox.Maildir(self.spool, factory=None, create=False)
        return [box.get_bytes(key) for key in box.keys()]


@pytest.fixture(params=["lmtp", "sandbox"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    port = free_port()
    if request.param == "lmtp":
        server: ReceivingServer = LmtpServer(
            tmp_path / "spool", PROGRAMME, HOST, port, max_message_bytes=LIMIT
        )
        running = Receiver(server, b"LHLO client.example", tmp_path / "spool")
    else:
        server = SandboxServer(tmp_path / "sandbox", PROGRAMME, HOST, port, max_message_bytes=LIMIT)
        running = Receiver(server, b"EHLO client.example", tmp_path / "sandbox" / "inbox")
    server.start()
    try:
        yield running
    finally:
        server.stop()


def dialogue(receiver: Receiver, *commands: bytes, more: int = 0) -> list[bytes]:
    """Each command's reply (the last line of a multi-line one), after the greeting; then ``more``
    reply lines (LMTP answers DATA once per recipient)."""
    with socket.create_connection((receiver.server.host, receiver.server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        replies = []
        for command in (receiver.greeting, *commands):
            sock.sendall(command + b"\r\n")
            while True:
                line = reader.readline()
                if line[3:4] != b"-":
                    break
            replies.append(line.rstrip(b"\r\n"))
        replies.extend(reader.readline().rstrip(b"\r\n") for _ in range(more))
        return replies[1:]


def code(reply: bytes) -> int:
    assert re.match(rb"^[2-5]\d\d[ -]", reply), reply
    return int(reply[:3])


def data(body: bytes) -> bytes:
    """The message and the final "." (the dialogue ends each command with CRLF)."""
    return body + b"." if body.endswith(b"\r\n") else body + b"\r\n."


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.DEBUG):
        yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


@pytest.mark.parametrize(
    "address",
    [b"unmentoring+\xe9@example.test", "unmentoring+é@example.test".encode(), b"\xff\xfe@example.test"],
    ids=["latin1", "utf8", "garbage"],
)
def test_an_8bit_recipient_is_refused_at_rcpt_and_nothing_stored(
    receiver: Receiver, address: bytes, no_tracebacks: None
) -> None:
    mail, rcpt, data_reply, after = dialogue(
        receiver, b"MAIL FROM:<a@example.org>", b"RCPT TO:<" + address + b">", b"DATA", b"NOOP"
    )
    assert code(mail) == 250
    assert code(rcpt) == 500  # strict ASCII: SMTPUTF8 is not offered
    assert code(data_reply) == 503  # no recipient: no DATA
    assert code(after) == 250  # the session goes on
    assert receiver.stored() == []


def test_an_8bit_sender_is_refused_at_mail(receiver: Receiver, no_tracebacks: None) -> None:
    mail, rcpt, after = dialogue(
        receiver, "MAIL FROM:<zoë@example.org>".encode(), b"RCPT TO:<x@y.z>", b"NOOP"
    )
    assert code(mail) == 500 and code(rcpt) == 503 and code(after) == 250


def test_smtputf8_is_not_offered_and_a_request_for_it_is_refused(
    receiver: Receiver, no_tracebacks: None
) -> None:
    with socket.create_connection((receiver.server.host, receiver.server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(receiver.greeting + b"\r\n")
        capabilities = []
        while True:
            line = reader.readline()
            capabilities.append(line[4:].strip().upper())
            if line[3:4] != b"-":
                break
    assert b"SMTPUTF8" not in capabilities and b"8BITMIME" in capabilities
    (mail,) = dialogue(receiver, b"MAIL FROM:<a@example.org> SMTPUTF8")
    assert code(mail) == 501


def test_nul_and_control_characters_in_addresses_are_refused(receiver: Receiver, no_tracebacks: None) -> None:
    mail, good, rcpt = dialogue(
        receiver,
        b"MAIL FROM:<a\x00@example.org>",
        b"MAIL FROM:<a@example.org>",
        b"RCPT TO:<unmentoring\x00@example.test>",
    )
    assert code(mail) == 553 and code(good) == 250 and code(rcpt) == 553


def test_over_long_lines_are_refused(receiver: Receiver, no_tracebacks: None) -> None:
    long_command, after = dialogue(receiver, b"MAIL FROM:<" + b"a" * 2000 + b"@example.org>", b"NOOP")
    assert code(long_command) == 500 and code(after) == 250
    body = b"Subject: x\r\n\r\n" + b"y" * 1500 + b"\r\n"
    replies = dialogue(
        receiver,
        b"MAIL FROM:<a@example.org>",
        f"RCPT TO:<{PROGRAMME}>".encode(),
        b"DATA",
        data(body),
        b"NOOP",
    )
    assert [code(r) for r in replies] == [250, 250, 354, 500, 250]
    assert receiver.stored() == []


def test_a_message_over_the_size_limit_is_refused_and_not_stored(
    receiver: Receiver, no_tracebacks: None
) -> None:
    (announced,) = dialogue(receiver, f"MAIL FROM:<a@example.org> SIZE={LIMIT + 1}".encode())
    assert code(announced) == 552
    body = b"Subject: x\r\n\r\n" + (b"z" * 70 + b"\r\n") * (LIMIT // 72 + 5)
    replies = dialogue(
        receiver,
        b"MAIL FROM:<a@example.org>",
        f"RCPT TO:<{PROGRAMME}>".encode(),
        b"DATA",
        data(body),
        b"NOOP",
    )
    assert [code(r) for r in replies] == [250, 250, 354, 552, 250]
    assert receiver.stored() == []


def test_nul_bytes_and_8bit_text_in_the_message_are_stored_intact(
    receiver: Receiver, no_tracebacks: None
) -> None:
    body = b"Subject: caf\xc3\xa9\r\n\r\nnul\x00here and latin \xe9\r\n"
    replies = dialogue(receiver, *ENVELOPE, b"DATA", data(body))
    assert [code(r) for r in replies] == [250, 250, 354, 250]
    (stored,) = receiver.stored()
    assert stored.endswith(body.replace(b"\r\n", b"\n"))


def test_an_unexpected_error_while_storing_answers_451_per_recipient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug of ours (simulated) is a temporary failure: the MTA keeps the message and retries."""
    server = LmtpServer(tmp_path / "spool", PROGRAMME, HOST, free_port())
    monkeypatch.setattr("inbox.lmtp.stamped", lambda raw, trace: 1 / 0)
    with server:
        receiver = Receiver(server, b"LHLO client.example", tmp_path / "spool")
        replies = dialogue(
            receiver, *ENVELOPE, b"RCPT TO:<unmentoring+tag@example.test>", b"DATA", data(MESSAGE), more=1
        )
    assert replies[:4] == [b"250 2.1.0 OK", b"250 2.1.5 OK", b"250 2.1.5 OK", replies[3]]
    assert replies[4:] == [b"451 4.3.0 Local error in processing, try again later"] * 2
    assert any("please report it" in r.getMessage() for r in caplog.records)
    assert receiver.stored() == []


# -- explain -----------------------------------------------------------------------------------


def test_explain_refuses_a_message_over_the_limit_without_reading_it_all(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "programme", sandbox_port=free_port())
    write_config(
        env.config_path,
        data_dir=env.data_dir,
        sandbox_port=env.sandbox_port,
        extra=f"\n[limits]\nmax_message_bytes = {LIMIT}\n",
    )
    fits = MESSAGE + b"x" * (LIMIT - len(MESSAGE))
    assert env.ok("explain", "-", input=fits).exit_code == 0
    too_big = env.invoke("explain", "-", input=fits + b"x")
    assert too_big.exit_code == 1
    assert f"larger than limits.max_message_bytes ({LIMIT} bytes)" in too_big.stderr
    # An endless input: only LIMIT + 1 bytes are read, so this returns at once.
    endless = env.invoke("explain", "/dev/zero")
    assert endless.exit_code == 1 and "max_message_bytes" in endless.stderr
