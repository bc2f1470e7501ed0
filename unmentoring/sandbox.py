"""The sandbox: a private mail server on 127.0.0.1 so the whole service can be tried locally.

It accepts mail for any address. Mail for the programme (or a plus-address of it) goes to the
Maildir the service reads as its inbox, `<sandbox_dir>/inbox/`; mail for anyone else goes to
`<sandbox_dir>/mailboxes/<address>/`, one Maildir per person, which `unmentoring sandbox read`
shows. The service sends its own mail through this server too, so nothing leaves the machine.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from inbox import receiving
from inbox.receiving import MailServerStartError
from mailkit import policy
from mailkit.addresses import is_own_address
from mailkit.maildir import MaildirWriter, delivered
from matcher.clock import Clock
from matcher.private_files import private_folder
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
        if is_own_address(address, self.programme_address):
            return self.inbox_path
        return self.mailboxes_path / mailbox_folder_name(address)


class _SandboxHandler(receiving.DeliveringHandler):
    def __init__(self, layout: SandboxLayout, clock: Clock) -> None:
        super().__init__(clock, SERVER_HOSTNAME)
        self._layout = layout

    def refusal(self, address: str) -> str | None:
        return None if address.strip() else "553 5.1.3 Recipient address not allowed"

    def deliver(self, raw: bytes, traces: Sequence[receiving.Trace], rcpt_tos: Sequence[str]) -> str:
        copies = [
            (MaildirWriter(self._layout.mailbox_path(t.recipient)), receiving.stamped(raw, t)) for t in traces
        ]
        return _deliver_all(copies, traces[0].delivery_id)


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
        return f"451 4.3.0 Temporary failure storing the message: {receiving.describe_os_error(exc)}"
    for writer, tmp in prepared:
        writer.commit(tmp)
    return f"250 2.0.0 OK queued as {delivery_id}"


class SandboxServer(receiving.ReceivingServer):
    """The sandbox's SMTP server (aiosmtpd) writing every message into Maildirs."""

    what = "sandbox mail server"

    def __init__(
        self,
        sandbox_dir: Path,
        programme_address: str,
        host: str = "127.0.0.1",
        port: int = 2525,
        *,
        clock: Clock | None = None,
        max_message_bytes: int = receiving.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        limit = max_message_bytes
        super().__init__(host, port, clock=clock, max_message_bytes=limit, hostname=SERVER_HOSTNAME)
        self.layout = SandboxLayout(Path(sandbox_dir), programme_address)

    @property
    def inbox_path(self) -> Path:
        return self.layout.inbox_path

    def mailbox_path(self, address: str) -> Path:
        return self.layout.mailbox_path(address)

    def prepare(self) -> _SandboxHandler:
        try:
            private_folder(self.layout.sandbox_dir)
            MaildirWriter(self.inbox_path).ensure_exists()
            private_folder(self.layout.mailboxes_path)
        except OSError as exc:
            raise MailServerStartError(
                f"sandbox mail server: cannot create {self.layout.sandbox_dir}: {exc.strerror}"
            ) from None
        return _SandboxHandler(self.layout, self._clock)


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
        message = email.message_from_bytes(self.read_bytes(), policy=policy.CLIENT)
        assert isinstance(message, EmailMessage)
        return message


def list_maildir(path: Path) -> list[StoredMessage]:
    """The messages in new/ and cur/ of a Maildir, oldest delivery first, numbered from 1.

    Reading never moves a file, so numbers stay stable between `read` and `send
    --reply-to-message`. A missing Maildir is simply empty.
    """
    files = delivered(path, missing_ok=True)
    return [StoredMessage(number, file.path) for number, file in enumerate(files, start=1)]
