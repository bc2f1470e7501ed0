"""The last check before a message enters the outbox: read it back as a mail client would.

A built message passes through code we do not control: the ``email`` package's folding and
generator, which on the Python 3.11.7 we run on write a CR/LF decoded from an encoded word out raw
(CVE-2024-6923) and drop the quotes of a long folded name (gh-80222). So the bytes about to be
stored are parsed with the parser a client uses (``BytesParser`` with ``email.policy.default``'s
grammar; mailkit.policy.PARSING is that policy with a header cache, which tests/test_parse.py checks
against the stock one, and which makes this check cost a third of what the stock one does) and
compared with what was meant: the From, To and Reply-To mailboxes, exactly the header names we set
(so no Cc, Bcc or second Content-Type), the Subject, and the same MIME parts with the same content.
A difference is a bug in how we build mail: ``ReadBackMismatch`` names the kind and what differs,
and the message is never sent.

Names and the Subject are compared without their spaces: Python 3.11's reader keeps the space
between two adjacent encoded words in a name, which RFC 2047 (and the mail clients people use) drop,
so a long name written as several words reads back with a space more at each break; and its folder
may drop the space between two non-ASCII words of a Subject where it breaks the line. A space cannot
add a recipient or a header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

from mailkit.policy import PARSING

MAILBOX_HEADERS = ("from", "to", "reply-to")

Mailboxes = tuple[tuple[str, str], ...]  # (display name, addr-spec) in order
Content = str | bytes


class ReadBackMismatch(ValueError):
    """A built message reads back differently from what was built: a bug; it is not sent."""


@dataclass(frozen=True)
class Intended:
    """What a message must read back as."""

    headers: tuple[str, ...]  # lower-cased header names of the top level, in order
    mailboxes: Mapping[str, Mailboxes]  # for MAILBOX_HEADERS
    subject: str
    parts: tuple[tuple[str, Content | None], ...]  # content type and (leaf) content, in walk order


def intended(msg: EmailMessage, mailboxes: Mapping[str, tuple[Address, ...]], subject: str) -> Intended:
    """What ``msg`` is meant to say: its own header names and parts, and the mailboxes and subject it
    was built from (not read from ``msg``, which the same parser would read the same way)."""
    return Intended(
        headers=tuple(name.lower() for name in msg.keys()),
        mailboxes={name: _pairs(mailboxes[name]) for name in MAILBOX_HEADERS},
        subject=subject,
        parts=_parts(msg),
    )


def check_read_back(kind: str, data: bytes, meant: Intended) -> None:
    """Raise ``ReadBackMismatch`` when ``data`` does not read back as ``meant``."""
    try:
        msg = BytesParser(policy=PARSING).parsebytes(data)
        assert isinstance(msg, EmailMessage)
        problem = _difference(msg, meant)
    except ReadBackMismatch:
        raise
    except Exception as exc:  # a message our own reader cannot read is as wrong as a changed one
        problem = f"it cannot be read back ({type(exc).__name__}: {exc})"
    if problem:
        raise ReadBackMismatch(f"{kind}: the built message reads back wrong, not sent (a bug): {problem}")


def _difference(msg: EmailMessage, meant: Intended) -> str:
    headers = tuple(name.lower() for name in msg.keys())
    if headers != meant.headers:
        return f"headers {list(headers)} instead of {list(meant.headers)}"
    for name in MAILBOX_HEADERS:
        read = _pairs(msg[name].addresses)
        if _unspaced(read) != _unspaced(meant.mailboxes[name]):
            return f"{name} reads {read} instead of {meant.mailboxes[name]}"
    subject = str(msg["subject"])
    if "".join(subject.split()) != "".join(meant.subject.split()):
        return f"subject reads {subject!r} instead of {meant.subject!r}"
    parts = _parts(msg)
    if [t for t, _ in parts] != [t for t, _ in meant.parts]:
        return f"parts {[t for t, _ in parts]} instead of {[t for t, _ in meant.parts]}"
    for (content_type, content), (_, meant_content) in zip(parts, meant.parts, strict=True):
        if content != meant_content:
            return f"the {content_type} part's content differs"
    return ""


def _pairs(addresses: tuple[Address, ...]) -> Mailboxes:
    return tuple((a.display_name, a.addr_spec) for a in addresses)


def _unspaced(mailboxes: Mailboxes) -> Mailboxes:
    return tuple(("".join(name.split()), addr_spec) for name, addr_spec in mailboxes)


def _parts(msg: EmailMessage) -> tuple[tuple[str, Content | None], ...]:
    return tuple((part.get_content_type(), _content(part)) for part in msg.walk())


def _content(part: EmailMessage) -> Content | None:
    if part.is_multipart():
        return None
    content = part.get_content()
    # Line ends are the generator's: CRLF on the wire, whatever the part was built with.
    return content.replace("\r\n", "\n") if isinstance(content, str) else content
