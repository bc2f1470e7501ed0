"""What every inbound mail source offers the processor: new messages, and where they go after."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Incoming:
    ref: str  # source-specific reference (IMAP: "UIDVALIDITY:UID"; Maildir: the key)
    raw: bytes


class SourceError(Exception):
    """A source could not do what was asked; the message says which source and why."""


class Source(Protocol):
    def fetch_new(self) -> Iterator[Incoming]:
        """Messages not yet marked processed or quarantined, oldest first."""

    def mark_processed(self, ref: str) -> None:
        """Move the message out of the way; call AFTER the store transaction that applied it
        committed, so a crash in between makes the message come back rather than vanish."""

    def quarantine(self, ref: str) -> None:
        """Move the message aside (a folder) so it is never retried."""

    def forget(self, address: str) -> int:
        """Delete the processed and quarantined messages that name ``address`` (an erasure); how many."""

    def close(self) -> None:
        """Release connections and files."""
