"""The LMTP delivery server, spoken to with smtplib.LMTP on 127.0.0.1."""

from __future__ import annotations

import errno
import mailbox
import smtplib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inbox.lmtp import LmtpServer, MailServerStartError
from mailkit.maildir import MaildirWriter
from matcher.clock import FakeClock
from tests.servers import HOST, free_port

PROGRAMME = "UnMentoring@example.test"
RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: unmentoring@example.test\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Message-ID: <lmtp-1@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello \xc3\xa9t\xc3\xa9\r\n"
    b".a line that starts with a dot\r\n"
    b"a bare \r carriage return and \x00 NUL stay as they are\r\n"
    b"\r\n"
    b"last line\r\n"
)
STORED = RAW.replace(b"\r\n", b"\n")  # a Maildir file ends lines with LF, as Postfix writes


def start_lmtp(spool: Path, **kwargs: object) -> LmtpServer:
    last: Exception | None = None
    for _ in range(5):  # another process may grab the picked port before we bind it
        server = LmtpServer(spool, PROGRAMME, HOST, free_port(), **kwargs)  # type: ignore[arg-type]
        try:
            server.start()
            return server
        except MailServerStartError as exc:
            last = exc
    raise AssertionError(f"LMTP server could not start: {last}")


@pytest.fixture
def lmtp(tmp_path: Path) -> Iterator[LmtpServer]:
    server = start_lmtp(tmp_path / "data" / "spool", clock=FakeClock(datetime(2025, 3, 3, 9, 0, tzinfo=UTC)))
    try:
        yield server
    finally:
        server.stop()


def lmtp_transaction(server: LmtpServer, recipients: list[str], raw: bytes = RAW):
    """One LMTP transaction: the RCPT replies, then one DATA reply per accepted recipient."""
    with smtplib.LMTP(server.host, server.port, timeout=10) as client:
        code, _ = client.ehlo()  # smtplib.LMTP sends LHLO here
        assert code == 250
        assert client.mail("sender@example.org")[0] == 250
        rcpt_replies = [(rcpt, *client.rcpt(rcpt)) for rcpt in recipients]
        accepted = [rcpt for rcpt, code, _ in rcpt_replies if code == 250]
        data_replies: list[tuple[int, bytes]] = []
        if accepted:
            data_replies.append(client.data(raw))
            data_replies.extend(client.getreply() for _ in accepted[1:])
        return rcpt_replies, list(zip(accepted, data_replies, strict=True))


def spool_messages(server: LmtpServer) -> list[bytes]:
    box = mailbox.Maildir(server.spool, factory=None, create=False)
    return [box.get_bytes(key) for key in box.keys()]


def test_programme_and_plus_address_accepted_others_refused_at_rcpt(lmtp: LmtpServer) -> None:
    rcpts, data = lmtp_transaction(
        lmtp,
        ["unmentoring@example.test", "stranger@example.test", "UNMENTORING+reply-7@Example.Test"],
    )
    assert [(rcpt, code) for rcpt, code, _ in rcpts] == [
        ("unmentoring@example.test", 250),
        ("stranger@example.test", 550),
        ("UNMENTORING+reply-7@Example.Test", 250),
    ]
    assert b"stranger@example.test" in rcpts[1][2]
    assert [(rcpt, code) for rcpt, (code, _) in data] == [
        ("unmentoring@example.test", 250),
        ("UNMENTORING+reply-7@Example.Test", 250),
    ]
    stored = spool_messages(lmtp)
    assert len(stored) == 2
    delivered_to = sorted(
        line for raw in stored for line in raw.split(b"\n") if line.startswith(b"Delivered-To:")
    )
    assert delivered_to == [
        b"Delivered-To: UNMENTORING+reply-7@Example.Test",
        b"Delivered-To: unmentoring@example.test",
    ]


def test_message_bytes_arrive_intact_below_trace_headers(lmtp: LmtpServer) -> None:
    _, data = lmtp_transaction(lmtp, ["unmentoring@example.test"])
    assert [code for _, (code, _) in data] == [250]
    (stored,) = spool_messages(lmtp)
    assert stored.endswith(STORED)
    trace = stored[: -len(STORED)]
    assert trace.startswith(
        b"Return-Path: <sender@example.org>\nDelivered-To: unmentoring@example.test\nReceived: "
    )
    assert b"with LMTP" in trace and b"3 Mar 2025 09:00:00 +0000" in trace
    # Delivered as a standard Maildir: in new/, nothing left behind in tmp/.
    assert len(list((lmtp.spool / "new").iterdir())) == 1
    assert list((lmtp.spool / "tmp").iterdir()) == []


def test_all_recipients_refused_means_no_data_phase(lmtp: LmtpServer) -> None:
    rcpts, data = lmtp_transaction(lmtp, ["someone@example.test", "unmentoring@other.test"])
    assert [code for _, code, _ in rcpts] == [550, 550]
    assert data == []
    assert spool_messages(lmtp) == []


def test_spool_write_failure_gives_451_for_that_recipient_only(
    lmtp: LmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = MaildirWriter.prepare

    def disk_full_for_plus_address(self: MaildirWriter, data: bytes) -> Path:
        if b"Delivered-To: unmentoring+full@example.test" in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_prepare(self, data)

    monkeypatch.setattr(MaildirWriter, "prepare", disk_full_for_plus_address)
    _, data = lmtp_transaction(lmtp, ["unmentoring+full@example.test", "unmentoring@example.test"])
    assert [(rcpt, code) for rcpt, (code, _) in data] == [
        ("unmentoring+full@example.test", 451),
        ("unmentoring@example.test", 250),
    ]
    assert b"insufficient storage" in data[0][1][1]
    (stored,) = spool_messages(lmtp)
    assert b"Delivered-To: unmentoring@example.test" in stored


def test_real_write_failure_leaves_no_partial_file(lmtp: LmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync_fails(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("mailkit.maildir.os.fsync", fsync_fails)
    _, data = lmtp_transaction(lmtp, ["unmentoring@example.test"])
    assert [code for _, (code, _) in data] == [451]
    for sub in ("tmp", "new", "cur"):
        assert list((lmtp.spool / sub).iterdir()) == []


def test_a_failed_delivery_is_accepted_when_the_mta_retries(
    lmtp: LmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = MaildirWriter.prepare
    calls = {"n": 0}

    def fail_once(self: MaildirWriter, data: bytes) -> Path:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_prepare(self, data)

    monkeypatch.setattr(MaildirWriter, "prepare", fail_once)
    _, first = lmtp_transaction(lmtp, ["unmentoring@example.test"])
    _, second = lmtp_transaction(lmtp, ["unmentoring@example.test"])
    assert [code for _, (code, _) in first] == [451]
    assert [code for _, (code, _) in second] == [250]
    assert len(spool_messages(lmtp)) == 1


def test_several_messages_on_one_connection_keep_their_order(lmtp: LmtpServer) -> None:
    with smtplib.LMTP(lmtp.host, lmtp.port, timeout=10) as client:
        client.ehlo()
        for n in range(3):
            raw = RAW.replace(b"<lmtp-1@", f"<lmtp-n{n}@".encode())
            assert client.sendmail("s@example.org", ["unmentoring@example.test"], raw) == {}
    box = mailbox.Maildir(lmtp.spool, factory=None, create=False)
    names = sorted(box.keys(), key=lambda k: (k.split(".")[0], k.split(".")[1]))
    ids = [box.get_bytes(k).split(b"Message-ID: <")[1][:7] for k in names]
    assert ids == [b"lmtp-n0", b"lmtp-n1", b"lmtp-n2"]


def test_helo_is_not_lmtp(lmtp: LmtpServer) -> None:
    with socket.create_connection((lmtp.host, lmtp.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(b"HELO client\r\n")
        assert reader.readline().startswith(b"500")


def test_oversized_message_is_refused_and_not_spooled(tmp_path: Path) -> None:
    server = start_lmtp(tmp_path / "spool", max_message_bytes=1000)
    try:
        _, data = lmtp_transaction(server, ["unmentoring@example.test"], RAW + b"filler line\r\n" * 200)
    finally:
        server.stop()
    assert [code for _, (code, _) in data] == [552]
    assert list((tmp_path / "spool" / "new").iterdir()) == []


def test_busy_port_is_reported_at_once_and_clearly(lmtp: LmtpServer, tmp_path: Path) -> None:
    other = LmtpServer(tmp_path / "other", PROGRAMME, HOST, lmtp.port)
    started = time.monotonic()
    with pytest.raises(MailServerStartError, match=rf"LMTP server.*{lmtp.port}.*already in use"):
        other.start()
    assert time.monotonic() - started < 1.0
    # The running server is unaffected.
    _, data = lmtp_transaction(lmtp, ["unmentoring@example.test"])
    assert [code for _, (code, _) in data] == [250]


def test_stop_releases_the_port(tmp_path: Path) -> None:
    server = start_lmtp(tmp_path / "spool")
    port = server.port
    server.stop()
    again = LmtpServer(tmp_path / "spool", PROGRAMME, HOST, port)
    again.start()
    try:
        _, data = lmtp_transaction(again, ["unmentoring@example.test"])
        assert [code for _, (code, _) in data] == [250]
    finally:
        again.stop()
