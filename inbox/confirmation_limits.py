"""How many confirmation emails may go out: one of each kind per mailbox a day, and a cap per hour
for the whole programme.

Anyone can ask us to confirm something on someone else's behalf (a forged "join" or "leave"), so
without a limit we would mail whoever the forger names, as often as they like. A mailbox is counted
without its plus tag (``mailkit.addresses.mailbox_key``): a+1@x and a+2@x are both a@x. The counts
live in the store's meta as hashes (no addresses), and only the current day's and hour's.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from mailkit.addresses import mailbox_key
from matcher.model import Notice

META_KEY = "inbox_confirmations_sent"
PER_MAILBOX_PER_DAY = 1


def allow(counts: MutableMapping[str, Any], notice: Notice, now: datetime, per_hour: int) -> bool:
    """Whether ``notice`` (a confirmation) may go; if so it is counted in ``counts`` (the meta
    value, updated in place: a new day or hour starts from zero)."""
    moment = now.astimezone(UTC)
    day, hour = moment.date().isoformat(), moment.strftime("%Y-%m-%dT%H")
    if counts.get("day") != day:
        counts.update(day=day, mailboxes={})
    if counts.get("hour") != hour:
        counts.update(hour=hour, sent=0)
    mailbox = mailbox_key(notice.to[0]) if notice.to else ""
    key = hashlib.sha256(f"{notice.kind}\0{mailbox}".encode()).hexdigest()[:16]
    mailboxes: dict[str, int] = counts["mailboxes"]
    if counts["sent"] >= per_hour or mailboxes.get(key, 0) >= PER_MAILBOX_PER_DAY:
        return False
    mailboxes[key] = mailboxes.get(key, 0) + 1
    counts["sent"] += 1
    return True
