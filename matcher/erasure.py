"""Erasure beyond the member record: every trace of an address in the store, then (with the service) in the
files we keep.

``forget`` runs with the member's erasure (matcher.members.erase), in its transaction: outbox records
addressed to the person keep a digest of the address instead of the address, mail still queued for them is
cancelled (its message file goes), error texts lose the address, and the digest goes on a pending list with
the time of the erasure. The farewell ("forgotten") is queued afterwards and needs the address until it is
sent. Once it is (``ready``), the service (unmentoring/service.py) deletes the kept mail that names the
address, which that record still gives, then ``finish`` scrubs the record, takes the digest off the list
and asks for the database backups, all taken before, to be replaced. Until ``finish`` commits nothing is
lost, so a crash anywhere is finished by the next pass.

The window is bounded: past ``ERASURE_WINDOW`` mail still queued for the address is cancelled too, so a
farewell that cannot be delivered does not keep the address (nor the backups holding it) any longer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from matcher.model import OutboxEntry, OutboxStatus, ProcessedMessage
from matcher.store import Store

PENDING_META = "erasures_pending"  # digest -> ISO time of the erasure, until every trace is gone
ROTATE_BACKUPS_META = "erasure_rotate_backups"  # set until the backups taken before an erasure are replaced
ERASURE_WINDOW = timedelta(hours=24)
CANCELLED = "cancelled: the recipient asked to be forgotten"


@dataclass(frozen=True)
class Erasure:
    digest: str
    address: str  # from the records that still name it; "" when none does


def address_digest(address: str) -> str:
    """What records keep in place of an erased address: enough to count, nothing to read back."""
    return "erased-sha256:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def forget(store: Store, address: str, now: datetime) -> None:
    """Scrub ``address`` from outbox and processed-message records, cancel mail still queued for it, and
    put its digest on the pending list (call inside the transaction that erases the member)."""
    digest = address_digest(address)
    _scrub(store, digest, address.strip().lower(), cancel_queued=True)
    pending = dict(store.get_meta(PENDING_META) or {})
    pending.setdefault(digest, now.isoformat())
    store.set_meta(PENDING_META, pending)


def pending(store: Store) -> dict[str, datetime]:
    return {d: datetime.fromisoformat(at) for d, at in (store.get_meta(PENDING_META) or {}).items()}


def ready(store: Store, now: datetime) -> list[Erasure]:
    """The pending erasures with no mail still queued for the address (or past ``ERASURE_WINDOW``), and the
    address as the outbox records still give it. Changes nothing."""
    waiting = pending(store)
    if not waiting:
        return []
    queued: set[str] = set()
    addresses: dict[str, str] = {}
    for entry in store.all(OutboxEntry):
        for recipient in entry.recipients:
            digest = address_digest(recipient)
            if digest in waiting:
                addresses[digest] = recipient.strip().lower()
                if entry.status is OutboxStatus.QUEUED:
                    queued.add(digest)
    return [
        Erasure(digest, addresses.get(digest, ""))
        for digest, at in waiting.items()
        if digest not in queued or now - at >= ERASURE_WINDOW
    ]


def finish(store: Store, erasures: list[Erasure]) -> None:
    """Scrub the last records (cancelling what is still queued), take the erasures off the pending list and
    mark the backups stale (call inside a transaction, once the kept mail is deleted)."""
    for erasure in erasures:
        _scrub(store, erasure.digest, erasure.address, cancel_queued=True)
    done = {e.digest for e in erasures}
    remaining = {d: at for d, at in (store.get_meta(PENDING_META) or {}).items() if d not in done}
    store.set_meta(PENDING_META, remaining)
    store.set_meta(ROTATE_BACKUPS_META, True)


def _scrub(store: Store, digest: str, address: str, *, cancel_queued: bool) -> None:
    """Put ``digest`` in place of the address in outbox and processed records (texts need ``address``)."""
    changed = []
    for entry in store.all(OutboxEntry):
        hit = [address_digest(r) == digest for r in entry.recipients]
        in_text = bool(address) and address in entry.last_error.lower()
        if not any(hit) and not in_text:
            continue
        if any(hit) and entry.status is OutboxStatus.QUEUED:
            if not cancel_queued:
                continue
            entry = replace(entry, status=OutboxStatus.FAILED, body_file="", next_attempt_at=None)
            entry.last_error = CANCELLED
        entry.recipients = [digest if h else r for r, h in zip(entry.recipients, hit, strict=True)]
        entry.last_error = _without(entry.last_error, address, digest)
        changed.append(entry)
    if changed:
        store.update_many(changed)
    if not address:
        return
    for record in store.all(ProcessedMessage):
        if address in record.error.lower() or address in record.summary.lower():
            store.put(
                replace(
                    record,
                    error=_without(record.error, address, digest),
                    summary=_without(record.summary, address, digest),
                )
            )


def _without(text: str, wanted: str, digest: str) -> str:
    if not wanted:
        return text
    lowered = text.lower()
    out, start = [], 0
    while (found := lowered.find(wanted, start)) >= 0:
        out += [text[start:found], digest]
        start = found + len(wanted)
    return "".join(out) + text[start:]
