"""The programme calendar: start days for each cadence, the meeting week, follow-up, reminder,
closing, and local wall-clock times across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher.calendar import (
    Calendar,
    current_round,
    next_round,
    parse_round_id,
    round_dates,
    round_dates_for_id,
)

LONDON = ZoneInfo("Europe/London")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def make_calendar(
    which: int = 0,
    weekday: int = MON,
    *,
    zone: str = "Europe/London",
    start: time = time(9, 0),
    meeting_week: int = 1,
    followup_weekday: int = MON,
    reminder_after_days: int = 5,
) -> Calendar:
    return Calendar(
        zone=ZoneInfo(zone),
        which=which,
        weekday=weekday,
        start_time=start,
        meeting_week=meeting_week,
        followup_weekday=followup_weekday,
        reminder_after_days=reminder_after_days,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_first_monday_in_winter_with_its_whole_timetable() -> None:
    dates = round_dates(make_calendar(), 2026, 3)

    assert dates.round_id == "2026-03"
    assert dates.ordinal == 2026 * 12 + 2
    assert dates.starts_on == date(2026, 3, 2)
    assert dates.starts_at == utc(2026, 3, 2, 9, 0)
    assert dates.meeting_week_start == date(2026, 3, 2)
    assert dates.meeting_week_end == date(2026, 3, 8)
    assert dates.followup_on == date(2026, 3, 9)
    assert dates.followup_at == utc(2026, 3, 9, 9, 0)
    assert dates.reminder_at == utc(2026, 3, 14, 9, 0)
    # April's first Monday is in summer time: 09:00 BST is 08:00 UTC.
    assert dates.closes_at == utc(2026, 4, 6, 8, 0)


def test_a_month_that_begins_on_the_cadence_weekday_starts_on_the_first() -> None:
    assert round_dates(make_calendar(0, MON), 2026, 6).starts_on == date(2026, 6, 1)
    assert round_dates(make_calendar(1, MON), 2026, 6).starts_on == date(2026, 6, 8)
    assert round_dates(make_calendar(3, MON), 2026, 6).starts_on == date(2026, 6, 22)


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2026, 7, date(2026, 7, 31)),  # the month's last day is a Friday
        (2026, 2, date(2026, 2, 27)),
        (2026, 10, date(2026, 10, 30)),
        (2026, 1, date(2026, 1, 30)),
    ],
)
def test_last_friday(year: int, month: int, expected: date) -> None:
    dates = round_dates(make_calendar(-1, FRI, followup_weekday=FRI), year, month)
    assert dates.starts_on == expected
    # Meeting week Friday to Thursday; the follow-up is the Friday right after it.
    assert dates.meeting_week_end == expected + timedelta(days=6)
    assert dates.followup_on == expected + timedelta(days=7)


def test_second_and_third_cadences() -> None:
    assert round_dates(make_calendar(1, WED), 2026, 7).starts_on == date(2026, 7, 8)
    assert round_dates(make_calendar(2, THU), 2026, 10).starts_on == date(2026, 10, 15)


def test_later_meeting_week_and_midweek_follow_up() -> None:
    dates = round_dates(make_calendar(meeting_week=2, followup_weekday=THU), 2026, 6)
    assert dates.meeting_week_start == date(2026, 6, 8)
    assert dates.meeting_week_end == date(2026, 6, 14)
    assert dates.followup_on == date(2026, 6, 18)


def test_follow_up_on_the_weekday_the_meeting_week_ends_waits_a_week() -> None:
    # Week Monday 1 June .. Sunday 7 June; "Sunday" means the next Sunday, not the last day itself.
    dates = round_dates(make_calendar(followup_weekday=SUN), 2026, 6)
    assert dates.followup_on == date(2026, 6, 14)


def test_follow_up_after_the_clocks_go_forward_keeps_local_time() -> None:
    # Fourth Monday of March 2026 is the 23rd (GMT); the follow-up on the 30th is in BST.
    dates = round_dates(make_calendar(3, MON), 2026, 3)
    assert dates.starts_at == utc(2026, 3, 23, 9, 0)
    assert dates.followup_at == utc(2026, 3, 30, 8, 0)
    assert dates.followup_at.astimezone(LONDON).time() == time(9, 0)


def test_summer_and_winter_starts_in_london_and_new_york() -> None:
    assert round_dates(make_calendar(), 2026, 7).starts_at == utc(2026, 7, 6, 8, 0)
    assert round_dates(make_calendar(), 2026, 12).starts_at == utc(2026, 12, 7, 9, 0)
    new_york = round_dates(make_calendar(zone="America/New_York"), 2026, 3)
    assert new_york.starts_at == utc(2026, 3, 2, 14, 0)  # EST
    assert new_york.followup_at == utc(2026, 3, 9, 13, 0)  # EDT since 8 March


def test_start_time_in_the_hour_the_clocks_skip_or_repeat() -> None:
    calendar = make_calendar(-1, SUN, start=time(1, 30))
    # 29 March 2026: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist and happens at 02:30 BST.
    spring = round_dates(calendar, 2026, 3)
    assert spring.starts_on == date(2026, 3, 29)
    assert spring.starts_at == utc(2026, 3, 29, 1, 30)
    # 25 October 2026: 01:30 happens twice; the first (BST) one is used.
    autumn = round_dates(calendar, 2026, 10)
    assert autumn.starts_on == date(2026, 10, 25)
    assert autumn.starts_at == utc(2026, 10, 25, 0, 30)


def test_a_round_on_the_other_side_of_the_date_line() -> None:
    # 09:00 on Sunday 1 February in Auckland (UTC+13) is 20:00 UTC on 31 January.
    calendar = make_calendar(0, SUN, zone="Pacific/Auckland")
    dates = round_dates(calendar, 2026, 2)
    assert dates.starts_on == date(2026, 2, 1)
    assert dates.starts_at == utc(2026, 1, 31, 20, 0)
    assert current_round(calendar, utc(2026, 1, 31, 20, 0)).round_id == "2026-02"
    assert current_round(calendar, utc(2026, 1, 31, 19, 59)).round_id == "2026-01"


def test_december_closes_when_january_starts() -> None:
    dates = round_dates(make_calendar(), 2026, 12)
    assert dates.closes_at == utc(2027, 1, 4, 9, 0)
    assert next_round(make_calendar(), dates.starts_at).round_id == "2027-01"


def test_reminder_off_or_too_late_is_none() -> None:
    assert round_dates(make_calendar(reminder_after_days=0), 2026, 6).reminder_at is None
    # Follow-up Monday 8 June; 40 days on is after the July round has started and June has closed.
    assert round_dates(make_calendar(reminder_after_days=40), 2026, 6).reminder_at is None


def test_current_and_next_round_around_the_start_instant() -> None:
    calendar = make_calendar()
    start = utc(2026, 1, 5, 9, 0)
    assert current_round(calendar, start).round_id == "2026-01"
    assert next_round(calendar, start).round_id == "2026-02"
    before = start - timedelta(seconds=1)
    assert current_round(calendar, before).round_id == "2025-12"
    assert next_round(calendar, before).round_id == "2026-01"
    # Any aware datetime works, not only UTC ones.
    assert current_round(calendar, start.astimezone(ZoneInfo("Asia/Tokyo"))).round_id == "2026-01"


def test_round_dates_from_an_id() -> None:
    calendar = make_calendar(-1, FRI)
    assert round_dates_for_id(calendar, "2026-07") == round_dates(calendar, 2026, 7)
    assert parse_round_id("2026-07") == (2026, 7)
    for bad in ("2026-13", "2026", "July", "2026-07-01", ""):
        with pytest.raises(ValueError, match="round id"):
            parse_round_id(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("which", 4),
        ("which", -2),
        ("weekday", 7),
        ("followup_weekday", -1),
        ("meeting_week", 0),
        ("reminder_after_days", -1),
    ],
)
def test_a_bad_calendar_names_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"Calendar.{field}"):
        make_calendar(**{"which": 0, "weekday": MON} | {field: value})  # type: ignore[arg-type]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        current_round(make_calendar(), datetime(2026, 1, 5, 9, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_round(make_calendar(), datetime(2026, 1, 5, 9, 0))


@settings(max_examples=300, deadline=None)
@given(
    which=st.sampled_from([0, 1, 2, 3, -1]),
    weekday=st.integers(0, 6),
    zone=st.sampled_from(["Europe/London", "America/New_York", "Pacific/Auckland", "UTC"]),
    start=st.times(),
    meeting_week=st.integers(1, 3),
    followup=st.integers(0, 6),
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
)
def test_rounds_tile_time(
    which: int,
    weekday: int,
    zone: str,
    start: time,
    meeting_week: int,
    followup: int,
    now: datetime,
) -> None:
    calendar = make_calendar(
        which, weekday, zone=zone, start=start, meeting_week=meeting_week, followup_weekday=followup
    )
    current = current_round(calendar, now)
    upcoming = next_round(calendar, now)
    assert current.starts_at <= now < upcoming.starts_at
    assert current.closes_at == upcoming.starts_at
    assert upcoming.ordinal == current.ordinal + 1
    assert current.starts_on.weekday() == weekday
    assert current.starts_at.astimezone(calendar.zone).date() == current.starts_on
    assert current.meeting_week_start <= current.meeting_week_end < current.followup_on
    assert current.followup_on.weekday() == followup
    assert (current.followup_on - current.meeting_week_end).days <= 7
