"""Delivering stored messages with ``smtplib``: one connection per batch, TLS verified, throttled.

What a send can end as (``SendResult.status``):

- ``sent``: the server accepted the message for at least one recipient and nobody is left to retry;
  recipients refused with a 5xx are listed in ``bounced`` (the caller counts them against those
  addresses).
- ``deferred``: a temporary (4xx) answer or a dropped connection persisted through the quick retries
  made in this run; ``deferred`` lists the recipients to try again later (the outbox schedules it
  with backoff).
- ``failed``: a permanent (5xx) answer for every remaining recipient: all are ``bounced``.

Problems that are not about one message stop the batch instead (``SmtpUnavailable``): the server
cannot be reached, its certificate is not trusted, the login is refused, or it refuses our envelope
sender. Nothing is marked then; the next run tries again. ``Throttled`` means the daily limit is
reached.

No password or token ever appears in a log line or an exception: errors name host, port and user.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailer.throttle import Throttle
from mailkit.credentials import Credential, CredentialError, StaticPassword, login_with
from mailkit.servers import SmtpServer
from mailkit.tls import TlsSetupError, tls_context
from matcher.clock import Clock

log = logging.getLogger(__name__)
_LEADING_DOT = re.compile(rb"(?m)^\.")


class SmtpError(Exception):
    """Base of the errors that stop a delivery run."""


class SmtpUnavailable(SmtpError):
    """The server cannot take any message now (unreachable, TLS, login, sender refused)."""


class Throttled(SmtpError):
    """Sending more now would exceed the provider's limit for longer than a run should wait."""

    def __init__(self, message: str, wait_seconds: float) -> None:
        super().__init__(message)
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class SendResult:
    status: str  # sent | deferred | failed
    accepted: tuple[str, ...] = ()
    bounced: tuple[tuple[str, str], ...] = ()  # (address, server reply) refused permanently
    deferred: tuple[str, ...] = ()  # recipients to retry later
    reason: str = ""  # the last problem, for the log and last_error
    attempts: int = 1  # SMTP transactions tried in this run


@dataclass
class _Progress:
    remaining: list[str]
    accepted: list[str] = field(default_factory=list)
    bounced: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""


def xoauth2_string(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64, which smtplib adds)."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


class SmtpSender:
    """Sends raw messages through one reused connection; reconnects when the server drops it."""

    def __init__(
        self,
        settings: SmtpServer,
        *,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        quick_retries: int = 2,
        quick_retry_delay: float = 1.0,
        max_throttle_wait: float = 120.0,
        local_hostname: str | None = None,
        credential: Credential | None = None,
    ) -> None:
        self.settings = settings
        self._credential = credential or StaticPassword(settings.password)
        self.clock = clock
        self._sleep = sleep
        self.quick_retries = quick_retries
        self.quick_retry_delay = quick_retry_delay
        self.max_throttle_wait = max_throttle_wait
        self.local_hostname = local_hostname
        self.throttle = Throttle(settings.per_minute, settings.per_day, clock)
        self._conn: smtplib.SMTP | None = None
        self.connections_opened = 0

    # -- connection

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _where(self) -> str:
        s = self.settings
        return f"SMTP server {s.host}:{s.port} ({s.security})"

    def connect(self) -> None:
        """Open and authenticate the connection now (it is otherwise opened by the first send)."""
        if self._conn is not None and self._conn.sock is not None:
            return
        self._discard()
        s = self.settings
        try:
            context = tls_context(s.ca_file)
        except TlsSetupError as exc:
            raise SmtpUnavailable(str(exc)) from None
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.host, s.port, self.local_hostname, timeout=s.timeout, context=context
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, self.local_hostname, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise SmtpUnavailable(f"{self._where} does not offer STARTTLS")
                conn.starttls(context=context)
                conn.ehlo()
            if s.username:
                self._authenticate(conn)
            # The final "." of a message is written on its own (see _data): without NODELAY, Nagle's
            # algorithm holds it until the server's delayed ACK, tens of milliseconds a message.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except SmtpUnavailable:
            _quietly_close(conn)
            raise
        except ssl.SSLCertVerificationError as exc:
            _quietly_close(conn)
            raise SmtpUnavailable(
                f"{self._where}: TLS certificate verify failed ({exc.verify_message}): "
                "set [smtp] ca_file to the CA that signed the server's certificate"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            _quietly_close(conn)
            raise SmtpUnavailable(
                f"{self._where}: login as {s.username!r} refused ({_reply(exc.smtp_code, exc.smtp_error)}): "
                + (
                    "run `unmentoring auth login` again"
                    if s.auth == "xoauth2"
                    else "check the password ([smtp] password_env or password_command) and username"
                )
            ) from None
        except CredentialError as exc:
            _quietly_close(conn)
            raise SmtpUnavailable(f"{self._where}: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            _quietly_close(conn)
            raise SmtpUnavailable(f"cannot connect to {self._where}: {_describe(exc)}") from None
        self._conn = conn
        self.connections_opened += 1

    def _authenticate(self, conn: smtplib.SMTP) -> None:
        s = self.settings
        if s.mechanism == "xoauth2":

            def xoauth2(token: str) -> object:
                initial = xoauth2_string(s.username, token)

                def respond(challenge: bytes | None = None) -> str:
                    # After a failure the server sends an error challenge; an empty answer ends it.
                    return initial if challenge is None else ""

                return conn.auth("XOAUTH2", respond, initial_response_ok=True)

            conn.ehlo_or_helo_if_needed()
            if not conn.has_extn("auth"):
                raise SmtpUnavailable(f"{self._where} does not offer AUTH")
            login_with(self._credential, xoauth2, smtplib.SMTPAuthenticationError)
        else:
            login_with(self._credential, lambda p: conn.login(s.username, p), smtplib.SMTPAuthenticationError)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.sock is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        _quietly_close(conn)

    # -- sending

    def preload_history(self, events: Iterable[tuple[datetime, int, int]]) -> None:
        """Earlier sends (when, recipients, messages): the daily limit holds across restarts."""
        if self.throttle.limited and not self.throttle.preloaded:
            self.throttle.preload(events)

    def send(
        self,
        envelope_from: str,
        recipients: Sequence[str],
        raw: bytes,
        *,
        before_commit: Callable[[], None] | None = None,
    ) -> SendResult:
        """One message; see the module docstring for what the result means.

        ``before_commit`` is called after the message body is sent and before the final "." that
        makes the server take it: the outbox waits there until the previous message's outcome is on
        disk, so the disk flush overlaps this message's MAIL, RCPT and DATA round trips while never
        more than one message is in flight.
        """
        progress = _Progress(remaining=list(recipients))
        attempts = 0
        for attempt in range(self.quick_retries + 1):
            if attempt:
                self._sleep(self.quick_retry_delay * 2 ** (attempt - 1))
            self._wait_for_throttle(len(progress.remaining))
            self.connect()
            attempts += 1
            self._attempt(envelope_from, raw, progress, before_commit)
            if not progress.remaining:
                break
        if progress.remaining:
            status = "deferred"
        elif progress.accepted:
            status = "sent"
        else:
            status = "failed"
        return SendResult(
            status=status,
            accepted=tuple(progress.accepted),
            bounced=tuple(progress.bounced),
            deferred=tuple(progress.remaining),
            reason=progress.reason,
            attempts=attempts,
        )

    def _attempt(
        self,
        envelope_from: str,
        raw: bytes,
        progress: _Progress,
        before_commit: Callable[[], None] | None,
    ) -> None:
        assert self._conn is not None
        remaining = progress.remaining
        try:
            refused = _transaction(self._conn, envelope_from, remaining, raw, before_commit)
        except smtplib.SMTPRecipientsRefused as exc:
            # Nothing was sent. After a 421 the later recipients were never tried: they stay.
            self._classify_refusals(exc.recipients, progress)
            permanent = {address for address, _ in progress.bounced}
            progress.remaining = [r for r in remaining if r not in permanent]
            self._drop_if_closed()
            return
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:
                self._discard()
                raise SmtpUnavailable(
                    f"{self._where} refuses the envelope sender {envelope_from!r}: "
                    f"{_reply(exc.smtp_code, exc.smtp_error)}; check smtp.envelope_from"
                ) from None
            progress.reason = _reply(exc.smtp_code, exc.smtp_error)
            self._drop_if_closed()
            return
        except smtplib.SMTPResponseException as exc:  # DATA refused, or an unexpected reply
            reason = _reply(exc.smtp_code, exc.smtp_error)
            progress.reason = reason
            if exc.smtp_code >= 500:
                progress.bounced.extend((r, reason) for r in remaining)
                progress.remaining = []
            if exc.smtp_code == 421:
                self._discard()
            self._drop_if_closed()
            return
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The message may or may not have been taken: this is the one "in flight" window.
            progress.reason = f"connection lost: {_describe(exc)}"
            self._discard()
            return
        except smtplib.SMTPException as exc:
            progress.reason = _describe(exc)
            self._discard()
            return
        accepted = [r for r in remaining if r not in refused]
        self.throttle.record(len(accepted))
        progress.accepted.extend(accepted)
        progress.remaining = []
        if refused:
            self._classify_refusals(refused, progress)

    def _classify_refusals(self, refused: dict[str, tuple[int, bytes]], progress: _Progress) -> None:
        retry = []
        for address, (code, message) in refused.items():
            reason = _reply(code, message)
            progress.reason = reason
            if code >= 500:
                progress.bounced.append((address, reason))
            else:
                retry.append(address)
        progress.remaining = retry

    def _drop_if_closed(self) -> None:
        # smtplib closes the socket itself after a 421 ("service closing"); reconnect next time.
        if self._conn is not None and self._conn.sock is None:
            self._conn = None

    def _wait_for_throttle(self, recipients: int) -> None:
        while True:
            wait = self.throttle.wait_needed(recipients)
            if wait <= 0:
                return
            if wait > self.max_throttle_wait:
                raise Throttled(
                    f"sending limit reached ({self.settings.per_minute} messages a minute, "
                    f"{self.settings.per_day} recipients a day); next send in {wait / 60:.0f} min",
                    wait,
                )
            self._sleep(wait)


def _transaction(
    conn: smtplib.SMTP,
    envelope_from: str,
    recipients: Sequence[str],
    raw: bytes,
    before_commit: Callable[[], None] | None,
) -> dict[str, tuple[int, bytes]]:
    """``smtplib.SMTP.sendmail`` for a 7-bit message, with a hook before DATA; same errors, same
    result
    (the recipients refused while others were accepted)."""
    conn.ehlo_or_helo_if_needed()
    options = [f"size={len(raw)}"] if conn.does_esmtp and conn.has_extn("size") else []
    code, response = conn.mail(envelope_from, options)
    if code != 250:
        _end_transaction(conn, code)
        raise smtplib.SMTPSenderRefused(code, response, envelope_from)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient in recipients:
        code, response = conn.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, response)
        if code == 421:
            conn.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _end_transaction(conn, 0)
        raise smtplib.SMTPRecipientsRefused(refused)
    code, response = _data(conn, raw, before_commit)
    if code != 250:
        _end_transaction(conn, code)
        raise smtplib.SMTPDataError(code, response)
    return refused


def _data(conn: smtplib.SMTP, raw: bytes, before_commit: Callable[[], None] | None) -> tuple[int, bytes]:
    """``smtplib.SMTP.data`` with the final "." held back until ``before_commit`` returns."""
    conn.putcmd("data")
    code, response = conn.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, response)
    body = _LEADING_DOT.sub(b"..", raw)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    conn.send(body)
    if before_commit is not None:
        try:
            before_commit()
        except BaseException:
            # Without the final "." the server drops the half-sent message: closing is the safe way
            # out.
            conn.close()
            raise
    conn.send(b".\r\n")
    return conn.getreply()


def _end_transaction(conn: smtplib.SMTP, code: int) -> None:
    # 421: the server is closing the channel; otherwise reset it for the next message.
    if code == 421:
        conn.close()
        return
    try:
        conn.rset()
    except smtplib.SMTPServerDisconnected:
        pass


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return " ".join(f"{code} {text}".split())


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass
