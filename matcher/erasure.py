"""Erasure beyond the member record: every trace of an address in the store, then (by the service) in the
files we keep.

``forget`` runs with the member's erasure (matcher.members.erase), in its transaction: outbox records
addressed to the person keep a digest of the address instead of the address, mail still queued for them is
cancelled (its message file goes), and error texts lose the address. The farewell ("forgotten") is queued
afterwards, so the address stays on a pending list, with the time of the erasure, until that mail is sent;
``settle`` then scrubs its record too. The service (unmentoring/service.py) finishes the job: it deletes the
kept mail that names the address (the inbox's processed and quarantine folders), replaces the database
backups, which were all taken before, and only then takes the address off the list (``finish``).

The window is bounded: past ``ERASURE_WINDOW`` mail still queued for the address is cancelled too, so a
farewell that cannot be delivered does not keep the address (nor the backups holding it) any longer.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta

from matcher.model import OutboxEntry, OutboxStatus, ProcessedMessage
from matcher.store import Store

PENDING_META = "erasures_pending"  # address -> ISO time of its erasure, until every trace is gone
ROTATE_BACKUPS_META = "erasure_rotate_backups"  # set until the backups taken before an erasure are replaced
ERASURE_WINDOW = timedelta(hours=24)
CANCELLED = "cancelled: the recipient asked to be forgotten"


def address_digest(address: str) -> str:
    """What records keep in place of an erased address: enough to count, nothing to read back."""
    return "erased-sha256:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def forget(store: Store, address: str, now: datetime) -> None:
    """Scrub ``address`` from outbox and processed-message records, cancel mail still queued for it, and
    put it on the pending list (call inside the transaction that erases the member)."""
    _scrub(store, address, cancel_queued=True)
    pending = dict(store.get_meta(PENDING_META) or {})
    pending.setdefault(address, now.isoformat())
    store.set_meta(PENDING_META, pending)


def pending(store: Store) -> dict[str, datetime]:
    return {a: datetime.fromisoformat(at) for a, at in (store.get_meta(PENDING_META) or {}).items()}


def settle(store: Store, now: datetime) -> list[str]:
    """Scrub the records of mail sent since each pending erasure; the addresses left in no record (call
    inside a transaction). Mail still queued keeps an address pending, up to ``ERASURE_WINDOW``."""
    done = []
    for address, at in pending(store).items():
        if not _scrub(store, address, cancel_queued=now - at >= ERASURE_WINDOW):
            done.append(address)
    return done


def finish(store: Store, addresses: list[str]) -> None:
    """Take ``addresses`` off the pending list once the files are clean; the backups are now stale (call
    inside a transaction)."""
    remaining = {a: at for a, at in (store.get_meta(PENDING_META) or {}).items() if a not in addresses}
    store.set_meta(PENDING_META, remaining)
    store.set_meta(ROTATE_BACKUPS_META, True)


def _scrub(store: Store, address: str, *, cancel_queued: bool) -> int:
    """Replace ``address`` in outbox and processed records; returns how many entries still wait to go to
    it."""
    wanted = address.strip().lower()
    digest = address_digest(wanted)
    waiting = 0
    changed = []
    for entry in store.all(OutboxEntry):
        hit = [r.strip().lower() == wanted for r in entry.recipients]
        if not any(hit) and wanted not in entry.last_error.lower():
            continue
        if any(hit) and entry.status is OutboxStatus.QUEUED:
            if not cancel_queued:
                waiting += 1
                continue
            entry = replace(entry, status=OutboxStatus.FAILED, body_file="", next_attempt_at=None)
            entry.last_error = CANCELLED
        entry.recipients = [digest if h else r for r, h in zip(entry.recipients, hit, strict=True)]
        entry.last_error = _without(entry.last_error, wanted, digest)
        changed.append(entry)
    if changed:
        store.update_many(changed)
    for record in store.all(ProcessedMessage):
        if wanted in record.error.lower() or wanted in record.summary.lower():
            store.put(
                replace(
                    record,
                    error=_without(record.error, wanted, digest),
                    summary=_without(record.summary, wanted, digest),
                )
            )
    return waiting


def _without(text: str, wanted: str, digest: str) -> str:
    lowered = text.lower()
    out, start = [], 0
    while (found := lowered.find(wanted, start)) >= 0:
        out += [text[start:found], digest]
        start = found + len(wanted)
    return "".join(out) + text[start:]
