"""Working days in mainland China, with holidays and 调休 make-up days.

chinese_calendar knows the State Council's schedule of each year it was
released for; a year it does not know yet (the schedule for next year comes out
in November) falls back to Monday-Friday, and the admin can add the published
days to cases.yaml (``calendar: {holidays: [...], workdays: [...]}``) until the
library catches up. Overrides win over the library.

Deadlines count whole working days *after* the day a case reached its unit: a
case dispatched on a Friday evening with 3 working days is due at the end of
the following Wednesday (if none of them is a holiday).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)
END_OF_DAY = time(23, 59, 59)


class WorkCalendar:
    def __init__(self, zone: ZoneInfo, *, holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> None:
        self.zone = zone
        self.holidays = frozenset(holidays)
        self.workdays = frozenset(workdays)
        self._warned: set[int] = set()

    def is_workday(self, day: date, *, warn: bool = True) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if warn and day.year not in self._warned:
                self._warned.add(day.year)
                log.warning("chinese_calendar has no schedule for %d: counting Monday-Friday as working days; "
                            "add the year's holidays and make-up days to cases.yaml calendar:", day.year)
            return day.weekday() < 5

    def knows(self, year: int) -> bool:
        """Whether the official schedule of ``year`` is known (library or overrides)."""
        try:
            chinese_calendar.is_workday(date(year, 1, 1))
            return True
        except NotImplementedError:
            return any(d.year == year for d in self.holidays | self.workdays)

    def first_unknown(self, start: date, end: date) -> int | None:
        """The first year from ``start``'s to ``end``'s whose schedule is not known, if any."""
        return next((year for year in range(start.year, end.year + 1) if not self.knows(year)), None)

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def add(self, start: date, days: int, *, warn: bool = True) -> date:
        """The ``days``-th working day after ``start`` (``start`` itself never counts)."""
        day = start
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day, warn=warn):
                counted += 1
        return day

    def due(self, start: datetime, days: int) -> datetime:
        """The end (23:59:59 local) of the ``days``-th working day after ``start``'s day."""
        return datetime.combine(self.add(self.local_day(start), days), END_OF_DAY, self.zone)

    def between(self, start: datetime, end: datetime) -> int:
        """Working days after ``start``'s day up to and including ``end``'s day (0 on the same day)."""
        first, last = self.local_day(start), self.local_day(end)
        return sum(1 for n in range(1, (last - first).days + 1) if self.is_workday(first + timedelta(days=n)))
