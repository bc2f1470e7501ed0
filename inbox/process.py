"""The inbound processor: one raw message in, the store changed and the notices to send out.

Every inbound path (IMAP, Maildir, LMTP) ends in ``Processor.process(raw)``, called inside the
caller's store transaction, so that applying a message, remembering it (dedup) and queueing its
answers commit together or not at all. A message that makes the processor fail is counted by
``record_failure`` and, after ``attempts_before_quarantine`` failures, moved aside for good: one
bad message never blocks the others and is never retried forever.

Safety nets that live here rather than in ``apply``: the size limit (a huge message is not parsed),
dedup by message key, and the daily cap on automatic replies per recipient.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from inbox.apply import Applied, apply_bounce, apply_message
from inbox.classify import Kind, classify
from inbox.grammar import read_command
from inbox.parse import ParsedMessage, message_key, parse_message
from inbox.settings import InboxSettings
from inbox.sources.base import Source
from matcher.clock import Clock
from matcher.model import Notice, ProcessedMessage
from matcher.store import Store
from matcher.tokens import prune_tokens

log = logging.getLogger(__name__)

APPLIED = "applied"
IGNORED = "ignored"
DUPLICATE = "duplicate"
FAILED = "failed"
QUARANTINED = "quarantined"

PROCESSED_KEPT_DAYS = 400
EXPIRED_TOKENS_KEPT_DAYS = 30  # so a late reply is told "expired" rather than "unknown code"
REPLY_COUNTS_META = "inbox_reply_counts"
PRUNED_ON_META = "inbox_pruned_on"
ERROR_MAX_CHARS = 500
# Headers end well before this in any real message; a huge message is only read this far.
HEADER_SCAN_BYTES = 256 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z2-7]{32}(?![A-Za-z0-9])")


@dataclass
class ProcessResult:
    status: str  # "applied" | "ignored" | "duplicate" | "failed" | "quarantined"
    notices: list[Notice] = field(default_factory=list)
    summary: str = ""  # one log line: kind, command, sender (no secrets, no tokens)


@dataclass
class PollReport:
    applied: int = 0
    ignored: int = 0
    duplicates: int = 0
    failed: int = 0
    quarantined: int = 0

    @property
    def total(self) -> int:
        return self.applied + self.ignored + self.duplicates + self.failed + self.quarantined


class Processor:
    def __init__(self, store: Store, clock: Clock, settings: InboxSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def process(self, raw: bytes) -> ProcessResult:
        """Apply one message. Call inside the caller's ``store.transaction()`` and queue the
        returned notices in the same transaction. Raises only on a bug or unexpected error: the
        caller then rolls back and calls ``record_failure``."""
        now = self.clock.now()
        self._prune_daily(now)
        too_large = len(raw) > self.settings.max_message_bytes
        parsed = parse_message(_header_block(raw) if too_large else raw)
        key = message_key(raw, parsed)
        seen = self.store.get(ProcessedMessage, key)
        if seen is not None and seen.status == QUARANTINED:
            return ProcessResult(QUARANTINED, [], f"quarantined earlier: {seen.summary or key}")
        if seen is not None and seen.status != FAILED:
            return ProcessResult(
                DUPLICATE, [], f"duplicate of a {seen.status} message: {seen.summary}"
            )
        if too_large:
            limit = self.settings.max_message_bytes
            log.warning("message of %d bytes ignored (limit %d)", len(raw), limit)
            kind, command = "too_large", None
            applied = Applied(action=f"{len(raw)} bytes, over the limit: not read", changed=False)
        else:
            kind, command, applied = self._apply(raw, parsed, key, now)
        notices = self._within_reply_limit(applied.notices, now)
        status = APPLIED if applied.changed or notices else IGNORED
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
        too_large = len(raw) > self.settings.max_message_bytes
        try:
            key = message_key(raw, parse_message(_header_block(raw) if too_large else raw))
        except Exception:  # the failure may be in parsing itself; a hash still names the message
            key = "sha256:" + hashlib.sha256(raw).hexdigest()
        seen = self.store.get(ProcessedMessage, key)
        attempts = (seen.attempts if seen is not None else 0) + 1
        quarantine = attempts >= self.settings.attempts_before_quarantine
        self.store.put(
            ProcessedMessage(
                key=key,
                status=QUARANTINED if quarantine else FAILED,
                at=now,
                attempts=attempts,
                error=describe_error(error),
                summary=seen.summary if seen is not None else "",
            )
        )
        return quarantine

    # -- internals

    def _apply(
        self, raw: bytes, parsed: ParsedMessage, key: str, now: datetime
    ) -> tuple[str, str | None, Applied]:
        classification = classify(raw, parsed, own_addresses=self.settings.own_addresses)
        kind = str(classification.kind.value)
        if classification.kind is Kind.BOUNCE:
            return kind, None, apply_bounce(self.store, self.settings, now, classification)
        if classification.kind in (Kind.COMMAND, Kind.NOT_COMMAND):
            command = read_command(parsed)
            applied = apply_message(self.store, self.settings, now, parsed, command, key)
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
        today = now.astimezone(UTC).date().isoformat()
        stored = self.store.get_meta(REPLY_COUNTS_META) or {}
        counts: dict[str, int] = (
            dict(stored.get("counts", {})) if stored.get("day") == today else {}
        )
        limit = self.settings.replies_per_sender_per_day
        kept: list[Notice] = []
        for notice in notices:
            if not notice.auto_reply:
                kept.append(notice)
                continue
            who = _address_hash(notice.to[0] if notice.to else "")
            if counts.get(who, 0) >= limit:
                log.warning(
                    "%s reply dropped: %d automatic replies already sent to this sender today",
                    notice.kind,
                    limit,
                )
                continue
            counts[who] = counts.get(who, 0) + 1
            kept.append(notice)
        self.store.set_meta(REPLY_COUNTS_META, {"day": today, "counts": counts})
        return kept

    def _prune_daily(self, now: datetime) -> None:
        """Once a day: forget processed messages older than PROCESSED_KEPT_DAYS, and tokens
        expired more than EXPIRED_TOKENS_KEPT_DAYS ago.

        Both scan a table, hence once a day rather than per message.
        """
        today = now.astimezone(UTC).date().isoformat()
        if self.store.get_meta(PRUNED_ON_META) == today:
            return
        cutoff = now - timedelta(days=PROCESSED_KEPT_DAYS)
        old = [p for p in self.store.all(ProcessedMessage) if p.at is not None and p.at < cutoff]
        for record in old:
            self.store.delete(record)
        tokens = prune_tokens(self.store, now - timedelta(days=EXPIRED_TOKENS_KEPT_DAYS))
        self.store.set_meta(PRUNED_ON_META, today)
        if old or tokens:
            log.info("pruned %d processed message(s) and %d expired token(s)", len(old), tokens)


def process_source(
    source: Source,
    store: Store,
    processor: Processor,
    queue_notices: Callable[[list[Notice]], None],
    log: logging.Logger,
) -> PollReport:
    """One poll of ``source``: each new message is processed and its notices queued in one
    transaction, then moved out of the way. A message that fails is counted and left for the next
    poll, until it has failed often enough to be quarantined; the others go on regardless."""
    report = PollReport()
    for incoming in source.fetch_new():
        try:
            with store.transaction():
                result = processor.process(incoming.raw)
                queue_notices(result.notices)
        except Exception as exc:
            with store.transaction():
                quarantine = processor.record_failure(incoming.raw, exc)
            log.error(
                "message %s failed%s: %s",
                incoming.ref,
                ", moved to quarantine" if quarantine else "; will retry",
                describe_error(exc),
            )
            log.debug("traceback of the failure of message %s", incoming.ref, exc_info=exc)
            if quarantine:
                source.quarantine(incoming.ref)
                report.quarantined += 1
            else:
                report.failed += 1
            continue
        log.info("message %s: %s", incoming.ref, result.summary)
        if result.status == QUARANTINED:
            source.quarantine(incoming.ref)
            report.quarantined += 1
            continue
        source.mark_processed(incoming.ref)
        if result.status == APPLIED:
            report.applied += 1
        elif result.status == DUPLICATE:
            report.duplicates += 1
        else:
            report.ignored += 1
    return report


def describe_error(error: BaseException) -> str:
    """Type and message, tokens masked, capped: safe to store and to log."""
    text = f"{type(error).__name__}: {error}"
    return _redact(text)[:ERROR_MAX_CHARS]


def _redact(text: str) -> str:
    return _TOKEN_LIKE.sub("[token]", text)


def _address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]


def _header_block(raw: bytes) -> bytes:
    """The header section of a message (without reading past HEADER_SCAN_BYTES)."""
    head = raw[:HEADER_SCAN_BYTES]
    end = _HEADER_END.search(head)
    return head[: end.end()] if end else head
