"""Bench: sending 10,000 messages through the outbox and SMTP path vs a bare smtplib loop.

Both send the same bytes to the same local aiosmtpd sink (counting mode) over one connection. Ours
queues every message in one store transaction (rendering and building them), then
``deliver_pending`` sends them with a journal line + fsync per message and folds the journal into
the store at the start and the end. The bare loop is ``smtplib.SMTP.sendmail`` in a loop, nothing
else.

Prints ONE JSON line:
  messages        how many messages each side sent
  seconds         deliver_pending (our sending path, journal and folds included)
  bare_seconds    the bare smtplib loop: the faster of two runs, one before and one after ours
  ratio           our rate / bare rate (= bare_seconds / seconds); target >= 0.5
  queue_seconds   rendering, building and storing the messages in one transaction
                  (not part of `seconds`)
  total_ratio     bare_seconds / (queue_seconds + seconds): the whole pipeline against sending alone

Run: .venv/bin/python bench/send.py [--messages 10000]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from mailkit.servers import SmtpServer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mailer.outbox import Outbox  # noqa: E402
from mailer.render import Renderer  # noqa: E402
from mailer.settings import MailSettings, make_list_id  # noqa: E402
from mailer.smtp import SmtpSender  # noqa: E402
from matcher.clock import SystemClock  # noqa: E402
from matcher.model import Notice  # noqa: E402
from matcher.store import Store  # noqa: E402
from tests.servers import SmtpSink  # noqa: E402

ORGS = ("Northshire Council", "Southtown NHS Trust", "Eastbury Police", "Westford Fire and Rescue")


def intro_notices(count: int) -> list[Notice]:
    """Pair introductions, each to two members: what a round sends."""
    notices = []
    for n in range(count):
        members = [
            {
                "name": f"Member {2 * n + k}",
                "org": ORGS[(n + k) % len(ORGS)],
                "about": "Works on digital services and likes talking about how teams share data. " * 2,
                "address": f"member{2 * n + k}@example.org",
            }
            for k in range(2)
        ]
        addresses = [m["address"] for m in members]
        notices.append(
            Notice(
                "intro",
                addresses,
                {
                    "round_id": "2026-12",
                    "members": members,
                    "host": members[0]["name"],
                    "meeting_week_start": date(2026, 12, 7),
                    "meeting_week_end": date(2026, 12, 13),
                    "followup_on": date(2026, 12, 14),
                },
                key=f"intro:2026-12:{n + 1}",
            )
        )
    return notices


def bare_loop(sink: SmtpSink, messages: list[tuple[str, list[str], bytes]]) -> float:
    before = sink.count
    start = time.perf_counter()
    conn = smtplib.SMTP("127.0.0.1", sink.port, timeout=30)
    for envelope_from, recipients, raw in messages:
        conn.sendmail(envelope_from, recipients, raw)
    conn.quit()
    seconds = time.perf_counter() - start
    if sink.count - before != len(messages):
        raise SystemExit(f"the bare loop delivered {sink.count - before} of {len(messages)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    count = args.messages

    sink = SmtpSink(store=False).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
            directory = Path(tmp)
            smtp = SmtpServer(
                per_minute=0, per_day=0, host="127.0.0.1", port=sink.port, security="none", timeout=30.0
            )
            settings = MailSettings(
                programme_name="UnMentoring",
                programme_address="unmentoring@example.org",
                organisers=["organiser@example.org"],
                list_id=make_list_id("UnMentoring", "unmentoring@example.org"),
                smtp=smtp,
            )
            clock = SystemClock()
            notices = intro_notices(count)
            with Store.open(directory / "unmentoring.json") as store:
                outbox = Outbox(store, clock, settings, Renderer(settings), directory / "outbox.journal")

                start = time.perf_counter()
                with store.transaction():
                    outbox.queue_many(notices)
                queue_seconds = time.perf_counter() - start

                # The same bytes for the bare loop, taken before delivery drops the stored bodies.
                same_bytes = [
                    (e.envelope_from, e.recipients, e.raw.encode("ascii")) for e in outbox.pending()
                ]
                size = sum(len(raw) for _, _, raw in same_bytes) / max(len(same_bytes), 1)

                bare_runs = [bare_loop(sink, same_bytes)]

                before = sink.count
                start = time.perf_counter()
                report = outbox.deliver_pending(SmtpSender(smtp, clock=clock))
                seconds = time.perf_counter() - start
                ours = sink.count - before
                if report.sent != count or ours != count:
                    raise SystemExit(
                        f"our path sent {report.sent} (sink counted {ours}) of {count}: {report}"
                    )

            bare_runs.append(bare_loop(sink, same_bytes))
            bare_seconds = min(bare_runs)
    finally:
        sink.stop()

    print(
        json.dumps(
            {
                "messages": count,
                "seconds": round(seconds, 3),
                "bare_seconds": round(bare_seconds, 3),
                "bare_runs": [round(b, 3) for b in bare_runs],
                "ratio": round(bare_seconds / seconds, 3),
                "queue_seconds": round(queue_seconds, 3),
                "total_ratio": round(bare_seconds / (queue_seconds + seconds), 3),
                "message_bytes": round(size),
            }
        )
    )


if __name__ == "__main__":
    main()
