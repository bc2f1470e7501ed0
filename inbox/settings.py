"""What the inbox processor needs to know about the programme and its limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from matcher.limits import Limits


@dataclass(frozen=True, kw_only=True)
class InboxSettings:
    programme_address: str
    organisers: list[str]
    limits: Limits = field(default_factory=Limits)  # the [limits] section, as the configuration holds it
    next_round_on: Callable[[datetime], date]  # for welcome/status texts
    # The programme's zone: "pause 2 months" and "until 1 March" count from the local date.
    zone: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # Where a message we cannot read is forwarded at once (besides the summary); () = nowhere.
    forward_unread: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if "@" not in self.programme_address:
            raise ValueError(f"programme_address must be an address, got {self.programme_address!r}")
        for key, problem in self.limits.problems():
            raise ValueError(f"limits.{key}: {problem}")

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
    programme = config.programme
    return InboxSettings(
        programme_address=programme.address,
        organisers=list(programme.organisers),
        limits=config.limits,
        next_round_on=next_round_on,
        zone=ZoneInfo(programme.timezone),
        forward_unread=tuple(programme.forward_unread),
    )
