"""The programme calendar: when each round starts, meets, is followed up and closes.

Rounds are monthly by default; a programme may meet every 2 or 3 months (counted from January: every
3 months is January, April, July and October), skip some months every year, and skip single rounds
(``round skip``). A round closes when the next round that is held starts.

Pure date arithmetic. Every instant is computed from a local wall-clock time in the programme's
zone and returned in UTC, so "09:00 in Europe/London" is 08:00 UTC in summer and 09:00 UTC in
winter.

Wall-clock times that do not exist (the hour skipped when clocks go forward) or exist twice (the
hour repeated when they go back) follow Python's ``fold=0`` rule: the offset in force *before* the
change. A 01:30 start on the night clocks go forward therefore happens at 02:30 local time, once; on
the night they go back it happens at the first 01:30.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS_IN_WEEK = 7
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# Enough to find the next held round after any mix of cadence and skips that leaves one month a year.
_MONTHS_SEARCHED = 36


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    which: int  # 0 = first ... 3 = fourth, -1 = last (config.parse_cadence)
    weekday: int  # 0 = Monday
    start_time: time  # local time the round starts
    meeting_week: int  # 1 = the week starting on the start day, 2 = the week after...
    followup_weekday: int  # follow-up on the first such weekday after the meeting week ends
    reminder_after_days: int  # 0 = no reminder
    every_months: int = 1  # 1, 2 or 3: rounds in months 1, 1 + n, 1 + 2n... of each year
    skip_months: frozenset[int] = frozenset()  # 1 = January: no round in these months, every year
    skipped: frozenset[str] = frozenset()  # round ids skipped once (``round skip``)
    nudge_after_days: int = 0  # days into the meeting week to nudge groups nobody has heard from; 0 = never

    def __post_init__(self) -> None:
        # Checked here as well as in the config so that a bad calendar fails when it is built, with
        # the field named, rather than as an odd date months later.
        if self.which not in (-1, 0, 1, 2, 3):
            raise ValueError(f"Calendar.which: expected 0..3 or -1 (last), got {self.which!r}")
        for name in ("weekday", "followup_weekday"):
            value = getattr(self, name)
            if value not in range(DAYS_IN_WEEK):
                raise ValueError(f"Calendar.{name}: expected 0 (Monday) .. 6 (Sunday), got {value!r}")
        if self.meeting_week < 1:
            raise ValueError(f"Calendar.meeting_week: expected 1 or more, got {self.meeting_week!r}")
        if self.reminder_after_days < 0:
            raise ValueError(
                f"Calendar.reminder_after_days: expected 0 (never) or more, got {self.reminder_after_days!r}"
            )
        if self.start_time.tzinfo is not None:
            raise ValueError("Calendar.start_time: expected a local wall-clock time without a zone")
        if not 0 <= self.nudge_after_days < DAYS_IN_WEEK:
            raise ValueError(
                f"Calendar.nudge_after_days: expected 0 (never) .. 6, got {self.nudge_after_days!r}"
            )
        if self.every_months not in (1, 2, 3):
            raise ValueError(f"Calendar.every_months: expected 1, 2 or 3, got {self.every_months!r}")
        held = [m for m in range(1, 13) if (m - 1) % self.every_months == 0 and m not in self.skip_months]
        if not held:
            raise ValueError("Calendar.skip_months: no month of the year is left for a round")

    def holds_round(self, year: int, month: int) -> bool:
        """Whether a round is held in this month (cadence, skipped months and one-off skips)."""
        return (
            (month - 1) % self.every_months == 0
            and month not in self.skip_months
            and round_id_of(year, month) not in self.skipped
        )

    @property
    def schedule(self) -> str:
        """The cadence and meeting week in words, e.g. "every 2 months, meeting week 1"; kept with each
        round, so a change of schedule shows where it happened."""
        every = "monthly" if self.every_months == 1 else f"every {self.every_months} months"
        return f"{every}, meeting week {self.meeting_week}"


@dataclass(frozen=True)
class RoundDates:
    round_id: str  # "2026-12"
    ordinal: int  # year*12 + month - 1
    starts_at: datetime  # aware, UTC
    starts_on: date  # local date
    meeting_week_start: date
    meeting_week_end: date
    followup_at: datetime  # aware UTC, at start_time local on the follow-up day
    reminder_at: datetime | None
    closes_at: datetime  # the next round's starts_at (closing runs just before it starts)
    followup_on: date  # local date of followup_at (its UTC date may differ near midnight)
    schedule: str = ""  # Calendar.schedule when these dates were computed
    nudge_at: datetime | None = None  # aware UTC; None: no nudge


def describe_schedule(calendar: Calendar) -> str:
    """The whole schedule in words, for `status` and the summary, e.g. "the first Monday of every 2
    months (January, March, May, July, September, November), meeting week 1; no round in August;
    skipped once: 2026-05"."""
    which = ("first", "second", "third", "fourth")[calendar.which] if calendar.which >= 0 else "last"
    day = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[calendar.weekday]
    held = [MONTHS[m - 1] for m in range(1, 13) if (m - 1) % calendar.every_months == 0]
    every = "month" if calendar.every_months == 1 else f"{calendar.every_months} months ({', '.join(held)})"
    text = f"the {which} {day} of every {every}, meeting week {calendar.meeting_week}"
    if calendar.skip_months:
        text += "; no round in " + ", ".join(MONTHS[m - 1] for m in sorted(calendar.skip_months))
    if calendar.skipped:
        text += "; skipped once: " + ", ".join(sorted(calendar.skipped))
    return text


def round_id_of(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def ordinal_of(year: int, month: int) -> int:
    return year * 12 + month - 1


def parse_round_id(round_id: str) -> tuple[int, int]:
    """ "2026-12" -> (2026, 12); a clear ValueError for anything else."""
    try:
        year_text, month_text = round_id.split("-")
        year, month = int(year_text), int(month_text)
    except ValueError:
        raise ValueError(f"not a round id (expected YYYY-MM): {round_id!r}") from None
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        raise ValueError(f"not a round id (expected YYYY-MM): {round_id!r}")
    return year, month


def start_day(calendar: Calendar, year: int, month: int) -> date:
    """The local date of the month's round, e.g. the first Monday or the last Friday."""
    if calendar.which == -1:
        last = _first_of_next_month(year, month) - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - calendar.weekday) % DAYS_IN_WEEK)
    first = date(year, month, 1)
    first_match = first + timedelta(days=(calendar.weekday - first.weekday()) % DAYS_IN_WEEK)
    return first_match + timedelta(weeks=calendar.which)


def round_dates(calendar: Calendar, year: int, month: int) -> RoundDates:
    starts_on = start_day(calendar, year, month)
    meeting_week_start = starts_on + timedelta(weeks=calendar.meeting_week - 1)
    meeting_week_end = meeting_week_start + timedelta(days=DAYS_IN_WEEK - 1)
    # "after the meeting week ends": the earliest matching day strictly after its last day.
    followup_on = meeting_week_end + timedelta(
        days=(calendar.followup_weekday - meeting_week_end.weekday() - 1) % DAYS_IN_WEEK + 1
    )
    next_year, next_month = _held_after(calendar, year, month)
    closes_at = _at_start_time(calendar, start_day(calendar, next_year, next_month))
    reminder_at = None
    if calendar.reminder_after_days:
        reminder_on = followup_on + timedelta(days=calendar.reminder_after_days)
        reminder_at = _at_start_time(calendar, reminder_on)
        if reminder_at >= closes_at:
            # A reminder after the round has closed would ask about an answer we no longer take.
            reminder_at = None
    nudge_at = None
    if calendar.nudge_after_days:
        nudge_at = _at_start_time(calendar, meeting_week_start + timedelta(days=calendar.nudge_after_days))
    return RoundDates(
        round_id=round_id_of(year, month),
        ordinal=ordinal_of(year, month),
        starts_at=_at_start_time(calendar, starts_on),
        starts_on=starts_on,
        meeting_week_start=meeting_week_start,
        meeting_week_end=meeting_week_end,
        followup_at=_at_start_time(calendar, followup_on),
        reminder_at=reminder_at,
        closes_at=closes_at,
        followup_on=followup_on,
        schedule=calendar.schedule,
        nudge_at=nudge_at,
    )


def round_dates_for_id(calendar: Calendar, round_id: str) -> RoundDates:
    """The dates of a stored round, from its id."""
    return round_dates(calendar, *parse_round_id(round_id))


def current_round(calendar: Calendar, now: datetime) -> RoundDates:
    """The latest held round whose ``starts_at <= now``."""
    _require_aware(now, "current_round")
    local = now.astimezone(calendar.zone)
    year, month = local.year, local.month
    if not (calendar.holds_round(year, month) and round_dates(calendar, year, month).starts_at <= now):
        year, month = _held_before(calendar, year, month)
    return round_dates(calendar, year, month)


def next_round(calendar: Calendar, now: datetime) -> RoundDates:
    """The first held round whose ``starts_at > now``."""
    _require_aware(now, "next_round")
    local = now.astimezone(calendar.zone)
    year, month = local.year, local.month
    if not (calendar.holds_round(year, month) and round_dates(calendar, year, month).starts_at > now):
        year, month = _held_after(calendar, year, month)
    return round_dates(calendar, year, month)


def _held_after(calendar: Calendar, year: int, month: int) -> tuple[int, int]:
    return _held_from(calendar, year, month, _month_after, "after")


def _held_before(calendar: Calendar, year: int, month: int) -> tuple[int, int]:
    return _held_from(calendar, year, month, _month_before, "before")


def _held_from(calendar: Calendar, year: int, month: int, step, direction: str) -> tuple[int, int]:
    """The nearest held round's month from (year, month) in the direction of ``step``."""
    start = round_id_of(year, month)
    for _ in range(_MONTHS_SEARCHED):
        year, month = step(year, month)
        if calendar.holds_round(year, month):
            return year, month
    raise ValueError(f"no round is held in the {_MONTHS_SEARCHED} months {direction} {start}")


def _at_start_time(calendar: Calendar, day: date) -> datetime:
    local = datetime.combine(day, calendar.start_time, tzinfo=calendar.zone)
    return local.astimezone(UTC)


def _require_aware(now: datetime, caller: str) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{caller}: expected a timezone-aware datetime, got naive {now.isoformat()}")


def _month_after(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _month_before(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _first_of_next_month(year: int, month: int) -> date:
    return date(*_month_after(year, month), 1)
