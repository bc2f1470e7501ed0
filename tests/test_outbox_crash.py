"""Kill the sending process at a random point: after a restart every message has arrived, and at
most the one
message in flight arrived twice.

The child (this module run with ``python -m``) queues 200 keyed messages in one transaction
(idempotent, so the restarted child queues nothing new) and delivers them through the real outbox
and SMTP path to the sink.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 200


def child_main(directory: Path, port: int) -> None:
    from mailer.outbox import Outbox
    from mailer.render import Renderer
    from mailer.smtp import SmtpSender
    from mailkit.servers import SmtpServer
    from matcher.clock import SystemClock
    from matcher.model import Notice, OutboxEntry
    from matcher.store import Store
    from tests.test_render import make_settings

    smtp = SmtpServer(per_minute=0, per_day=0, host="127.0.0.1", port=port, security="none", timeout=10.0)
    settings = dataclasses.replace(make_settings(), smtp=smtp)
    clock = SystemClock()
    with Store.open(directory / "db.json") as store:
        outbox = Outbox(store, clock, settings, Renderer(settings), directory / "outbox.journal")
        notices = [
            Notice(
                "reminder",
                [f"member{i}@example.org"],
                {"name": f"Member {i}", "partners": ["Someone"], "round_id": "2026-12"},
                key=f"reminder:2026-12:{i}:m{i}",
                message_id=f"crash-{i}@example.org",
            )
            for i in range(MESSAGES)
        ]
        with store.transaction():
            outbox.queue_many(notices)
        report = outbox.deliver_pending(SmtpSender(smtp, clock=clock))
        stored_sent = store.count(OutboxEntry, "status", "sent")
    print(
        json.dumps(
            {
                "sent": report.sent,
                "failed": report.failed,
                "deferred": report.deferred,
                "held": report.held,
                "stored_sent": stored_sent,
            }
        )
    )


def start_child(directory: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_outbox_crash", str(directory), str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("seed", [11, 22, 33, 44])
def test_a_killed_delivery_resumes_without_loss_or_duplicates(tmp_path: Path, smtp_sink, seed: int) -> None:
    kill_after = random.Random(seed).randint(1, 180)
    child = start_child(tmp_path, smtp_sink.port)
    try:
        smtp_sink.wait_for(kill_after, timeout=60)
        child.send_signal(signal.SIGKILL)
    finally:
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr
    arrived_before_restart = smtp_sink.count
    assert kill_after <= arrived_before_restart < MESSAGES

    again = start_child(tmp_path, smtp_sink.port)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])

    ids = Counter(
        email.message_from_bytes(m.raw, policy=email.policy.default)["Message-ID"] for m in smtp_sink.messages
    )
    assert set(ids) == {f"<crash-{i}@example.org>" for i in range(MESSAGES)}
    duplicates = sum(n - 1 for n in ids.values())
    assert duplicates <= 1
    assert smtp_sink.count == MESSAGES + duplicates
    # The restarted run sent exactly what the killed one had not marked.
    assert summary["sent"] == MESSAGES + duplicates - arrived_before_restart
    assert summary["stored_sent"] == MESSAGES and summary["failed"] == summary["held"] == 0
    assert (tmp_path / "outbox.journal").read_bytes() == b""


def test_a_kill_before_any_send_loses_nothing(tmp_path: Path, smtp_sink) -> None:
    """Killed at once (maybe mid-queue): the restarted child still sends every message once."""
    child = start_child(tmp_path, smtp_sink.port)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    arrived = smtp_sink.count
    again = start_child(tmp_path, smtp_sink.port)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    ids = Counter(
        email.message_from_bytes(m.raw, policy=email.policy.default)["Message-ID"] for m in smtp_sink.messages
    )
    assert len(ids) == MESSAGES and sum(n - 1 for n in ids.values()) <= (1 if arrived else 0)


if __name__ == "__main__":
    child_main(Path(sys.argv[1]), int(sys.argv[2]))
