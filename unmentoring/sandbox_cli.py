"""`unmentoring sandbox send|read`: both sides of the conversation from the shell.

`send` writes as a member (alice@example.org) to the programme through the sandbox mail server,
exactly as a mail client would; `read` shows what the programme sent to her. Replies thread
properly (In-Reply-To, References), so the service sees what a real client would send.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import (
    format_datetime,
    formataddr,
    getaddresses,
    parsedate_to_datetime,
)
from typing import TYPE_CHECKING

import click

from matcher.clock import Clock, SystemClock
from unmentoring.config import Config

if TYPE_CHECKING:  # the sandbox server's modules load only for the sandbox commands
    from unmentoring.sandbox import SandboxLayout, StoredMessage

SEND_TIMEOUT = 15.0


# -- building messages --------------------------------------------------------------------------


def build_message(
    sender: str,
    recipients: Sequence[str],
    subject: str,
    body: str,
    clock: Clock,
) -> EmailMessage:
    """A plain-text message as a mail client writes it: From, To, Date, Message-ID, Subject."""
    from mailkit import policy
    from mailkit.message_ids import new_message_id

    message = EmailMessage(policy=policy.CLIENT)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = f"<{new_message_id(_domain_of(sender))}>"
    message.set_content(body)
    return message


def build_reply(
    original: EmailMessage,
    sender: str,
    body: str,
    clock: Clock,
    *,
    recipients: Sequence[str] = (),
    subject: str | None = None,
    quote: bool = True,
) -> EmailMessage:
    """A reply to `original`: To its Reply-To (else From), "Re: " subject, threading headers set."""
    to = list(recipients) or [formataddr(pair) for pair in _reply_addresses(original) if pair[1]]
    if not to:
        raise click.ClickException("the message has no Reply-To or From address to reply to")
    original_subject = _header(original, "Subject")
    if subject is None:
        subject = (
            original_subject
            if original_subject.lower().startswith("re:")
            else (f"Re: {original_subject}".rstrip())
        )
    text = body
    if quote:
        text = f"{body}\n\n{_attribution(original)}\n{_quoted(text_of(original))}"
    reply = build_message(sender, to, subject, text, clock)
    message_id = _header(original, "Message-ID").strip()
    if message_id:
        references = _header(original, "References").split() or _header(original, "In-Reply-To").split()
        reply["In-Reply-To"] = message_id
        reply["References"] = " ".join([*references, message_id])
    return reply


def _reply_addresses(original: EmailMessage) -> list[tuple[str, str]]:
    for name in ("Reply-To", "From"):
        values = original.get_all(name) or []
        pairs = getaddresses([str(v) for v in values])
        if any(address for _, address in pairs):
            return pairs
    return []


def _attribution(original: EmailMessage) -> str:
    date = _header(original, "Date") or "an unknown date"
    sender = _header(original, "From") or "someone"
    return f"On {date}, {sender} wrote:"


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _domain_of(address: str) -> str:
    _, parsed = getaddresses([address])[0]
    return parsed.rpartition("@")[2] or "localhost"


# -- reading messages ---------------------------------------------------------------------------


def _header(message: EmailMessage, name: str) -> str:
    """A header as text; a malformed header in stored mail must not stop `read`."""
    try:
        value = message.get(name)
    except Exception:  # the email package raises assorted errors on damaged headers
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def text_of(message: EmailMessage) -> str:
    """The text/plain part (else the HTML part as text); '' if there is none."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:
        part = None
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AttributeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        import html2text

        converter = html2text.HTML2Text()
        converter.body_width = 0
        return converter.handle(content).strip() + "\n"
    return content


def _attachments(message: EmailMessage) -> list[str]:
    lines = []
    try:
        parts = list(message.iter_attachments())
    except Exception:
        return []
    for part in parts:
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        name = part.get_filename() or "(no name)"
        lines.append(f"[attachment: {name} ({part.get_content_type()}, {size} bytes)]")
    return lines


def _list_date(message: EmailMessage) -> str:
    raw = _header(message, "Date")
    try:
        return parsedate_to_datetime(raw).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return raw[:16] or "(no date)"


def format_listing(address: str, messages: Sequence[StoredMessage]) -> str:
    if not messages:
        return f"No mail for {address}."
    rows = [f"Mail for {address} ({len(messages)}):"]
    for stored in messages:
        message = stored.parse()
        sender = _header(message, "From")[:40]
        subject = _header(message, "Subject") or "(no subject)"
        rows.append(f"{stored.number:>4}  {_list_date(message):<16}  {sender:<40}  {subject}")
    return "\n".join(rows)


def format_message(message: EmailMessage) -> str:
    lines = []
    for name in ("From", "To", "Cc", "Reply-To", "Subject", "Date"):
        value = _header(message, name)
        if value or name in ("From", "To", "Subject", "Date"):
            lines.append(f"{name}: {value}")
    text = text_of(message)
    out = "\n".join(lines) + "\n\n" + (text if text else "(no text part)\n")
    attachments = _attachments(message)
    if attachments:
        out += "\n" + "\n".join(attachments) + "\n"
    return out


def pick_message(layout: SandboxLayout, address: str, number: int) -> StoredMessage:
    from unmentoring.sandbox import list_maildir

    messages = list_maildir(layout.mailbox_path(address))
    if not messages:
        raise click.ClickException(f"no mail for {address} in the sandbox")
    if not 1 <= number <= len(messages):
        raise click.ClickException(
            f"{address} has messages 1 to {len(messages)}; there is no message {number}"
        )
    return messages[number - 1]


# -- sending ------------------------------------------------------------------------------------


def send_to_sandbox(config: Config, message: EmailMessage, sender: str, recipients: list[str]) -> None:
    import smtplib

    host, port = config.sandbox.host, config.sandbox.port
    try:
        with smtplib.SMTP(host, port, timeout=SEND_TIMEOUT) as smtp:
            smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except ConnectionRefusedError:
        raise click.ClickException(
            f"nothing is listening on {host}:{port}: start the service with `unmentoring run` "
            "(it runs the sandbox mail server)"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        refused = "; ".join(
            f"{rcpt}: {code} {text.decode(errors='replace')}" for rcpt, (code, text) in exc.recipients.items()
        )
        raise click.ClickException(f"the sandbox refused the recipients: {refused}") from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise click.ClickException(
            f"the sandbox mail server refused the message: {exc.smtp_code} {text}"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise click.ClickException(f"cannot send through {host}:{port}: {exc}") from None


def _valid_address(value: str, option: str) -> str:
    _, address = getaddresses([value])[0]
    if not address or "@" not in address:
        raise click.BadParameter(f"expected an email address, got {value!r}", param_hint=option)
    try:
        from email.headerregistry import Address

        Address(addr_spec=address)
    except (ValueError, IndexError):
        raise click.BadParameter(f"expected an email address, got {value!r}", param_hint=option) from None
    return value


def _body_from(words: Sequence[str]) -> str:
    if words:
        return " ".join(words)
    if not sys.stdin.isatty():
        return sys.stdin.read()
    return ""


# -- the click group ----------------------------------------------------------------------------


def make_sandbox_group(get_config: Callable[[], Config], clock: Clock | None = None) -> click.Group:
    """The `sandbox` command group; `get_config` is called only when a command runs."""
    the_clock = clock or SystemClock()

    def sandbox_config() -> Config:
        config = get_config()
        if config.mode != "sandbox":
            raise click.ClickException(
                f"the sandbox commands need sandbox mode; {config.source} configures "
                f"{config.mode} mode (real mail servers)"
            )
        return config

    @click.group("sandbox")
    def sandbox() -> None:
        """Write and read mail as members, through the local sandbox mail server."""

    @sandbox.command("send")
    @click.option("--from", "sender", required=True, help="Who writes, e.g. alice@example.org.")
    @click.option(
        "--to",
        "recipients",
        multiple=True,
        help="Recipient (repeatable); default: the programme address, or the sender of the "
        "message replied to.",
    )
    @click.option("--subject", default=None, help="Default: the first line of the text.")
    @click.option(
        "--reply-to-message",
        "reply_to",
        type=click.IntRange(min=1),
        default=None,
        help="Reply to message N of the sender's sandbox mailbox (see `sandbox read`).",
    )
    @click.option("--quote/--no-quote", default=True, help="Quote the original in a reply.")
    @click.argument("body", nargs=-1)
    def send(
        sender: str,
        recipients: tuple[str, ...],
        subject: str | None,
        reply_to: int | None,
        quote: bool,
        body: tuple[str, ...],
    ) -> None:
        """Send BODY (words, or stdin when none) as a member, through the sandbox server."""
        from unmentoring.sandbox import SandboxLayout

        config = sandbox_config()
        _valid_address(sender, "--from")
        for recipient in recipients:
            _valid_address(recipient, "--to")
        text = _body_from(body)
        if not text.strip():
            raise click.UsageError("no message text: give BODY words or pipe the text on stdin")
        layout = SandboxLayout(config.sandbox_dir, config.programme.address)
        if reply_to is not None:
            _, sender_address = getaddresses([sender])[0]
            original = pick_message(layout, sender_address, reply_to).parse()
            message = build_reply(
                original,
                sender,
                text,
                the_clock,
                recipients=recipients,
                subject=subject,
                quote=quote,
            )
        else:
            first_line = text.strip().splitlines()[0][:78]
            message = build_message(
                sender,
                list(recipients) or [config.programme.address],
                subject if subject is not None else first_line,
                text,
                the_clock,
            )
        envelope_to = [address for _, address in getaddresses([str(message["To"])]) if address]
        _, envelope_from = getaddresses([sender])[0]
        send_to_sandbox(config, message, envelope_from, envelope_to)
        click.echo(f"Sent to {', '.join(envelope_to)}: {message['Subject']}")

    @sandbox.command("read")
    @click.argument("address")
    @click.argument("number", type=click.IntRange(min=1), required=False)
    def read(address: str, number: int | None) -> None:
        """List ADDRESS's sandbox mail, or show message NUMBER as text."""
        from unmentoring.sandbox import SandboxLayout, list_maildir

        config = sandbox_config()
        layout = SandboxLayout(config.sandbox_dir, config.programme.address)
        address = getaddresses([address])[0][1] or address  # "Alice <alice@...>" works too
        if number is None:
            click.echo(format_listing(address, list_maildir(layout.mailbox_path(address))))
            return
        click.echo(format_message(pick_message(layout, address, number).parse()), nl=False)

    return sandbox
