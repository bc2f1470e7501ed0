"""A permanent refusal noticed just before a crash still counts as a bounce after the restart, once.

The service sends through the real outbox and SMTP path to the sink, which refuses one member's
address with 550. The process "dies" at the two points between the refusal and its count: before the
journal line that records it is folded into the store, and after the fold but before the count. A
new App on the same data, as a restarted service, counts it once; another pass counts nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.outbox import Outbox
from matcher import members as ops
from matcher.clock import FakeClock
from matcher.members import find_member
from matcher.model import Notice
from tests.servers import SmtpSink
from unmentoring import service
from unmentoring.app import App
from unmentoring.config import Config, Programme, Smtp

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
GONE = "gone@example.org"


class Killed(BaseException):
    """The process ends here: nothing after this point runs."""


def config(base: Path, sink: SmtpSink) -> Config:
    return Config(
        programme=Programme(data_dir="data", organisers=["organiser@example.org"]),
        smtp=Smtp(host=sink.host, port=sink.port, security="none", timeout=10.0, per_minute=0, per_day=0),
        base_dir=base,
    )


def queue_mail_to_a_member(app: App) -> None:
    with app.store.transaction():
        member = ops.start_joining(app.store, GONE, {"name": "Gone"}, NOW)
        ops.activate(app.store, member, NOW)
        app.outbox.queue_many(
            [
                Notice(
                    "goodbye", [GONE], {"name": "Gone"}, key="refused-once", message_id="refused@example.org"
                )
            ]
        )


def bounce_score(app: App) -> int:
    member = find_member(app.store, GONE)
    assert member is not None
    return member.bounce_score


@pytest.mark.parametrize("crash", ["before the fold", "before the count"])
def test_a_refusal_noticed_before_a_crash_is_counted_once_after_restart(
    tmp_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, crash: str
) -> None:
    smtp_sink.fail_recipient(GONE, 550)
    clock = FakeClock(NOW)
    with App.open(config(tmp_path, smtp_sink), clock) as app:
        queue_mail_to_a_member(app)
        if crash == "before the fold":
            folds = 0
            fold = Outbox.fold_journal

            def fold_then_die(outbox: Outbox) -> None:
                nonlocal folds
                folds += 1
                if folds == 2:  # the fold after sending: the refusal is only in the journal
                    raise Killed
                fold(outbox)

            monkeypatch.setattr(Outbox, "fold_journal", fold_then_die)
            with pytest.raises(Killed):
                service.deliver_outbox(app)
            monkeypatch.undo()
            assert (tmp_path / "data" / "outbox.journal").read_bytes().count(b"\n") == 1
        else:
            # Delivered and folded, then killed before service.record_refusals ran.
            report = app.outbox.deliver_pending(app.smtp_sender())
            assert [address for address, _ in report.bounces] == [GONE]
        assert bounce_score(app) == 0

    with App.open(config(tmp_path, smtp_sink), clock) as app:  # the restarted service
        report = service.deliver_outbox(app)
        assert report.attempted == 0  # nothing is sent again
        assert bounce_score(app) == 1
        service.deliver_outbox(app)
        assert bounce_score(app) == 1
    assert smtp_sink.count == 0
