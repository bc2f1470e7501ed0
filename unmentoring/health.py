"""How the service's passes are going, for `status`: when the inbox was last read and mail last sent, and
since when either has been failing, and why.

Kept in a small file beside the database (``health.json``), replaced atomically after each pass by the one
service process: `status` reads it without waiting for a pass, and a pass never rewrites the whole database
just to say that it ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

HEALTH_FILE = "health.json"  # in the data folder


@dataclass(frozen=True)
class Channel:
    """One direction of mail: the inbox (read) or the outbox (sent)."""

    last_ok: datetime | None = None  # inbox: the last complete poll; sending: the last message accepted
    failing_since: datetime | None = None  # the first failure of the current run of failures
    reason: str = ""  # the latest failure, one line

    def succeeded(self, at: datetime | None) -> Channel:
        """Working again; ``at`` None keeps the previous time (nothing was sent, nothing failed)."""
        return Channel(last_ok=at or self.last_ok)

    def failed(self, at: datetime, reason: str) -> Channel:
        return replace(self, failing_since=self.failing_since or at, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_ok": _iso(self.last_ok),
            "failing_since": _iso(self.failing_since),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Channel:
        if not isinstance(raw, dict):
            return cls()
        return cls(_time(raw.get("last_ok")), _time(raw.get("failing_since")), str(raw.get("reason") or ""))


@dataclass(frozen=True)
class Health:
    inbox: Channel = Channel()
    sending: Channel = Channel()

    def to_dict(self) -> dict[str, Any]:
        return {"inbox": self.inbox.to_dict(), "sending": self.sending.to_dict()}

    def lines(self) -> list[str]:
        """For `status`: "inbox: failing since ... (reason); last read ..." and the same for sending."""
        return [
            _line("inbox", self.inbox, "last read"),
            _line("sending", self.sending, "last sent"),
        ]


def health_path(data_dir: Path) -> Path:
    return data_dir / HEALTH_FILE


def load_health(path: Path) -> Health:
    """The recorded health; a missing or unreadable file reads as "nothing known yet" (it is only a note)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Health()
    if not isinstance(raw, dict):
        return Health()
    return Health(Channel.from_dict(raw.get("inbox")), Channel.from_dict(raw.get("sending")))


def save_health(path: Path, health: Health) -> None:
    from matcher.storage import write_atomically

    write_atomically(path, json.dumps(health.to_dict(), indent=2).encode("utf-8"))


def _line(name: str, channel: Channel, done: str) -> str:
    last = f"{done} {_shown(channel.last_ok)}" if channel.last_ok else f"never {done.split()[1]}"
    if channel.failing_since is None:
        return f"{name}: ok, {last}"
    return f"{name}: failing since {_shown(channel.failing_since)} ({channel.reason}); {last}"


def _shown(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M %Z").strip()


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
