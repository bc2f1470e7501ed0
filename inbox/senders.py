"""Whether a message's sender may be answered at all: the one place that knows machine senders and
our own addresses. Classification asks it before reading a command (inbox/classify.py); applying a
message asks it again before any answer is built (inbox/apply.py), because a message classified in
another process or by an older version must not be answered on that word alone.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from inbox.parse import ParsedMessage
from mailkit.addresses import is_own_address

# Local parts of mailboxes that machines send from; "-anything" / "+tag" / ".x" suffixes included.
_MACHINE_LOCAL = re.compile(
    r"^(?:mailer-?daemon|mail-?daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply)"
    r"(?:[-+_.].*)?$",
    re.IGNORECASE,
)


def reason_not_to_answer(parsed: ParsedMessage, own_addresses: Collection[str]) -> str:
    """Why this message must not be answered ("" when it may be): no usable sender, a machine
    sender (From or Return-Path), our own address or a plus-address of it, or Auto-Submitted."""
    for role, address in (("From", parsed.sender), ("Return-Path", parsed.envelope_sender or "")):
        local = address.rpartition("@")[0]
        if local and _MACHINE_LOCAL.match(local):
            return f"{role} is a no-reply address ({local})"
    if not parsed.sender:
        return "no usable From address to answer"
    if is_own_address(parsed.sender, own_addresses):
        return "From is our own address"
    auto = auto_submitted(parsed)
    if auto:
        return f"Auto-Submitted: {auto}"
    return ""


def auto_submitted(parsed: ParsedMessage) -> str:
    """The Auto-Submitted value of a machine-sent message (RFC 3834); "" for "no" or none."""
    value = parsed.headers.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    return "" if value == "no" else value
