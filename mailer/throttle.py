"""Sending within a provider's limits: messages per minute and recipients per 24 hours.

Microsoft 365, for instance, allows 30 messages a minute and 10,000 recipients a day; a sender that
goes over gets its account blocked for a day, which is worse than sending slowly. Both windows
slide. Time comes from the injected clock, so tests move time instead of waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from matcher.clock import Clock

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


class Throttle:
    """Sliding-window limits (0 = none). Ask ``wait_needed`` before sending, ``record`` after."""

    def __init__(self, per_minute: int, per_day: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        self.clock = clock
        self._minute: deque[tuple[datetime, int]] = deque()  # (when, messages)
        self._day: deque[tuple[datetime, int]] = deque()  # (when, recipients)
        self._minute_messages = 0
        self._day_recipients = 0
        self.preloaded = False

    @property
    def limited(self) -> bool:
        return bool(self.per_minute or self.per_day)

    def preload(self, events: Iterable[tuple[datetime, int, int]]) -> None:
        """Sends made before this process started: (when, recipients, messages), oldest first.

        A one-shot run (cron) would otherwise start every time with an empty day and exceed the
        daily limit.
        """
        for when, recipients, messages in sorted(events):
            self.record(recipients, messages=messages, at=when)
        self.preloaded = True

    def record(self, recipients: int, *, messages: int = 1, at: datetime | None = None) -> None:
        when = at or self.clock.now()
        self._minute.append((when, messages))
        self._minute_messages += messages
        self._day.append((when, recipients))
        self._day_recipients += recipients

    def wait_needed(self, recipients: int) -> float:
        """Seconds to wait until one more message to ``recipients`` people stays within limits."""
        now = self.clock.now()
        self._expire(now)
        wait = timedelta(0)
        if self.per_minute and self._minute_messages >= self.per_minute:
            # Sending becomes possible when enough of the oldest messages leave the window.
            excess = self._minute_messages - self.per_minute + 1
            wait = max(wait, self._release_time(self._minute, excess) + MINUTE - now)
        if self.per_day and self._day_recipients and self._day_recipients + recipients > self.per_day:
            # A message with more recipients than the whole daily allowance goes out once the window
            # is empty.
            excess = self._day_recipients + min(recipients, self.per_day) - self.per_day
            wait = max(wait, self._release_time(self._day, excess) + DAY - now)
        return max(wait.total_seconds(), 0.0)

    def _expire(self, now: datetime) -> None:
        while self._minute and self._minute[0][0] <= now - MINUTE:
            self._minute_messages -= self._minute.popleft()[1]
        while self._day and self._day[0][0] <= now - DAY:
            self._day_recipients -= self._day.popleft()[1]

    @staticmethod
    def _release_time(window: deque[tuple[datetime, int]], excess: int) -> datetime:
        freed = 0
        for when, amount in window:
            freed += amount
            if freed >= excess:
                return when
        return window[-1][0]
