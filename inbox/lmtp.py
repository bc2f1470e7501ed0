"""LMTP delivery: Postfix or Exim hands the programme's mail to this server, which spools it.

Each accepted message is written to a standard Maildir (the spool) that `MaildirSource` reads,
so a crash between "250" and processing loses nothing: the 250 is sent only after the file is
fsync'd and renamed into new/. What it shares with the sandbox's SMTP server (the handler's
MAIL/RCPT/DATA steps, trace headers, listening) is in inbox/receiving.py.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from pathlib import Path

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope

from inbox.receiving import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DeliveringHandler,
    MailServerStartError,
    ReceivingServer,
    Trace,
    describe_os_error,
    stamped,
)
from mailkit.addresses import is_own_address
from mailkit.maildir import MaildirWriter
from matcher.clock import Clock

__all__ = ["LmtpServer", "MailServerStartError"]

log = logging.getLogger(__name__)


class _LmtpHandler(DeliveringHandler):
    protocol = "LMTP"

    def __init__(self, writer: MaildirWriter, programme_address: str, clock: Clock, hostname: str):
        super().__init__(clock, hostname)
        self._writer = writer
        self._programme = programme_address

    def refusal(self, address: str) -> str | None:
        if is_own_address(address, self._programme):
            return None
        return f"550 5.1.1 <{address}>: no such mailbox here (not the programme's address)"

    def deliver(self, raw: bytes, traces: Sequence[Trace], rcpt_tos: Sequence[str]) -> str:
        replies = {trace.recipient.lower(): self._deliver_one(raw, trace) for trace in traces}
        # LMTP: one reply line per accepted recipient, in RCPT order (RFC 2033 section 4.2).
        return "\r\n".join(replies[recipient.lower()] for recipient in rcpt_tos)

    def for_each_recipient(self, reply: str, envelope: Envelope) -> str:
        return "\r\n".join(reply for _ in envelope.rcpt_tos)

    def _deliver_one(self, raw: bytes, trace: Trace) -> str:
        try:
            path = self._writer.deliver(stamped(raw, trace))
        except OSError as exc:
            log.warning(
                "LMTP spool %s: delivery for %s deferred: %s",
                self._writer.path,
                trace.recipient,
                describe_os_error(exc),
            )
            return f"451 4.3.0 <{trace.recipient}> temporary failure: {describe_os_error(exc)}"
        log.info("LMTP delivered for %s as %s", trace.recipient, path.name)
        return f"250 2.0.0 <{trace.recipient}> delivered {trace.delivery_id}"


class LmtpServer(ReceivingServer):
    """An LMTP server on host:port that spools the programme's mail into a Maildir.

    Per recipient: 250 once the message is safely in the spool, 451 when the spool cannot be
    written (the MTA retries), 550 at RCPT time for any address that is not the programme's.
    """

    what = "LMTP server"
    server_class = LMTP

    def __init__(
        self,
        spool: Path,
        programme_address: str,
        host: str,
        port: int,
        *,
        clock: Clock | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        hostname: str | None = None,
    ) -> None:
        hostname = hostname or socket.getfqdn()
        super().__init__(host, port, clock=clock, max_message_bytes=max_message_bytes, hostname=hostname)
        self.spool = Path(spool)
        self.programme_address = programme_address
        self._writer = MaildirWriter(self.spool)

    def prepare(self) -> _LmtpHandler:
        try:
            self._writer.ensure_exists()
        except OSError as exc:
            raise MailServerStartError(
                f"LMTP server: cannot create the spool Maildir {self.spool}: {exc.strerror}"
            ) from None
        return _LmtpHandler(self._writer, self.programme_address, self._clock, self._hostname)
