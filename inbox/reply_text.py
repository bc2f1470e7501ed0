"""The sender's new words in a reply: quoted text, attributions ("On ... wrote:"), forwarded
originals and signatures removed.

Our own cut (``_cut_reply``) always runs; mail-parser-reply refines it when the text is small
enough for its patterns. Like parsing, this is total: any text gives a string.
"""

from __future__ import annotations

import functools
import re

from mailparser_reply import EmailMessage as ReplyParserMessage

from inbox.words import alternatives, any_of

# The reply parser sees at most this many characters of a body.
MAX_REPLY_CHARS = 100_000
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")

# Languages given to mail-parser-reply. Kept to those whose signature words cannot start an
# ordinary line: Danish "Tak"/"Kh" or Swedish "/\w+" would cut a line such as "Taken ill".
REPLY_LANGUAGES = ("en", "de", "fr", "es", "nl", "it")

_WROTE_VERB = alternatives(
    (r"wrote", r"a\s+écrit", r"schrieb", r"escribió", r"escribio", r"schreef", r"escreveu", r"ha\s+scritto")
    + (r"skrev", r"napsal", r"napisał")
)
_WROTE_WITH_LEAD = any_of(
    (r"on", r"le", r"am", r"el", r"op", r"em", r"il", r"den", r"dne", r"w\s+dniu"),
    start="^",
    end=rf"\s.{{0,400}}?\b(?:{_WROTE_VERB})\b[^\n]{{0,200}}:$",
)
_WROTE_GENERIC = re.compile(rf"^.{{1,300}}?\b(?:{_WROTE_VERB})\b[^\n]{{0,200}}:$", re.IGNORECASE)
_ORIGINAL_TITLES = alternatives(
    (
        r"original message",
        r"ursprüngliche nachricht",
        r"message d['’]origine",
        r"mensaje original",
        r"oorspronkelijk bericht",
        r"originele bericht",
        r"mensagem original",
        r"messaggio originale",
        r"forwarded message",
        r"message transféré",
        r"weitergeleitete nachricht",
        r"mensaje reenviado",
        r"mensagem encaminhada",
    )
)
_ORIGINAL_MARKER = any_of(
    (
        rf"-{{2,}}\s*(?:{_ORIGINAL_TITLES})\s*-{{2,}}",
        r"begin forwarded message:",
        r"début du message réexpédié\s*:",
    )
    + (r"_{10,}",),
    start="^",
    end="$",
)
_FIELD = (r"^[*\s]*", r"[*\s]*:")  # a header field's name, maybe in bold, then its colon
_FROM_KEY = any_of(
    (r"from", r"von", r"de", r"van", r"da", r"från", r"fra", r"od", r"expéditeur", r"oddi\s+wrth"),
    start=_FIELD[0],
    end=_FIELD[1],
)
# The other fields of an Outlook-style reply header, in the languages we read.
_HEADER_KEY = any_of(
    (
        "sent|date|gesendet|datum|envoyé|enviado|fecha|verzonden|inviato|data|skickat|sendt|wysłano",
        "anfonwyd|to|an|à|a|para|aan|till|til|do|at|subject|betreff|objet|asunto|onderwerp|oggetto",
        "ämne|emne|temat|assunto|pwnc|cc",
    ),
    start=_FIELD[0],
    end=_FIELD[1],
)
_SIGNATURE_LINE = any_of(
    (
        r"--",
        r"sent from my\b.*",
        r"sent from (?:outlook|mail for windows|yahoo mail)\b.*",
        r"sent with proton mail\b.*",
        r"get outlook for\b.*",
        r"envoyé de mon\b.*",
        r"envoyé depuis\b.*",
        r"von meinem\b.*gesendet.*",
        r"gesendet von\b.*",
        r"enviado desde mi\b.*",
        r"enviado do meu\b.*",
        r"enviado de meu\b.*",
        r"verzonden (?:vanaf|met) mijn\b.*",
        r"verstuurd vanaf mijn\b.*",
        r"inviato da\b.*",
    ),
    start="^",
    end="$",
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
