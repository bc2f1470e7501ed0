"""Message-IDs: making ours, reading them from headers, and checking one before we write it.

Ids are handled without their angle brackets everywhere except in the header itself.
"""

from __future__ import annotations

import re
import secrets

# What we write into Message-ID, In-Reply-To and References: a dot-atom-ish local part and a plain
# domain (or literal), each at most 200 characters, so that a strange id from a sender costs our
# answer its threading rather than the answer itself.
_USABLE = re.compile(r"^[!#-'*+\-/-9=?A-Z^-~.]{1,200}@[A-Za-z0-9.\-\[\]:]{1,200}$")
_BRACKETED = re.compile(r"<([^<>\s]+)>")
MAX_ID_CHARS = 998  # RFC 5322's line limit: anything longer is not an id we keep


def new_message_id(domain: str) -> str:
    """A fresh Message-ID (no brackets) on ``domain``: random (144 bits, URL-safe base64), so it
    reveals no time, host or process, unlike ``email.utils.make_msgid``."""
    return f"{secrets.token_urlsafe(18)}@{domain}"


def is_usable_message_id(value: str | None) -> bool:
    """True when ``value`` (no brackets) is an id we may write into a header as it is."""
    return bool(value) and _USABLE.match(value or "") is not None


def checked_message_id(value: str) -> str:
    """``value`` without its brackets, or ValueError when it is not a usable id."""
    text = (value or "").strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not is_usable_message_id(text):
        raise ValueError(f"not a usable Message-ID: {value!r}")
    return text


def message_id_in(text: str) -> str | None:
    """The id a Message-ID header's (unfolded) text holds: the first <bracketed> one, else its
    first word; None when empty."""
    bracketed = _BRACKETED.search(text)
    if bracketed:
        return bracketed.group(1)
    token = text.strip("<> \t").split()
    return token[0][:MAX_ID_CHARS] if token else None


def message_ids_in(text: str) -> list[str]:
    """The ids of an In-Reply-To or References header's (unfolded) text, in their order: the
    <bracketed> ones, else the words holding an "@" (clients that drop the brackets)."""
    found = _BRACKETED.findall(text)
    return found or [word.strip("<>") for word in text.split() if "@" in word]
