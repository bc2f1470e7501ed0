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

import re

from mailkit.policy import PARSING

# Unicode Cc (C0, DEL, C1 with NEL) and the line and paragraph separators; lone surrogates
# (undecodable bytes kept by surrogateescape).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
# An encoded word may decode to another one; a few rounds read any honest text.
MAX_DECODING_ROUNDS = 4


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
