"""A plain-text report in no format we know (small MTAs, appliances, webmail
providers, other languages). Every such report names the failed address in its own words before
its copy of the original, so: the addresses in the report text (base.Mail.report_text), without
the mail system's own and the ones the bounce is addressed to, preferring those on a line that
reads as a failure. Asked only for a message that came from the mail system, not for one that
merely has a bounce-like subject (a person may write "Undeliverable parcel")."""

from __future__ import annotations

from inbox.bounces.base import (
    Finding,
    Mail,
    addresses_in,
    canonical_all,
    expired_after_temporary_failures,
    without_addresses,
)
from inbox.bounces.signals import MACHINE_SIGNALS
from inbox.words import any_of

_SYSTEM_LOCAL = any_of(
    (
        r"mailer-?daemon",
        r"mail-?daemon",
        r"postmaster",
        r"hostmaster",
        r"abuse",
        r"root",
        r"no-?reply",
        r"do-?not-?reply",
        r"bounces?",
        r"bounce-[^@]*",
        r"double-bounce",
        r"help",
        r"support",
        r"helpdesk",
        r"security",
        r"admin",
        r"webmaster",
    ),
    start=r"^",
    end=r"$",
)
# The original sender, the report's own addresses, message ids: never the failed recipient.
_NOT_A_RECIPIENT_LINE = any_of(
    (
        r"from",
        r"sender",
        r"reply-to",
        r"return-path",
        r"mail from",
        r"envelope-from",
        r"sent by",
        r"message-id",
        r"in-reply-to",
        r"references",
        r"original-envelope-id",
    ),
    start=r"^\W*",
    end=r"\b",
)
# A help line's address follows its phrase ("For more information, contact postmaster@...");
# what comes before it on the line ("Your message to ann@... was blocked.") is still the report's.
_HELP = any_of(
    (
        r"contact",
        r"please (?:visit|write|email)",
        r"for (?:more )?(?:help|assistance|information)",
    ),
    start=r"\b",
    end=r"\b",
)
_FAILURE_LINE = any_of(
    (
        r"\b[45]\d\d\b",
        r"\b[45]\.\d{1,3}\.\d{1,3}\b",
        r"unknown",
        r"not found",
        r"no such",
        r"does ?n[o']t exist",
        r"not exist",
        r"rejected",
        r"refused",
        r"failed",
        r"failure",
        r"full",
        r"quota",
        r"invalid",
        r"disabled",
        r"inactive",
        r"unavailable",
        r"suspended",
        r"could ?n[o']t",
        r"can ?n[o']t",
        r"cannot",
        r"unable",
        r"undeliverable",
        r"not delivered",
        r"error",
        r"did not like",
        r"does not like",
        r"deliver",
        r"recipient",
        r"destinataire",
        r"empfänger",
        r"destinatario",
        r"получател",
        r"宛先",
        r"^\W*<[^<>\s]+>\W*$",
        r"^\W*\"?[^\s\"]+@[^\s\"]+\"?\s*:?\s*$",
    ),
)
_PERMANENT = any_of(
    (
        r"(?<![\w.@-])5\d\d\b",
        r"(?<![\w.@-])5\.\d{1,3}\.\d{1,3}",
        r"permanent",
        r"fatal",
        r"given up",
        r"giving up",
        r"not be delivered",
        r"no mailbox",
        r"user unknown",
        r"unknown user",
        r"does not exist",
        r"doesn't exist",
        r"no such user",
    ),
)
_TEMPORARY = any_of(
    (
        r"(?<![\w.@-])4\d\d\b",
        r"(?<![\w.@-])4\.\d{1,3}\.\d{1,3}",
        r"temporar",
        r"try again later",
    ),
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
