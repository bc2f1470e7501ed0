"""`unmentoring run`: the service as a long-running process, driven by `schedule`.

The daemon holds the service lock for its whole life (a second `run` or `tick` on the same data is refused
with "already running (pid N)"), but opens the database only for each pass, so the organiser's commands
(`status`, `members import`, `round preview`...) work while it runs: they wait for the pass in hand to end.

Each pass reaches the inbox first, before it opens the database, so the waits between reconnection attempts
never hold the organiser's commands up; an inbox that cannot be reached is tried again with growing gaps
(a wrong password must not lock the account) while the rounds and the outbox go on at every pass. After each
pass ``health.json`` records when mail was last read and sent, and since when either has been failing.

SIGTERM or SIGINT sets a flag; the message in hand is finished and committed, nothing new is started, and the
process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import schedule

from inbox.sources.base import SourceError
from matcher.clock import Clock, SystemClock
from matcher.private_files import tighten
from matcher.store import ProcessLock, StoreError, StoreLocked
from unmentoring import service
from unmentoring.app import STORE_WAIT_SECONDS, App, StoreMeta, inbound_source
from unmentoring.config import Config
from unmentoring.health import health_path, load_health, save_health

log = logging.getLogger(__name__)

BACKUP_EVERY_SECONDS = 3600.0
INBOX_CONNECT_ATTEMPTS = 3  # per pass, 1 s and 2 s apart, outside the database lock
INBOX_RETRY_FIRST = 60.0  # seconds before the next pass tries a failing inbox again; doubled each time
INBOX_RETRY_MAX = 900.0


def service_lock(config: Config) -> ProcessLock:
    """Held by `run` and `tick`: one service process per data folder."""
    return ProcessLock(config.data_dir / "unmentoring.run.lock", config.data_dir)


def start_service(config: Config) -> ProcessLock:
    """Take the service lock, then narrow what an older version, a copy or a restore left readable to
    others in the data folder (once per process: it walks every file)."""
    lock = service_lock(config)
    lock.acquire()
    try:
        tighten(config.data_dir, log)
    except BaseException:
        lock.release()
        raise
    return lock


class Passes:
    """Runs jobs against a freshly opened App, sharing one inbound source (and its connection)."""

    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        backoff: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._source_state = StoreMeta("imap")
        # Inside a pass the source does not retry: reconnecting (with its waits) is done by reach_inbox.
        self.source = inbound_source(
            config,
            self._source_state,
            self.clock,
            max_attempts=1,
            connect_attempts=INBOX_CONNECT_ATTEMPTS,
            sleep=sleep,
        )
        self._backoff = backoff
        self._inbox_failures = 0
        self._inbox_retry_at: datetime | None = None
        self._inbox_reason = ""

    def run(self, job: Callable[[App], object]) -> object:
        with App.open(
            self.config, self.clock, wait=STORE_WAIT_SECONDS, backup_every=BACKUP_EVERY_SECONDS
        ) as app:
            self._source_state.bind(app.store)
            return job(app)

    def tick(self, should_stop: service.ShouldStop = service.never) -> service.TickReport:
        """One pass: reach the inbox (outside the database lock), then read, run the steps and send."""
        error = self.reach_inbox()
        report = self.run(
            lambda app: service.tick(app, self.source, should_stop=should_stop, inbox_error=error)
        )
        assert isinstance(report, service.TickReport)
        self._after(report)
        return report

    def reach_inbox(self) -> str:
        """Connect (retrying) unless a failing inbox is not due for another try yet; the error, or ""."""
        now = self.clock.now()
        if self._inbox_retry_at is not None and now < self._inbox_retry_at:
            return f"{self._inbox_reason} (next try at {self._inbox_retry_at:%H:%M:%S %Z})"
        try:
            self.source.connect()
        except SourceError as exc:
            return str(exc)
        return ""

    def _after(self, report: service.TickReport) -> None:
        now = self.clock.now()
        if not report.inbox_error:
            self._inbox_failures, self._inbox_retry_at = 0, None
        elif self._backoff and (self._inbox_retry_at is None or now >= self._inbox_retry_at):
            self._inbox_failures += 1
            self._inbox_reason = report.inbox_error
            wait = min(INBOX_RETRY_FIRST * 2 ** (self._inbox_failures - 1), INBOX_RETRY_MAX)
            self._inbox_retry_at = now + timedelta(seconds=wait)
            log.error("inbox: %s; trying again in %.0f s", report.inbox_error, wait)
        path = health_path(self.config.data_dir)
        save_health(path, service.note_health(load_health(path), report, now))

    def close(self) -> None:
        self.source.close()


def run_forever(passes: Passes, stop: threading.Event, *, poll_seconds: int) -> int:
    scheduler = schedule.Scheduler()
    scheduler.every(poll_seconds).seconds.do(
        _guarded,
        "pass",
        lambda: passes.tick(stop.is_set),
    )
    scheduler.run_all()  # start with a full pass rather than waiting a whole interval
    while not stop.is_set():
        idle = scheduler.idle_seconds
        stop.wait(timeout=max(0.0, idle if idle is not None else poll_seconds))
        if not stop.is_set():
            scheduler.run_pending()
    log.info("stopping: the work in hand is committed")
    return 0


def _guarded(what: str, job: Callable[[], object]) -> None:
    """A failing pass is logged and tried again at the next turn; a damaged database stops the daemon."""
    try:
        job()
    except StoreLocked as exc:
        log.warning("%s skipped: the database stayed busy (%s)", what, exc)
    except StoreError:
        raise
    except Exception:
        log.exception("%s failed; trying again at its next turn", what)


def install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
