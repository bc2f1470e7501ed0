"""The persistent outbox: every email is stored before it is sent and marked after it is sent.

Queueing renders the notice, builds the message and stores it as an ``OutboxEntry`` (the envelope,
the idempotency key, the status) inside the caller's store transaction, so a state change and the
emails it causes are committed together or not at all. Queueing a key that is already known returns
the existing entry and sends nothing new; entries stay (without their body once sent) so the key is
remembered and the inbox can find which address a reply's In-Reply-To was sent to (store index
"message_id").

Bodies (the 7-bit message, ~5 KB) are not in the store's document, which every commit rewrites:
each is a file in a spool folder next to the database (``outbox/<hash of the key>.eml``), written
when queued and made durable (file and folder fsynced, once per transaction, by a
``store.before_commit`` callback) before the transaction that records the entry commits. A body
file no entry refers to (its transaction rolled back or was killed, or its message was sent) is
deleted when the outbox starts and after every journal fold.

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
a power cut). A crash after the server accepted it and before its 250 was recorded leaves the entry
queued, so the next run sends it again, with the same Message-ID (a client that threads or
deduplicates by Message-ID shows one). At most that one message can go twice; every other message
goes exactly once, and none is lost (entries are committed before any sending starts).

Refusals: a journal line carries the addresses the server refused permanently; the fold keeps them
in the store (``UNCOUNTED_REFUSALS_META``) and the caller takes them (``take_refusals``) in the
transaction that counts them as bounces. A crash between the refusal and the count loses nothing:
the next run folds or finds them and counts each once.

Temporary failures (4xx, dropped connections) are retried a couple of times within the run by the
sender, then deferred with exponential backoff (``next_attempt_at``) and given up after
``max_attempts``. Permanent failures (5xx) are recorded as failed and reported as bounces, per
recipient, for the caller to count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from tqdm import tqdm

from mailer.compose import ComposeError, ReadBackError, compose, normalise_recipients, outgoing_bytes
from mailer.headers import Framing, framing
from mailer.render import Rendered, Renderer
from mailer.settings import MailSettings
from mailer.smtp import SendResult, SmtpSender, SmtpUnavailable, Throttled
from mailkit.addresses import return_path
from matcher.clock import Clock
from matcher.model import Notice, OutboxEntry, OutboxStatus
from matcher.private_files import private_folder, write_private
from matcher.storage import fsync_directory
from matcher.store import Store
from matcher.tokens import new_token_value

log = logging.getLogger(__name__)

QUEUED, SENT, FAILED = OutboxStatus.QUEUED, OutboxStatus.SENT, OutboxStatus.FAILED
DEFERRED = "deferred"  # a send outcome (mailer.smtp.SendResult), never an entry's status
# Store meta key: per-minute recipient counts of the last day, for the throttle.
RECENT_SENDS_META = "outbox_recent_sends"
# Permanent refusals folded from the journal and not yet counted as bounces, by "<key>#<attempts>"
# (folding the same line twice writes the same item): taken in the transaction that counts them.
UNCOUNTED_REFUSALS_META = "outbox_uncounted_refusals"
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
    unavailable: bool = False  # stopped because the SMTP server could not be used (error says why)

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
    refused: tuple[tuple[str, str], ...] = ()  # (address, reason) refused permanently, to be counted

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
        if self.refused:
            # Last, and only when there are some: lines written before it existed still parse.
            fields.append(json.dumps([[address, _flat(reason)] for address, reason in self.refused]))
        return ("\t".join(fields) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, line: str) -> JournalRecord:
        fields = line.split("\t")
        key, status, at, attempts, reason = fields[:5]
        if not key or status not in (SENT, FAILED, DEFERRED):
            raise ValueError(f"unknown status {status!r}")
        record = cls(key, status, datetime.fromisoformat(at), int(attempts), reason)
        refused = fields[7 if status == DEFERRED else 5 :][:1]
        if refused:
            pairs = json.loads(refused[0])
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise ValueError("refused is not a list of [address, reason]")
            record = replace(record, refused=tuple((str(a), str(r)) for a, r in pairs))
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
        if self.status == DEFERRED:
            return replace(
                entry,
                attempts=self.attempts,
                last_error=self.reason,
                next_attempt_at=self.next_attempt_at,
                recipients=list(self.recipients) or entry.recipients,
            )
        final = replace(
            entry, status=OutboxStatus(self.status), attempts=self.attempts, last_error=self.reason
        )
        if self.status == SENT:
            # The body is dropped once sent: the key and Message-ID are all that must be remembered.
            final = replace(final, sent_at=self.at, body_file="")
        return replace(final, next_attempt_at=None)


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
        self._thread = threading.Thread(target=self._sync_loop, name="outbox-journal-fsync", daemon=True)
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
                raise JournalError(f"cannot make the outbox journal {self.path} durable: {self._error}")

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
        spool: Path | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.renderer = renderer
        self.journal = Path(journal)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # where message bodies wait to be sent; by default "outbox/" beside the database
        self.spool = Path(spool) if spool is not None else store.path.parent / "outbox"
        # body files written since the last spool fsync (may name files of a rolled-back transaction)
        self._unsynced: dict[Path, None] = {}
        self.remove_unreferenced_bodies()

    # -- queueing (inside the caller's transaction)

    def queue(self, notice: Notice) -> OutboxEntry:
        """Store the email for ``notice``; a key queued or sent returns the existing entry."""
        return self.queue_many([notice])[0]

    def queue_many(self, notices: Iterable[Notice]) -> list[OutboxEntry]:
        """Store the emails for ``notices`` with one store operation for the new ones, in order; call
        inside the transaction of the change that caused them.

        A notice without a key gets a fresh one (its kind and a random id): only keyed notices are
        idempotent. A notice whose addresses cannot make a valid email is stored as failed (logged),
        so the caller's transaction still commits; a notice missing a template value raises
        ``RenderError``.
        """
        keys: list[str] = []
        entries: dict[str, OutboxEntry] = {}
        built: dict[str, tuple[OutboxEntry, bytes]] = {}
        for notice in notices:
            key = notice.key or f"{notice.kind}:{secrets.token_hex(8)}"
            if "\t" in key or "\n" in key or "\r" in key:
                raise OutboxError(f"outbox key {key!r} contains a tab or line break")
            keys.append(key)
            if key in entries or key in built:
                continue
            existing = self.store.get(OutboxEntry, key)
            if existing is not None:
                entries[key] = existing
            else:
                built[key] = self._build(notice, key)
        if built:
            private_folder(self.spool)
            for key, (entry, body) in built.items():
                entries[key] = self._spool_body(entry, body)
            self.store.put_many([entries[key] for key in built])
        return [entries[key] for key in keys]

    def compose(self, notice: Notice) -> EmailMessage:
        """The email ``notice`` would become, not stored (previews); bytes() gives the wire form.
        Raises ``RenderError`` or ``ComposeError`` when it cannot be built."""
        rendered = self.renderer.render(notice.kind, notice.values, to=notice.shown_to or notice.to)
        return self._compose(notice, rendered, framing(self.store, self.settings, notice), self.clock.now())

    def _compose(self, notice: Notice, rendered: Rendered, frame: Framing, now: datetime) -> EmailMessage:
        return compose(notice, rendered, self.settings, frame, now=now)

    def requeue(self, entries: Iterable[OutboxEntry]) -> list[OutboxEntry]:
        """Queue failed (or deferred) entries again, due now, attempts counted afresh; call inside a
        transaction. An entry whose message is no longer stored (sent, or never buildable) cannot be
        sent again: ``OutboxError`` names it and nothing is changed."""
        now = self.clock.now()
        chosen = list(entries)
        unsendable = [e.key for e in chosen if not self._body_path(e).is_file()]
        if unsendable:
            raise OutboxError(
                f"cannot send again {', '.join(unsendable[:3])}"
                + (f" and {len(unsendable) - 3} more" if len(unsendable) > 3 else "")
                + ": the message is no longer stored (already sent, or it could not be built)"
            )
        again = [replace(e, status=QUEUED, attempts=0, next_attempt_at=now) for e in chosen]
        self.store.update_many(again)
        return again

    def _build(self, notice: Notice, key: str) -> tuple[OutboxEntry, bytes]:
        """The entry for ``notice`` and its message (b"" when it cannot be built: the entry says
        why)."""
        now = self.clock.now()
        rendered = self.renderer.render(notice.kind, notice.values, to=notice.shown_to or notice.to)
        frame = framing(self.store, self.settings, notice)
        entry = OutboxEntry(
            key=key,
            kind=notice.kind,
            envelope_from=self.settings.envelope_from,
            recipients=list(notice.to),
            message_id=frame.message_id,
            queued_at=now,
            next_attempt_at=now,
            round_id=notice.round_id,
            group_id=notice.group_id,
        )
        try:
            recipients = normalise_recipients(notice.kind, notice.to)
            body = outgoing_bytes(notice, rendered, self.settings, frame, now=now)
            body.decode("ascii")  # 7-bit, as SMTP without SMTPUTF8 needs
        except (ComposeError, UnicodeDecodeError) as exc:
            if isinstance(exc, ReadBackError):
                log.error("outbox %s: BUG, please report it; recorded as failed: %s", key, exc)
            else:
                log.warning("outbox %s: not sendable, recorded as failed: %s", key, exc)
            failed = replace(entry, status=FAILED, last_error=str(exc), next_attempt_at=None)
            return failed, b""
        entry = replace(entry, recipients=recipients)
        if len(recipients) == 1:
            # VERP: a bounce returned to this address names this message and its one recipient,
            # which a forged report sent to the programme address cannot (inbox/bounce_origin.py).
            token = new_token_value()
            entry = replace(entry, return_token=token, envelope_from=return_path(entry.envelope_from, token))
        return entry, body

    # -- bodies in the spool folder

    def _spool_body(self, entry: OutboxEntry, body: bytes) -> OutboxEntry:
        """Write ``body`` to the entry's spool file (inside the store transaction that records it)."""
        if not body:
            return entry
        path = self.spool / body_file_name(entry.key)
        write_private(path, body)
        self._unsynced[path] = None
        self.store.before_commit(self._sync_spool)
        return replace(entry, body_file=str(path))

    def _sync_spool(self) -> None:
        """Make the new body files and their names durable: run just before the store commits."""
        paths, self._unsynced = self._unsynced, {}
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # written by a rolled-back transaction, since removed as unreferenced
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if paths:
            fsync_directory(self.spool)

    def _body_path(self, entry: OutboxEntry) -> Path:
        # By name in our spool, so a moved data folder keeps its queued messages.
        return self.spool / Path(entry.body_file or ".missing").name

    def _read_body(self, entry: OutboxEntry) -> bytes | None:
        if not entry.body_file:
            return None
        try:
            # plain os calls: this runs once per message sent
            with open(os.path.join(self.spool, os.path.basename(entry.body_file)), "rb", 0) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def remove_unreferenced_bodies(self) -> int:
        """Delete the spool files no outbox entry refers to; returns how many.

        Inside a transaction nothing is deleted: what the transaction changed may still be rolled back.
        """
        if self.store.in_transaction:
            return 0
        try:
            names = os.listdir(self.spool)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            if BODY_FILE.fullmatch(name) and not self.store.count(OutboxEntry, "body_name", name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.spool, name))
                removed += 1
        if removed:
            # Routine: every fold deletes the files of the messages it marked sent.
            log.debug(
                "outbox: deleted %d message file(s) no longer needed (sent, cancelled or rolled back)",
                removed,
            )
        return removed

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
        """Apply the journal to the store in one transaction, then empty it and delete the bodies of
        the messages it marked sent. Call outside any transaction (what it commits must stay
        committed before the journal and the bodies go)."""
        if self.store.in_transaction:
            raise OutboxError("fold_journal inside a store transaction: call it outside one")
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
                self._keep_refusals(records.values())
                self._remember_sends(updated)
        if self.journal.exists() and self.journal.stat().st_size:
            with open(self.journal, "wb") as f:
                f.flush()
                os.fsync(f.fileno())
        self.remove_unreferenced_bodies()

    def _keep_refusals(self, records: Iterable[JournalRecord]) -> None:
        """Store the folded refusals until ``take_refusals`` counts them: the journal is emptied after
        this fold, and a crash before the counting must not lose them."""
        kept = dict(self.store.get_meta(UNCOUNTED_REFUSALS_META) or {})
        new = {f"{r.key}#{r.attempts}": [list(pair) for pair in r.refused] for r in records if r.refused}
        if new:
            self.store.set_meta(UNCOUNTED_REFUSALS_META, {**kept, **new})

    def take_refusals(self) -> list[tuple[str, str]]:
        """The permanent refusals not yet counted, as (address, reason), and forget them: call it in
        the transaction that counts them, so that they are counted once, also after a crash."""
        if not self.store.in_transaction:
            raise OutboxError(
                "take_refusals outside a store transaction: call it in the one that counts them"
            )
        kept = self.store.get_meta(UNCOUNTED_REFUSALS_META) or {}
        if kept:
            self.store.set_meta(UNCOUNTED_REFUSALS_META, {})
        return [(str(address), str(reason)) for pairs in kept.values() for address, reason in pairs]

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
                log.warning("outbox journal %s line %d unreadable (%s); ignored", self.journal, number, exc)
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
                    log.info("outbox: stopped on request, %d message(s) left for later", report.held)
                    break
                body = self._read_body(entry)
                if body is None:
                    journal.append(self._record_missing_body(entry, report).line())
                    bar.update(1)
                    continue
                try:
                    result = sender.send(
                        entry.envelope_from,
                        entry.recipients,
                        body,
                        before_commit=journal.wait_durable,
                    )
                except (SmtpUnavailable, Throttled) as exc:
                    report.error = str(exc)
                    report.unavailable = isinstance(exc, SmtpUnavailable)
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

    def _record_missing_body(self, entry: OutboxEntry, report: DeliveryReport) -> JournalRecord:
        report.failed += 1
        reason = (
            f"its message file {self._body_path(entry).name} is missing from {self.spool}"
            if entry.body_file
            else "no message is stored for it"
        )
        log.warning("outbox %s: failed: %s", entry.key, reason)
        return JournalRecord(entry.key, FAILED, self.clock.now(), entry.attempts, reason)

    def _record_for(self, entry: OutboxEntry, result: SendResult, report: DeliveryReport) -> JournalRecord:
        now = self.clock.now()
        attempts = entry.attempts + 1
        refused = list(result.bounced)  # carried by the journal line: counted after a crash too
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
            report.bounces.extend(refused)
            return JournalRecord(entry.key, SENT, now, attempts, bounced_note, refused=tuple(refused))
        if result.status == DEFERRED and attempts < self.max_attempts:
            report.deferred += 1
            delay = min(self.backoff_base * 2 ** (attempts - 1), self.backoff_max)
            # Greylisting and busy servers say "later" routinely; giving up (below) is the fault.
            log.info(
                "outbox %s: the server said try again later (attempt %d), next try in %s: %s",
                entry.key,
                attempts,
                delay,
                result.reason,
            )
            report.bounces.extend(refused)
            return JournalRecord(
                entry.key,
                DEFERRED,
                now,
                attempts,
                result.reason,
                now + delay,
                result.deferred,
                tuple(refused),
            )
        report.failed += 1
        if result.status == DEFERRED:
            # Temporary failures for days: treat as permanent for these recipients.
            reason = f"gave up after {attempts} attempts: {result.reason}"
            refused.extend((address, reason) for address in result.deferred)
        else:
            reason = bounced_note or result.reason
        report.bounces.extend(refused)
        log.warning("outbox %s: failed: %s", entry.key, reason)
        return JournalRecord(entry.key, FAILED, now, attempts, reason, refused=tuple(refused))


def body_file_name(key: str) -> str:
    """The spool file name of a key's message (a hash: keys may hold any character)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".eml"


BODY_FILE = re.compile(r"[0-9a-f]{32}\.eml")


def _flat(text: str) -> str:
    return " ".join(str(text).split())
