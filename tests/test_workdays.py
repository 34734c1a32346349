"""Working-day deadlines across Spring Festival, National Day and 调休 weekends.

The holidays and make-up days are found in chinese_calendar's own data (never
typed in here); the expected deadlines are counted independently with
chinese_calendar.get_workdays."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from cti.cases.workdays import WorkCalendar

ZONE = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(ZONE)


def holiday_days(year: int, name: str) -> list[date]:
    days = (date(year, 1, 1) + timedelta(days=n) for n in range(366))
    return [d for d in days if d.year == year and chinese_calendar.get_holiday_detail(d) == (True, name)]


def makeup_days(year: int) -> list[date]:
    """Weekend days that are working days (调休)."""
    days = (date(year, 1, 1) + timedelta(days=n) for n in range(366))
    return [d for d in days if d.year == year and d.weekday() >= 5 and chinese_calendar.is_workday(d)]


def expected(start: date, days: int) -> date:
    return chinese_calendar.get_workdays(start + timedelta(days=1), start + timedelta(days=60))[days - 1]


@pytest.mark.parametrize("festival", ["Spring Festival", "National Day"])
@pytest.mark.parametrize("days", [2, 3, 7])
def test_a_deadline_skips_the_festival(festival: str, days: int) -> None:
    for year in (2024, 2025, 2026):
        holidays = [d for d in holiday_days(year, festival) if not chinese_calendar.is_workday(d)]
        first = min(holidays)
        start = first - timedelta(days=1)  # dispatched the day before the break
        due = CALENDAR.add(start, days)
        assert due == expected(start, days)
        assert due > max(d for d in holidays if (d - first).days < 15)  # past the whole break
        dispatched = datetime(start.year, start.month, start.day, 16, 30, tzinfo=ZONE)
        assert CALENDAR.due(dispatched, days) == datetime(due.year, due.month, due.day, 23, 59, 59, tzinfo=ZONE)


def test_a_makeup_weekend_day_counts() -> None:
    found = makeup_days(2026)
    assert found  # every year has some
    for makeup in found:
        assert CALENDAR.is_workday(makeup)
        day_before = makeup - timedelta(days=1)
        assert CALENDAR.add(day_before, 1) == expected(day_before, 1)
        if not chinese_calendar.is_workday(day_before):
            assert CALENDAR.add(day_before, 1) == makeup  # the weekend day worked is day one


def test_counting_working_days_between_two_moments() -> None:
    festival = [d for d in holiday_days(2026, "Spring Festival") if not chinese_calendar.is_workday(d)]
    start = datetime.combine(min(festival) - timedelta(days=1), datetime.min.time(), ZONE) + timedelta(hours=9)
    end = datetime.combine(max(festival) + timedelta(days=3), datetime.min.time(), ZONE)
    assert CALENDAR.between(start, end) == len(chinese_calendar.get_workdays(
        start.date() + timedelta(days=1), end.date()))
    assert CALENDAR.between(start, start + timedelta(hours=10)) == 0  # the same day


def test_a_moment_late_at_night_in_utc_is_the_next_day_in_beijing() -> None:
    late = datetime(2026, 9, 30, 17, 0, tzinfo=ZoneInfo("UTC"))  # 01:00 on 1 October in Beijing
    assert CALENDAR.local_day(late) == date(2026, 10, 1)
    assert CALENDAR.add(CALENDAR.local_day(late), 1) == expected(date(2026, 10, 1), 1)


def test_a_year_the_library_does_not_know_uses_weekdays_and_overrides(caplog: pytest.LogCaptureFixture) -> None:
    unknown = next(y for y in range(2027, 2100) if not CALENDAR.knows(y))
    first_monday = next(date(unknown, 1, d) for d in range(1, 8) if date(unknown, 1, d).weekday() == 0)
    with caplog.at_level(logging.WARNING):
        assert CALENDAR.add(first_monday, 5) == first_monday + timedelta(days=7)  # Tue…Fri, then Monday
    assert f"no schedule for {unknown}" in caplog.text
    holiday = first_monday + timedelta(days=1)
    makeup = first_monday + timedelta(days=5)  # a Saturday worked
    published = WorkCalendar(ZONE, holidays=[holiday], workdays=[makeup])
    assert published.knows(unknown)
    assert published.add(first_monday, 1) == first_monday + timedelta(days=2)
    assert published.add(first_monday + timedelta(days=4), 1) == makeup
