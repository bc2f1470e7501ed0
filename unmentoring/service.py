"""One pass of the service: read the inbox, run the round steps that are due, deliver the outbox.

`unmentoring tick` runs exactly this once; `unmentoring run` runs its parts on a schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from inbox.sources.base import Incoming, Source, SourceError
from unmentoring.health import Health

if TYPE_CHECKING:  # the parts of a pass are imported when one runs: commands that draw nothing start fast
    from inbox.poll import PollReport
    from mailer.outbox import DeliveryReport
    from unmentoring.app import App

log = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]


def never() -> bool:
    return False


@dataclass
class TickReport:
    inbox: PollReport | None = None
    steps: list[str] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    inbox_error: str = ""  # the inbox could not be read (the rest of the pass went on)

    @property
    def sending_error(self) -> str:
        """Why mail could not be sent, when the SMTP server could not be used."""
        return self.delivery.error if self.delivery is not None and self.delivery.unavailable else ""

    def failures(self) -> list[str]:
        """One line per mail server that failed: what `tick` prints on stderr before exiting non-zero."""
        return [error for error in (self.inbox_error, self.sending_error) if error]

    def lines(self) -> list[str]:
        return [
            "inbox: " + (f"not read: {self.inbox_error}" if self.inbox_error else describe_poll(self.inbox)),
            f"steps: {', '.join(self.steps) or 'none due'}",
            "outbox: " + describe_delivery(self.delivery),
        ]


def describe_poll(report: PollReport | None) -> str:
    if report is None:
        return "not read"
    if not report.total:
        return "no new mail"
    counts = [
        ("applied", report.applied),
        ("ignored", report.ignored),
        ("duplicates", report.duplicates),
        ("failed", report.failed),
        ("quarantined", report.quarantined),
    ]
    return ", ".join(f"{n} {what}" for what, n in counts if n)


def describe_delivery(report: DeliveryReport | None) -> str:
    """'3 sent, 1 deferred; 5 left for later: <why>' (never the report's repr)."""
    if report is None:
        return "not run"
    counts = [("sent", report.sent), ("deferred", report.deferred), ("failed", report.failed)]
    text = ", ".join(f"{n} {what}" for what, n in counts if n) or "nothing to send"
    if report.bounces:
        text += f"; {len(report.bounces)} address(es) refused permanently"
    if report.held:
        text += f"; {report.held} left for later: {report.error}"
    return text


def note_health(health: Health, report: TickReport, now: datetime) -> Health:
    """``health`` after a pass: each direction working again, or failing since its first failure."""
    inbox = (
        health.inbox.failed(now, report.inbox_error) if report.inbox_error else health.inbox.succeeded(now)
    )
    if report.sending_error:
        sending = health.sending.failed(now, report.sending_error)
    else:
        sent = report.delivery is not None and report.delivery.sent > 0
        sending = health.sending.succeeded(now if sent else None)
    return Health(inbox, sending)


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
        from inbox.poll import mark_all_processed

        mark_all_processed(self._source, refs)

    def quarantine(self, ref: str) -> None:
        self._source.quarantine(ref)

    def connect(self) -> None:
        self._source.connect()

    def forget(self, address: str) -> int:
        return self._source.forget(address)

    def close(self) -> None:
        self._source.close()


def poll_inbox(app: App, source: Source, should_stop: ShouldStop = never) -> PollReport:
    from inbox.poll import process_source

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


def deliver_outbox(app: App, *, progress: bool = False, should_stop: ShouldStop = never) -> DeliveryReport:
    """Send what is due; a permanent refusal counts as a bounce against that member's address."""
    sender = app.smtp_sender()
    try:
        report = app.outbox.deliver_pending(sender, progress=progress, should_stop=should_stop)
    finally:
        sender.close()
    record_refusals(app)
    return report


def record_refusals(app: App) -> None:
    """A permanent SMTP refusal counts against the address like a bounce message does. The refusals
    come from the store (mailer/outbox.py folds them there from the journal), not from this run's
    report: one noticed just before a crash is counted by the next run, and each is counted once."""
    from inbox.apply import count_permanent_bounces

    with app.store.transaction():
        refused = app.outbox.take_refusals()
        if not refused:
            return
        # The outbox has logged each refusal with its message; here they become bounce counts.
        log.info("%d address(es) refused by the mail server: counted as bounces", len(refused))
        _, notices = count_permanent_bounces(
            app.store, app.processor.settings, app.clock.now(), [address for address, _ in refused]
        )
        app.outbox.queue_many(notices)


def complete_erasures(app: App, source: Source) -> int:
    """Finish the erasures whose farewell has gone (or that are older than matcher.erasure's window): delete
    the kept mail naming the address, scrub the last records, then replace the database backups (all taken
    before). Each step can be repeated, so a crash anywhere is finished by the next pass. Returns how many
    erasures were completed."""
    from matcher import erasure

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


def tick(
    app: App, source: Source | None = None, *, should_stop: ShouldStop = never, inbox_error: str = ""
) -> TickReport:
    """One full pass, in the order that makes a fresh reply count before the round steps run; erasures
    whose farewell went in this pass are completed at its end (they need the inbox, to delete kept mail).

    The inbox failing never stops the rest: the round steps and the outbox do not depend on it, so its
    error is reported and the pass goes on. ``inbox_error`` says that the inbox could not be reached
    before the pass began (the daemon connects first, outside the database lock); it is not read then.
    """
    report = TickReport(inbox_error=inbox_error)
    owned = source is None
    if not inbox_error and source is None:
        source = app.inbound_source()
    try:
        if source is not None and not inbox_error:
            try:
                report.inbox = poll_inbox(app, source, should_stop)
            except SourceError as exc:
                report.inbox_error = str(exc)
                log.error("inbox not read: %s", exc)
        if should_stop():
            return report
        report.steps = run_cycle(app)
        report.delivery = deliver_outbox(app, should_stop=should_stop)
        if source is not None and not report.inbox_error:
            try:
                complete_erasures(app, source)
            except SourceError as exc:  # finished by a later pass
                log.error("erasure not completed, the inbox failed: %s", exc)
    finally:
        if owned and source is not None:
            source.close()
    return report
