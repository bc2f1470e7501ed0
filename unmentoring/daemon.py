"""`unmentoring run`: the service as a long-running process, driven by `schedule`.

SIGTERM or SIGINT sets a flag; the message in hand is finished and committed, nothing new is started, and the
process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import schedule

from inbox.sources.base import Source, SourceError
from unmentoring import service
from unmentoring.app import App

log = logging.getLogger(__name__)

CYCLE_SECONDS = 60


def build_scheduler(app: App, source: Source, stop: threading.Event, poll_seconds: int) -> schedule.Scheduler:
    scheduler = schedule.Scheduler()
    scheduler.every(poll_seconds).seconds.do(
        _guarded, "inbox", lambda: service.poll_inbox(app, source, stop.is_set)
    )
    scheduler.every(CYCLE_SECONDS).seconds.do(_guarded, "round steps", lambda: service.run_cycle(app))
    scheduler.every(poll_seconds).seconds.do(
        _guarded, "outbox", lambda: service.deliver_outbox(app, should_stop=stop.is_set)
    )
    return scheduler


def _guarded(what: str, job: Callable[[], object]) -> None:
    """A failing job is logged and tried again at its next turn; the daemon keeps running."""
    try:
        job()
    except SourceError as exc:
        log.error("%s: %s; trying again at the next poll", what, exc)
    except Exception:
        log.exception("%s failed; trying again at its next turn", what)


def run_forever(app: App, source: Source, stop: threading.Event, *, poll_seconds: int) -> int:
    scheduler = build_scheduler(app, source, stop, poll_seconds)
    scheduler.run_all()  # start with a full pass rather than waiting a whole interval
    while not stop.is_set():
        idle = scheduler.idle_seconds
        stop.wait(timeout=max(0.0, min(idle if idle is not None else poll_seconds, poll_seconds)))
        if not stop.is_set():
            scheduler.run_pending()
    log.info("stopping: the work in hand is committed")
    return 0


def install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
