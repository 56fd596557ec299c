"""Budgets over one snapshot of the store: consumption, category mix and the budget lock.

Costs come from :mod:`connector.roi.costs`, exactly as the ROI report computes them (same FX
rates, same mapping), so ``crm-roi budget`` and ``crm-roi report --period`` never disagree on
a figure. When a run already has a :class:`~connector.roi.RoiEngine`,
:meth:`BudgetEngine.from_roi` reuses its rates and daily costs instead of computing them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from connector import model
from connector.budgets.campaign_tree import CampaignKey, CampaignTree, scope_kind, scope_name
from connector.budgets.category_mix import CategoryMix, category_mix
from connector.budgets.consumption import Consumption, forecast_cost, measure
from connector.budgets.cost_index import CostIndex
from connector.budgets.lines import (
    LIFETIME,
    BudgetLine,
    campaign_budget_lines,
    merged_budgets,
    set_budget_lines,
)
from connector.money import FxRates, quantize
from connector.periods import Period
from connector.roi import RoiEngine, Settings, fx_rates_for
from connector.roi.costs import (
    AD_SOURCE_CHANNELS,
    DailyCost,
    daily_costs,
    unmapped_campaigns,
    unmapped_spend,
    with_unmapped,
)
from connector.roi.mapping import CampaignMapper
from connector.store import Store, schema
from connector.store.dataset import Dataset

DEFAULT_TARGETS: Mapping[str, Decimal] = {
    "strategic": Decimal("0.20"),
    "growth": Decimal("0.50"),
    "retention": Decimal("0.30"),
}
_KIND_ORDER = {"total": 0, "category": 1, "channel": 2, "department": 3, "campaign": 4}
_NAME_ORDER = {name: i for i, name in enumerate((*model.BUDGET_CATEGORIES, *model.CHANNELS))}


def stream_spend(store: Store) -> Iterator[model.AdSpendDay]:
    """Live spend days with only what costs need, one at a time.

    A year of daily spend for thousands of ad campaigns is millions of rows; read as full
    records into a list it takes gigabytes. Costs only ever fold them into daily sums, so they
    are streamed, with the columns that matter.
    """
    t = schema.table_for(model.AdSpendDay)
    stmt = select(t.c.source, t.c.ad_campaign_id, t.c.day, t.c.spend, t.c.currency).where(
        t.c.deleted_at.is_(None)
    )
    with store.engine.connect() as conn:
        for source, ad_campaign_id, day, spend, currency in conn.execution_options(
            yield_per=20_000
        ).execute(stmt):
            yield model.AdSpendDay(
                source=source,
                external_id="",
                account_id="",
                ad_campaign_id=ad_campaign_id,
                day=day,
                spend=spend,
                currency=currency,
            )


@dataclass(frozen=True)
class BudgetReport:
    as_of: datetime
    currency: str
    period: str | None
    """The period asked for, or None for every budget running on the as-of day."""
    rows: list[Consumption]
    mixes: list[CategoryMix]
    unmapped: list[UnmappedSpend] = field(default_factory=list)
    """Ad spend mapped to no CRM campaign, in ``period`` (None: lifetime): counted in its
    channel's budgets and the total, listed so someone maps it."""


@dataclass(frozen=True)
class UnmappedSpend:
    source: str
    ad_campaign_id: str
    name: str
    spend: Decimal
    channel: str


@dataclass(frozen=True)
class LockCheck:
    """What an expense would do to one budget covering it (the budget lock)."""

    line: BudgetLine
    committed: Decimal
    """Exact cost already recorded in the budget's period, on any date (approved expenses
    dated after today included: that money is promised)."""
    amount: Decimal
    """The expense (and any earlier rows of the same import), exact, reporting currency."""

    @property
    def after(self) -> Decimal:
        return self.committed + self.amount

    @property
    def over(self) -> bool:
        return self.amount > 0 and self.after > self.line.amount

    @property
    def consumed_after(self) -> Decimal | None:
        return None if self.line.amount == 0 else self.after / self.line.amount


class BudgetEngine:
    """Budget lines and their figures at one as-of time."""

    def __init__(
        self,
        data: Dataset,
        settings: Settings,
        *,
        as_of: datetime,
        targets: Mapping[str, Decimal] = DEFAULT_TARGETS,
        tolerance: Decimal = Decimal("0.05"),
        fx: FxRates | None = None,
        costs: DailyCost | None = None,
    ) -> None:
        self.settings = settings
        self.as_of = as_of
        self.as_of_day = as_of.astimezone(ZoneInfo(settings.timezone)).date()
        self.currency = settings.reporting_currency
        self.targets = dict(targets)
        self.tolerance = tolerance
        self.fx = fx or fx_rates_for(data, settings)
        if costs is None:
            mapper = CampaignMapper(data.campaigns, settings.mapping, settings.name_regex)
            costs = daily_costs(
                data.campaigns, data.ad_campaigns, data.spend, data.expenses, mapper, self.fx
            )
        self.costs = costs
        # unmapped ad spend counts toward its channel and the total (DESIGN 5 budgets by
        # channel do not need a CRM campaign to know where the money went)
        self.tree = CampaignTree([*data.campaigns, *unmapped_campaigns(costs)])
        self.budget_costs = with_unmapped(costs)
        self.index = CostIndex(
            self.budget_costs, self.tree, as_of_day=self.as_of_day, cutoff=self.as_of_day
        )
        self._committed_index: CostIndex | None = None
        self.lines: list[BudgetLine] = sorted(
            set_budget_lines(merged_budgets(data.budgets, settings.budgets), self.fx, self.currency)
            + campaign_budget_lines(self.tree, self.fx, self.currency),
            key=_line_order,
        )

    @classmethod
    def from_store(
        cls,
        store: Store,
        settings: Settings,
        *,
        as_of: datetime,
        targets: Mapping[str, Decimal] = DEFAULT_TARGETS,
        tolerance: Decimal = Decimal("0.05"),
    ) -> BudgetEngine:
        """Read only what budgets need, streaming the spend days into daily costs."""
        data = Dataset(
            campaigns=list(store.iter_records(model.Campaign)),
            ad_campaigns=list(store.iter_records(model.AdCampaign)),
            expenses=list(store.iter_records(model.Expense)),
            budgets=list(store.iter_records(model.Budget)),
            fx_rates=list(store.iter_records(model.FxRate)),
        )
        fx = fx_rates_for(data, settings)
        mapper = CampaignMapper(data.campaigns, settings.mapping, settings.name_regex)
        # daily_costs reads the spend once, in order: a stream is enough
        spend = stream_spend(store)
        costs = daily_costs(data.campaigns, data.ad_campaigns, spend, data.expenses, mapper, fx)
        return cls(
            data, settings, as_of=as_of, targets=targets, tolerance=tolerance, fx=fx, costs=costs
        )

    @classmethod
    def from_roi(
        cls,
        engine: RoiEngine,
        *,
        targets: Mapping[str, Decimal] = DEFAULT_TARGETS,
        tolerance: Decimal = Decimal("0.05"),
    ) -> BudgetEngine:
        """Share the ROI engine's rates and daily costs (one computation per run)."""
        return cls(
            engine.data,
            engine.settings,
            as_of=engine.as_of,
            targets=targets,
            tolerance=tolerance,
            fx=engine.fx,
            costs=engine.costs,
        )

    # ----- figures --------------------------------------------------------------------

    def label(self, line: BudgetLine) -> str:
        if line.campaign is not None:
            return self.tree.campaigns[line.campaign].name
        if line.kind == "campaign":
            keys = self.tree.find(line.name)
            if keys:
                return self.tree.campaigns[keys[0]].name
        return line.scope

    def measure(self, line: BudgetLine) -> Consumption:
        return measure(
            line,
            self.members(line),
            self.index,
            label=self.label(line),
            currency=self.currency,
        )

    def forecast_for(self, campaign: model.Campaign) -> Decimal | None:
        """The campaign's own forecast cost (children not rolled in) to its end date, for
        the write-back's ``ROI_Forecast_Cost__c``. A campaign costed by the CRM's own actual
        cost has no daily cost to project: its forecast is the cost so far (DESIGN section 5),
        end date or not. None without any cost, or with daily costs but no end date."""
        key = (campaign.source, campaign.external_id)
        if key not in self.index.spend:
            return None
        if key in self.costs.crm_actual and key not in self.costs.by_campaign:
            return quantize(self.index.cost([key], None), self.currency)
        if campaign.end_date is None:
            return None
        start = min(campaign.start_date or campaign.end_date, campaign.end_date)
        return forecast_cost(
            self.index, [key], Period(start, campaign.end_date, LIFETIME), self.currency
        )

    def members(self, line: BudgetLine) -> list[CampaignKey]:
        if line.campaign is not None:
            return [line.campaign, *self.tree.descendants(line.campaign)]
        return self.tree.members(line.scope)

    def lines_for(self, *, period: str | None, campaigns: bool) -> list[BudgetLine]:
        """Set budgets of ``period`` (None: those running on the as-of day) and, with
        ``campaigns``, the campaigns' own budgets running in it."""
        chosen = Period.parse(period) if period is not None else None
        out = []
        for line in self.lines:
            if line.is_lifetime:
                if not campaigns:
                    continue
                window = chosen or Period(self.as_of_day, self.as_of_day, "today")
                if line.period.start <= window.end and line.period.end >= window.start:
                    out.append(line)
            elif chosen is not None:
                if line.period == chosen:
                    out.append(line)
            elif self.as_of_day in line.period:
                out.append(line)
        return out

    def report(self, *, period: str | None = None, campaigns: bool = False) -> BudgetReport:
        lines = self.lines_for(period=period, campaigns=campaigns)
        return BudgetReport(
            as_of=self.as_of,
            currency=self.currency,
            period=period,
            rows=[self.measure(line) for line in lines],
            mixes=[self.mix(p) for p in _mix_periods(lines)],
            unmapped=[
                UnmappedSpend(source, ad_id, name, spend, AD_SOURCE_CHANNELS.get(source, "other"))
                for source, ad_id, name, spend in unmapped_spend(
                    self.costs, self.currency, Period.parse(period) if period else None
                )
            ],
        )

    def mix(self, period: Period) -> CategoryMix:
        budgets = {
            line.scope: line.amount
            for line in self.lines
            if line.period == period and (line.kind == "category" or line.scope == "total")
        }
        return category_mix(
            period,
            self.index,
            self.tree,
            targets=self.targets,
            tolerance=self.tolerance,
            budgets=budgets,
            currency=self.currency,
        )

    # ----- what alerts look at ------------------------------------------------------------

    def evaluated_lines(self, grace_days: int) -> list[BudgetLine]:
        """Lines whose period has started and did not end more than ``grace_days`` ago
        (late spend and late approvals still land; older periods are history)."""
        latest_end = self.as_of_day - timedelta(days=grace_days)
        return [
            line
            for line in self.lines
            if line.period.start <= self.as_of_day and line.period.end >= latest_end
        ]

    def mix_periods(self, lines: Iterable[BudgetLine]) -> list[Period]:
        return _mix_periods(lines)

    # ----- the budget lock ----------------------------------------------------------------

    def lock_checks(
        self,
        campaign: CampaignKey,
        on: date,
        amount: Decimal,
        pending: Mapping[tuple[str, str], Decimal] | None = None,
    ) -> list[LockCheck]:
        """Every budget the expense falls under, with what it would reach.

        ``amount`` is the expense in the reporting currency (exact); ``pending`` adds amounts
        of earlier rows not stored yet (an import checks its rows in order).
        """
        if self._committed_index is None:
            self._committed_index = CostIndex(
                self.budget_costs, self.tree, as_of_day=self.as_of_day, cutoff=None
            )
        index = self._committed_index
        scopes = set(self.tree.scopes_of(campaign)) if campaign in self.tree else set()
        checks = []
        for line in self.lines:
            if line.scope not in scopes:
                continue
            if line.is_lifetime:
                if line.campaign is None or (
                    line.campaign != campaign and line.campaign not in self.tree.ancestors(campaign)
                ):
                    continue
                committed = index.cost(self.members(line), None)
            elif on in line.period:
                committed = index.cost(self.members(line), line.period)
            else:
                continue
            extra = (pending or {}).get(line.key, Decimal(0))
            checks.append(LockCheck(line=line, committed=committed, amount=amount + extra))
        return checks

    def scopes_of(self, campaign: CampaignKey) -> list[str]:
        return self.tree.scopes_of(campaign)


def _line_order(line: BudgetLine) -> tuple[object, ...]:
    kind = scope_kind(line.scope)
    name = scope_name(line.scope)
    return (
        _KIND_ORDER.get(kind, 9),
        _NAME_ORDER.get(name, len(_NAME_ORDER)),
        name,
        line.period.start,
        -line.period.days,
    )


def _mix_periods(lines: Iterable[BudgetLine]) -> list[Period]:
    periods = {
        line.period
        for line in lines
        if not line.is_lifetime and (line.kind == "category" or line.scope == "total")
    }
    return sorted(periods, key=lambda p: (p.start, -p.days))
