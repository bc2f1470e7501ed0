"""mailkit.tls: one client context for IMAP and SMTP; a CA file adds to the system's roots."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.smtp import SmtpSender, SmtpUnavailable
from mailkit.servers import SmtpServer
from mailkit.tls import TlsSetupError, tls_context
from matcher.clock import FakeClock
from tests.servers import TlsFiles


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> None:
    """A TLS handshake in memory, client against server; raises what the client's checks raise."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname=host)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_a_private_ca_file_is_trusted(test_tls: TlsFiles) -> None:
    handshake(tls_context(str(test_tls.ca_cert)), test_tls.server_context(), "127.0.0.1")


def test_without_the_ca_file_the_private_server_is_refused(test_tls: TlsFiles) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls_context(None), test_tls.server_context(), "127.0.0.1")


def test_the_host_name_is_checked(test_tls: TlsFiles) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls_context(str(test_tls.ca_cert)), test_tls.server_context(), "mail.example.org")


def test_the_ca_file_adds_to_the_system_roots(test_tls: TlsFiles) -> None:
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert system > 0, "this machine has no system root certificates to keep"
    context = tls_context(str(test_tls.ca_cert))
    assert context.cert_store_stats()["x509_ca"] == system + 1
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_an_unusable_ca_file_is_named_in_the_error(tmp_path: Path, content: str | None) -> None:
    ca_file = tmp_path / "private-ca.pem"
    if content is not None:
        ca_file.write_text(content)
    with pytest.raises(TlsSetupError, match=f"cannot load the CA file {ca_file}"):
        tls_context(str(ca_file))


def test_smtp_names_an_unusable_ca_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    settings = SmtpServer(
        per_minute=0, per_day=0, host="127.0.0.1", port=1, security="starttls", ca_file=str(missing)
    )
    with pytest.raises(SmtpUnavailable, match=f"cannot load the CA file {missing}"):
        SmtpSender(settings, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC))).connect()
