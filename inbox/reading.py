"""What a message is, from its bytes alone (no store): parsed and keyed. Pure, so any process can do it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from inbox.classify import Classification
from inbox.parse import ParsedMessage, message_key, parse_message

# Headers end well before this in any real message; a huge message is only read this far.
HEADER_SCAN_BYTES = 256 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Reading:
    """What a message is, from its bytes alone (no store): parsed, keyed and, when worked out
    ahead (see ReadAhead), classified. Pure, so any process can work it out."""

    parsed: ParsedMessage
    key: str
    too_large: bool
    # None: left to the processor. From another process it comes without its command (a
    # Command does not pickle); the processor reads that again from the parsed text.
    classification: Classification | None = None


def read_message(raw: bytes, max_message_bytes: int) -> Reading:
    """Parse and key a message (a huge one by its headers only)."""
    too_large = len(raw) > max_message_bytes
    parsed = parse_message(header_block(raw) if too_large else raw)
    return Reading(parsed, message_key(raw, parsed), too_large)


def header_block(raw: bytes) -> bytes:
    """The header section of a message (without reading past HEADER_SCAN_BYTES)."""
    head = raw[:HEADER_SCAN_BYTES]
    end = _HEADER_END.search(head)
    return head[: end.end()] if end else head
