"""Text that crosses a header: decoded and cleaned where mail is read, one safe line where it is written.

What lets a name or a subject become more than text in a header is refused on both sides: control
characters and line breaks of every kind (CR, LF, NUL, NEL U+0085, U+2028, U+2029...) and RFC 2047
encoded words. The email package decodes encoded words in any header text it parses, and the Python
3.11.7 we run on (CPython CVE-2024-6923) then writes a CR/LF found inside one out raw: a name stored
as "=?utf-8?q?Eve=0D=0ABcc:...?=" would add headers to mail we send. So:

- ``decoded_one_line`` (input: display names, profile fields) decodes encoded words, nested ones too,
  then makes the result ``one_line``;
- ``one_line`` (input and output: names, subjects) turns controls and line breaks into spaces,
  collapses runs of spaces, drops lone surrogates and breaks up any "=?" left ("= ?"), so that no
  stored or written text holds an encoded word.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Sequence

from mailkit.policy import PARSING

# Unicode Cc (C0, DEL, C1 with NEL) and the line and paragraph separators; lone surrogates
# (undecodable bytes kept by surrogateescape).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
# An encoded word may decode to another one; a few rounds read any honest text.
MAX_DECODING_ROUNDS = 4

# RFC 2047 section 5 (3): what an encoded word in a phrase may show as itself ("_" is a space).
_Q_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# An encoded word fits on a line after the longest header name we write ("Reply-To: "), well inside
# RFC 2047's 75 characters.
_MAX_ENCODED_WORD = 62
MAX_LINE = 78


def one_line(text: str) -> str:
    """``text`` as one line fit for a header: controls and line breaks made spaces, runs of spaces
    collapsed, no "=?" (an encoded word's opening)."""
    return _spaced(text).replace("=?", "= ?")


def decoded_one_line(text: str) -> str:
    """Header or profile text as received, its RFC 2047 encoded words decoded, as ``one_line``."""
    line = _spaced(text)
    for _ in range(MAX_DECODING_ROUNDS):
        if "=?" not in line:
            break
        try:
            decoded = _spaced(str(PARSING.header_factory("x-unmentoring-text", line)))
        except Exception:  # a malformed header: keep the text as it is (made safe below)
            break
        if decoded == line:
            break
        line = decoded
    return one_line(line)


def _spaced(text: str) -> str:
    return " ".join(_CONTROLS.sub(" ", text or "").split())


# -- writing headers ourselves ---------------------------------------------------------------------


def unstructured_header_text(header: str, text: str) -> str:
    """The value of an unstructured header (Subject) for ``one_line`` text, written and folded by us.

    The email package's folder cannot be trusted with non-ASCII text either: on the Python we run it
    may break an encoded word inside a character ("=?utf-8?q?=F0=90=80=8" / "0?="), and it can drop
    the space between two words where it folds. Plain ASCII text is folded at its spaces; any other
    text is written as encoded words, folded between them."""
    plain = text.isascii() and text.isprintable() and "=?" not in text
    return folded(header, text.split(" ") if plain else list(encoded_words(text)))


def folded(header: str, tokens: Sequence[str]) -> str:
    """``tokens`` joined by spaces into a header value whose lines (after "Header: ") stay within
    MAX_LINE where each token allows, broken only between tokens."""
    prefix = f"{header}: "
    lines = [prefix]
    for token in tokens:
        if lines[-1] in (prefix, " "):
            lines[-1] += token
        elif len(lines[-1]) + 1 + len(token) > MAX_LINE:
            lines.append(" " + token)
        else:
            lines[-1] += " " + token
    return "\r\n".join(lines)[len(prefix) :]


@functools.lru_cache(maxsize=4096)
def encoded_words(text: str) -> tuple[str, ...]:
    """``text`` as RFC 2047 encoded words (UTF-8, "Q" or "B", whichever is shorter), broken after a
    space where it can be.

    A reader following RFC 2047 joins adjacent encoded words without the space between them, so a
    space of the name goes inside the word it ends. (Python 3.11's reader keeps the space between
    the words as well: it shows one space more at each break, which our read-back check allows for.)
    """
    chunks = [""]
    for word in re.findall(r"[^ ]+ ?| ", text):
        if chunks[-1] and len(_encoded_word(chunks[-1] + word)) > _MAX_ENCODED_WORD:
            chunks.append("")
        for char in word:  # a word longer than one encoded word is broken between its characters
            if chunks[-1] and len(_encoded_word(chunks[-1] + char)) > _MAX_ENCODED_WORD:
                chunks.append("")
            chunks[-1] += char
    return tuple(_encoded_word(chunk) for chunk in chunks)


def _encoded_word(text: str) -> str:
    data = text.encode("utf-8")
    q = "".join("_" if byte == 32 else chr(byte) if byte in _Q_PLAIN else f"={byte:02X}" for byte in data)
    b = base64.b64encode(data).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="
