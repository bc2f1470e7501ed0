"""Email addresses: their canonical form, which of them are ours, and display names.

An address is compared in its canonical form (``canonical_address``). "Ours" is the programme's
address or a plus-address of it, ``local+tag@domain``: ``plus_address`` makes one, ``plus_tag``
says which tag, so that addresses with a meaning in their tag are made and read in one place: a
confirmation token (``local+TOKEN@domain``, a Reply-To) and a per-recipient return path
(``local+bounce-TOKEN@domain``, the envelope sender: VERP, see ``return_path``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from email.headerregistry import Address

from mailkit.header_text import encoded_words, folded

# RFC 5322 grammar pieces, in their plainest (unquoted, single-spaced) form: what a fast path may
# read or write without the email package's parser, because the parser reads them as themselves
# (tests/test_mailkit_addresses.py checks).
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
DOT_ATOM = re.compile(rf"{ATEXT}(?:\.{ATEXT})*")
PHRASE = re.compile(rf"{ATEXT}(?: {ATEXT})*")
ADDR_SPEC = re.compile(rf"{DOT_ATOM.pattern}@{DOT_ATOM.pattern}")
# One mailbox: "Name Words <local@domain>" or "local@domain".
PLAIN_MAILBOX = re.compile(
    rf"(?P<bare>{ADDR_SPEC.pattern})|(?P<name>{PHRASE.pattern}) <(?P<addr>{ADDR_SPEC.pattern})>"
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOMAIN = re.compile(r"^(?:\[[^\[\]\s]+\]|[^\s@<>()\[\],;:\"\\]+)$")
_LOCAL = re.compile(r"^[^\s@<>()\[\],;:\\]+$|^\"[^\"\r\n]+\"$")
_BRACKETED = re.compile(r"<([^<>]*)>")
MAX_ADDRESS_CHARS = 320


def canonical_address(addr: str) -> str:
    """The comparable form of one address: lowercased, without brackets; "" if not an address."""
    if not isinstance(addr, str):
        return ""
    s = addr.strip()
    if "<" in s or ">" in s:
        bracketed = _BRACKETED.search(s)
        s = bracketed.group(1) if bracketed else s.replace("<", "").replace(">", "")
    s = s.strip()
    if s[:7].lower() == "mailto:":
        s = s[7:]
    if not s or len(s) > MAX_ADDRESS_CHARS or _CONTROL.search(s):
        return ""
    local, at, domain = s.rpartition("@")
    if not at or not local or not domain or not _DOMAIN.match(domain) or not _LOCAL.match(local):
        return ""
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return ""
    return s.lower()


def plus_tag(address: str, own_address: str) -> str | None:
    """The tag of ``address`` as a plus-address of ``own_address`` ("" for the address itself),
    or None when it is neither. Compared in lower case, as people type addresses in any case."""
    candidate = address.strip().strip("<>").lower()
    own = own_address.strip().lower()
    if candidate == own:
        return ""
    local, at, domain = candidate.rpartition("@")
    own_local, _, own_domain = own.rpartition("@")
    if at and domain == own_domain and local.startswith(own_local + "+"):
        return local[len(own_local) + 1 :]
    return None


def plus_address(own_address: str, tag: str) -> str:
    """``local+tag@domain`` of ``own_address``: mail to it reaches our mailbox, tag and all."""
    local, _, domain = own_address.strip().rpartition("@")
    return f"{local}+{tag}@{domain}"


RETURN_PATH_TAG = "bounce-"


def return_path(own_address: str, token: str) -> str:
    """The envelope sender of one message to one recipient (VERP): a bounce sent back to it names
    the message and the recipient by ``token``, whatever the report's wording says."""
    return plus_address(own_address, RETURN_PATH_TAG + token)


def return_path_token(address: str, own_address: str) -> str | None:
    """The token of a ``return_path`` of ``own_address``, else None (lower case, as compared)."""
    tag = plus_tag(address, own_address)
    if not tag or not tag.startswith(RETURN_PATH_TAG):
        return None
    return tag[len(RETURN_PATH_TAG) :] or None


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, for counting: canonical, without a plus tag, so that
    a+1@x and a+2@x count as a@x. "" when not an address."""
    canonical = canonical_address(address)
    local, _, domain = canonical.rpartition("@")
    if not canonical or local.startswith('"'):
        return canonical
    return f"{local.split('+', 1)[0] or local}@{domain}"


def is_own_address(address: str, own_addresses: str | Collection[str]) -> bool:
    """``address`` is one of ``own_addresses`` or a plus-address of one of them."""
    owns = (own_addresses,) if isinstance(own_addresses, str) else own_addresses
    return any(plus_tag(address, own) is not None for own in owns)


def has_control_characters(text: str) -> bool:
    """True if the text holds a character that must never reach a header (CR, LF, NUL...)."""
    return _CONTROL.search(text) is not None


@functools.lru_cache(maxsize=4096)
def mailbox(display_name: str, addr_spec: str) -> Address:
    """The ``Address`` to write as "Name <addr>": the email package quotes and encodes the name,
    so no name can inject a header. ``Address`` objects are immutable, so each is made once; a
    plain local@domain (dot-atoms, as nearly every address is) is split rather than parsed: the
    parser reads it as exactly those two parts. Raises what ``Address`` raises for a bad address."""
    if ADDR_SPEC.fullmatch(addr_spec):
        username, _, domain = addr_spec.rpartition("@")
        return Address(display_name=display_name, username=username, domain=domain)
    return Address(display_name=display_name, addr_spec=addr_spec)


def plain_mailbox(text: str) -> tuple[str, str] | None:
    """(display name, addr-spec) of a header value holding one plain mailbox, else None: what the
    email package's header parser reads from such a value, without its cost."""
    match = PLAIN_MAILBOX.fullmatch(text)
    if match is None or "=?" in text:
        return None
    return match.group("name") or "", match.group("bare") or match.group("addr")


# -- writing address headers ---------------------------------------------------------------------


def address_header_text(header: str, addresses: Sequence[Address]) -> str:
    """The value of an address header (From, To, Reply-To), written and folded by us.

    The email package's folder cannot be trusted with names: on the Python we run (CPython
    gh-80222) a long quoted name holding "," and "<addr>" loses its quotes when folded and becomes
    extra recipients. Here a name that is not plain words (atoms of ASCII letters, digits and
    ``!#$%&'*+/=?^_`{|}~-``) is written as RFC 2047 encoded words, which need no quotes: "," "<"
    '"' and any letter stay inside a word, and the reader joins adjacent words into one name. Lines
    break only between words, so folding never changes what the header says. Names reaching here are
    one line (``header_text.one_line``): no line breaks or controls.
    """
    tokens: list[str] = []
    for number, address in enumerate(addresses):
        if number:
            tokens[-1] += ","
        tokens.extend(_mailbox_tokens(address))
    return folded(header, tokens)


def _mailbox_tokens(address: Address) -> list[str]:
    name, addr_spec = address.display_name, address.addr_spec
    if not name:
        return [addr_spec]
    plain = PHRASE.fullmatch(name) and "=?" not in name  # an atom may hold "=?": no words read as encoded
    words = name.split(" ") if plain else list(encoded_words(name))
    return [*words, f"<{addr_spec}>"]
