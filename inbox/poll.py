"""One poll of a source (IMAP or Maildir): messages applied many per transaction, then moved together.

See ``process_source`` for what a failing message costs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from inbox.processor import Processor, ProcessResult, describe_error
from inbox.read_ahead import ReadAhead
from inbox.reading import Reading
from inbox.sources.base import Incoming, Source
from matcher.model import MessageStatus, Notice
from matcher.store import Store

# Messages applied per store transaction by process_source. A commit re-encodes every table the
# transaction changed (members, tokens, outbox, processed...: megabytes for a large programme), so
# a large poll commits once per thousand messages rather than per message; the byte budget keeps a
# batch of huge messages from holding gigabytes in memory.
BATCH_SIZE = 1000
BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class PollReport:
    applied: int = 0
    ignored: int = 0
    duplicates: int = 0
    failed: int = 0
    quarantined: int = 0

    def count(self, status: MessageStatus) -> None:
        field_name = "duplicates" if status is MessageStatus.DUPLICATE else status.value
        setattr(self, field_name, getattr(self, field_name) + 1)

    @property
    def total(self) -> int:
        return self.applied + self.ignored + self.duplicates + self.failed + self.quarantined


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
        self.report.count(MessageStatus.QUARANTINED if quarantine else MessageStatus.FAILED)

    def _finish(self, batch: list[_Item], results: list[ProcessResult]) -> None:
        """After the commit: log each message, then move them (quarantined ones aside)."""
        done: list[str] = []
        for item, result in zip(batch, results, strict=True):
            self.log.info("message %s: %s", item.ref, result.summary)
            self.report.count(result.status)
            if result.status is MessageStatus.QUARANTINED:
                self.source.quarantine(item.ref)
            else:
                done.append(item.ref)
        mark_all_processed(self.source, done)
