"""Campaign costs summed once per month, so any budget's cost is a handful of additions.

Budgets are set per month, quarter or year, and every such period is a union of calendar
months; a campaign's lifetime is all of its months. Summing each campaign's exact daily costs
into months once (and the seven days before the as-of day, for the run rate) makes the cost of
any scope and period a sum over its campaigns' months, instead of a pass over every spend day
per budget: 5,000 campaigns x 365 days are read once, not once per budget.

Sums are exact (DESIGN section 5: summed exactly, rounded once); the caller rounds.

A campaign costed from the CRM's own actual cost (no ad mapping, no expenses) counts it on its
start date. A parent whose descendants carry cost of their own does not add its CRM actual
cost to budget rollups: Salesforce admins commonly type the hierarchy's total there, and
counting it beside the children would count the same money twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext

from connector.budgets.campaign_tree import CampaignKey, CampaignTree
from connector.periods import Period
from connector.roi.costs import DailyCost

log = logging.getLogger(__name__)

RUN_RATE_DAYS = 7
"""The run rate is the mean daily cost of this many complete days before the as-of day."""

Month = tuple[int, int]


def exact_context() -> Context:
    """A context in which additions and multiplications never round (fresh per use: a
    Context carries flags, so none is shared at module level)."""
    return Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


@dataclass
class CampaignSpend:
    """One campaign's exact cost: per month up to the cutoff, and the run-rate window."""

    months: dict[Month, Decimal] = field(default_factory=dict)
    lifetime: Decimal = Decimal(0)
    run_rate_window: Decimal = Decimal(0)
    """Cost of the RUN_RATE_DAYS complete days before the as-of day."""
    undated: Decimal = Decimal(0)
    """CRM actual cost of a campaign without a start date: lifetime only."""


def _months(period: Period) -> list[Month] | None:
    """The calendar months a period is made of, or None when it is not whole months."""
    if period.start.day != 1 or (period.end + timedelta(days=1)).day != 1:
        return None
    out: list[Month] = []
    year, month = period.start.year, period.start.month
    while (year, month) <= (period.end.year, period.end.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


class CostIndex:
    """Exact costs per campaign, summed per month, up to ``cutoff`` (None: every day)."""

    def __init__(
        self,
        costs: DailyCost,
        tree: CampaignTree,
        *,
        as_of_day: date,
        cutoff: date | None,
    ) -> None:
        self.costs = costs
        self.tree = tree
        self.as_of_day = as_of_day
        self.cutoff = cutoff
        window_start = as_of_day - timedelta(days=RUN_RATE_DAYS)
        self.spend: dict[CampaignKey, CampaignSpend] = {}
        with localcontext(exact_context()):
            for key, days in costs.by_campaign.items():
                spend = CampaignSpend()
                months: dict[Month, Decimal] = defaultdict(Decimal)
                for day, amount in days.items():
                    if cutoff is not None and day > cutoff:
                        continue
                    months[(day.year, day.month)] += amount
                    if window_start <= day < as_of_day:
                        spend.run_rate_window += amount
                spend.months = dict(months)
                spend.lifetime = sum(months.values(), Decimal(0))
                self.spend[key] = spend
            for key, (start, amount) in costs.crm_actual.items():
                if self._children_carry_cost(key):
                    log.debug("campaign %s: CRM actual cost left out of rollups", key)
                    continue
                spend = self.spend.setdefault(key, CampaignSpend())
                if start is None:
                    spend.undated += amount
                else:
                    month = (start.year, start.month)
                    spend.months[month] = spend.months.get(month, Decimal(0)) + amount
                spend.lifetime += amount

    def _children_carry_cost(self, key: CampaignKey) -> bool:
        if key not in self.tree or not self.tree.has_children(key):
            return False
        return any(
            d in self.costs.by_campaign or d in self.costs.crm_actual
            for d in self.tree.descendants(key)
        )

    def cost(self, members: Iterable[CampaignKey], period: Period | None) -> Decimal:
        """Exact cost of ``members`` in ``period`` (None: lifetime) up to the cutoff."""
        total = Decimal(0)
        months = _months(period) if period is not None else None
        with localcontext(exact_context()):
            for key in members:
                spend = self.spend.get(key)
                if spend is None:
                    continue
                if period is None:
                    total += spend.lifetime
                elif months is not None:
                    for month in months:
                        total += spend.months.get(month, Decimal(0))
                else:
                    total += sum((a for _, a in self.days([key], period)), Decimal(0))
        return total

    def run_rate_window(self, members: Iterable[CampaignKey]) -> Decimal:
        """Exact cost of the RUN_RATE_DAYS days before the as-of day (daily costs only)."""
        with localcontext(exact_context()):
            return sum(
                (self.spend[k].run_rate_window for k in members if k in self.spend), Decimal(0)
            )

    def days(
        self, members: Iterable[CampaignKey], period: Period | None
    ) -> list[tuple[date, Decimal]]:
        """Exact cost per day of ``members`` in ``period`` up to the cutoff, by day (for the
        day a budget ran out). CRM actual costs count on their start date."""
        by_day: dict[date, Decimal] = defaultdict(Decimal)
        with localcontext(exact_context()):
            for key in members:
                for day, amount in self.costs.by_campaign.get(key, {}).items():
                    if self._counts(day, period):
                        by_day[day] += amount
                start, amount = self.costs.crm_actual.get(key, (None, Decimal(0)))
                if (
                    start is not None
                    and self._counts(start, period)
                    and not self._children_carry_cost(key)
                ):
                    by_day[start] += amount
        return sorted(by_day.items())

    def first_day_reaching(
        self, members: Sequence[CampaignKey], period: Period | None, target: Decimal
    ) -> date | None:
        """The day the members' cumulative cost in ``period`` first reached ``target``.

        Months are summed first and only the month of the crossing is read day by day, so a
        total budget over thousands of campaigns costs a few month lookups, not every spend
        day. None when it was never reached on a dated day.
        """
        months = _months(period) if period is not None else None
        if months is None:
            if period is not None:
                return self._walk(self.days(members, period), Decimal(0), target)
            months = sorted({m for k in members if k in self.spend for m in self.spend[k].months})
        running = Decimal(0)
        with localcontext(exact_context()):
            for year, month in months:
                in_month = sum(
                    (
                        self.spend[k].months.get((year, month), Decimal(0))
                        for k in members
                        if k in self.spend
                    ),
                    Decimal(0),
                )
                if running + in_month >= target:
                    first = date(year, month, 1)
                    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
                    days = self.days(members, Period(first, last, f"{year}-{month:02d}"))
                    return self._walk(days, running, target)
                running += in_month
        return None

    @staticmethod
    def _walk(
        days: Iterable[tuple[date, Decimal]], running: Decimal, target: Decimal
    ) -> date | None:
        with localcontext(exact_context()):
            for day, amount in days:
                running += amount
                if running >= target:
                    return day
        return None

    def _counts(self, day: date, period: Period | None) -> bool:
        if self.cutoff is not None and day > self.cutoff:
            return False
        return period is None or day in period
