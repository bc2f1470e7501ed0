"""Turning the raw bytes of an inbound message into a ParsedMessage.

Everything here is pure and total: any input, however broken, gives a ParsedMessage. Inbound mail
is written by thousands of different programs, and one strange message must never stop the inbox.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses
from functools import cached_property
from html.parser import HTMLParser

import html2text
from mailparser_reply import EmailMessage as ReplyParserMessage

# Bounds that keep one message's cost small whatever its size: attachments are never decoded, a
# text part is cut before charset decoding, and the reply parser sees at most MAX_REPLY_CHARS.
MAX_PART_BYTES = 2_000_000
MAX_FULL_TEXT_CHARS = 500_000
MAX_REPLY_CHARS = 100_000
MAX_HEADER_CHARS = 16_000
MAX_PARTS_VISITED = 500
MAX_REFERENCES = 100

_ADDRESS_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
_STRUCTURED_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_PLAIN_TEXT = re.compile(r"[\t -~]*")
# One mailbox in its plainest form: "Name Words <local@domain>" or "local@domain", atoms only
# (RFC 5322 atext, single spaces, dot-atoms): read the same as the email package's header parser
# reads it (tests/test_parse.py checks), at a fraction of the cost. Anything else takes the parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_ADDR_SPEC = rf"{_DOT_ATOM}@{_DOT_ATOM}"
_PLAIN_MAILBOX = re.compile(
    rf"(?P<bare>{_ADDR_SPEC})|(?P<name>{_ATEXT}(?: {_ATEXT})*) <(?P<addr>{_ADDR_SPEC})>"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_DOMAIN = re.compile(r"^(?:\[[^\[\]\s]+\]|[^\s@<>()\[\],;:\"\\]+)$")
_LOCAL = re.compile(r"^[^\s@<>()\[\],;:\\]+$|^\"[^\"\r\n]+\"$")

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

    Addresses are canonical (see canonical_address). envelope_sender is None without a Return-Path
    and "" for the null sender. in_reply_to holds In-Reply-To then References ids, newest first,
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


def canonical_address(addr: str) -> str:
    """The comparable form of one address: lowercased, without brackets; "" if not an address."""
    if not isinstance(addr, str):
        return ""
    s = addr.strip()
    if "<" in s or ">" in s:
        bracketed = re.search(r"<([^<>]*)>", s)
        s = bracketed.group(1) if bracketed else s.replace("<", "").replace(">", "")
    s = s.strip()
    if s[:7].lower() == "mailto:":
        s = s[7:]
    if not s or len(s) > 320 or _CONTROL.search(s):
        return ""
    local, at, domain = s.rpartition("@")
    if not at or not local or not domain or not _DOMAIN.match(domain) or not _LOCAL.match(local):
        return ""
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return ""
    return s.lower()


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
    msg = BytesParser(policy=_POLICY).parsebytes(data, headersonly=headers_only)
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
        sender_name, sender = display_name, address
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


class _ParsingPolicy(EmailPolicy):
    """``policy.default`` that builds each distinct header value into a header object once.

    Reading a MIME tree asks for the same Content-Type header a dozen times per part (type,
    charset, format, name...), and the email package parses it afresh each time: that, not the
    parsing of the message itself, was most of the cost of reading a message. Header objects are
    immutable, so one parse can serve every request for the same name and value."""

    def header_fetch_parse(self, name: str, value: str) -> BaseHeader:
        if type(value) is not str and hasattr(value, "name"):
            return value  # type: ignore[return-value]
        return _header_object(self.header_factory, name, value)


@functools.lru_cache(maxsize=4096)
def _header_object(factory: HeaderRegistry, name: str, value: str) -> BaseHeader:
    """The header object for a raw value, line breaks removed (as EmailPolicy does)."""
    return factory(name, "".join(_LINESEP.split(value)))


class _HeaderRegistry(HeaderRegistry):
    """The stock registry builds a new class (``type(...)``) for every header; one per name here."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_POLICY = _ParsingPolicy(header_factory=_HeaderRegistry())
_LINESEP = re.compile(r"\n|\r")  # what EmailPolicy.header_fetch_parse removes


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
        text = str(_header_object(_POLICY.header_factory, name, unfolded))
    except Exception:  # a malformed header falls back to its raw text
        text = unfolded
    return _clean_text(text).strip()


def _is_unstructured(name: str) -> bool:
    return issubclass(_POLICY.header_factory[name], UnstructuredHeader)


def _addresses(name: str, value: str | None) -> list[tuple[str, str]]:
    """(display name, canonical address) pairs of an address header; invalid entries dropped."""
    if not value:
        return []
    unfolded = _unfold(value)
    pairs: list[tuple[str, str]] = []
    plain = _PLAIN_MAILBOX.fullmatch(unfolded) if name in _STRUCTURED_ADDRESS_HEADERS else None
    if plain is not None and "=?" not in unfolded:
        # What the header parser reads from such a simple value, without its cost.
        pairs = [(plain.group("name") or "", plain.group("bare") or plain.group("addr"))]
    elif name in _STRUCTURED_ADDRESS_HEADERS:
        try:
            header = _header_object(_POLICY.header_factory, name, unfolded)
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
    unfolded = _clean_text(_unfold(value)).strip()
    bracketed = _MSG_ID.search(unfolded)
    if bracketed:
        return bracketed.group(1)
    token = unfolded.strip("<> \t").split()
    return token[0][:998] if token else None


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
        found = _MSG_ID.findall(_clean_text(_unfold(value)))
        if not found:
            found = [t.strip("<>") for t in _unfold(value).split() if "@" in t]
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
        ctype = _content_type(part)
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


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


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


# --- reply stripping -----------------------------------------------------------------------------

# Languages given to mail-parser-reply. Kept to those whose signature words cannot start an
# ordinary line: Danish "Tak"/"Kh" or Swedish "/\w+" would cut a line such as "Taken ill".
REPLY_LANGUAGES = ("en", "de", "fr", "es", "nl", "it")

_WROTE_VERB = (
    r"(?:wrote|a\s+écrit|schrieb|escribió|escribio|schreef|escreveu|ha\s+scritto|skrev|napsal"
    r"|napisał)"
)
_WROTE_WITH_LEAD = re.compile(
    rf"^(?:on|le|am|el|op|em|il|den|dne|w\s+dniu)\s.{{0,400}}?\b{_WROTE_VERB}\b[^\n]{{0,200}}:$",
    re.IGNORECASE,
)
_WROTE_GENERIC = re.compile(rf"^.{{1,300}}?\b{_WROTE_VERB}\b[^\n]{{0,200}}:$", re.IGNORECASE)
_ORIGINAL_MARKER = re.compile(
    r"^(?:-{2,}\s*(?:original message|ursprüngliche nachricht|message d['’]origine"
    r"|mensaje original|oorspronkelijk bericht|originele bericht|mensagem original"
    r"|messaggio originale|forwarded message|message transféré|weitergeleitete nachricht"
    r"|mensaje reenviado|mensagem encaminhada)\s*-{2,}|begin forwarded message:"
    r"|début du message réexpédié\s*:|_{10,})$",
    re.IGNORECASE,
)
_FROM_KEY = re.compile(r"^[*\s]*(?:from|von|de|van|da|från|fra|od|expéditeur|oddi\s+wrth)[*\s]*:", re.I)
_HEADER_KEY = re.compile(
    r"^[*\s]*(?:sent|date|gesendet|datum|envoyé|enviado|fecha|verzonden|inviato|data|skickat"
    r"|sendt|wysłano|anfonwyd|to|an|à|a|para|aan|till|til|do|at|subject|betreff|objet|asunto"
    r"|onderwerp|oggetto|ämne|emne|temat|assunto|pwnc|cc)[*\s]*:",
    re.IGNORECASE,
)
_SIGNATURE_LINE = re.compile(
    r"^(?:--|sent from my\b.*|sent from (?:outlook|mail for windows|yahoo mail)\b.*"
    r"|sent with proton mail\b.*"
    r"|get outlook for\b.*|envoyé de mon\b.*|envoyé depuis\b.*|von meinem\b.*gesendet.*"
    r"|gesendet von\b.*|enviado desde mi\b.*|enviado do meu\b.*|enviado de meu\b.*"
    r"|verzonden (?:vanaf|met) mijn\b.*|verstuurd vanaf mijn\b.*|inviato da\b.*)$",
    re.IGNORECASE,
)
_SEPARATOR_ONLY = re.compile(r"^[\s*_\-=~#•]*$")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None) | {
    ord("\xa0"): " ",
    ord("\u2007"): " ",
    ord("\u202f"): " ",
    ord("\t"): " ",
}
_MAX_HEADER_LINE = 500
# mail-parser-reply's "On ... wrote:" patterns take time quadratic in a line's length (a 5,000
# character line costs about a second), so it only sees texts within these bounds; longer texts
# keep our own cut, which already removed quotes, reply headers and "-- " signatures.
LIBRARY_MAX_CHARS = 10_000
LIBRARY_MAX_LINE = 1_000


def strip_reply(text: str) -> str:
    """The new text of a reply: quoted mail, reply headers and signatures removed."""
    normalized = _LINE_BREAKS.sub("\n", text[:MAX_REPLY_CHARS]).translate(_INVISIBLE)
    own = _cut_reply(normalized).strip()
    if not own:
        return ""
    from_library = ""
    if len(own) <= LIBRARY_MAX_CHARS and max(map(len, own.split("\n"))) <= LIBRARY_MAX_LINE:
        try:
            from_library = _library_reply(own)
        except Exception:  # the library is heuristic; our own cut is always there
            from_library = ""
    return _tidy(from_library if from_library.strip() else own)


def _library_reply(text: str) -> str:
    header, disclaimers, signature = _library_patterns()
    message = ReplyParserMessage(
        text=text,
        languages=list(REPLY_LANGUAGES),
        keep_hyphen_lists=True,
        _header_regex=header,
        _disclaimers_regex=disclaimers,
        _signature_regex=signature,
    ).read()
    for reply in message.replies:
        body = _cut_reply(reply.body)
        if body.strip():
            return body
    return ""


@functools.cache
def _library_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The library's regular expressions for our languages, built once: it assembles them from
    its language tables for every message otherwise (the patterns are the same every time)."""
    template = ReplyParserMessage(text="", languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True)
    return template.HEADER_REGEX, template.DISCLAIMERS_REGEX, template.SIGNATURE_REGEX


def _cut_reply(text: str) -> str:
    lines = text.split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(">"):
            i += 1
            continue
        if _SIGNATURE_LINE.match(stripped) or _ORIGINAL_MARKER.match(stripped):
            break
        if _starts_header_block(lines, i):
            break
        span = _wrote_header_span(lines, i)
        if span:
            if any(line.strip() for line in kept):
                break
            # Bottom-posting: the sender's words come after the quote; keep reading.
            i += span
            continue
        kept.append(lines[i])
        i += 1
    return "\n".join(kept)


def _starts_header_block(lines: list[str], i: int) -> bool:
    """An Outlook-style "From: ... / Sent: ..." block that introduces the quoted original."""
    if not _FROM_KEY.match(lines[i]):
        return False
    for line in lines[i + 1 : i + 7]:
        if _HEADER_KEY.match(line):
            return True
    return False


def _wrote_header_span(lines: list[str], i: int) -> int:
    """Number of lines of an "On <date>, <name> wrote:" header starting at line i, else 0."""
    if not lines[i].strip() or len(lines[i]) > _MAX_HEADER_LINE:
        return 0
    for span in (1, 2, 3):
        chunk = lines[i : i + span]
        if len(chunk) < span or not chunk[-1].strip() or len(chunk[-1]) > _MAX_HEADER_LINE:
            return 0
        if span > 1 and _starts_later(chunk):
            return 0
        joined = " ".join(line.strip() for line in chunk)
        if _WROTE_WITH_LEAD.match(joined) and re.search(r"[\d@]", joined):
            return span
        if _WROTE_GENERIC.match(joined) and _next_content_is_quoted(lines, i + span):
            return span
    return 0


def _starts_later(chunk: list[str]) -> bool:
    """Whether a header seen across these lines begins after the first: a quoted line ("Yes" then
    Apple Mail's "> On ... wrote:" on the very next line) or a line that opens one on its own
    ("Yes" then "On <date>, <name> wrote:") is never the continuation of a wrapped header."""
    for k in range(1, len(chunk)):
        if chunk[k].lstrip().startswith(">"):
            return True
        rest = " ".join(line.strip() for line in chunk[k:])
        if _WROTE_WITH_LEAD.match(rest) and re.search(r"[\d@]", rest):
            return True
    return False


def _next_content_is_quoted(lines: list[str], start: int) -> bool:
    for line in lines[start : start + 5]:
        if line.strip():
            return line.lstrip().startswith(">")
    return False


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and _SEPARATOR_ONLY.match(lines[-1]):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    tidy: list[str] = []
    for line in lines:
        if not line and tidy and not tidy[-1]:
            continue
        tidy.append(line)
    return "\n".join(tidy)
