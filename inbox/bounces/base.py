"""What every bounce detector shares: the message it reads, what it answers, and the small
readers of report text several formats need."""

from __future__ import annotations

import email
import html
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from functools import cached_property
from typing import Protocol

from inbox.parse import ParsedMessage, content_type, decode_bytes
from mailkit.addresses import canonical_address

# Bounces carry the original message; its attachments say nothing about who bounced, and a
# detector would spend seconds reading megabytes of base64.
MAX_PART_CHARS = 256_000
MAX_PARTS = 200
MAX_REPORT_CHARS = 20_000


@dataclass(frozen=True)
class Finding:
    """A detector's answer for a message it recognised. Empty sets with ``recognised`` mean "a
    report of this format, naming no failure" (e.g. a DSN saying "relayed"): nothing to score, and
    no other detector is asked. ``permanence_known`` is set when the report itself states
    permanence per address (DSN Action/Status, an SES bounce type), so a warning phrase
    elsewhere in the text does not override it."""

    permanent: frozenset[str] = frozenset()
    temporary: frozenset[str] = frozenset()
    permanence_known: bool = False

    @property
    def addresses(self) -> frozenset[str]:
        return self.permanent | self.temporary


class Detector(Protocol):
    """A detector gets the message and returns a Finding if it recognises the format, else None.
    It never raises for what a message contains (the registry guards it anyway)."""

    def __call__(self, mail: Mail) -> Finding | None: ...


@dataclass(frozen=True)
class Mail:
    """One message as the detectors read it: the compat32 tree (what flufl.bounce's detectors are
    written against), trimmed of large attachments, and the inbox's parsed form."""

    message: Message | None
    parsed: ParsedMessage
    signals: tuple[str, ...] = ()  # why it looks like a report (signals.bounce_signals)

    @classmethod
    def of(cls, raw: bytes, parsed: ParsedMessage, signals: tuple[str, ...] = ()) -> Mail:
        return cls(_trimmed_tree(raw), parsed, signals)

    def parts(self) -> Iterator[Message]:
        return walk(self.message) if self.message is not None else iter(())

    @cached_property
    def report_text(self) -> str:
        """The decoded text parts of the report itself (not of the attached original), cut where a
        copy of the original message starts: the text that names the failed addresses."""
        if self.message is None:
            return ""
        chunks = list(_report_texts(self.message))
        text = "\n".join(chunks).replace("\r\n", "\n")[:MAX_REPORT_CHARS]
        return cut_original(text)


def walk(message: Message, *, skip: Callable[[str], bool] = lambda content_type: False) -> Iterator[Message]:
    """The parts of ``message``, depth first and at most MAX_PARTS, without those whose content type
    ``skip`` refuses (nor what is inside them)."""
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        if skip(content_type(part, "")):
            continue
        yield part
        try:
            payload = part.get_payload() if part.is_multipart() else None
        except Exception:
            continue
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def decode_part(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
        charset = part.get_content_charset()
    except Exception:
        return ""
    return decode_bytes(data if isinstance(data, bytes) else b"", charset)


def _attached_original(content_type: str) -> bool:
    return content_type.startswith("message/") or content_type == "text/rfc822-headers"


def _report_texts(message: Message) -> Iterator[str]:
    """Decoded text leaves outside attached messages (message/rfc822, text/rfc822-headers)."""
    for part in walk(message, skip=_attached_original):
        ctype = content_type(part, "")
        if ctype in ("text/plain", "text/html"):
            text = decode_part(part)
            yield _strip_html(text) if ctype == "text/html" else text


_BLOCK_TAG = re.compile(r"<(?:br|p|div|tr|li)\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^<>@]*>")  # keeps <someone@example.org>


def _strip_html(text: str) -> str:
    return html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub("\n", text)))


# Where a report's own words end and its copy of the original message begins. An address after
# this point is the original's (a partner named in an introduction), never the failed one.
_ORIGINAL_STARTS = re.compile(
    r"^[ \t>]*(?:"
    r"-+ ?(?:original message|this is a copy of the message|below this line is a copy of the message"
    r"|unsent message follows|original message follows|returned message|message header follows"
    r"|the header of the original message|forwarded message)"
    r"|-{2,} ?original[ -]?message|original message follows\.|message headers follow\.?"
    r"|------ ?this is a copy of the message|--- ?below this line"
    r"|\*{3,} ?original message"
    r"|-{3,} ?(?:元のメッセージ|原文|Исходное сообщение|Ursprüngliche Nachricht|message d'origine)"
    r"|included is a copy of the message"
    # Any separator line announcing the copy, in the report's language: "|---- Message text
    # follows: ----|", "--- Mensaje original ---", "--- Kopie der Nachricht folgt ---".
    r"|[|=*_-]{2,}[^\n]{0,40}?(?:original|copy of|cop(?:ia|ie|y)|c[óo]pia|kopi[ae]|text follows"
    r"|message follows|headers? follow|mensaje|nachricht|wiadomo|bericht)"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_SUMMARY_LINE = re.compile(r"^(?:subject|date):", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\W*[|=*_-]{3,}")
_HEADER_LINE = re.compile(
    r"^(?:received|return-path|from|to|subject|date|message-id|mime-version):", re.IGNORECASE
)


# A report sent once the MTA gave up retrying a temporary failure (a server down for days): it says
# nothing about the address, so it never counts against it unless a permanent reply is quoted.
_EXPIRED = re.compile(
    r"could not deliver for the last \d+ seconds|retry timeout exceeded|in the queue too long"
    r"|delivery retry timeout|message expired|expired after|maximum time in queue|too many retries",
    re.IGNORECASE,
)
_PERMANENT_REPLY = re.compile(r"(?<![\w.@-])5\d\d(?:[ -]|$)|(?<![\w.@-])5\.\d{1,3}\.\d{1,3}\b", re.MULTILINE)


def expired_after_temporary_failures(text: str) -> bool:
    text = without_addresses(text)
    return bool(_EXPIRED.search(text)) and not _PERMANENT_REPLY.search(text)


def without_addresses(text: str) -> str:
    """The text with its addresses blanked: digits in "ann.lee550@example.org" are no reply code."""
    return ADDRESS.sub(" ", text)


def cut_original(text: str) -> str:
    match = _ORIGINAL_STARTS.search(text)
    if match:
        text = text[: match.start()]
    # A quoted original without a marker: a block of two or more header lines after a blank line.
    lines = text.split("\n")
    for i in range(1, len(lines) - 1):
        after_break = not lines[i - 1].strip() or _SEPARATOR.match(lines[i - 1])
        # A report's own summary ("Subject: ...", "Date: ...") is no copy; a copy starts elsewhere.
        copy_start = _HEADER_LINE.match(lines[i]) and not _SUMMARY_LINE.match(lines[i])
        if after_break and copy_start and _HEADER_LINE.match(lines[i + 1]):
            return "\n".join(lines[: i - 1])
    return text


ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}"
)


def addresses_in(text: str) -> list[str]:
    """Canonical addresses in a text, in order, each once."""
    found: dict[str, None] = {}
    for match in ADDRESS.finditer(text):
        address = canonical_address(match.group(0).strip(".'\""))
        if address:
            found.setdefault(address, None)
    return list(found)


def canonical_all(values: Iterable[str]) -> frozenset[str]:
    return frozenset(a for a in (canonical_address(v) for v in values) if a)


def _trimmed_tree(raw: bytes) -> Message | None:
    try:
        message = email.message_from_bytes(raw)
    except Exception:  # the message was parsed once already; any failure here means "no report"
        return None
    for part in walk(message):
        try:
            payload = part.get_payload()
            if part.is_multipart() or not isinstance(payload, str):
                continue
            if len(payload) > MAX_PART_CHARS:
                keep = part.get_content_maintype() in ("text", "message")
                part.set_payload(payload[:MAX_PART_CHARS] if keep else "")
        except Exception:  # a part we cannot trim is left as it is
            continue
    return message
