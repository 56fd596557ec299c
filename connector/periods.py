"""Reporting periods: a month (``2026-11``), a quarter (``2026-Q4``), a year (``2026``).

Budgets are set per period and costs are summed per period, so the one parse and the one
notion of "fraction elapsed" live here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True, order=True)
class Period:
    """An inclusive range of days with its canonical name."""

    start: date
    end: date
    name: str

    @classmethod
    def parse(cls, text: str) -> Period:
        value = text.strip()
        if m := _MONTH.match(value):
            year, month = int(m[1]), int(m[2])
            start = date(year, month, 1)
            end = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
            return cls(start, end, value)
        if m := _QUARTER.match(value.upper()):
            year, quarter = int(m[1]), int(m[2])
            start = date(year, 3 * quarter - 2, 1)
            end = (date(year + quarter // 4, (3 * quarter) % 12 + 1, 1)) - timedelta(days=1)
            return cls(start, end, f"{year}-Q{quarter}")
        if _YEAR.match(value):
            year = int(value)
            return cls(date(year, 1, 1), date(year, 12, 31), value)
        raise ValueError(
            f"period {text!r} is not a month (2026-11), a quarter (2026-Q4) or a year (2026)"
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    def days_elapsed(self, as_of: date) -> int:
        """Complete days of the period before ``as_of`` (the as-of day itself is not over)."""
        if as_of <= self.start:
            return 0
        return min((as_of - self.start).days, self.days)

    def __str__(self) -> str:
        return self.name
