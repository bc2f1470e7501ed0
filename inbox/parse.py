"""Turning the raw bytes of an inbound message into a ParsedMessage: headers, body, charsets.

Reply stripping (the sender's new words without quotes and signatures) is in inbox/reply_text.py.

Everything here is pure and total: any input, however broken, gives a ParsedMessage. Inbound mail
is written by thousands of different programs, and one strange message must never stop the inbox.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.headerregistry import UnstructuredHeader
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from functools import cached_property
from html.parser import HTMLParser

import html2text

from inbox.reply_text import MAX_REPLY_CHARS, strip_reply
from mailkit.addresses import canonical_address, plain_mailbox
from mailkit.header_text import decoded_one_line
from mailkit.message_ids import message_id_in, message_ids_in
from mailkit.policy import PARSING

# Bounds that keep one message's cost small whatever its size: attachments are never decoded, a
# text part is cut before charset decoding, and the reply parser sees at most MAX_REPLY_CHARS.
MAX_PART_BYTES = 2_000_000
MAX_FULL_TEXT_CHARS = 500_000
MAX_HEADER_CHARS = 16_000
MAX_PARTS_VISITED = 500
MAX_REFERENCES = 100

_ADDRESS_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
_STRUCTURED_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})
_PLAIN_TEXT = re.compile(r"[\t -~]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Charsets whose labels are routinely wrong in practice, decoded with the superset that real
# senders use (as web browsers do): "ISO-8859-1" mail is nearly always Windows-1252, and so on.
_CHARSET_UPGRADES = {
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "shift_jis": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso8859-8",
}
_NOT_TEXT_CODECS = frozenset(
    {"undefined", "unicode_escape", "raw_unicode_escape", "idna", "punycode", "mbcs", "oem"}
)


@dataclass(frozen=True)
class ParsedMessage:
    """What the inbox needs from one message.

    Addresses are canonical (mailkit.addresses.canonical_address). envelope_sender is None without a
    Return-Path and "" for the null sender. in_reply_to holds In-Reply-To then References ids, newest first,
    without brackets. full_text is the whole decoded body, for token search; text (worked out on
    first use: machine mail never needs it) is the sender's new words, with quotes, reply headers
    and signatures removed. headers maps lower-cased names to the first value, decoded on first
    use.
    """

    message_id: str | None
    sender: str
    sender_name: str
    envelope_sender: str | None
    to: list[str]
    subject: str
    in_reply_to: list[str]
    full_text: str
    headers: Mapping[str, str] = field(default_factory=lambda: _Headers({}))
    raw_size: int = 0

    @cached_property
    def text(self) -> str:
        try:
            return strip_reply(self.full_text[:MAX_REPLY_CHARS])
        except Exception:  # parse_message's promise: nothing about a message raises
            return ""


class _Headers(Mapping[str, str]):
    """Header name -> first value, each decoded (RFC 2047, 8-bit repair) when first asked for:
    the inbox reads a handful of the dozens of headers a message carries."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        try:
            return self._decoded[name]
        except KeyError:
            value = self._decoded[name] = _header_text(name, self._raw[name])
            return value

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


def parse_message(raw: bytes) -> ParsedMessage:
    """Read a raw RFC 5322 message; never raises, whatever the bytes."""
    data = _as_bytes(raw)
    for headers_only in (False, True):
        try:
            return _parse(data, headers_only=headers_only)
        except Exception:  # e.g. RecursionError on absurd MIME nesting: keep at least the headers
            continue
    return _empty(data)


def message_key(raw: bytes, parsed: ParsedMessage) -> str:
    """A stable key for "have we seen this message": its Message-ID, else a hash of its bytes."""
    if parsed.message_id:
        return parsed.message_id
    return "sha256:" + hashlib.sha256(_as_bytes(raw)).hexdigest()


# --- internals -----------------------------------------------------------------------------------


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _empty(data: bytes) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        sender="",
        sender_name="",
        envelope_sender=None,
        to=[],
        subject="",
        in_reply_to=[],
        full_text="",
        headers=_Headers({}),
        raw_size=len(data),
    )


def _parse(data: bytes, *, headers_only: bool) -> ParsedMessage:
    msg = BytesParser(policy=PARSING).parsebytes(data, headersonly=headers_only)
    raw_headers = _raw_headers(msg)
    first_values: dict[str, str] = {}
    for name, value in raw_headers:
        key = name.strip().lower()
        if key and key not in first_values:
            first_values[key] = value
    headers = _Headers(first_values)

    from_value = _first_raw(raw_headers, "from")
    sender_name, sender = "", ""
    for display_name, address in _addresses("from", from_value):
        # Kept as a profile name: encoded words the parser left (it refuses one that decodes to
        # CR/LF) decoded, one line, no "=?" (mailkit.header_text).
        sender_name, sender = decoded_one_line(display_name), address
        break

    recipients: list[str] = []
    for name in _ADDRESS_HEADERS:
        for value in _all_raw(raw_headers, name):
            for _display, address in _addresses(name, value):
                if address not in recipients:
                    recipients.append(address)

    return ParsedMessage(
        message_id=_message_id(_first_raw(raw_headers, "message-id")),
        sender=sender,
        sender_name=sender_name,
        envelope_sender=_envelope_sender(raw_headers),
        to=recipients,
        subject=headers.get("subject", ""),
        in_reply_to=_thread_ids(raw_headers),
        full_text=_body_text(msg),
        headers=headers,
        raw_size=len(data),
    )


def _raw_headers(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(name), str(value)) for name, value in msg.raw_items()]
    except Exception:
        return []


def _first_raw(raw_headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in raw_headers:
        if key.strip().lower() == name:
            return value
    return None


def _all_raw(raw_headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in raw_headers if key.strip().lower() == name]


def _unfold(value: str) -> str:
    return _LINE_BREAKS.sub("", _repair_8bit(value))[:MAX_HEADER_CHARS]


def _repair_8bit(value: str) -> str:
    """Headers with raw 8-bit bytes arrive as surrogate escapes: decode them as UTF-8 or cp1252."""
    if not _SURROGATE.search(value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return _clean_text(value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _clean_text(value: str) -> str:
    """Drop lone surrogates and control characters so the value is safe to store and print."""
    return _CONTROL.sub("", _SURROGATE.sub("\ufffd", value))


def _header_text(name: str, value: str) -> str:
    unfolded = _unfold(value)
    if _PLAIN_TEXT.fullmatch(unfolded) and "=?" not in unfolded and _is_unstructured(name):
        # The email package reads plain ASCII text (no encoded words) as itself; the test suite
        # checks that this shortcut agrees with it.
        return _clean_text(unfolded).strip()
    try:
        text = str(PARSING.header_factory(name, unfolded))
    except Exception:  # a malformed header falls back to its raw text
        text = unfolded
    return _clean_text(text).strip()


def _is_unstructured(name: str) -> bool:
    return issubclass(PARSING.header_factory[name], UnstructuredHeader)


def _addresses(name: str, value: str | None) -> list[tuple[str, str]]:
    """(display name, canonical address) pairs of an address header; invalid entries dropped."""
    if not value:
        return []
    unfolded = _unfold(value)
    pairs: list[tuple[str, str]] = []
    plain = plain_mailbox(unfolded) if name in _STRUCTURED_ADDRESS_HEADERS else None
    if plain is not None:
        pairs = [plain]
    elif name in _STRUCTURED_ADDRESS_HEADERS:
        try:
            header = PARSING.header_factory(name, unfolded)
            pairs = [(a.display_name, a.addr_spec) for a in header.addresses]
        except Exception:
            pairs = []
    if not pairs:
        try:
            pairs = getaddresses([unfolded])
        except Exception:
            pairs = []
    result: list[tuple[str, str]] = []
    for display_name, address in pairs:
        canonical = canonical_address(address)
        if canonical:
            result.append((_clean_text(display_name or "").strip(), canonical))
    return result


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    return message_id_in(_clean_text(_unfold(value)).strip())


def _envelope_sender(raw_headers: list[tuple[str, str]]) -> str | None:
    value = _first_raw(raw_headers, "return-path")
    if value is None:
        return None
    unfolded = _unfold(value).strip()
    if unfolded in ("", "<>"):
        return ""
    # Sendmail writes <MAILER-DAEMON> for the null sender: anything not an address counts as null.
    return canonical_address(unfolded)


def _thread_ids(raw_headers: list[tuple[str, str]]) -> list[str]:
    ids: list[str] = []
    for name, most_recent_last in (("in-reply-to", False), ("references", True)):
        value = _first_raw(raw_headers, name)
        if not value:
            continue
        found = message_ids_in(_clean_text(_unfold(value)))
        if most_recent_last:
            found.reverse()
        for msg_id in found:
            if msg_id not in ids:
                ids.append(msg_id)
    return ids[:MAX_REFERENCES]


# --- body ----------------------------------------------------------------------------------------


def _body_text(msg: Message) -> str:
    plain: str | None = None
    html: str | None = None
    for part, ctype in _leaf_parts(msg):
        if ctype not in ("text/plain", "text/html") or _is_attachment(part):
            continue
        if ctype == "text/plain" and plain is None:
            decoded = _decode_part(part)
            if decoded.strip():
                plain = _unflow(decoded, part)
        elif ctype == "text/html" and html is None:
            decoded = _decode_part(part)
            if decoded.strip():
                html = decoded
        if plain is not None:
            break
    if plain is not None:
        text = plain
    elif html is not None:
        text = html_to_text(html[:MAX_FULL_TEXT_CHARS])
    else:
        text = ""
    return _clean_text(_LINE_BREAKS.sub("\n", text))[:MAX_FULL_TEXT_CHARS]


def _leaf_parts(msg: Message) -> Iterator[tuple[Message, str]]:
    """Leaf parts in document order, skipping attached messages (they are not the sender's text)."""
    stack: list[Message] = [msg]
    visited = 0
    while stack and visited < MAX_PARTS_VISITED:
        part = stack.pop()
        visited += 1
        ctype = content_type(part)
        try:
            multipart = part.is_multipart()
            payload = part.get_payload() if multipart else None
        except Exception:
            continue
        if multipart:
            if ctype.startswith("message/") or not isinstance(payload, list):
                continue
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            continue
        yield part, ctype


def content_type(part: Message, unreadable: str = "text/plain") -> str:
    """The part's content type; ``unreadable`` when a malformed header makes the email package fail."""
    try:
        return part.get_content_type()
    except Exception:
        return unreadable


def _is_attachment(part: Message) -> bool:
    try:
        if part.get_content_disposition() == "attachment":
            return True
        return bool(part.get_filename())
    except Exception:
        return False


def _decode_part(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        try:
            payload = part.get_payload()
        except Exception:
            return ""
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(data[:MAX_PART_BYTES], charset)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode a body with its declared charset, or a best guess when it is missing or unknown."""
    codec = _codec_for(charset)
    if codec is None or (codec == "ascii" and not data.isascii()):
        return _guess_decode(data)
    try:
        return data.decode(codec, "replace")
    except Exception:  # some codecs raise despite errors="replace"
        return _guess_decode(data)


def _codec_for(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _CHARSET_UPGRADES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if info.name in _NOT_TEXT_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return _CHARSET_UPGRADES.get(info.name, info.name)


def _guess_decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _unflow(text: str, part: Message) -> str:
    """Join RFC 3676 format=flowed soft line breaks, so a long line reads as one line."""
    try:
        if (part.get_param("format") or "").lower() != "flowed":
            return text
        delsp = (part.get_param("delsp") or "").lower() == "yes"
    except Exception:
        return text
    out: list[str] = []
    pending: str | None = None
    for line in _LINE_BREAKS.split(text):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if pending is not None:
            line = pending + line
            pending = None
        if line.endswith(" ") and line.rstrip() not in ("--", "") and not line.startswith(">"):
            pending = line[:-1] if delsp else line
            continue
        out.append(line)
    if pending is not None:
        out.append(pending)
    return "\n".join(out)


# --- HTML ----------------------------------------------------------------------------------------

# html2text escapes characters that mean something in Markdown ("\-- ", "1\."); mail is not
# Markdown.
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>])")
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "table"}
)


def html_to_text(html: str) -> str:
    """Plain text of an HTML body; quoted <blockquote>s come out as "> " lines."""
    try:
        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_links = True
        converter.ignore_images = True
        converter.ignore_emphasis = True
        converter.ignore_tables = True
        converter.unicode_snob = True
        text = converter.handle(html)
    except Exception:  # fall back to the plainest reading of the markup
        text = _strip_tags(html)
    return _MARKDOWN_ESCAPE.sub(r"\1", text)


class _TagStripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def _strip_tags(html: str) -> str:
    stripper = _TagStripper()
    try:
        stripper.feed(html)
        stripper.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)
    return "".join(stripper.chunks)
