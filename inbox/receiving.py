"""What both our receivers share: the LMTP server (inbox/lmtp.py) and the sandbox's SMTP server
(unmentoring/sandbox.py).

``DeliveringHandler`` is the aiosmtpd handler both build on: it checks MAIL FROM and RCPT TO
(a receiver says which recipients it refuses) and, at DATA, makes one trace per distinct recipient
(Return-Path, Delivered-To, Received) and hands the message to the receiver's ``deliver`` in a
worker thread, where the Maildir writes and fsyncs happen. Also here: the trace headers, and a
controller on a socket bound up front, so a busy port is reported at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailkit.addresses import has_control_characters
from mailkit.policy import TRACE
from matcher.clock import Clock, SystemClock

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 25_000_000
START_TIMEOUT = 10.0


class MailServerStartError(Exception):
    """A mail server could not listen; the message names the server, the address and the cause."""


def _printable(text: str, limit: int = 200) -> str:
    """Text from the network made safe for a trace header: printable, bounded."""
    cleaned = "".join(ch for ch in text if ch.isprintable() and ch not in "()<>;")
    return cleaned[:limit] or "unknown"


# -- trace headers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """What a delivering MTA records at the top of a message it stores."""

    mail_from: str  # the envelope sender; "" for the null sender of bounces
    recipient: str
    helo: str
    peer: str
    by_host: str
    protocol: str  # "ESMTP", "LMTP"...
    received_at: str  # RFC 5322 date
    delivery_id: str

    @classmethod
    def of_session(
        cls,
        envelope: Envelope,
        session: Session,
        recipient: str,
        *,
        by_host: str,
        protocol: str,
        received_at: str,
        delivery_id: str,
    ) -> Trace:
        """The trace of one recipient's copy, from what the SMTP or LMTP dialogue told us."""
        return cls(
            mail_from=envelope.mail_from or "",
            recipient=recipient,
            helo=session.host_name or "",
            peer=str(session.peer[0]) if session.peer else "",
            by_host=by_host,
            protocol=protocol,
            received_at=received_at,
            delivery_id=delivery_id,
        )


def trace_headers(trace: Trace, linesep: bytes) -> bytes:
    """Return-Path, Delivered-To and Received lines, built by the email package.

    The values come from the SMTP dialogue, so anything but printable text is refused by the
    email package (ValueError) rather than written into the stored message.
    """
    header = EmailMessage(policy=TRACE)
    header["Return-Path"] = f"<{trace.mail_from}>"
    header["Delivered-To"] = trace.recipient
    header["Received"] = (
        f"from {_printable(trace.helo)} ({_printable(trace.peer)}) by {trace.by_host} "
        f"with {trace.protocol} id {trace.delivery_id} for <{trace.recipient}>; {trace.received_at}"
    )
    block = header.as_bytes(policy=TRACE.clone(linesep=linesep.decode()))
    # as_bytes ends the header block with an empty line; the message's own headers follow.
    return block[: -len(linesep)]


def stamped(raw: bytes, trace: Trace) -> bytes:
    """The message as a Maildir file: trace headers on top, then the message as received.

    SMTP and LMTP end every line with CRLF on the wire; a Maildir file, like those Postfix and
    Dovecot write, ends lines with LF. Nothing else changes (a bare CR stays a bare CR).
    """
    return trace_headers(trace, b"\n") + raw.replace(b"\r\n", b"\n")


def describe_os_error(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "insufficient storage"
    return exc.strerror or exc.__class__.__name__


# -- the handler --------------------------------------------------------------------------------


class DeliveringHandler:
    """MAIL, RCPT and DATA as both receivers take them; subclasses say whom they refuse
    (``refusal``) and how a message is stored (``deliver``, run in a worker thread)."""

    protocol = "ESMTP"

    def __init__(self, clock: Clock, hostname: str) -> None:
        self._clock = clock
        self._hostname = hostname

    def refusal(self, address: str) -> str | None:
        """The reply refusing RCPT TO ``address``, or None to accept it."""
        return None

    def deliver(self, raw: bytes, traces: Sequence[Trace], rcpt_tos: Sequence[str]) -> str:
        """Store one copy per trace (one per distinct recipient); the reply to DATA."""
        raise NotImplementedError

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if has_control_characters(address):
            return "553 5.1.7 Sender address contains control characters"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if has_control_characters(address):
            return "553 5.1.3 Recipient address contains control characters"
        refusal = self.refusal(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        received_at = format_datetime(self._clock.now())
        delivery_id = secrets.token_hex(6)
        traces: dict[str, Trace] = {}  # a recipient named twice gets one copy
        for recipient in envelope.rcpt_tos:
            if recipient.lower() not in traces:
                traces[recipient.lower()] = Trace.of_session(
                    envelope,
                    session,
                    recipient,
                    by_host=self._hostname,
                    protocol=self.protocol,
                    received_at=received_at,
                    delivery_id=delivery_id,
                )
        try:
            return await asyncio.to_thread(self.deliver, raw, list(traces.values()), list(envelope.rcpt_tos))
        except Exception:  # a bug of ours: the sender keeps the message and retries, we log it
            log.exception("could not store a message from <%s> (a bug: please report it)", envelope.mail_from)
            return self.for_each_recipient("451 4.3.0 Local error in processing, try again later", envelope)

    def for_each_recipient(self, reply: str, envelope: Envelope) -> str:
        """The reply to DATA when every recipient gets ``reply`` (LMTP answers once per recipient)."""
        return reply


# -- listening ----------------------------------------------------------------------------------


def bind_listener(host: str, port: int, what: str) -> socket.socket:
    """A listening TCP socket, bound now so a busy port is reported at once and clearly.

    aiosmtpd's Controller only reports a bind failure after its start timeout; binding first
    turns "port in use" into an immediate MailServerStartError naming the server.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MailServerStartError(f"{what}: cannot resolve host {host!r}: {exc}") from None
    family = infos[0][0]
    try:
        return socket.create_server((host, port), family=family, backlog=64)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = "the port is already in use (another unmentoring or mail server running?)"
        else:
            problem = exc.strerror or str(exc)
        raise MailServerStartError(f"{what}: cannot listen on {host}:{port}: {problem}") from None


class BoundController(Controller):
    """An aiosmtpd Controller serving on a socket bound beforehand (see bind_listener)."""

    def __init__(
        self, handler: Any, sock: socket.socket, server_class: type[SMTP] = SMTP, **kwargs: Any
    ) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock
        self._server_class = server_class

    def factory(self) -> SMTP:
        return self._server_class(self.handler, **self.SMTP_kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class ReceivingServer:
    """Start and stop of our receivers on host:port; a subclass makes its folders and its handler
    (``prepare``, which raises MailServerStartError naming what it could not create)."""

    what = "mail server"
    server_class: type[SMTP] = SMTP

    def __init__(
        self,
        host: str,
        port: int,
        *,
        hostname: str,
        clock: Clock | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self._clock = clock or SystemClock()
        self._max_message_bytes = max_message_bytes
        self._hostname = hostname
        self._controller: BoundController | None = None

    def prepare(self) -> DeliveringHandler:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen on host:port; MailServerStartError (clear, immediate) if the port is busy."""
        if self._controller is not None:
            return
        handler = self.prepare()
        sock = bind_listener(self.host, self.port, self.what)
        controller = BoundController(
            handler,
            sock,
            self.server_class,
            ready_timeout=START_TIMEOUT,
            server_hostname=self._hostname,
            data_size_limit=self._max_message_bytes,
            # Not offered: we answer mail, and our mailer speaks 7-bit only. A non-ASCII address
            # is then refused at MAIL or RCPT (500), before it can reach a reply or a file name.
            enable_SMTPUTF8=False,
        )
        try:
            controller.start()
        except Exception as exc:
            controller.stop(no_assert=True)
            sock.close()
            raise MailServerStartError(f"{self.what} on {self.host}:{self.port}: {exc}") from exc
        self._controller = controller
        log.info("%s listening on %s:%s", self.what, self.host, self.port)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            log.info("%s on %s:%s stopped", self.what, self.host, self.port)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
