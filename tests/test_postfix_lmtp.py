"""A real Postfix (Debian's package) on 127.0.0.1 delivering to our LMTP server.

The Postfix instance is private: its own config, queue and log under a temporary directory,
SMTP on a port picked at run time, `virtual_transport = lmtp:inet:127.0.0.1:PORT`. It is
started with `postfix -c DIR start` and stopped by the same command (then by its master's pid).
"""

from __future__ import annotations

import errno
import mailbox
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from inbox.lmtp import LmtpServer, MailServerStartError
from mailkit.maildir import MaildirWriter
from tests.servers import HOST, free_port, wait_until_listening

PROGRAMME = "unmentoring@example.test"
DOMAIN = "example.test"
START_TIMEOUT = 15.0
DELIVERY_TIMEOUT = 60.0  # generous: Postfix retries on its own schedule, slower on a loaded machine
T = TypeVar("T")

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_reject_unlisted_recipient = no
smtpd_peername_lookup = no
biff = no
virtual_mailbox_domains = {domain}
virtual_mailbox_maps =
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
# Nothing leaves the machine: bounces to outside senders end here.
default_transport = error:outbound mail disabled in this test
# Retry deferred mail within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


def poll(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Wait for a condition made true by another process; AssertionError after the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class PrivatePostfix:
    def __init__(self, root: Path, lmtp_port: int) -> None:
        self.root = root
        self.etc = root / "etc"
        self.maillog = root / "maillog"
        self.lmtp_port = lmtp_port
        self.smtp_port = 0
        self._master_pid: int | None = None

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        # Postfix daemons may inherit our stdio; files (not pipes) keep the call from hanging.
        with open(self.root / "postfix-command.out", "ab") as out:
            return subprocess.run(
                ["postfix", "-c", str(self.etc), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=30,
            )

    def start(self) -> None:
        self.etc.mkdir()
        (self.root / "queue").mkdir()
        self.smtp_port = free_port()
        (self.etc / "main.cf").write_text(
            MAIN_CF.format(root=self.root, domain=DOMAIN, lmtp_port=self.lmtp_port)
        )
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=f"{HOST}:{self.smtp_port}"))
        result = self._postfix("start")
        if result.returncode != 0 or not wait_until_listening(
            HOST, self.smtp_port, time.monotonic() + START_TIMEOUT
        ):
            raise AssertionError(f"Postfix did not start (rc {result.returncode}):\n{self.log()}")
        pid_file = self.root / "queue" / "pid" / "master.pid"
        self._master_pid = int(poll(pid_file.read_text, 30, "Postfix's master.pid").strip())

    def stop(self) -> None:
        if self._master_pid is None:
            return
        pid, self._master_pid = self._master_pid, None
        self._postfix("stop")
        try:
            poll(lambda: not _alive(pid), 10, f"Postfix master {pid} to exit")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)  # the master we started, and only it

    def log(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")[-6000:]
        except OSError:
            return "<no maillog>"

    def log_lines(self, queue_id: str) -> list[str]:
        return [line for line in self.log().splitlines() if f" {queue_id}: " in line]

    def send(self, sender: str, recipients: list[str], raw: bytes) -> str:
        """Submit by SMTP; return the queue id Postfix assigned."""
        with smtplib.SMTP(HOST, self.smtp_port, timeout=10) as client:
            client.ehlo("client.test")
            client.mail(sender)
            for rcpt in recipients:
                code, reply = client.rcpt(rcpt)
                assert code == 250, reply
            code, reply = client.data(raw)
        assert code == 250, reply
        match = re.search(rb"queued as ([0-9A-F]+)", reply)
        assert match, reply
        return match.group(1).decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def lmtp_and_postfix() -> Iterator[tuple[LmtpServer, PrivatePostfix]]:
    if shutil.which("postfix") is None:
        pytest.fail(
            "Postfix is not installed. Install Debian's package (the test command does this): "
            "echo 'postfix postfix/main_mailer_type select No configuration' | "
            "debconf-set-selections && apt-get install -y postfix"
        )
    root = Path(tempfile.mkdtemp(prefix="umpfx-"))
    root.chmod(0o755)  # Postfix's daemons run as the postfix user and must reach the queue
    lmtp = None
    for _ in range(5):
        candidate = LmtpServer(root / "spool", PROGRAMME, HOST, free_port())
        try:
            candidate.start()
            lmtp = candidate
            break
        except MailServerStartError:
            continue
    assert lmtp is not None, "the LMTP server could not start"
    postfix = PrivatePostfix(root, lmtp.port)
    try:
        postfix.start()
        yield lmtp, postfix
    finally:
        postfix.stop()
        lmtp.stop()
        shutil.rmtree(root, ignore_errors=True)


def message(message_id: str) -> bytes:
    return (
        f"From: Alice <alice@sender.test>\r\n"
        f"To: {PROGRAMME}\r\n"
        f"Subject: through Postfix\r\n"
        f"Date: Mon, 03 Mar 2025 09:00:00 +0000\r\n"
        f"Message-ID: <{message_id}@sender.test>\r\n"
        f"\r\n"
        f"Hello via Postfix.\r\n"
        f".a dotted line\r\n"
    ).encode()


def spooled_with(lmtp: LmtpServer, message_id: str, expect: int | None = None) -> list[bytes]:
    """The spooled copies of a message ([] until there are `expect` of them, if given)."""
    box = mailbox.Maildir(lmtp.spool, factory=None, create=False)
    marker = f"Message-ID: <{message_id}@sender.test>".encode()
    found = [raw for raw in (box.get_bytes(key) for key in box.keys()) if marker in raw]
    return found if expect is None or len(found) == expect else []


def test_postfix_delivers_the_programmes_mail_and_bounces_the_rest(
    lmtp_and_postfix: tuple[LmtpServer, PrivatePostfix],
) -> None:
    lmtp, postfix = lmtp_and_postfix
    started = time.monotonic()
    raw = message("pf-1")
    recipients = [PROGRAMME, "unmentoring+r-1@example.test", "stranger@example.test"]
    queue_id = postfix.send("alice@sender.test", recipients, raw)
    copies = poll(
        lambda: spooled_with(lmtp, "pf-1", expect=2),
        DELIVERY_TIMEOUT,
        "two copies in the LMTP spool",
    )
    elapsed = time.monotonic() - started
    original = raw.replace(b"\r\n", b"\n")
    for copy in copies:
        head, _, rest = copy.partition(b"\nReceived: from client.test")
        assert rest.split(b"\n", 1)[1].lstrip(b" \t").startswith(b"by postfix.test")
        assert copy.endswith(original)
        assert head.startswith(b"Return-Path: <alice@sender.test>\nDelivered-To: ")
    delivered_to = sorted(c.split(b"\n")[1] for c in copies)
    assert delivered_to == [
        b"Delivered-To: unmentoring+r-1@example.test",
        b"Delivered-To: unmentoring@example.test",
    ]
    bounced = poll(
        lambda: [ln for ln in postfix.log_lines(queue_id) if "status=bounced" in ln],
        DELIVERY_TIMEOUT,
        "Postfix to log the bounce",
    )
    assert "to=<stranger@example.test>" in bounced[0] and "550 5.1.1" in bounced[0]
    print(f"SMTP -> Postfix -> LMTP spool: {elapsed:.3f} s")


def test_a_451_from_the_spool_makes_postfix_retry_until_delivered(
    lmtp_and_postfix: tuple[LmtpServer, PrivatePostfix], monkeypatch: pytest.MonkeyPatch
) -> None:
    lmtp, postfix = lmtp_and_postfix
    real_prepare = MaildirWriter.prepare
    attempts: list[int] = []

    def disk_full_once(self: MaildirWriter, data: bytes) -> Path:
        if b"<pf-2@sender.test>" in data:
            attempts.append(1)
            if len(attempts) == 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_prepare(self, data)

    monkeypatch.setattr(MaildirWriter, "prepare", disk_full_once)
    queue_id = postfix.send("alice@sender.test", [PROGRAMME], message("pf-2"))
    poll(lambda: spooled_with(lmtp, "pf-2"), DELIVERY_TIMEOUT, "the retried delivery")
    # Postfix logs the delivery after our 250, so the spooled file can be there before the log line.
    sent = lambda: any("status=sent" in ln for ln in postfix.log_lines(queue_id))  # noqa: E731
    poll(sent, DELIVERY_TIMEOUT, "Postfix to log the retried delivery")
    lines = postfix.log_lines(queue_id)
    deferred = [ln for ln in lines if "status=deferred" in ln]
    assert deferred and "451 4.3.0" in deferred[0] and "insufficient storage" in deferred[0]
    assert len(attempts) == 2
    assert len(spooled_with(lmtp, "pf-2")) == 1
