"""One pass of the service: read the inbox, run the round steps that are due, deliver the outbox.

`unmentoring tick` runs exactly this once; `unmentoring run` runs its parts on a schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from inbox.apply import count_permanent_bounces
from inbox.poll import mark_all_processed, process_source
from inbox.sources.base import Incoming, Source
from matcher import erasure
from unmentoring.app import App

log = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]


def never() -> bool:
    return False


@dataclass
class TickReport:
    inbox: object = None
    steps: list[str] = field(default_factory=list)
    delivery: object = None


class StoppableSource:
    """A Source that stops fetching once asked to stop; ``process_source``, asked too, finishes and
    commits the batch in hand and starts no other message."""

    def __init__(self, source: Source, should_stop: ShouldStop) -> None:
        self._source = source
        self._should_stop = should_stop

    def fetch_new(self) -> Iterator[Incoming]:
        for incoming in self._source.fetch_new():
            if self._should_stop():
                return
            yield incoming

    def mark_processed(self, ref: str) -> None:
        self._source.mark_processed(ref)

    def mark_processed_many(self, refs: list[str]) -> None:
        mark_all_processed(self._source, refs)

    def quarantine(self, ref: str) -> None:
        self._source.quarantine(ref)

    def forget(self, address: str) -> int:
        return self._source.forget(address)

    def close(self) -> None:
        self._source.close()


def poll_inbox(app: App, source: Source, should_stop: ShouldStop = never):
    report = process_source(
        StoppableSource(source, should_stop),
        app.store,
        app.processor,
        app.outbox.queue_many,
        log,
        should_stop=should_stop,
    )
    return report


def run_cycle(app: App) -> list[str]:
    steps = app.cycle.run_due(app.clock.now())
    for step in steps:
        log.info("step done: %s", step)
    return steps


def deliver_outbox(app: App, *, progress: bool = False, should_stop: ShouldStop = never):
    """Send what is due; a permanent refusal counts as a bounce against that member's address."""
    sender = app.smtp_sender()
    try:
        report = app.outbox.deliver_pending(sender, progress=progress, should_stop=should_stop)
    finally:
        sender.close()
    if report.bounces:
        record_refusals(app, report.bounces)
    return report


def record_refusals(app: App, refused: list[tuple[str, str]]) -> None:
    """A permanent SMTP refusal counts against the address like a bounce message does."""
    for _address, reason in refused:
        log.warning("permanently refused by the mail server: %s", reason)
    with app.store.transaction():
        _, notices = count_permanent_bounces(
            app.store, app.processor.settings, app.clock.now(), [address for address, _ in refused]
        )
        app.outbox.queue_many(notices)


def complete_erasures(app: App, source: Source) -> int:
    """Finish the erasures whose farewell has gone (or that are older than matcher.erasure's window): delete
    the kept mail naming the address, scrub the last records, then replace the database backups (all taken
    before). Each step can be repeated, so a crash anywhere is finished by the next pass. Returns how many
    erasures were completed."""
    done = erasure.ready(app.store, app.clock.now())
    if done:
        removed = sum(source.forget(e.address) for e in done if e.address)
        with app.store.transaction():
            erasure.finish(app.store, done)
        app.outbox.remove_unreferenced_bodies()  # the messages of mail cancelled for them
        log.info("erasure completed for %d address(es): %d kept message(s) deleted", len(done), removed)
    if app.store.get_meta(erasure.ROTATE_BACKUPS_META):
        app.store.replace_backups()  # the new backup still has the flag set: harmless, it names no one
        with app.store.transaction():
            app.store.set_meta(erasure.ROTATE_BACKUPS_META, False)
    return len(done)


def tick(app: App, source: Source | None = None, *, should_stop: ShouldStop = never) -> TickReport:
    """One full pass, in the order that makes a fresh reply count before the round steps run; erasures
    whose farewell went in this pass are completed at its end."""
    report = TickReport()
    owned = source is None
    source = source or app.inbound_source()
    try:
        report.inbox = poll_inbox(app, source, should_stop)
        if should_stop():
            return report
        report.steps = run_cycle(app)
        report.delivery = deliver_outbox(app, should_stop=should_stop)
        complete_erasures(app, source)
    finally:
        if owned:
            source.close()
    return report
