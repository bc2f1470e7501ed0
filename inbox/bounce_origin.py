"""Whose failure a bounce report may count: only that of a recipient of our own mail, shown by the
report itself.

Anyone can write "alice@example.org does not exist" to the programme address, so what a report
says is never enough. A report counts for an address only when:

- it came back to a return path we issued (VERP: every email with one recipient is sent with its
  own envelope sender, ``local+bounce-TOKEN@domain``, see mailer/outbox.py): the outbox entry
  holding that token names the recipient, whatever the report's wording. The return path is read
  where the report arrived (Delivered-To, X-Original-To, To: LMTP, the sandbox and IMAP servers
  write it) or where the report quotes the returned email's Return-Path;
- or, for the servers that send reports to the From address instead of the envelope sender, it
  quotes the Message-ID of an email we sent to that address alone, and names that address.

Both secrets reach only the recipient's mail system, so a forger would have to read their mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from inbox.parse import ParsedMessage
from inbox.questions import sent_only_to
from inbox.settings import InboxSettings
from mailkit.addresses import canonical_address, return_path, return_path_token
from matcher.model import OutboxEntry
from matcher.store import Store
from matcher.tokens import looks_like_token

# A returned email's headers come early in its report; the rest (attachments) is never read.
MAX_SCANNED_BYTES = 1_000_000
MAX_LOOKUPS = 20


def counted_addresses(
    store: Store, settings: InboxSettings, parsed: ParsedMessage, raw: bytes, reported: Sequence[str]
) -> list[str]:
    """The canonical addresses whose failure this bounce report shows it may count (see above);
    ``reported``: the addresses the report's wording names."""
    counted: list[str] = []
    for token in _return_tokens(settings, parsed, raw):
        entry = store.find_one(OutboxEntry, "return_token", token)
        if entry is not None:
            counted += [a for a in (canonical_address(r) for r in entry.recipients) if a]
    named = {canonical_address(a) for a in reported}
    for message_id in _our_message_ids(settings, raw):
        entry = store.find_one(OutboxEntry, "message_id", message_id)
        if entry is not None:
            counted += [address for address in named if address and sent_only_to(entry, address)]
    return list(dict.fromkeys(counted))


def _return_tokens(settings: InboxSettings, parsed: ParsedMessage, raw: bytes) -> Iterator[str]:
    seen: set[str] = set()
    arrived = (return_path_token(a, settings.address) for a in parsed.to)
    quoted = (m.group(1).lower() for m in _return_path_pattern(settings.address).finditer(_scanned(raw)))
    for token in (*arrived, *quoted):
        if token and looks_like_token(token) and token not in seen and len(seen) < MAX_LOOKUPS:
            seen.add(token)
            yield token


def _our_message_ids(settings: InboxSettings, raw: bytes) -> list[str]:
    pattern = re.compile(rf"<([A-Za-z0-9_\-]{{1,64}}@{re.escape(settings.domain)})>", re.IGNORECASE)
    found = dict.fromkeys(m.group(1) for m in pattern.finditer(_scanned(raw)))
    return list(found)[:MAX_LOOKUPS]


def _return_path_pattern(own_address: str) -> re.Pattern[str]:
    local, _, domain = return_path(own_address, "\0").partition("\0")
    return re.compile(rf"(?<![\w.+-]){re.escape(local)}([a-z2-7]{{32}}){re.escape(domain)}", re.IGNORECASE)


def _scanned(raw: bytes) -> str:
    return raw[:MAX_SCANNED_BYTES].decode("latin-1")
