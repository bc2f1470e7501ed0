"""The programme's limits (the ``[limits]`` section of the configuration), defined and checked once.

The inbox reads its own (replies, bounces, quarantine, tokens, message size) and the round cycle its
``ghost_rounds``, from this one object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    replies_per_sender_per_day: int = 10
    bounce_threshold: int = 3  # bounce score at which an address is disabled
    ghost_rounds: int = 3  # silent rounds in a row before a member is paused
    attempts_before_quarantine: int = 3
    token_days: int = 7
    max_message_bytes: int = 25_000_000
    # Confirmation emails, all kinds, per hour for the whole programme: a flood of forged requests
    # must not make us a mail cannon (each mailbox also gets at most one of each kind a day).
    confirmations_per_hour: int = 200

    def problems(self) -> Iterator[tuple[str, str]]:
        """(key, problem) for each limit that cannot work."""
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 1:
                yield f.name, "expected a positive integer"
