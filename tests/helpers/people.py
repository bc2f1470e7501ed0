"""Simulated participants for integration tests: they read what the SMTP sink received and write
to the programme by dropping real RFC 5322 messages into its Dovecot INBOX.

Both directions go through real servers and real message bytes. People read their mail the way a
mail client would (parse what arrived, look at headers), and their messages carry what a mail
client writes (From, To, Date from the simulated clock, a fresh Message-ID; replies add
In-Reply-To and References taken from the email they answer).
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses
from functools import cached_property
from urllib.parse import unquote, urlsplit

from matcher.clock import Clock
from tests.servers import ImapAccount, SmtpSink
from unmentoring.sandbox_cli import build_message, build_reply

KIND_HEADER = "X-UnMentoring-Kind"
_ROUND_IN_TEXT = re.compile(r"\bround\s+(\d{4}-\d{2})\b|\((\d{4}-\d{2})\)")


@dataclass(frozen=True)
class Person:
    name: str
    org: str
    address: str
    about: str = ""

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    @property
    def mailbox(self) -> str:
        """The From header value: "Ada Lovelace <ada@example.org>", quoted as needed."""
        return str(Address(display_name=self.name, addr_spec=self.address))


def _ids(value: object) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", str(value or ""))


def _addresses(message: EmailMessage, header: str) -> tuple[str, ...]:
    values = [str(v) for v in message.get_all(header) or []]
    return tuple(address.lower() for _, address in getaddresses(values) if address)


@dataclass(frozen=True)
class Delivered:
    """One message the SMTP sink accepted, parsed as its recipients' mail clients would.

    Views are computed once: header parsing with policy.default is slow, and a year's checks
    look at some 800 messages many times over."""

    index: int  # order of arrival at the sink, from 0
    envelope_from: str
    envelope_to: tuple[str, ...]  # lower-case RCPT TO addresses
    message: EmailMessage

    @cached_property
    def kind(self) -> str:
        return str(self.message.get(KIND_HEADER, ""))

    @cached_property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @cached_property
    def message_id(self) -> str:
        found = _ids(self.message.get("Message-ID"))
        return found[0] if found else ""

    @cached_property
    def in_reply_to(self) -> str:
        found = _ids(self.message.get("In-Reply-To"))
        return found[0] if found else ""

    @cached_property
    def references(self) -> list[str]:
        return _ids(self.message.get("References"))

    @cached_property
    def to(self) -> tuple[str, ...]:
        return _addresses(self.message, "To")

    @cached_property
    def reply_to(self) -> tuple[str, ...]:
        return _addresses(self.message, "Reply-To")

    @cached_property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @cached_property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""

    @cached_property
    def round_id(self) -> str:
        """The round an intro, follow-up, reminder or summary names ("2026-02"), else ""."""
        for text in (self.subject, self.text):
            matched = _ROUND_IN_TEXT.search(text)
            if matched:
                return matched.group(1) or matched.group(2)
        return ""

    def images(self) -> list[EmailMessage]:
        """Every image/png part, inline or attached."""
        return [p for p in self.message.walk() if p.get_content_type() == "image/png"]

    def inline_images(self) -> dict[str, bytes]:
        """Content-ID (without brackets) -> PNG bytes, for the images shown in the HTML part."""
        found = {}
        for part in self.images():
            cids = _ids(part.get("Content-ID"))
            if cids:
                found[cids[0]] = part.get_payload(decode=True)
        return found

    def unsubscribe_subject(self) -> str:
        """The subject the List-Unsubscribe mailto: link asks a mail client to send."""
        link = re.search(r"<(mailto:[^>]+)>", str(self.message.get("List-Unsubscribe", "")))
        if link is None:
            return ""
        query = urlsplit(link.group(1)).query
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name.lower() == "subject":
                return unquote(value)
        return ""


class Postbox:
    """What the SMTP sink received, parsed once, in order of arrival, looked up by recipient."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink
        self._parsed: list[Delivered] = []

    def refresh(self) -> list[Delivered]:
        """Parse what arrived since the last call and return it."""
        received = self._sink.messages
        new = [
            Delivered(
                index=i,
                envelope_from=r.mail_from.lower(),
                envelope_to=tuple(a.lower() for a in r.rcpt_tos),
                message=email.message_from_bytes(r.raw, policy=policy.default),  # type: ignore[arg-type]
            )
            for i, r in enumerate(received[len(self._parsed) :], start=len(self._parsed))
        ]
        self._parsed.extend(new)
        return new

    @property
    def count(self) -> int:
        return len(self.all())

    def all(self) -> list[Delivered]:
        self.refresh()
        return list(self._parsed)

    def since(self, index: int) -> list[Delivered]:
        return self.all()[index:]

    def to(self, address: str, kinds: Iterable[str] = ()) -> list[Delivered]:
        wanted = set(kinds)
        address = address.lower()
        return [d for d in self.all() if address in d.envelope_to and (not wanted or d.kind in wanted)]

    def latest(self, address: str, *kinds: str) -> Delivered | None:
        found = self.to(address, kinds)
        return found[-1] if found else None


@dataclass
class Correspondents:
    """People writing to the programme: messages are built now and dropped into its IMAP INBOX
    together by ``post`` (one IMAP session), as if a mail server had just delivered them."""

    account: ImapAccount
    programme_address: str
    clock: Clock
    pending: list[bytes] = field(default_factory=list)
    written: int = 0

    def write(self, person: Person, body: str, subject: str = "") -> EmailMessage:
        """A new message to the programme address."""
        message = build_message(person.mailbox, [self.programme_address], subject, body, self.clock)
        self._queue(message)
        return message

    def reply(
        self, person: Person, original: Delivered, body: str, *, recipients: Sequence[str] = ()
    ) -> EmailMessage:
        """A reply to ``original`` (quoting it, threading headers set) sent to the programme: to
        its Reply-To unless ``recipients`` says otherwise (an intro's Reply-To is the whole
        group, so answers to it name the programme address explicitly)."""
        reply = build_reply(original.message, person.mailbox, body, self.clock, recipients=recipients)
        self._queue(reply)
        return reply

    def post(self) -> int:
        """Deliver everything written since the last call; returns how many messages."""
        batch, self.pending = self.pending, []
        if batch:
            self.account.deliver_many(batch)
        return len(batch)

    def _queue(self, message: EmailMessage) -> None:
        self.pending.append(message.as_bytes(policy=policy.SMTP))
        self.written += 1
