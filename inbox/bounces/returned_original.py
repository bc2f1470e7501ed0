"""A report that names the failed mailbox without its domain ("undeliverable to the following:
ann.lee (user not found)", GroupWise, some gateways) and returns the original message: the
original's recipient with that local part is the failed one. A report naming nobody (or a masked
"******@**") pins the failure on no one, even if the original had a single recipient: an alias
may have failed behind it."""

from __future__ import annotations

import email
import re
from email.message import Message
from email.utils import getaddresses

from inbox.bounces.base import Finding, Mail, canonical_all, decode_part
from inbox.bounces.signals import MACHINE_SIGNALS
from inbox.bounces.text import finding_from_wording

_FAILURE = re.compile(
    r"undeliver|not (?:be )?delivered|could not|couldn't|cannot|unable|failed|failure|rejected"
    r"|does not exist|not found|unknown|no such|[45]\.\d{1,3}\.\d{1,3}",
    re.IGNORECASE,
)


def detect(mail: Mail) -> Finding | None:
    if not set(mail.signals) & MACHINE_SIGNALS or not _FAILURE.search(mail.report_text):
        return None
    copy = _returned_headers(mail)
    if copy is None:
        return None
    recipients = canonical_all(
        address for _, address in getaddresses(_values(copy, "to") + _values(copy, "cc"))
    )
    named = frozenset(a for a in recipients if _names_local_part(mail.report_text, a.rpartition("@")[0]))
    return finding_from_wording(named, mail.report_text) if named else None


def _names_local_part(text: str, local: str) -> bool:
    return bool(re.search(rf"(?<![\w.+-]){re.escape(local)}(?![\w+-]|\.\w)", text, re.IGNORECASE))


def _returned_headers(mail: Mail) -> Message | None:
    """The headers of the first returned copy: a message/rfc822 part or text/rfc822-headers."""
    for part in mail.parts():
        try:
            ctype = part.get_content_type()
            if ctype == "message/rfc822":
                payload = part.get_payload()
                return payload[0] if isinstance(payload, list) and payload else None
            if ctype == "text/rfc822-headers":
                return email.message_from_string(decode_part(part))
        except Exception:  # a malformed copy names nobody
            return None
    return None


def _values(message: Message, name: str) -> list[str]:
    try:
        return [str(value) for value in message.get_all(name, [])]
    except Exception:
        return []
