"""The inbound processor: one raw message in, the store changed and the notices to send out.

Every inbound path (IMAP, Maildir, LMTP) ends in ``Processor.process(raw)``, called inside the
caller's store transaction, so that applying a message, remembering it (dedup) and queueing its
answers commit together or not at all. A message that makes the processor fail is counted by
``record_failure`` and, after ``attempts_before_quarantine`` failures, moved aside for good: one
bad message never blocks the others and is never retried forever.

Safety nets that live here rather than in ``apply``: the size limit (a huge message is not parsed),
dedup by message key, and the daily cap on automatic replies per recipient.

``process_source`` (a poll of IMAP or Maildir) applies many messages per transaction, moves them
together after the commit, and in a large poll has worker processes read (parse, classify) the
messages ahead of the processor; see its docstring for what a failing message costs.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import multiprocessing
import os
import re
import signal
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from inbox.apply import Applied, apply_bounce, apply_message
from inbox.classify import Classification, Kind, classify
from inbox.grammar import read_command
from inbox.parse import ParsedMessage, message_key, parse_message
from inbox.settings import InboxSettings
from inbox.sources.base import Incoming, Source
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
# Messages applied per store transaction by process_source. A commit re-encodes every table the
# transaction changed (members, tokens, outbox, processed...: megabytes for a large programme), so
# a large poll commits once per thousand messages rather than per message; the byte budget keeps a
# batch of huge messages from holding gigabytes in memory.
BATCH_SIZE = 1000
BATCH_BYTES = 32 * 1024 * 1024
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


@dataclass(frozen=True)
class Reading:
    """What a message is, from its bytes alone (no store): parsed, keyed and, when worked out
    ahead (see ReadAhead), classified. Pure, so any process can work it out."""

    parsed: ParsedMessage
    key: str
    too_large: bool
    # None: left to the processor. From another process it comes without its command (a
    # Command does not pickle); the processor reads that again from the parsed text.
    classification: Classification | None = None


def read_message(raw: bytes, max_message_bytes: int) -> Reading:
    """Parse and key a message (a huge one by its headers only)."""
    too_large = len(raw) > max_message_bytes
    parsed = parse_message(_header_block(raw) if too_large else raw)
    return Reading(parsed, message_key(raw, parsed), too_large)


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
            reading = read_message(raw, self.settings.max_message_bytes)
        parsed, key, too_large = reading.parsed, reading.key, reading.too_large
        seen = self.store.get(ProcessedMessage, key)
        if seen is not None and seen.status == QUARANTINED:
            return ProcessResult(QUARANTINED, [], f"quarantined earlier: {seen.summary or key}")
        if seen is not None and seen.status != FAILED:
            return ProcessResult(DUPLICATE, [], f"duplicate of a {seen.status} message: {seen.summary}")
        if too_large:
            limit = self.settings.max_message_bytes
            log.warning("message of %d bytes ignored (limit %d)", len(raw), limit)
            kind, command = "too_large", None
            applied = Applied(action=f"{len(raw)} bytes, over the limit: not read", changed=False)
        else:
            kind, command, applied = self._apply(raw, reading, now)
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

    def _apply(self, raw: bytes, reading: Reading, now: datetime) -> tuple[str, str | None, Applied]:
        parsed = reading.parsed
        classification = reading.classification or classify(
            raw, parsed, own_addresses=self.settings.own_addresses
        )
        kind = str(classification.kind.value)
        if classification.kind is Kind.BOUNCE:
            return kind, None, apply_bounce(self.store, self.settings, now, classification)
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
            today.changed = True
            kept.append(notice)
        if not self._batching:
            self._save_day_counts()
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
    *,
    batch_size: int = BATCH_SIZE,
    read_ahead: ReadAhead | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PollReport:
    """One poll of ``source``. Messages are applied ``batch_size`` at a time, each batch with its
    notices in ONE store transaction (one durable write), then moved out of the way together. In a
    large poll they are read (parsed, classified) ahead by ``read_ahead`` in worker processes.
    Once ``should_stop()`` says so, the batch in hand is finished and no other message is started
    (those read ahead stay in the source for the next poll).

    A message that fails makes its batch roll back; the messages before it are applied again
    together, it is retried alone (counted and left for the next poll if it fails again, until it
    has failed often enough to be quarantined), and the rest go on as a new batch: one bad message
    never holds up the others, and costs a few writes, not one per message of its batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    ahead = read_ahead or ReadAhead()
    poll = _Poll(source, store, processor, queue_notices, log)
    batch: list[_Item] = []
    size = 0
    readings = ahead.readings(source.fetch_new(), processor.settings)
    try:
        for incoming, reading in readings:
            if should_stop is not None and should_stop():
                break
            batch.append(_Item(incoming, reading))
            size += len(incoming.raw)
            if len(batch) >= batch_size or size >= BATCH_BYTES:
                poll.run_batch(batch)
                batch, size = [], 0
        if batch:
            poll.run_batch(batch)
    finally:
        readings.close()  # stops the worker processes, if any
    return poll.report


def mark_all_processed(source: Source, refs: list[str]) -> None:
    """Move these messages out of the way, in one operation when the source offers one
    (``mark_processed_many``), else one by one. Call after the transaction that applied them."""
    if not refs:
        return
    many = getattr(source, "mark_processed_many", None)
    if many is not None:
        many(refs)
        return
    for ref in refs:
        source.mark_processed(ref)


# -- reading ahead in worker processes


def read_chunk(
    raws: list[bytes], max_message_bytes: int, own_addresses: frozenset[str]
) -> list[Reading | None]:
    """Read and classify messages (in a worker process). None for a message whose reading failed:
    the processor reads it again itself, and meets the same failure where it always did."""
    readings: list[Reading | None] = []
    for raw in raws:
        try:
            reading = read_message(raw, max_message_bytes)
            if not reading.too_large:
                found = classify(raw, reading.parsed, own_addresses=own_addresses)
                reading = replace(reading, classification=replace(found, command=None))
        except Exception:
            reading = None
        readings.append(reading)
    return readings


@dataclass(frozen=True)
class ReadAhead:
    """Reads messages (parse, key, classify: two thirds of the work, and none of it touches the
    store) in worker processes, ahead of the processor, when a poll is large enough to pay for
    starting them and the machine has a core to spare. Results come back in order; a chunk the
    workers could not read (a worker killed, a result that would not pickle) is read in-process.

    ``workers=0`` reads everything in-process.
    """

    # A smaller poll is read in-process: a worker takes ~0.3 s to start, and reading ahead saves
    # about half a millisecond per message.
    min_messages: int = 1000
    chunk: int = 50  # messages per task
    ahead_messages: int = 1500  # how far the workers may get ahead of the processor...
    ahead_bytes: int = 64 * 1024 * 1024  # ...and how much mail that may hold in memory
    workers: int | None = None  # None: one per spare core, at most 4
    # Read in-process a chunk the workers have not started on when it is needed, rather than wait
    steal: bool = True
    reader: Callable[[list[bytes], int, frozenset[str]], list[Reading | None]] = read_chunk

    def readings(
        self, incomings: Iterable[Incoming], settings: InboxSettings
    ) -> Generator[tuple[Incoming, Reading | None], None, None]:
        """Each message with its reading (None: not read ahead), in the source's order."""
        messages = iter(incomings)
        workers = self._worker_count()
        head = list(itertools.islice(messages, self.min_messages)) if workers > 0 else []
        if workers < 1 or len(head) < self.min_messages:
            for incoming in itertools.chain(head, messages):
                yield incoming, None
            return
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_interrupts,
        )
        try:
            yield from self._through(pool, itertools.chain(head, messages), settings)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _through(
        self, pool: ProcessPoolExecutor, messages: Iterator[Incoming], settings: InboxSettings
    ) -> Iterator[tuple[Incoming, Reading | None]]:
        workers = _Workers(pool, self.reader, settings, steal=self.steal)
        in_flight: deque[tuple[list[Incoming], Future[list[Reading | None]] | None]] = deque()
        ahead_messages = ahead_bytes = 0
        exhausted = False
        while True:
            # Keep the workers supplied up to the limits, then hand on the oldest chunk.
            while not exhausted and (ahead_messages < self.ahead_messages and ahead_bytes < self.ahead_bytes):
                chunk = list(itertools.islice(messages, self.chunk))
                if not chunk:
                    exhausted = True
                    break
                in_flight.append((chunk, workers.submit(chunk)))
                ahead_messages += len(chunk)
                ahead_bytes += sum(len(incoming.raw) for incoming in chunk)
            if not in_flight:
                return
            done, future = in_flight.popleft()
            ahead_messages -= len(done)
            ahead_bytes -= sum(len(incoming.raw) for incoming in done)
            yield from zip(done, workers.collect(future, len(done)), strict=True)

    def _worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        return max(0, min(cores - 1, 4))


class _Workers:
    """The pool of one poll. Once it breaks (a worker killed), the rest is read in-process."""

    def __init__(
        self,
        pool: ProcessPoolExecutor,
        reader: Callable[[list[bytes], int, frozenset[str]], list[Reading | None]],
        settings: InboxSettings,
        *,
        steal: bool,
    ) -> None:
        self._pool = pool
        self._reader = reader
        self._settings = settings
        self._steal = steal
        self._broken = False
        self._started = False  # a result came back: the workers are up

    def submit(self, chunk: list[Incoming]) -> Future[list[Reading | None]] | None:
        if self._broken:
            return None
        try:
            return self._pool.submit(
                self._reader,
                [incoming.raw for incoming in chunk],
                self._settings.max_message_bytes,
                self._settings.own_addresses,
            )
        except Exception as exc:  # BrokenProcessPool: a worker died
            self._give_up(exc)
            return None

    def collect(self, future: Future[list[Reading | None]] | None, count: int) -> list[Reading | None]:
        """The readings of a chunk; all None (read in-process) when the workers failed, or had not
        started on it yet: the processor then reads it itself rather than wait (while the workers
        start, or when they fall behind)."""
        if future is not None and self._steal and not future.done():
            # Until the workers are up (a worker takes ~0.3 s to start) the processor does not
            # wait for them; after that, only for a chunk they have already started.
            if future.cancel() or not self._started:
                return [None] * count
        if future is not None and not self._broken:
            try:
                readings = future.result()
            except BrokenProcessPool as exc:
                self._give_up(exc)
            except Exception as exc:  # the reader failed, or its result would not pickle
                log.warning("a worker could not read %d messages (%s)", count, describe_error(exc))
            else:
                self._started = True
                if len(readings) == count:
                    return readings
        return [None] * count

    def _give_up(self, exc: BaseException) -> None:
        if not self._broken:
            self._broken = True
            log.warning("reading ahead stopped (%s); reading in-process", describe_error(exc))


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the service decides what stops, not its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- applying messages in batches


@dataclass(frozen=True)
class _Item:
    incoming: Incoming
    reading: Reading | None

    @property
    def ref(self) -> str:
        return self.incoming.ref


class _Failed(Exception):
    """Processing the message at ``index`` of a batch raised ``error`` (the batch rolled back)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"message {index} of the batch failed: {error}")
        self.index = index
        self.error = error


@dataclass
class _Poll:
    source: Source
    store: Store
    processor: Processor
    queue_notices: Callable[[list[Notice]], None]
    log: logging.Logger
    report: PollReport = field(default_factory=PollReport)

    def run_batch(self, batch: list[_Item]) -> None:
        rest = batch
        while rest:
            try:
                results = self._apply_together(rest)
            except _Failed as failed:
                bad = failed.index
            except Exception:  # the commit itself failed: nothing is known to be good
                for item in rest:
                    self._run_alone(item)
                return
            else:
                self._finish(rest, results)
                return
            if bad:
                self._run_prefix(rest[:bad])
            self._run_alone(rest[bad])
            rest = rest[bad + 1 :]

    def _apply_together(self, batch: list[_Item]) -> list[ProcessResult]:
        """Apply every message of ``batch`` and queue all their notices in one transaction.

        The notices are queued once, at the end: a queue that is not part of the transaction (a
        list, a test's recorder) then never holds notices of a batch that rolled back. A failure
        to queue is nobody's in particular: the caller tries the messages one at a time."""
        results: list[ProcessResult] = []
        notices: list[Notice] = []
        with self.store.transaction(), self.processor.batch():
            for index, item in enumerate(batch):
                try:
                    result = self._process(item)
                except Exception as exc:
                    raise _Failed(index, exc) from exc
                results.append(result)
                notices.extend(result.notices)
            self.queue_notices(notices)
        return results

    def _run_prefix(self, batch: list[_Item]) -> None:
        """The messages before a failing one: they went through once, so together again."""
        try:
            results = self._apply_together(batch)
        except Exception:  # not the same outcome twice (e.g. a flaky disk): one at a time
            for item in batch:
                self._run_alone(item)
            return
        self._finish(batch, results)

    def _run_alone(self, item: _Item) -> None:
        try:
            with self.store.transaction():
                result = self._process(item)
                self.queue_notices(result.notices)
        except Exception as exc:
            self._record_failure(item, exc)
            return
        self._finish([item], [result])

    def _process(self, item: _Item) -> ProcessResult:
        if item.reading is None:  # the plain call, as a Processor subclass may define it
            return self.processor.process(item.incoming.raw)
        return self.processor.process(item.incoming.raw, item.reading)

    def _record_failure(self, item: _Item, exc: Exception) -> None:
        with self.store.transaction():
            quarantine = self.processor.record_failure(item.incoming.raw, exc)
        self.log.error(
            "message %s failed%s: %s",
            item.ref,
            ", moved to quarantine" if quarantine else "; will retry",
            describe_error(exc),
        )
        self.log.debug("traceback of the failure of message %s", item.ref, exc_info=exc)
        if quarantine:
            self.source.quarantine(item.ref)
            self.report.quarantined += 1
        else:
            self.report.failed += 1

    def _finish(self, batch: list[_Item], results: list[ProcessResult]) -> None:
        """After the commit: log each message, then move them (quarantined ones aside)."""
        done: list[str] = []
        for item, result in zip(batch, results, strict=True):
            self.log.info("message %s: %s", item.ref, result.summary)
            if result.status == QUARANTINED:
                self.source.quarantine(item.ref)
                self.report.quarantined += 1
                continue
            done.append(item.ref)
            if result.status == APPLIED:
                self.report.applied += 1
            elif result.status == DUPLICATE:
                self.report.duplicates += 1
            else:
                self.report.ignored += 1
        mark_all_processed(self.source, done)


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
