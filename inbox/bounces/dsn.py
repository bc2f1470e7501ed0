"""RFC 3464 delivery status notifications: a message/delivery-status part with one block per
recipient, whose Action ("failed" / "delayed") and Status (5.x.x / 4.x.x) say what happened.
Postfix, Sendmail, Exim (with DSN), Exchange, Office 365, Gmail, Amazon SES and most providers."""

from __future__ import annotations

import email
import re
from email.message import Message

from inbox.bounces.base import Finding, Mail, decode_part
from mailkit.addresses import canonical_address


def detect(mail: Mail) -> Finding | None:
    failed: set[str] = set()
    delayed: set[str] = set()
    blocks_read = 0
    for part in mail.parts():
        try:
            if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
                continue
        except Exception:
            continue
        for block in _status_blocks(part):
            action = str(block.get("action") or "").strip().lower()
            status = str(block.get("status") or "").strip()
            recipient = _recipient(block)
            if not recipient:
                continue
            blocks_read += 1
            if action.startswith(("failed", "error")) or (not action and status.startswith("5")):
                failed.add(recipient)
            elif action.startswith("delayed") or (not action and status.startswith("4")):
                delayed.add(recipient)
    if not blocks_read:
        return None  # no per-recipient block we could read: let the text detectors try
    return Finding(frozenset(failed), frozenset(delayed - failed), permanence_known=True)


def _status_blocks(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
        if isinstance(payload, list):
            return [p for p in payload if isinstance(p, Message)]
        # A delivery-status body the parser left as text (e.g. base64-encoded): read it ourselves.
        text = decode_part(part)
        return [email.message_from_string(chunk) for chunk in re.split(r"\n\s*\n", text)]
    except Exception:
        return []


def _recipient(block: Message) -> str:
    # Original-Recipient is the address we sent to; Final-Recipient may be an internal alias.
    for name in ("original-recipient", "final-recipient", "x-actual-recipient"):
        try:
            value = str(block.get(name) or "")
        except Exception:
            continue
        address = canonical_address(value.split(";", 1)[-1])
        if address:
            return address
    return ""
