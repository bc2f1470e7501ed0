"""A throwaway programme for CLI tests: a temp config and data folder, and ways to look at them.

Used by tests/test_cli.py (in-process, click's CliRunner) and tests/test_quickstart.py (the real
`./run`). Nothing here touches the developer's ./data or ./unmentoring.toml: all is temporary.
"""

from __future__ import annotations

import csv
import email
import json
import re
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path

from click.testing import CliRunner, Result

from unmentoring.cli import main

KIND_HEADER = "X-UnMentoring-Kind"
PROGRAMME_ADDRESS = "unmentoring@localhost"
# Files that change on every open of the database, not with the data: the process lock, its pid and
# the rotating backups the store takes of the last good version whenever it opens one.
VOLATILE = re.compile(r"\.(lock|pid|bak\d+)$")


def write_config(path: Path, *, data_dir: Path, sandbox_port: int, extra: str = "") -> Path:
    """An unmentoring.toml that only sets the data folder and the sandbox port (plus `extra`)."""
    path.write_text(
        f'[programme]\ndata_dir = "{data_dir.as_posix()}"\n{extra}\n[sandbox]\nport = {sandbox_port}\n',
        encoding="utf-8",
    )
    return path


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every data file's bytes under `folder` by relative path (lock, pid and backups left out)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not VOLATILE.search(p.name)
    }


def maildir_messages(maildir: Path) -> list[EmailMessage]:
    """The messages in a Maildir's new/ and cur/ (any order); an absent Maildir is empty."""
    found: list[EmailMessage] = []
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for item in sorted(folder.iterdir()):
            if item.is_file() and not item.name.startswith("."):
                message = email.message_from_bytes(item.read_bytes(), policy=policy.default)
                assert isinstance(message, EmailMessage)
                found.append(message)
    return found


def messages_of_kind(maildir: Path, kind: str) -> list[EmailMessage]:
    return [m for m in maildir_messages(maildir) if m.get(KIND_HEADER) == kind]


def wait_for_kind(maildir: Path, kind: str, timeout: float, describe: str = "") -> EmailMessage:
    """Poll a Maildir until a message of `kind` (X-UnMentoring-Kind) arrives, else fail saying
    what is there."""
    deadline = time.monotonic() + timeout
    while True:
        found = messages_of_kind(maildir, kind)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            present = [(m.get(KIND_HEADER), m.get("Subject")) for m in maildir_messages(maildir)]
            raise AssertionError(
                f"no {kind!r} message in {maildir} within {timeout:.0f}s; present: {present}. {describe}"
            )
        time.sleep(0.05)


@dataclass
class CliEnv:
    """One programme's config and data folder, driven through the real click command tree."""

    root: Path
    sandbox_port: int
    runner: CliRunner = field(default_factory=CliRunner)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.config_path = write_config(
            self.root / "unmentoring.toml", data_dir=self.data_dir, sandbox_port=self.sandbox_port
        )

    @property
    def database(self) -> Path:
        return self.data_dir / "unmentoring.json"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    def mailbox(self, address: str) -> Path:
        return self.sandbox_dir / "mailboxes" / address

    def invoke(self, *args: str, input: str | bytes | None = None, config: Path | None = None) -> Result:
        """Run `unmentoring --config <ours> ARGS...` in-process; exceptions become a result."""
        return self.runner.invoke(
            main,
            ["--config", str(config or self.config_path), *args],
            input=input,
            catch_exceptions=True,
        )

    def ok(self, *args: str, input: str | bytes | None = None) -> Result:
        """Invoke and insist on exit code 0, showing everything the command said otherwise."""
        result = self.invoke(*args, input=input)
        assert result.exit_code == 0, describe(result, args)
        return result

    def status(self) -> dict:
        return json.loads(self.ok("status", "--json").stdout)

    def members(self) -> list[dict]:
        return json.loads(self.ok("members", "export", "--format", "json").stdout)

    def outbox(self) -> list[list[str]]:
        """`outbox list` as rows: key, kind, status, attempts, last error."""
        return [line.split("\t") for line in self.ok("outbox", "list").stdout.splitlines() if line]


def describe(result: Result, args: Sequence[str] = ()) -> str:
    """Everything needed to see why a command did what it did, for assertion messages."""
    trace = ""
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))
    return (
        f"unmentoring {' '.join(args)} -> exit {result.exit_code}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{trace}"
    )
