"""The README's quick start as a newcomer runs it: `./run`, then mail from an ordinary SMTP client.

`./run` is started from the repository root exactly as the README says, with UNMENTORING_CONFIG
naming a temp config that only moves the data folder and the sandbox port, so the developer's data/
and a developer's running sandbox (port 2525) are left alone.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import IO

from tests.helpers.cli_env import PROGRAMME_ADDRESS, wait_for_kind, write_config
from tests.servers import free_port

REPO = Path(__file__).resolve().parent.parent
# ./run reinstalls .venv first when pyproject.toml changed since the last install, which can take a
# while on a fresh machine; once installed it starts in about a second.
BANNER_TIMEOUT = 240.0
MAIL_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
ALICE = "alice@example.org"


class LineReader:
    """Gathers stdout lines on a thread, so the test can wait for one with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout:.0f}s; stdout so far: {self.lines}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the process closed stdout before {what}: {self.lines}")
            self.lines.append(line)
            if wanted(line):
                return line


def plain_message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage(policy=policy.default)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message.set_content(body)
    return message


def reply_to(original: EmailMessage, sender: str, body: str) -> EmailMessage:
    """What a mail client sends when you press Reply: to Reply-To (else From), threaded."""
    to = original["Reply-To"] or original["From"]
    reply = plain_message(sender, str(to), f"Re: {original['Subject']}", body)
    reply["In-Reply-To"] = original["Message-ID"]
    reply["References"] = " ".join(filter(None, [original.get("References"), original["Message-ID"]]))
    return reply


def send(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.send_message(message)


def log_text(path: Path, limit: int = 6000) -> str:
    """The service's log (stderr), its end only: enough to see why, short enough to read."""
    return path.read_text(encoding="utf-8", errors="replace")[-limit:]


def test_readme_quick_start_join_confirm_welcome(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    config = write_config(tmp_path / "unmentoring.toml", data_dir=data, sandbox_port=port)
    env = {**os.environ, "UNMENTORING_CONFIG": str(config)}
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            ["./run"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
    try:
        reader = LineReader(service.stdout)  # type: ignore[arg-type]
        banner = reader.wait_for(
            lambda line: line.startswith("Sandbox mode:"), BANNER_TIMEOUT, "sandbox banner"
        )
        assert f"127.0.0.1:{port}" in banner
        reader.wait_for(lambda line: "unmentoring running" in line, MAIL_TIMEOUT, "running line")
        assert any(str(data / "sandbox") in line for line in reader.lines), reader.lines

        # A second service on the same data is refused, naming the one that runs.
        second = subprocess.run(
            [str(REPO / ".venv" / "bin" / "unmentoring"), "run"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3, (second.returncode, second.stdout, second.stderr)
        assert f"already running (pid {service.pid})" in second.stderr, second.stderr

        # A newcomer's mail client: "join" to the programme address...
        send(
            port,
            plain_message(
                ALICE,
                PROGRAMME_ADDRESS,
                "join",
                "join\nname: Alice Smith\norg: Leeds City Council\n",
            ),
        )
        mailbox = data / "sandbox" / "mailboxes" / ALICE
        confirmation = wait_for_kind(mailbox, "confirm_join", MAIL_TIMEOUT, log_text(log_path))
        assert ALICE in str(confirmation["To"])

        # ... then Reply, "yes".
        send(port, reply_to(confirmation, ALICE, "yes"))
        welcome = wait_for_kind(mailbox, "welcome", MAIL_TIMEOUT, log_text(log_path))
        assert ALICE in str(welcome["To"])

        # The organiser's commands work while the service runs: it holds the database only per pass.
        status = subprocess.run(
            [str(REPO / ".venv" / "bin" / "unmentoring"), "status", "--json"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["members"]["active"] == 1

        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=STOP_TIMEOUT)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(timeout=STOP_TIMEOUT)
    log = log_text(log_path, limit=1_000_000)
    assert code == 0, log
    assert "received SIGTERM" in log and "stopping" in log, log

    # The service committed what it did: Alice is an active member with her profile.
    exported = subprocess.run(
        [str(REPO / ".venv" / "bin" / "unmentoring"), "members", "export", "--format", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    members = json.loads(exported.stdout)
    assert [(m["address"], m["status"], m["name"], m["org"]) for m in members] == [
        (ALICE, "active", "Alice Smith", "Leeds City Council")
    ]
