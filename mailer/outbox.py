"""The persistent outbox: every email is stored before it is sent and marked after it is sent.

Queueing renders the notice, builds the message and stores it as an ``OutboxEntry`` (the 7-bit raw
text, the envelope, the idempotency key) inside the caller's store transaction, so a state change
and the emails it causes are committed together or not at all. Queueing a key that is already known
returns the existing entry and sends nothing new; entries stay (without their body once sent) so the
key is remembered and the inbox can find which address a reply's In-Reply-To was sent to (store
index "message_id").

Marking: the store rewrites its whole JSON document on every transaction, far too slow to do per
message in a batch of thousands. So each SMTP outcome is appended to a journal file next to the
database (one line, written at once, then fsynced) and ``fold_journal`` applies the journal to the
store in ONE transaction and then empties it. Folding happens at the start and at the end of every
delivery run, so a run after a crash first learns what the crashed run had sent. A line without its
final newline (torn by a kill) is ignored; folding twice is harmless (lines carry absolute values).
The fsync runs on a helper thread (``JournalWriter``) so the disk flush overlaps the next message's
SMTP dialogue; the sender holds back each message's final "." (what makes the server take it) until
every earlier line is on disk.

Journal lines (tab-separated; free text has tabs and line breaks replaced by spaces):

    <key>  sent      <time>  <attempts>  <note>
    <key>  failed    <time>  <attempts>  <reason>
    <key>  deferred  <time>  <attempts>  <reason>  <next attempt>  <JSON list of who to retry>

The crash window, precisely: a message is in flight from the moment its final "." goes to the
server until its journal line is written (that survives a killed process) and fsynced (that survives
a power cut). A crash inside that window leaves the entry queued although the server may have taken
the message, so the next run sends it again. At most that one message can go twice; every other
message goes exactly once, and none is lost (entries are committed before any sending starts).

Temporary failures (4xx, dropped connections) are retried a couple of times within the run by the
sender, then deferred with exponential backoff (``next_attempt_at``) and given up after
``max_attempts``. Permanent failures (5xx) are recorded as failed and reported as bounces, per
recipient, for the caller to count.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from tqdm import tqdm

from mailer.compose import (
    ComposeError,
    compose,
    message_bytes,
    new_message_id,
    normalise_recipients,
)
from mailer.render import Renderer
from mailer.settings import MailSettings
from mailer.smtp import SendResult, SmtpSender, SmtpUnavailable, Throttled
from matcher.clock import Clock
from matcher.model import Notice, OutboxEntry
from matcher.store import Store

log = logging.getLogger(__name__)

QUEUED, SENT, FAILED, DEFERRED = "queued", "sent", "failed", "deferred"
# Store meta key: per-minute recipient counts of the last day, for the throttle.
RECENT_SENDS_META = "outbox_recent_sends"
RECENT_SENDS_KEEP = timedelta(days=1)


class OutboxError(Exception):
    """A request the outbox cannot carry out (a bad key, an entry that cannot be sent again)."""


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    held: int = 0  # due but not tried in this run (server unavailable, sending limit, stop)
    # (address, reason) of permanent refusals: the caller counts them against those addresses.
    bounces: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""  # why the run stopped early, if it did

    @property
    def attempted(self) -> int:
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True)
class JournalRecord:
    key: str
    status: str  # sent | failed | deferred
    at: datetime
    attempts: int
    reason: str = ""
    next_attempt_at: datetime | None = None
    recipients: tuple[str, ...] = ()  # deferred: who is still to be tried (empty: unchanged)

    def line(self) -> bytes:
        fields = [
            self.key,
            self.status,
            self.at.isoformat(),
            str(self.attempts),
            _flat(self.reason),
        ]
        if self.status == DEFERRED:
            assert self.next_attempt_at is not None
            fields += [self.next_attempt_at.isoformat(), json.dumps(list(self.recipients))]
        return ("\t".join(fields) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, line: str) -> JournalRecord:
        fields = line.split("\t")
        key, status, at, attempts, reason = fields[:5]
        if not key or status not in (SENT, FAILED, DEFERRED):
            raise ValueError(f"unknown status {status!r}")
        record = cls(key, status, datetime.fromisoformat(at), int(attempts), reason)
        if status == DEFERRED:
            recipients = json.loads(fields[6])
            if not isinstance(recipients, list):
                raise ValueError("recipients is not a list")
            record = replace(
                record,
                next_attempt_at=datetime.fromisoformat(fields[5]),
                recipients=tuple(str(r) for r in recipients),
            )
        return record

    def apply(self, entry: OutboxEntry) -> OutboxEntry:
        if self.status == SENT:
            # The body is dropped once sent: the key and Message-ID are all that must be remembered.
            return replace(
                entry,
                status=SENT,
                sent_at=self.at,
                attempts=self.attempts,
                raw="",
                last_error=self.reason,
                next_attempt_at=None,
            )
        if self.status == FAILED:
            return replace(
                entry,
                status=FAILED,
                attempts=self.attempts,
                last_error=self.reason,
                next_attempt_at=None,
            )
        return replace(
            entry,
            attempts=self.attempts,
            last_error=self.reason,
            next_attempt_at=self.next_attempt_at,
            recipients=list(self.recipients) or entry.recipients,
        )


class JournalError(RuntimeError):
    """The journal cannot be made durable: delivery stops (sending on would risk duplicates)."""


class JournalWriter:
    """Appends outcome lines; a helper thread fsyncs them so the disk flush overlaps the next SMTP
    commands.

    ``append`` writes the line at once (from then on it survives a killed process: it is in the page
    cache); ``wait_durable`` returns once every appended line is fsynced (it survives a power cut
    too). The outbox calls ``wait_durable`` before the final "." of each message (what makes the
    server take it), so at any instant at most one message (the one being sent) can have been
    delivered without its outcome on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._cond = threading.Condition()
        self._written = 0
        self._durable = 0
        self._closing = False
        self._error: OSError | None = None
        self._thread = threading.Thread(
            target=self._sync_loop, name="outbox-journal-fsync", daemon=True
        )
        self._thread.start()

    def append(self, line: bytes) -> None:
        os.write(self._fd, line)
        with self._cond:
            self._written += 1
            self._cond.notify_all()

    def wait_durable(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._durable >= self._written or self._error is not None)
            if self._error is not None:
                raise JournalError(
                    f"cannot make the outbox journal {self.path} durable: {self._error}"
                )

    def close(self) -> None:
        try:
            self.wait_durable()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join()
            os.close(self._fd)

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._written > self._durable or self._closing)
                if self._written == self._durable:
                    return
                target = self._written
            try:
                os.fsync(self._fd)
            except OSError as exc:
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._durable = target
                self._cond.notify_all()


class Outbox:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: MailSettings,
        renderer: Renderer,
        journal: Path,
        *,
        max_attempts: int = 12,
        backoff_base: timedelta = timedelta(minutes=5),
        backoff_max: timedelta = timedelta(hours=4),
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.renderer = renderer
        self.journal = Path(journal)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    # -- queueing (inside the caller's transaction)

    def queue(self, notice: Notice) -> OutboxEntry:
        """Store the email for ``notice``; a key queued or sent returns the existing entry."""
        return self.queue_many([notice])[0]

    def queue_many(self, notices: Iterable[Notice]) -> list[OutboxEntry]:
        """Store the emails for ``notices`` with one store operation for the new ones, in order.

        A notice without a key gets a fresh one (its kind and a random id): only keyed notices are
        idempotent. A notice whose addresses cannot make a valid email is stored as failed (logged),
        so the caller's transaction still commits; a notice missing a template value raises
        ``RenderError``.
        """
        entries: list[OutboxEntry] = []
        new: dict[str, OutboxEntry] = {}
        for notice in notices:
            key = notice.key or f"{notice.kind}:{secrets.token_hex(8)}"
            if "\t" in key or "\n" in key or "\r" in key:
                raise OutboxError(f"outbox key {key!r} contains a tab or line break")
            existing = new.get(key) or self.store.get(OutboxEntry, key)
            if existing is None:
                existing = new[key] = self._build(notice, key)
            entries.append(existing)
        if new:
            with self.store.transaction():
                self.store.put_many(list(new.values()))
        return entries

    def compose(self, notice: Notice) -> EmailMessage:
        """The email ``notice`` would become, not stored (previews); bytes() gives the wire form.
        Raises ``RenderError`` or ``ComposeError`` when it cannot be built."""
        rendered = self.renderer.render(notice.kind, notice.values, to=notice.to)
        message_id = (notice.message_id or "").strip("<>") or new_message_id(self.settings.domain)
        return compose(notice, rendered, self.settings, now=self.clock.now(), message_id=message_id)

    def requeue(self, entries: Iterable[OutboxEntry]) -> list[OutboxEntry]:
        """Queue failed (or deferred) entries again, due now, attempts counted afresh; call inside a
        transaction. An entry whose message is no longer stored (sent, or never buildable) cannot be
        sent again: ``OutboxError`` names it and nothing is changed."""
        now = self.clock.now()
        chosen = list(entries)
        unsendable = [e.key for e in chosen if not e.raw]
        if unsendable:
            raise OutboxError(
                f"cannot send again {', '.join(unsendable[:3])}"
                + (f" and {len(unsendable) - 3} more" if len(unsendable) > 3 else "")
                + ": the message is no longer stored (already sent, or it could not be built)"
            )
        again = [replace(e, status=QUEUED, attempts=0, next_attempt_at=now) for e in chosen]
        with self.store.transaction():
            self.store.update_many(again)
        return again

    def _build(self, notice: Notice, key: str) -> OutboxEntry:
        now = self.clock.now()
        entry = OutboxEntry(
            key=key,
            kind=notice.kind,
            envelope_from=self.settings.envelope_from,
            recipients=list(notice.to),
            message_id=(notice.message_id or "").strip("<>")
            or new_message_id(self.settings.domain),
            raw="",
            queued_at=now,
            next_attempt_at=now,
        )
        rendered = self.renderer.render(notice.kind, notice.values, to=notice.to)
        try:
            recipients = normalise_recipients(notice.kind, notice.to)
            msg = compose(notice, rendered, self.settings, now=now, message_id=entry.message_id)
            raw = message_bytes(msg).decode("ascii")
        except ComposeError as exc:
            log.warning("outbox %s: not sendable, recorded as failed: %s", key, exc)
            return replace(entry, status=FAILED, last_error=str(exc), next_attempt_at=None)
        return replace(entry, recipients=recipients, raw=raw)

    # -- what is due

    def pending(self) -> list[OutboxEntry]:
        """Queued entries due now (next_attempt_at <= now), oldest first, journal applied."""
        now = self.clock.now()
        journal = self._read_journal()
        due = []
        for entry in self.store.find(OutboxEntry, "status", QUEUED):
            record = journal.get(entry.key)
            if record is not None:
                entry = record.apply(entry)
                if entry.status != QUEUED:
                    continue
            if entry.next_attempt_at is None or entry.next_attempt_at <= now:
                due.append(entry)
        due.sort(key=lambda e: e.queued_at or now)
        return due

    # -- the journal

    def fold_journal(self) -> None:
        """Apply the journal to the store in one transaction, then empty it."""
        records = self._read_journal()
        if records:
            with self.store.transaction():
                updated = []
                for key, record in records.items():
                    entry = self.store.get(OutboxEntry, key)
                    if entry is None:
                        log.warning("outbox journal names unknown key %s; line ignored", key)
                        continue
                    updated.append(record.apply(entry))
                self.store.update_many(updated)
                self._remember_sends(updated)
        if self.journal.exists() and self.journal.stat().st_size:
            with open(self.journal, "wb") as f:
                f.flush()
                os.fsync(f.fileno())

    def _read_journal(self) -> dict[str, JournalRecord]:
        try:
            data = self.journal.read_bytes()
        except FileNotFoundError:
            return {}
        records: dict[str, JournalRecord] = {}
        complete, _, torn = data.rpartition(b"\n")
        if torn:
            log.warning(
                "outbox journal %s ends with a torn line (a kill while writing); ignored",
                self.journal,
            )
        for number, raw_line in enumerate(complete.split(b"\n") if complete else [], start=1):
            try:
                record = JournalRecord.parse(raw_line.decode("utf-8"))
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                log.warning(
                    "outbox journal %s line %d unreadable (%s); ignored", self.journal, number, exc
                )
                continue
            records[record.key] = record
        return records

    def _remember_sends(self, entries: list[OutboxEntry]) -> None:
        """Per-minute recipient counts of the last day, so a new process keeps the daily limit."""
        now = self.clock.now()
        recent: dict[str, list] = dict(self.store.get_meta(RECENT_SENDS_META) or {})
        changed = False
        for entry in entries:
            if entry.status == SENT and entry.sent_at is not None:
                minute = entry.sent_at.replace(second=0, microsecond=0).isoformat()
                last, recipients, messages = recent.get(minute, [entry.sent_at.isoformat(), 0, 0])
                last = max(last, entry.sent_at.isoformat())
                recent[minute] = [last, recipients + len(entry.recipients), messages + 1]
                changed = True
        cutoff = now - RECENT_SENDS_KEEP
        for minute in [m for m, v in recent.items() if datetime.fromisoformat(v[0]) < cutoff]:
            del recent[minute]
            changed = True
        if changed:
            self.store.set_meta(RECENT_SENDS_META, recent)

    def recent_sends(self) -> list[tuple[datetime, int, int]]:
        """(last send in the minute, recipients, messages) for the last day, as folded so far."""
        recent = self.store.get_meta(RECENT_SENDS_META) or {}
        return sorted((datetime.fromisoformat(v[0]), int(v[1]), int(v[2])) for v in recent.values())

    # -- delivery

    def deliver_pending(
        self,
        sender: SmtpSender,
        *,
        progress: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> DeliveryReport:
        """Send every due entry through ``sender`` (one connection), journaling each outcome.

        ``progress`` shows a progress bar (the CLI); ``should_stop`` is asked before each message
        (the daemon's shutdown): when it says yes, the rest stays queued for the next run.
        """
        self.fold_journal()
        entries = self.pending()
        report = DeliveryReport()
        if not entries:
            return report
        sender.preload_history(self.recent_sends())
        journal = JournalWriter(self.journal)
        bar = tqdm(total=len(entries), disable=not progress, unit="msg", desc="sending")
        try:
            for index, entry in enumerate(entries):
                if should_stop is not None and should_stop():
                    report.held = len(entries) - index
                    report.error = "stopped on request"
                    log.info(
                        "outbox: stopped on request, %d message(s) left for later", report.held
                    )
                    break
                try:
                    result = sender.send(
                        entry.envelope_from,
                        entry.recipients,
                        entry.raw.encode("ascii"),
                        before_commit=journal.wait_durable,
                    )
                except (SmtpUnavailable, Throttled) as exc:
                    report.error = str(exc)
                    report.held = len(entries) - index
                    log.warning(
                        "outbox: delivery stopped, %d message(s) left for later: %s",
                        report.held,
                        exc,
                    )
                    break
                journal.append(self._record_for(entry, result, report).line())
                bar.update(1)
        finally:
            try:
                journal.close()
            finally:
                bar.close()
                sender.close()
        self.fold_journal()
        return report

    def _record_for(
        self, entry: OutboxEntry, result: SendResult, report: DeliveryReport
    ) -> JournalRecord:
        now = self.clock.now()
        attempts = entry.attempts + 1
        report.bounces.extend(result.bounced)
        bounced_note = "; ".join(f"{a}: {r}" for a, r in result.bounced)
        if result.status == SENT:
            report.sent += 1
            log.info(
                "sent %s message-id <%s> to %d recipient(s)",
                entry.key,
                entry.message_id,
                len(result.accepted),
            )
            if bounced_note:
                log.warning("outbox %s: refused for some recipients: %s", entry.key, bounced_note)
            return JournalRecord(entry.key, SENT, now, attempts, bounced_note)
        if result.status == DEFERRED and attempts < self.max_attempts:
            report.deferred += 1
            delay = min(self.backoff_base * 2 ** (attempts - 1), self.backoff_max)
            log.warning(
                "outbox %s: deferred (attempt %d, next in %s): %s",
                entry.key,
                attempts,
                delay,
                result.reason,
            )
            return JournalRecord(
                entry.key, DEFERRED, now, attempts, result.reason, now + delay, result.deferred
            )
        report.failed += 1
        if result.status == DEFERRED:
            # Temporary failures for days: treat as permanent for these recipients.
            reason = f"gave up after {attempts} attempts: {result.reason}"
            report.bounces.extend((address, reason) for address in result.deferred)
        else:
            reason = bounced_note or result.reason
        log.warning("outbox %s: failed: %s", entry.key, reason)
        return JournalRecord(entry.key, FAILED, now, attempts, reason)


def _flat(text: str) -> str:
    return " ".join(str(text).split())
