"""LMTP delivery: Postfix or Exim hands the programme's mail to this server, which spools it.

Each accepted message is written to a standard Maildir (the spool) that `MaildirSource` reads,
so a crash between "250" and processing loses nothing: the 250 is sent only after the file is
fsync'd and renamed into new/.

The delivery building blocks (Maildir writer, trace headers, programme-address test, a
controller on a socket bound up front) are shared with the sandbox SMTP server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from matcher.clock import Clock, SystemClock

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 25_000_000
START_TIMEOUT = 10.0
_TRACE_POLICY = policy.default.clone(utf8=True)


class MailServerStartError(Exception):
    """A mail server could not listen; the message names the server, the address and the cause."""


# -- addresses ----------------------------------------------------------------------------------


def is_programme_address(address: str, programme_address: str) -> bool:
    """The programme's own address, or a plus-address of it (local+anything@domain).

    Compared in canonical lower case, as the programme's users type addresses in any case.
    """
    candidate = address.strip().strip("<>").lower()
    programme = programme_address.strip().lower()
    if candidate == programme:
        return True
    local, at, domain = candidate.rpartition("@")
    programme_local, _, programme_domain = programme.rpartition("@")
    return bool(at) and domain == programme_domain and local.startswith(programme_local + "+")


def has_control_characters(text: str) -> bool:
    """True if the text holds a character that must never reach a header (CR, LF, NUL...)."""
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


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
    header = EmailMessage(policy=_TRACE_POLICY)
    header["Return-Path"] = f"<{trace.mail_from}>"
    header["Delivered-To"] = trace.recipient
    header["Received"] = (
        f"from {_printable(trace.helo)} ({_printable(trace.peer)}) by {trace.by_host} "
        f"with {trace.protocol} id {trace.delivery_id} for <{trace.recipient}>; {trace.received_at}"
    )
    block = header.as_bytes(policy=_TRACE_POLICY.clone(linesep=linesep.decode()))
    # as_bytes ends the header block with an empty line; the message's own headers follow.
    return block[: -len(linesep)]


def stamped(raw: bytes, trace: Trace) -> bytes:
    """The message as a Maildir file: trace headers on top, then the message as received.

    SMTP and LMTP end every line with CRLF on the wire; a Maildir file, like those Postfix and
    Dovecot write, ends lines with LF. Nothing else changes (a bare CR stays a bare CR).
    """
    return trace_headers(trace, b"\n") + raw.replace(b"\r\n", b"\n")


# -- Maildir ------------------------------------------------------------------------------------


class MaildirWriter:
    """Writes messages into a standard Maildir with the tmp/ -> new/ protocol.

    A message is first written and fsync'd in tmp/ (`prepare`), then renamed into new/
    (`commit`): a reader never sees a partial file, and a committed file survives a crash.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    def ensure_exists(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def _unique_name(self) -> str:
        # Seconds first, then microseconds after "M": the order MaildirSource sorts by.
        now_ns = time.time_ns()
        seconds, micros = divmod(now_ns // 1000, 1_000_000)
        return f"{seconds}.M{micros:06d}P{os.getpid()}R{secrets.token_hex(4)}.{self._host}"

    def prepare(self, data: bytes) -> Path:
        """Write the message to tmp/ and fsync it; OSError (disk full...) leaves no file."""
        self.ensure_exists()
        tmp = self.path / "tmp" / self._unique_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def commit(self, tmp: Path) -> Path:
        """Move a prepared message into new/, where readers find it, and make the rename durable."""
        final = self.path / "new" / tmp.name
        os.rename(tmp, final)
        _fsync_directory(self.path / "new")
        return final

    def discard(self, tmp: Path) -> None:
        tmp.unlink(missing_ok=True)

    def deliver(self, data: bytes) -> Path:
        return self.commit(self.prepare(data))


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe_os_error(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "insufficient storage"
    return exc.strerror or exc.__class__.__name__


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


class RunningServer:
    """Start/stop bookkeeping shared by the sandbox and LMTP servers."""

    def __init__(self, what: str, host: str, port: int) -> None:
        self.what = what
        self.host = host
        self.port = port
        self._controller: BoundController | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self, handler: Any, server_class: type[SMTP], max_message_bytes: int, hostname: str) -> None:
        if self._controller is not None:
            return
        sock = bind_listener(self.host, self.port, self.what)
        controller = BoundController(
            handler,
            sock,
            server_class,
            ready_timeout=START_TIMEOUT,
            server_hostname=hostname,
            data_size_limit=max_message_bytes,
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


# -- LMTP ---------------------------------------------------------------------------------------


class EnvelopeSenderCheck:
    """MAIL FROM as both of our receivers (LMTP and the sandbox's SMTP) take it."""

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if has_control_characters(address):
            return "553 5.1.7 Sender address contains control characters"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"


class _LmtpHandler(EnvelopeSenderCheck):
    def __init__(self, writer: MaildirWriter, programme_address: str, clock: Clock, hostname: str):
        self._writer = writer
        self._programme = programme_address
        self._clock = clock
        self._hostname = hostname

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if has_control_characters(address):
            return "553 5.1.3 Recipient address contains control characters"
        if not is_programme_address(address, self._programme):
            return f"550 5.1.1 <{address}>: no such mailbox here (not the programme's address)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        received_at = format_datetime(self._clock.now())
        statuses: list[str] = []
        delivered: dict[str, str] = {}  # a recipient named twice gets one copy and the same answer
        for recipient in envelope.rcpt_tos:
            key = recipient.lower()
            if key not in delivered:
                trace = Trace.of_session(
                    envelope,
                    session,
                    recipient,
                    by_host=self._hostname,
                    protocol="LMTP",
                    received_at=received_at,
                    delivery_id=secrets.token_hex(6),
                )
                delivered[key] = await asyncio.to_thread(self._deliver, raw, trace)
            statuses.append(delivered[key])
        # LMTP: one reply line per accepted recipient, in RCPT order (RFC 2033 section 4.2).
        return "\r\n".join(statuses)

    def _deliver(self, raw: bytes, trace: Trace) -> str:
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


class LmtpServer:
    """An LMTP server on host:port that spools the programme's mail into a Maildir.

    Per recipient: 250 once the message is safely in the spool, 451 when the spool cannot be
    written (the MTA retries), 550 at RCPT time for any address that is not the programme's.
    """

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
        self.spool = Path(spool)
        self.programme_address = programme_address
        self.host = host
        self.port = port
        self._clock = clock or SystemClock()
        self._max_message_bytes = max_message_bytes
        self._hostname = hostname or socket.getfqdn()
        self._writer = MaildirWriter(self.spool)
        self._server = RunningServer("LMTP server", host, port)

    def start(self) -> None:
        try:
            self._writer.ensure_exists()
        except OSError as exc:
            raise MailServerStartError(
                f"LMTP server: cannot create the spool Maildir {self.spool}: {exc.strerror}"
            ) from None
        handler = _LmtpHandler(self._writer, self.programme_address, self._clock, self._hostname)
        self._server.start(handler, LMTP, self._max_message_bytes, self._hostname)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LmtpServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
