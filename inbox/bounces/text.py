"""A plain-text report in no format we know (small MTAs, appliances, webmail
providers, other languages). Every such report names the failed address in its own words before
its copy of the original, so: the addresses in the report text (base.Mail.report_text), without
the mail system's own and the ones the bounce is addressed to, preferring those on a line that
reads as a failure. Asked only for a message that came from the mail system, not for one that
merely has a bounce-like subject (a person may write "Undeliverable parcel")."""

from __future__ import annotations

import re

from inbox.bounces.base import (
    Finding,
    Mail,
    addresses_in,
    canonical_all,
    expired_after_temporary_failures,
    without_addresses,
)
from inbox.bounces.signals import MACHINE_SIGNALS

_SYSTEM_LOCAL = re.compile(
    r"^(?:mailer-?daemon|mail-?daemon|postmaster|hostmaster|abuse|root|no-?reply|do-?not-?reply"
    r"|bounces?|bounce-[^@]*|double-bounce|help|support|helpdesk|security|admin|webmaster)$",
    re.IGNORECASE,
)
# The original sender, the report's own addresses, message ids: never the failed recipient.
_NOT_A_RECIPIENT_LINE = re.compile(
    r"^\W*(?:from|sender|reply-to|return-path|mail from|envelope-from|sent by"
    r"|message-id|in-reply-to|references|original-envelope-id)\b",
    re.IGNORECASE,
)
# A help line's address follows its phrase ("For more information, contact postmaster@...");
# what comes before it on the line ("Your message to ann@... was blocked.") is still the report's.
_HELP = re.compile(
    r"\b(?:contact|please (?:visit|write|email)|for (?:more )?(?:help|assistance|information))\b",
    re.IGNORECASE,
)
_FAILURE_LINE = re.compile(
    r"\b[45]\d\d\b|\b[45]\.\d{1,3}\.\d{1,3}\b|unknown|not found|no such|does ?n[o']t exist|not exist"
    r"|rejected|refused|failed|failure|full|quota|invalid|disabled|inactive|unavailable|suspended"
    r"|could ?n[o']t|can ?n[o']t|cannot|unable|undeliverable|not delivered|error|did not like"
    r"|does not like|deliver|recipient|destinataire|empfänger|destinatario|получател|宛先"
    r"|^\W*<[^<>\s]+>\W*$|^\W*\"?[^\s\"]+@[^\s\"]+\"?\s*:?\s*$",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"(?<![\w.@-])5\d\d\b|(?<![\w.@-])5\.\d{1,3}\.\d{1,3}|permanent|fatal|given up|giving up|not be delivered"
    r"|no mailbox|user unknown|unknown user|does not exist|doesn't exist|no such user",
    re.IGNORECASE,
)
_TEMPORARY = re.compile(
    r"(?<![\w.@-])4\d\d\b|(?<![\w.@-])4\.\d{1,3}\.\d{1,3}|temporar|try again later", re.IGNORECASE
)


def detect(mail: Mail) -> Finding | None:
    if not set(mail.signals) & MACHINE_SIGNALS:
        return None
    text = mail.report_text
    excluded = _bounce_own_addresses(mail)
    strong: dict[str, None] = {}
    weak: dict[str, None] = {}
    for line in text.split("\n"):
        if "@" not in line or _NOT_A_RECIPIENT_LINE.search(line):
            continue
        for address in addresses_in(_HELP.split(line, 1)[0]):
            if address in excluded or _SYSTEM_LOCAL.match(address.rpartition("@")[0]):
                continue
            (strong if _FAILURE_LINE.search(line) else weak).setdefault(address, None)
    found = frozenset(strong or weak)
    if not found:
        return None
    return finding_from_wording(found, text)


def finding_from_wording(found: frozenset[str], text: str) -> Finding:
    """Permanent unless the report reads as temporary only, or as given up after retrying."""
    words = without_addresses(text)
    if (_TEMPORARY.search(words) and not _PERMANENT.search(words)) or expired_after_temporary_failures(text):
        return Finding(temporary=found)
    return Finding(permanent=found)


def _bounce_own_addresses(mail: Mail) -> frozenset[str]:
    """Whom the report is from and to: the mail system and the original sender."""
    headers = mail.parsed.headers
    values = [mail.parsed.sender, mail.parsed.envelope_sender or "", *mail.parsed.to]
    for name in ("from", "to", "cc", "reply-to", "return-path", "sender"):
        values.extend(addresses_in(headers.get(name, "")))
    return canonical_all(values)
