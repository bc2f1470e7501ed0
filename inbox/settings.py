"""What the inbox processor needs to know about the programme and its limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True, kw_only=True)
class InboxSettings:
    programme_address: str
    organisers: list[str]
    replies_per_sender_per_day: int = 10
    bounce_threshold: int = 3
    attempts_before_quarantine: int = 3
    token_days: int = 7
    max_message_bytes: int = 25_000_000
    confirmations_per_hour: int = 200  # the whole programme's; and one of each kind per mailbox a day
    next_round_on: Callable[[datetime], date]  # for welcome/status texts
    # The programme's zone: "pause 2 months" and "until 1 March" count from the local date.
    zone: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # Where a message we cannot read is forwarded at once (besides the summary); () = nowhere.
    forward_unread: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if "@" not in self.programme_address:
            raise ValueError(f"programme_address must be an address, got {self.programme_address!r}")
        for name in (
            "replies_per_sender_per_day",
            "bounce_threshold",
            "attempts_before_quarantine",
            "token_days",
            "max_message_bytes",
            "confirmations_per_hour",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def address(self) -> str:
        """The programme address in canonical (lower-case) form."""
        return self.programme_address.strip().lower()

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]

    @property
    def own_addresses(self) -> frozenset[str]:
        """Addresses whose mail is our own (loop protection)."""
        return frozenset({self.address})

    def today(self, now: datetime) -> date:
        return now.astimezone(self.zone).date()


def inbox_settings_from_config(config: Any, next_round_on: Callable[[datetime], date]) -> InboxSettings:
    """Build the inbox's settings from ``unmentoring.config.Config`` (duck-typed: the inbox may not
    import the front door). ``next_round_on`` comes from the programme calendar."""
    programme, limits = config.programme, config.limits
    return InboxSettings(
        programme_address=programme.address,
        organisers=list(programme.organisers),
        replies_per_sender_per_day=limits.replies_per_sender_per_day,
        bounce_threshold=limits.bounce_threshold,
        attempts_before_quarantine=limits.attempts_before_quarantine,
        token_days=limits.token_days,
        max_message_bytes=limits.max_message_bytes,
        confirmations_per_hour=limits.confirmations_per_hour,
        next_round_on=next_round_on,
        zone=ZoneInfo(programme.timezone),
        forward_unread=tuple(programme.forward_unread),
    )
