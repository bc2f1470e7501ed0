"""Smoke tests of the test servers themselves (tests/servers.py)."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import threading
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import pytest

from tests.servers import (
    Dovecot,
    ImapAccount,
    ServerStartError,
    SmtpSink,
    TlsFiles,
)


def _message(subject: str, to: str = "bob@example.org") -> bytes:
    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes(policy=SMTP_POLICY)


# -- Dovecot ------------------------------------------------------------------------------------


def test_dovecot_stores_and_lists_mail(imap_account: ImapAccount) -> None:
    first, second = _message("one"), _message("two")
    imap_account.deliver(first)
    imap_account.deliver_many([second], folder="Archive")

    assert imap_account.list_folder() == [first]
    assert imap_account.list_folder("Archive") == [second]
    assert imap_account.folder_exists("Archive")


def test_dovecot_serves_imaps_and_starttls_with_the_test_ca(imap_account: ImapAccount) -> None:
    context = imap_account.server.tls.client_context()
    with imaplib.IMAP4_SSL(
        imap_account.host, imap_account.imaps_port, ssl_context=context, timeout=5
    ) as client:
        assert client.login(imap_account.user, imap_account.password)[0] == "OK"
    with imaplib.IMAP4(imap_account.host, imap_account.imap_port, timeout=5) as client:
        assert "STARTTLS" in client.capabilities
        client.starttls(ssl_context=context)
        assert client.login(imap_account.user, imap_account.password)[0] == "OK"


def test_dovecot_kick_and_restart_drop_connections(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    imap_account.deliver(_message("kept"))
    ports = (dovecot.imap_port, dovecot.imaps_port)

    client = imaplib.IMAP4(imap_account.host, imap_account.imap_port, timeout=5)
    client.login(imap_account.user, imap_account.password)
    client.select("INBOX")
    dovecot.kick(imap_account.user)
    with pytest.raises(imaplib.IMAP4.abort):
        client.noop()
    client.shutdown()

    client = imaplib.IMAP4(imap_account.host, imap_account.imap_port, timeout=5)
    client.login(imap_account.user, imap_account.password)
    dovecot.restart()
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
    client.shutdown()

    assert (dovecot.imap_port, dovecot.imaps_port) == ports
    assert imap_account.list_folder() == [_message("kept")]


def test_dovecot_start_failure_reports_the_log(test_tls: TlsFiles) -> None:
    server = Dovecot(test_tls)
    try:
        with socket.socket() as squatter:  # the IMAP port is taken: Dovecot cannot bind it
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind((server.host, server.imap_port))
            squatter.listen()
            with pytest.raises(ServerStartError) as failure:
                server.start()
        assert str(server.imap_port) in str(failure.value)
        assert "Address already in use" in str(failure.value)
        assert not server.running
    finally:
        server.cleanup()


# -- SMTP sink ----------------------------------------------------------------------------------


def test_sink_stores_envelope_and_bytes(smtp_sink: SmtpSink) -> None:
    raw = _message("hello")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        client.sendmail("alice@example.org", ["bob@example.org", "carol@example.org"], raw)

    [received] = smtp_sink.wait_for(1, timeout=5)
    assert received.mail_from == "alice@example.org"
    assert received.rcpt_tos == ("bob@example.org", "carol@example.org")
    assert received.raw == raw
    assert not received.tls and received.authenticated_as is None


def test_sink_scripted_failures(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, 451)
    smtp_sink.fail_recipient("gone@example.org", 550)
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as temporary:
            client.sendmail("a@example.org", ["b@example.org"], _message("first"))
        assert temporary.value.smtp_code == 451
        client.sendmail("a@example.org", ["b@example.org"], _message("second"))
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.org", ["gone@example.org"], _message("third"))
        assert refused.value.recipients["gone@example.org"][0] == 550

    assert [m.raw for m in smtp_sink.wait_for(1, timeout=5)] == [_message("second")]
    assert [stage for stage, _ in smtp_sink.rejections] == ["DATA", "RCPT"]


def test_sink_421_closes_the_connection(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, 421)
    client = smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5)
    with pytest.raises(smtplib.SMTPDataError) as closing:
        client.sendmail("a@example.org", ["b@example.org"], _message("dropped"))
    assert closing.value.smtp_code == 421
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    assert smtp_sink.count == 0


def test_sink_starttls_and_auth(make_smtp_sink, test_tls: TlsFiles) -> None:
    sink = make_smtp_sink(starttls=True, auth=("robot", "s3cret"), auth_required=True)
    context = test_tls.client_context()
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("robot", "wrong")
        client.login("robot", "s3cret")
        client.sendmail("a@example.org", ["b@example.org"], _message("secure"))

    [received] = sink.wait_for(1, timeout=5)
    assert received.tls and received.authenticated_as == "robot"


def test_sink_implicit_tls(make_smtp_sink, test_tls: TlsFiles) -> None:
    sink = make_smtp_sink(implicit_tls=True)
    with smtplib.SMTP_SSL("localhost", sink.port, context=test_tls.client_context(), timeout=5) as client:
        client.sendmail("a@example.org", ["b@example.org"], _message("wrapped"))
    assert sink.wait_for(1, timeout=5)[0].tls


def test_sink_counting_mode_from_a_plain_script() -> None:
    sink = SmtpSink(store=False).start()
    try:
        senders = [threading.Thread(target=_send_many, args=(sink.port, 25)) for _ in range(2)]
        for thread in senders:
            thread.start()
        assert sink.wait_for(50, timeout=10) == []
        for thread in senders:
            thread.join()
        assert sink.count == 50
        with pytest.raises(TimeoutError, match="50 of 51"):
            sink.wait_for(51, timeout=0.2)
    finally:
        sink.stop()
    with pytest.raises(OSError):
        socket.create_connection((sink.host, sink.port), timeout=1).close()


def _send_many(port: int, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        for n in range(count):
            client.sendmail("a@example.org", ["b@example.org"], _message(f"bulk {n}"))
