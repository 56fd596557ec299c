"""How much of a budget is used, how fast, and where it will land (DESIGN section 5).

For one budget line at an as-of day:

- ``cost``: the members' cost in the period up to the as-of day, summed exactly, rounded once
  (a campaign's own budget counts all of its cost to date, deposits paid before its start
  included);
- ``budget_consumed`` = cost / budget; ``pacing`` = budget_consumed / fraction of the period
  elapsed (complete days before the as-of day; null on the first day);
- ``forecast_cost`` = cost + mean daily cost of the 7 complete days before the as-of day x days
  left (end date - as-of day + 1); with no daily cost (only the CRM's actual cost) the mean
  is 0 and the forecast is the cost so far;
- ``remaining`` = budget - cost, and the day the budget runs out: the day the cumulative
  cost reached it when it already has, else the day the run rate reaches it (None when that is
  after the period's end, so a projected day is always inside the period and implies a
  forecast at or over budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Context, Decimal, localcontext

from connector.budgets.campaign_tree import CampaignKey
from connector.budgets.cost_index import RUN_RATE_DAYS, CostIndex, exact_context
from connector.budgets.lines import BudgetLine
from connector.money import quantize
from connector.periods import Period

_RATIO_DIGITS = 40


@dataclass(frozen=True)
class Consumption:
    """The figures of one budget line at one as-of day (money rounded, ratios exact)."""

    line: BudgetLine
    label: str
    currency: str
    cost: Decimal
    budget_consumed: Decimal | None
    pacing: Decimal | None
    forecast_cost: Decimal
    remaining: Decimal
    exhausted_on: date | None
    run_rate: Decimal
    """Mean daily cost of the run-rate window, rounded (shown; the forecast uses it exact)."""
    days_elapsed: int
    days_left: int
    owner_campaign: CampaignKey | None
    """The campaign a CRM task about this budget goes to: the campaign itself, else the
    member that spent most in the period."""

    @property
    def budget(self) -> Decimal:
        return self.line.amount

    @property
    def fraction_elapsed(self) -> Decimal:
        return Decimal(self.days_elapsed) / Decimal(self.line.period.days)

    @property
    def forecast_consumed(self) -> Decimal | None:
        return None if self.budget == 0 else self.forecast_cost / self.budget

    def in_progress(self, as_of_day: date) -> bool:
        return self.line.period.start <= as_of_day <= self.line.period.end


def _ratio_context() -> Context:
    return Context(prec=_RATIO_DIGITS)


def measure(
    line: BudgetLine,
    members: Sequence[CampaignKey],
    index: CostIndex,
    *,
    label: str,
    currency: str,
) -> Consumption:
    """Compute the figures of ``line`` whose scope covers ``members``."""
    as_of_day = index.as_of_day
    period = line.period
    exact_cost = index.cost(members, None if line.is_lifetime else period)
    window = index.run_rate_window(members)
    days_elapsed = period.days_elapsed(as_of_day)
    days_left = _days_left(period, as_of_day)
    ratio = _ratio_context()
    forecast_exact = _forecast(exact_cost, window, days_left)
    cost = quantize(exact_cost, currency)
    budget = line.amount
    # the same division as the ROI report's budget_consumed, so the two always agree
    consumed = cost / budget if budget != 0 else None
    pacing = None
    if consumed is not None and days_elapsed > 0:
        pacing = consumed * period.days / days_elapsed
    return Consumption(
        line=line,
        label=label,
        currency=currency,
        cost=cost,
        budget_consumed=consumed,
        pacing=pacing,
        forecast_cost=quantize(forecast_exact, currency),
        remaining=budget - cost,
        exhausted_on=_exhausted_on(line, members, index, exact_cost, window),
        run_rate=quantize(ratio.divide(window, RUN_RATE_DAYS), currency),
        days_elapsed=days_elapsed,
        days_left=days_left,
        owner_campaign=_owner(line, members, index),
    )


def _days_left(period: Period, as_of_day: date) -> int:
    """End date - as-of day + 1 (the whole period before it starts, 0 after it ends)."""
    return max((period.end - max(as_of_day, period.start)).days + 1, 0)


def _forecast(cost: Decimal, window: Decimal, days_left: int) -> Decimal:
    with localcontext(exact_context()):
        projected = window * days_left
    ratio = _ratio_context()
    return ratio.add(cost, ratio.divide(projected, RUN_RATE_DAYS))


def forecast_cost(
    index: CostIndex, members: Sequence[CampaignKey], period: Period, currency: str
) -> Decimal:
    """``forecast_cost`` of ``members`` over their whole cost to date, to ``period``'s end
    (what is written back to a campaign's ``ROI_Forecast_Cost__c``)."""
    exact = _forecast(
        index.cost(members, None),
        index.run_rate_window(members),
        _days_left(period, index.as_of_day),
    )
    return quantize(exact, currency)


def _exhausted_on(
    line: BudgetLine,
    members: Sequence[CampaignKey],
    index: CostIndex,
    exact_cost: Decimal,
    window: Decimal,
) -> date | None:
    budget = line.amount
    period = line.period
    if exact_cost >= budget and exact_cost > 0:
        # None when it was reached through an undated CRM actual cost: no day to name
        return index.first_day_reaching(members, None if line.is_lifetime else period, budget)
    if window <= 0:
        return None
    exact = exact_context()
    remaining = exact.multiply(exact.subtract(budget, exact_cost), RUN_RATE_DAYS)
    # k days from the first day left (as-of day or period start) until the run rate covers it
    days_needed = int(_ratio_context().divide(remaining, window).to_integral_value(ROUND_CEILING))
    first = max(index.as_of_day, period.start)
    if days_needed > (period.end - first).days + 1:
        return None
    return first + timedelta(days=max(days_needed, 1) - 1)


def _owner(
    line: BudgetLine, members: Sequence[CampaignKey], index: CostIndex
) -> CampaignKey | None:
    if line.campaign is not None:
        return line.campaign
    window = None if line.is_lifetime else line.period
    best: tuple[Decimal, CampaignKey] | None = None
    for key in members:
        spent = index.cost([key], window)
        if spent > 0 and (best is None or (spent, best[1]) > (best[0], key)):
            best = (spent, key)
    return None if best is None else best[1]
