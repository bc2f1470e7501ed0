"""When the next round really starts."""

from __future__ import annotations

from datetime import datetime

from matcher.calendar import Calendar, RoundDates, next_round
from matcher.model import Round
from matcher.store import Store


def upcoming_round(calendar: Calendar, store: Store, now: datetime) -> RoundDates:
    """The calendar's next round, passing over any already started (by hand, before its day): after
    `round start` in the last week of a month, the next round is the one after it, not the one just begun."""
    dates = next_round(calendar, now)
    while store.get(Round, dates.round_id) is not None:
        dates = next_round(calendar, dates.starts_at)
    return dates
