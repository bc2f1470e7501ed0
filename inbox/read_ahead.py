"""Reading messages ahead of the processor in worker processes (parse, key, classify: two thirds of the
work of a message, and none of it touches the store)."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from inbox.classify import classify
from inbox.processor import describe_error
from inbox.reading import Reading, read_message
from inbox.settings import InboxSettings
from inbox.sources.base import Incoming

log = logging.getLogger(__name__)


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
                self._settings.limits.max_message_bytes,
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
