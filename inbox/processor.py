"""The inbound processor: one raw message in, the store changed and the notices to send out.

Every inbound path (IMAP, Maildir, LMTP) ends in ``Processor.process(raw)``, called inside the
caller's store transaction, so that applying a message, remembering it (dedup) and queueing its
answers commit together or not at all. A message that makes the processor fail is counted by
``record_failure`` and, after ``attempts_before_quarantine`` failures, moved aside for good: one
bad message never blocks the others and is never retried forever.

Safety nets that live here rather than in ``apply``: the size limit (a huge message is not parsed),
dedup by message key, and the daily cap on automatic replies per recipient. Polling a source in
batches is inbox.poll; reading ahead in worker processes is inbox.read_ahead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from inbox import confirmation_limits
from inbox.apply import Applied, apply_bounce, apply_message
from inbox.classify import Kind, classify
from inbox.grammar import read_command
from inbox.parse import message_key, parse_message
from inbox.reading import Reading, header_block, read_message
from inbox.settings import InboxSettings
from matcher.clock import Clock
from matcher.members import purge_unconfirmed
from matcher.model import MessageStatus, Notice, ProcessedMessage, UnreadMessage
from matcher.store import Store
from matcher.tokens import prune_tokens

log = logging.getLogger(__name__)

PROCESSED_KEPT_DAYS = 400
EXPIRED_TOKENS_KEPT_DAYS = 30  # so a late reply is told "expired" rather than "unknown code"
REPLY_COUNTS_META = "inbox_reply_counts"
PRUNED_ON_META = "inbox_pruned_on"
ERROR_MAX_CHARS = 500
_TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z2-7]{32}(?![A-Za-z0-9])")


@dataclass
class ProcessResult:
    status: MessageStatus
    notices: list[Notice] = field(default_factory=list)
    summary: str = ""  # one log line: kind, command, sender (no secrets, no tokens)


@dataclass
class _DayCounts:
    """Automatic replies per recipient (address hash) on one UTC day."""

    day: str
    counts: dict[str, int]
    changed: bool = False


class Processor:
    def __init__(self, store: Store, clock: Clock, settings: InboxSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._batching = False
        self._day_counts: _DayCounts | None = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Process many messages inside ONE of the caller's transactions: today's reply counts are
        read from the store once and written back once, at the end, rather than per message (on a
        busy day they hold thousands of senders, and copying them per message would cost more
        than the message). Nothing is written if the block raises: the caller rolls back."""
        if self._batching:
            raise RuntimeError("Processor.batch() is already in use")
        self._batching, self._day_counts = True, None
        try:
            yield
            self._save_day_counts()
        finally:
            self._batching, self._day_counts = False, None

    def process(self, raw: bytes, reading: Reading | None = None) -> ProcessResult:
        """Apply one message. Call inside the caller's ``store.transaction()`` and queue the
        returned notices in the same transaction. Raises only on a bug or unexpected error: the
        caller then rolls back and calls ``record_failure``. ``reading``: the message already
        read (``read_message``, maybe classified), else it is read here."""
        now = self.clock.now()
        self._prune_daily(now)
        if reading is None:
            reading = read_message(raw, self.settings.limits.max_message_bytes)
        parsed, key, too_large = reading.parsed, reading.key, reading.too_large
        seen = self.store.get(ProcessedMessage, key)
        if seen is not None and seen.status == MessageStatus.QUARANTINED:
            return ProcessResult(MessageStatus.QUARANTINED, [], f"quarantined earlier: {seen.summary or key}")
        if seen is not None and seen.status != MessageStatus.FAILED:
            summary = f"duplicate of a {seen.status} message: {seen.summary}"
            return ProcessResult(MessageStatus.DUPLICATE, [], summary)
        if too_large:
            limit = self.settings.limits.max_message_bytes
            log.warning("message of %d bytes ignored (limit %d)", len(raw), limit)
            kind, command = "too_large", None
            applied = Applied(action=f"{len(raw)} bytes, over the limit: not read", changed=False)
        else:
            kind, command, applied = self._apply(raw, reading, now)
        notices = self._within_confirmation_limits(self._within_reply_limit(applied.notices, now), now)
        status = MessageStatus.APPLIED if applied.changed or notices else MessageStatus.IGNORED
        stored_summary = f"{kind} {command or '-'}: {applied.action}"
        self.store.put(
            ProcessedMessage(
                key=key,
                status=status,
                at=now,
                attempts=seen.attempts if seen is not None else 0,
                error=seen.error if seen is not None else "",
                summary=stored_summary,
            )
        )
        summary = f"{status} {stored_summary} (from {parsed.sender or 'unknown sender'})"
        return ProcessResult(status, notices, _redact(summary))

    def record_failure(self, raw: bytes, error: BaseException) -> bool:
        """Count a failed attempt for this message (call in a transaction of its own). Returns
        True when it has now failed ``attempts_before_quarantine`` times: move it to quarantine."""
        now = self.clock.now()
        too_large = len(raw) > self.settings.limits.max_message_bytes
        try:
            key = message_key(raw, parse_message(header_block(raw) if too_large else raw))
        except Exception:  # the failure may be in parsing itself; a hash still names the message
            key = "sha256:" + hashlib.sha256(raw).hexdigest()
        seen = self.store.get(ProcessedMessage, key)
        attempts = (seen.attempts if seen is not None else 0) + 1
        quarantine = attempts >= self.settings.limits.attempts_before_quarantine
        self.store.put(
            ProcessedMessage(
                key=key,
                status=MessageStatus.QUARANTINED if quarantine else MessageStatus.FAILED,
                at=now,
                attempts=attempts,
                error=describe_error(error),
                summary=seen.summary if seen is not None else "",
            )
        )
        return quarantine

    # -- internals

    def _apply(self, raw: bytes, reading: Reading, now: datetime) -> tuple[str, str | None, Applied]:
        parsed = reading.parsed
        classification = reading.classification or classify(
            raw, parsed, own_addresses=self.settings.own_addresses
        )
        kind = str(classification.kind.value)
        if classification.kind is Kind.BOUNCE:
            return kind, None, apply_bounce(self.store, self.settings, now, classification, parsed, raw)
        if classification.kind in (Kind.COMMAND, Kind.NOT_COMMAND):
            command = classification.command
            if command is None and classification.kind is Kind.COMMAND:
                command = read_command(parsed)  # classified in another process
            applied = apply_message(self.store, self.settings, now, parsed, command, reading.key)
            return kind, command.name if command else None, applied
        # Loops, auto-replies and list mail are never answered.
        return kind, None, Applied(action=f"not answered: {classification.reason}", changed=False)

    def _within_reply_limit(self, notices: list[Notice], now: datetime) -> list[Notice]:
        """Drop automatic replies beyond the daily cap per recipient (UTC day); log each drop.

        The counter lives in the store's meta as {"day": ..., "counts": {hash: n}}: hashes rather
        than addresses, and only today's, so it holds no personal data for long and prunes itself.
        """
        if not any(n.auto_reply for n in notices):
            return notices
        today = self._counts_of(now.astimezone(UTC).date().isoformat())
        counts = today.counts
        limit = self.settings.limits.replies_per_sender_per_day
        kept: list[Notice] = []
        for notice in notices:
            if not notice.auto_reply:
                kept.append(notice)
                continue
            who = _address_hash(notice.to[0] if notice.to else "")
            if counts.get(who, 0) >= limit:
                log.info(
                    "%s not sent: this sender already had the %d automatic replies of a day",
                    notice.kind,
                    limit,
                )
                continue
            counts[who] = counts.get(who, 0) + 1
            today.changed = True
            kept.append(notice)
        if not self._batching:
            self._save_day_counts()
        return kept

    def _within_confirmation_limits(self, notices: list[Notice], now: datetime) -> list[Notice]:
        """Drop confirmation emails beyond inbox/confirmation_limits.py's limits; log each drop."""
        if not any(n.token for n in notices):
            return notices
        stored = self.store.get_meta(confirmation_limits.META_KEY) or {}
        counts = {**stored, "mailboxes": dict(stored.get("mailboxes", {}))}
        kept: list[Notice] = []
        for notice in notices:
            if notice.token and not confirmation_limits.allow(
                counts, notice, now, self.settings.limits.confirmations_per_hour
            ):
                log.info(
                    "%s not sent: confirmation limit reached (one a day per mailbox, %d an hour in all)",
                    notice.kind,
                    self.settings.limits.confirmations_per_hour,
                )
                continue
            kept.append(notice)
        self.store.set_meta(confirmation_limits.META_KEY, counts)
        return kept

    def _counts_of(self, day: str) -> _DayCounts:
        """Today's counts: the batch's copy, else read from the store (a new day starts empty)."""
        held = self._day_counts
        if held is None or held.day != day:
            stored = self.store.get_meta(REPLY_COUNTS_META) or {}
            if stored.get("day") == day:
                held = _DayCounts(day, dict(stored.get("counts", {})))
            else:
                held = _DayCounts(day, {}, changed=True)
            self._day_counts = held
        return held

    def _save_day_counts(self) -> None:
        held = self._day_counts
        if held is not None and held.changed:
            self.store.set_meta(REPLY_COUNTS_META, {"day": held.day, "counts": held.counts})
            held.changed = False
        if not self._batching:
            self._day_counts = None

    def _prune_daily(self, now: datetime) -> None:
        """Once a day: forget processed messages (and those we could not read, long since in a
        summary) older than PROCESSED_KEPT_DAYS, sign-ups whose confirmations have all expired
        (token_days), and tokens expired more than
        EXPIRED_TOKENS_KEPT_DAYS ago.

        Both scan a table, hence once a day rather than per message.
        """
        today = now.astimezone(UTC).date().isoformat()
        if self.store.get_meta(PRUNED_ON_META) == today:
            return
        cutoff = now - timedelta(days=PROCESSED_KEPT_DAYS)
        old: list[ProcessedMessage | UnreadMessage] = [
            p for p in self.store.all(ProcessedMessage) if p.at is not None and p.at < cutoff
        ]
        old += [u for u in self.store.all(UnreadMessage) if u.at < cutoff]
        for record in old:
            self.store.delete(record)
        sign_ups = purge_unconfirmed(self.store, now)
        tokens = prune_tokens(self.store, now - timedelta(days=EXPIRED_TOKENS_KEPT_DAYS))
        self.store.set_meta(PRUNED_ON_META, today)
        if old or tokens or sign_ups:
            log.info(
                "pruned %d processed message(s), %d expired token(s), %d unconfirmed sign-up(s)",
                len(old),
                tokens,
                sign_ups,
            )


def describe_error(error: BaseException) -> str:
    """Type and message, tokens masked, capped: safe to store and to log."""
    text = f"{type(error).__name__}: {error}"
    return _redact(text)[:ERROR_MAX_CHARS]


def _redact(text: str) -> str:
    return _TOKEN_LIKE.sub("[token]", text)


def _address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]
