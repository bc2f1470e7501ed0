"""The sandbox: a private mail server on 127.0.0.1 so the whole service can be tried locally.

It accepts mail for any address. Mail for the programme (or a plus-address of it) goes to the
Maildir the service reads as its inbox, `<sandbox_dir>/inbox/`; mail for anyone else goes to
`<sandbox_dir>/mailboxes/<address>/`, one Maildir per person, which `unmentoring sandbox read`
shows. The service sends its own mail through this server too, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from inbox.lmtp import (
    DEFAULT_MAX_MESSAGE_BYTES,
    EnvelopeSenderCheck,
    MaildirWriter,
    MailServerStartError,
    RunningServer,
    Trace,
    describe_os_error,
    has_control_characters,
    is_programme_address,
    stamped,
)
from matcher.clock import Clock, SystemClock
from unmentoring.config import Config

__all__ = [
    "MailServerStartError",
    "SandboxServer",
    "StoredMessage",
    "banner",
    "list_maildir",
    "mailbox_folder_name",
]

SERVER_HOSTNAME = "sandbox.localhost"
_UNSAFE = re.compile(r"[^a-z0-9@._+-]")
_NAME_TIME = re.compile(r"^(\d+)\.([^.]*)")
_MICROS = re.compile(r"M(\d{1,6})")


def mailbox_folder_name(address: str) -> str:
    """A readable, safe folder name for an address: lower case, only [a-z0-9@._+-].

    When anything had to be replaced, a short hash of the address is appended so two different
    addresses never share a mailbox.
    """
    lowered = address.strip().strip("<>").lower()
    safe = _UNSAFE.sub("_", lowered).lstrip(".")[:150]
    if safe == lowered and safe:
        return safe
    digest = hashlib.sha256(lowered.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{safe or 'mailbox'}-{digest}"


@dataclass(frozen=True)
class SandboxLayout:
    """Where the sandbox keeps its mail under `sandbox_dir`."""

    sandbox_dir: Path
    programme_address: str

    @property
    def inbox_path(self) -> Path:
        return self.sandbox_dir / "inbox"

    @property
    def mailboxes_path(self) -> Path:
        return self.sandbox_dir / "mailboxes"

    def mailbox_path(self, address: str) -> Path:
        """The Maildir that mail to this address is delivered to (the inbox for the programme)."""
        if is_programme_address(address, self.programme_address):
            return self.inbox_path
        return self.mailboxes_path / mailbox_folder_name(address)


class _SandboxHandler(EnvelopeSenderCheck):
    def __init__(self, layout: SandboxLayout, clock: Clock) -> None:
        self._layout = layout
        self._clock = clock

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if has_control_characters(address) or not address.strip():
            return "553 5.1.3 Recipient address not allowed"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        received_at = format_datetime(self._clock.now())
        delivery_id = secrets.token_hex(6)
        copies: list[tuple[MaildirWriter, bytes]] = []
        seen: set[str] = set()
        for recipient in envelope.rcpt_tos:
            if recipient.lower() in seen:
                continue
            seen.add(recipient.lower())
            trace = Trace.of_session(
                envelope,
                session,
                recipient,
                by_host=SERVER_HOSTNAME,
                protocol="ESMTP",
                received_at=received_at,
                delivery_id=delivery_id,
            )
            writer = MaildirWriter(self._layout.mailbox_path(recipient))
            copies.append((writer, stamped(raw, trace)))
        return await asyncio.to_thread(_deliver_all, copies, delivery_id)


def _deliver_all(copies: list[tuple[MaildirWriter, bytes]], delivery_id: str) -> str:
    """All copies or none: SMTP has one answer for the whole message, and a 451 makes the sender
    retry every recipient, so no copy may stay behind after a failure."""
    prepared: list[tuple[MaildirWriter, Path]] = []
    try:
        for writer, data in copies:
            prepared.append((writer, writer.prepare(data)))
    except OSError as exc:
        for writer, tmp in prepared:
            writer.discard(tmp)
        return f"451 4.3.0 Temporary failure storing the message: {describe_os_error(exc)}"
    for writer, tmp in prepared:
        writer.commit(tmp)
    return f"250 2.0.0 OK queued as {delivery_id}"


class SandboxServer:
    """The sandbox's SMTP server (aiosmtpd) writing every message into Maildirs."""

    def __init__(
        self,
        sandbox_dir: Path,
        programme_address: str,
        host: str = "127.0.0.1",
        port: int = 2525,
        *,
        clock: Clock | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.layout = SandboxLayout(Path(sandbox_dir), programme_address)
        self.host = host
        self.port = port
        self._clock = clock or SystemClock()
        self._max_message_bytes = max_message_bytes
        self._server = RunningServer("sandbox mail server", host, port)

    @property
    def inbox_path(self) -> Path:
        return self.layout.inbox_path

    def mailbox_path(self, address: str) -> Path:
        return self.layout.mailbox_path(address)

    def start(self) -> None:
        """Listen on host:port; MailServerStartError (clear, immediate) if the port is busy."""
        try:
            MaildirWriter(self.inbox_path).ensure_exists()
            self.layout.mailboxes_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MailServerStartError(
                f"sandbox mail server: cannot create {self.layout.sandbox_dir}: {exc.strerror}"
            ) from None
        handler = _SandboxHandler(self.layout, self._clock)
        self._server.start(handler, SMTP, self._max_message_bytes, SERVER_HOSTNAME)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def banner(config: Config) -> str:
    """What a newcomer needs on start: where to send mail, how to read it, where it is kept."""
    host, port = config.sandbox.host, config.sandbox.port
    programme = config.programme.address
    sandbox_dir = config.sandbox_dir
    return "\n".join(
        [
            f"Sandbox mode: a private mail server on {host}:{port}; no mail leaves this machine.",
            f"  Programme address : {programme}",
            "  Write to it       : unmentoring sandbox send --from alice@example.org 'Hello'",
            f"                      (or any mail client / swaks --server {host}:{port} --to {programme})",
            "  Read anyone's mail: unmentoring sandbox read alice@example.org",
            "                      unmentoring sandbox read alice@example.org 1",
            "  Reply to message 1: unmentoring sandbox send --from alice@example.org "
            "--reply-to-message 1 'yes'",
            f"  Mail is kept in   : {sandbox_dir}",
            f"                      (inbox/ for {programme},",
            "                       mailboxes/<address>/ for everyone else)",
        ]
    )


# -- reading a Maildir --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMessage:
    number: int  # 1 = the oldest delivery, as `sandbox read` lists them
    path: Path

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def parse(self) -> EmailMessage:
        message = email.message_from_bytes(self.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


def list_maildir(path: Path) -> list[StoredMessage]:
    """The messages in new/ and cur/ of a Maildir, oldest delivery first, numbered from 1.

    Reading never moves a file, so numbers stay stable between `read` and `send
    --reply-to-message`. A missing Maildir is simply empty.
    """
    entries: list[tuple[tuple[int, int, str], Path]] = []
    for sub in ("new", "cur"):
        try:
            with os.scandir(path / sub) as listing:
                for item in listing:
                    if not item.name.startswith(".") and item.is_file():
                        entries.append((_delivery_order(item.name), Path(item.path)))
        except FileNotFoundError:
            continue
    entries.sort()
    return [StoredMessage(number, file) for number, (_, file) in enumerate(entries, start=1)]


def _delivery_order(name: str) -> tuple[int, int, str]:
    match = _NAME_TIME.match(name)
    if not match:
        return (0, 0, name)
    micros = _MICROS.search(match.group(2))
    return (int(match.group(1)), int(micros.group(1)) if micros else 0, name)
