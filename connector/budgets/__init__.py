"""Budgets: the lines (set and campaigns' own), consumption, pacing and forecast, the
category mix, the cost index and campaign tree they use, the CSV import, the formats and
the `budget`, `expenses` and `alerts` list commands."""
