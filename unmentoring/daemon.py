"""`unmentoring run`: the service as a long-running process, driven by `schedule`.

The daemon holds the service lock for its whole life (a second `run` or `tick` on the same data is refused
with "already running (pid N)"), but opens the database only for each pass, so the organiser's commands
(`status`, `members import`, `round preview`...) work while it runs: they wait for the pass in hand to end.

SIGTERM or SIGINT sets a flag; the message in hand is finished and committed, nothing new is started, and the
process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import schedule

from inbox.sources.base import SourceError
from matcher.clock import Clock, SystemClock
from matcher.private_files import tighten
from matcher.store import ProcessLock, StoreError, StoreLocked
from unmentoring import service
from unmentoring.app import App, StoreMeta, inbound_source
from unmentoring.config import Config

log = logging.getLogger(__name__)

STORE_WAIT_SECONDS = 30.0
BACKUP_EVERY_SECONDS = 3600.0


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

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._source_state = StoreMeta("imap")
        self.source = inbound_source(config, self._source_state, self.clock)

    def run(self, job: Callable[[App], object]) -> object:
        with App.open(
            self.config, self.clock, wait=STORE_WAIT_SECONDS, backup_every=BACKUP_EVERY_SECONDS
        ) as app:
            self._source_state.bind(app.store)
            return job(app)

    def close(self) -> None:
        self.source.close()


def run_forever(passes: Passes, stop: threading.Event, *, poll_seconds: int) -> int:
    scheduler = schedule.Scheduler()
    scheduler.every(poll_seconds).seconds.do(
        _guarded,
        "pass",
        lambda: passes.run(lambda app: service.tick(app, passes.source, should_stop=stop.is_set)),
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
    except SourceError as exc:
        log.error("%s: %s; trying again at the next poll", what, exc)
    except Exception:
        log.exception("%s failed; trying again at its next turn", what)


def install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
