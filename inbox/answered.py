"""Which emails of ours a message answers, and to whom each went: the one lookup behind "which
group does this reply name" (inbox/apply.py) and "does this reply prove its sender's mailbox"
(inbox/commands/request.py).

A reply names what it answers by In-Reply-To and References; the outbox keeps every email's
Message-ID with its recipients (mailer/outbox.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from inbox.parse import ParsedMessage
from mailkit.addresses import canonical_address
from matcher.model import OutboxEntry
from matcher.store import Store

# How far back a reply's References are followed: enough for any honest thread, and a bound on
# the lookups a hostile header can cause.
MAX_REFERENCES = 10


def answered_emails(store: Store, parsed: ParsedMessage) -> Iterator[OutboxEntry]:
    """Our emails that ``parsed`` answers, the one it replies to directly first."""
    for message_id in parsed.in_reply_to[:MAX_REFERENCES]:
        entry = store.find_one(OutboxEntry, "message_id", message_id)
        if entry is not None:
            yield entry


def sent_only_to(entry: OutboxEntry, address: str) -> bool:
    """The email went to ``address`` and to nobody else: reading it proves that mailbox."""
    recipients = {canonical_address(r) for r in entry.recipients}
    return recipients == {canonical_address(address)}
