"""Maildir files: their unique names, the delivery order they sort in, and writing one safely.

A unique name is ``<seconds>.M<microseconds>P<pid>R<random>.<host>`` (the Maildir convention, as
Dovecot writes it): seconds first, then microseconds after "M", the order ``delivered`` sorts by.
A name without a time (written by another program) sorts by its file's modification time.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

SUBDIRS = ("tmp", "new", "cur")
_NAME_TIME = re.compile(r"^(\d+)\.([^.]*)")
_MICROS = re.compile(r"M(\d{1,6})")


def unique_name(now_ns: int, host: str) -> str:
    """A Maildir file name for a delivery at ``now_ns`` (epoch nanoseconds) on ``host``."""
    seconds, micros = divmod(now_ns // 1000, 1_000_000)
    return f"{seconds}.M{micros:06d}P{os.getpid()}R{secrets.token_hex(4)}.{_safe_host(host)}"


def _safe_host(host: str) -> str:
    # The convention's escapes for the two characters a host part may not hold.
    return host.replace("/", r"\057").replace(":", r"\072")


def delivery_order(key: str, mtime_ns: int) -> tuple[int, int, str]:
    """Sort key: delivery time in microseconds from the unique name, else the file's mtime."""
    match = _NAME_TIME.match(key)
    if match:
        micros = _MICROS.search(match.group(2))
        usec = int(micros.group(1)) if micros else 0
        return (int(match.group(1)) * 1_000_000 + usec, mtime_ns, key)
    return (mtime_ns // 1000, mtime_ns, key)


@dataclass(frozen=True)
class MaildirFile:
    key: str  # the unique name, without the ":2,<flags>" info part that files in cur/ carry
    path: Path
    order: tuple[int, int, str]


def delivered(path: Path, *, colon: str = ":", missing_ok: bool = False) -> list[MaildirFile]:
    """The messages in new/ and cur/ of a Maildir, oldest delivery first.

    OSError when a folder cannot be listed (``missing_ok``: a missing one is empty). A file moved
    away while listing is left out.
    """
    files: list[MaildirFile] = []
    for sub in ("new", "cur"):
        try:
            with os.scandir(Path(path) / sub) as listing:
                for item in listing:
                    if item.name.startswith(".") or not item.is_file():
                        continue
                    key = item.name.split(colon, 1)[0]
                    try:
                        mtime_ns = item.stat().st_mtime_ns
                    except FileNotFoundError:
                        continue
                    files.append(MaildirFile(key, Path(item.path), delivery_order(key, mtime_ns)))
        except FileNotFoundError:
            if not missing_ok:
                raise
    files.sort(key=lambda f: f.order)
    return files


class MaildirWriter:
    """Writes messages into a standard Maildir with the tmp/ -> new/ protocol.

    A message is first written and fsync'd in tmp/ (`prepare`), then renamed into new/
    (`commit`): a reader never sees a partial file, and a committed file survives a crash.
    """

    def __init__(self, path: Path, host: str | None = None) -> None:
        self.path = Path(path)
        self._host = host or socket.gethostname()

    def ensure_exists(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)  # mail is personal data: owner only
        for sub in SUBDIRS:
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def prepare(self, data: bytes) -> Path:
        """Write the message to tmp/ and fsync it; OSError (disk full...) leaves no file."""
        self.ensure_exists()
        # The wall clock, not an injected one: the name orders deliveries as they happen.
        tmp = self.path / "tmp" / unique_name(time.time_ns(), self._host)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def commit(self, tmp: Path) -> Path:
        """Move a prepared message into new/, where readers find it, and make the rename durable."""
        final = self.path / "new" / tmp.name
        os.rename(tmp, final)
        fsync_directory(self.path / "new")
        return final

    def discard(self, tmp: Path) -> None:
        tmp.unlink(missing_ok=True)

    def deliver(self, data: bytes) -> Path:
        return self.commit(self.prepare(data))


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
