"""ROI figures per campaign, channel, department and budget category (DESIGN section 5).

One :class:`RoiEngine` is built per run from the store's records: it builds the journeys once,
converts each opportunity's amount once (dated rate of its close date, or created date when
open; half-even to the reporting currency's minor unit), and then answers reports for any
attribution model, grouping and period.

Periods: for a period, cost is the cost of its days; leads are persons whose first touch
falls in it; pipeline and opportunities count opportunities created in it; revenue, won,
closed and the sales cycle count opportunities whose close date is in it. Lifetime (no
period) counts everything up to the as-of time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from connector import attribution, model
from connector.alerts.messages import number_against
from connector.attribution import builder as journey_builder
from connector.config import Config
from connector.money import (
    DatedRate,
    FxRates,
    corporate_dated_rates,
    from_minor,
    quantize,
    to_minor,
)
from connector.periods import Period
from connector.roi.costs import DailyCost, campaign_cost, daily_costs, unmapped_spend
from connector.roi.mapping import CampaignMapper, ExplicitMapping
from connector.store.dataset import Dataset

GROUPINGS = ("campaign", "channel", "department", "category")
ALL_MODELS: tuple[str, ...] = (*attribution.MODELS, "markov", "shapley")
_STAGE_RANK = {stage: i for i, stage in enumerate(model.LIFECYCLE_STAGES)}


@dataclass(frozen=True)
class Settings:
    """What the computations take from config (so tests can build one without a file)."""

    reporting_currency: str = "USD"
    timezone: str = "UTC"
    lookback_days: int = 365
    half_life_days: float = 7.0
    responded_only: bool = True
    markov_level: str = "campaign"
    custom_weights: dict[str, Decimal] | None = None
    mapping: tuple[ExplicitMapping, ...] = ()
    name_regex: str | None = None
    fx_rates: tuple[DatedRate, ...] = ()
    budgets: tuple[model.Budget, ...] = ()
    ltv: Decimal | None = None
    gross_margin: Decimal = Decimal(1)
    expected_years: Decimal = Decimal(1)

    roas_min: Decimal | None = Decimal(1)
    mql_to_sql_min: Decimal | None = Decimal("0.30")
    ltv_to_cac_min: Decimal | None = Decimal(3)
    sales_cycle_days_max: int | None = None
    cpl_max: Decimal | None = None

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        custom = config.attribution.custom
        health = config.health
        return cls(
            reporting_currency=config.connector.reporting_currency,
            timezone=config.connector.timezone,
            lookback_days=config.attribution.lookback_days,
            half_life_days=float(config.attribution.time_decay_half_life_days),
            responded_only=config.attribution.responded_only,
            markov_level=config.attribution.markov_level,
            custom_weights=custom.as_mapping() if custom is not None else None,
            mapping=tuple(
                ExplicitMapping(m.ad_source, m.ad_campaign_id, m.crm_campaign_id)
                for m in config.mapping
            ),
            name_regex=config.mapping_rules.name_regex or None,
            fx_rates=tuple(DatedRate(r.currency, r.start_date, r.rate) for r in config.fx_rates),
            budgets=tuple(
                model.Budget(
                    source="config",
                    external_id=model.Budget.key(b.scope, b.period),
                    scope=b.scope,
                    period=b.period,
                    amount=b.amount,
                    currency=b.currency,
                )
                for b in config.budgets
            ),
            ltv=health.ltv,
            gross_margin=health.gross_margin,
            expected_years=health.expected_years,
            roas_min=health.roas_min,
            mql_to_sql_min=health.mql_to_sql_min,
            ltv_to_cac_min=health.ltv_to_cac_min,
            sales_cycle_days_max=health.sales_cycle_days_max,
            cpl_max=health.cpl_max,
        )


def fx_rates_for(data: Dataset, settings: Settings) -> FxRates:
    """The CRM's dated rates where it has them, else config ``[[fx_rates]]``."""
    reporting = settings.reporting_currency
    crm_rows: dict[str, list[dict[str, object]]] = defaultdict(list)
    fallback: list[DatedRate] = list(settings.fx_rates)
    for rate in data.fx_rates:
        if rate.quote == "per_base":
            crm_rows[rate.base_currency].append(
                {
                    "IsoCode": rate.currency,
                    "ConversionRate": rate.rate,
                    "StartDate": rate.start_date,
                }
            )
        elif rate.base_currency == reporting:
            fallback.append(DatedRate(rate.currency, rate.start_date, rate.rate))
    primary: list[DatedRate] = []
    for corporate, rows in crm_rows.items():
        primary.extend(corporate_dated_rates(reporting, corporate, rows))
    unique = {(r.currency, r.start_date): r for r in fallback}
    return FxRates.layered(reporting, primary, unique.values())


@dataclass
class Figures:
    """Additive quantities of one row; ratios are derived from them."""

    cost: Decimal = Decimal(0)
    cost_owned: bool = False
    leads: int = 0
    mql: int = 0
    sql: int = 0
    opportunities: float = 0.0  # sum of credits, opportunities created in the period
    won: float = 0.0  # sum of credits, won in the period
    closed: float = 0.0  # sum of credits, closed in the period
    cycle_weighted_days: float = 0.0  # credit x (close date - created date), won
    influenced: int = 0
    pipeline_minor: int = 0
    revenue_minor: int = 0
    budget: Decimal | None = None

    def add(self, other: Figures) -> None:
        self.cost += other.cost
        self.cost_owned = self.cost_owned or other.cost_owned
        self.leads += other.leads
        self.mql += other.mql
        self.sql += other.sql
        self.opportunities += other.opportunities
        self.won += other.won
        self.closed += other.closed
        self.cycle_weighted_days += other.cycle_weighted_days
        self.influenced += other.influenced
        self.pipeline_minor += other.pipeline_minor
        self.revenue_minor += other.revenue_minor


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    return None if denominator == 0 else numerator / denominator


@dataclass
class Row:
    """One report row: the contract's fields plus the other figures of DESIGN section 5."""

    key: str
    name: str
    currency: str
    figures: Figures
    ltv: Decimal | None
    campaign: model.Campaign | None = None
    health: list[str] = field(default_factory=list)

    @property
    def cost(self) -> Decimal:
        return self.figures.cost

    @property
    def attributed_pipeline(self) -> Decimal:
        return from_minor(self.figures.pipeline_minor, self.currency)

    @property
    def attributed_revenue(self) -> Decimal:
        return from_minor(self.figures.revenue_minor, self.currency)

    @property
    def roi(self) -> Decimal | None:
        """(revenue - cost) / cost; None without cost, -1 with cost and no revenue."""
        return _ratio(self.attributed_revenue - self.cost, self.cost)

    @property
    def roas(self) -> Decimal | None:
        return _ratio(self.attributed_revenue, self.cost)

    @property
    def cpl(self) -> Decimal | None:
        if not self.figures.leads:
            return None
        return quantize(self.cost / self.figures.leads, self.currency)

    @property
    def cost_per_opportunity(self) -> Decimal | None:
        if self.figures.opportunities <= 0:
            return None
        return quantize(self.cost / _dec(self.figures.opportunities), self.currency)

    @property
    def cac(self) -> Decimal | None:
        if self.figures.won <= 0:
            return None
        return quantize(self.cost / _dec(self.figures.won), self.currency)

    @property
    def mql_to_sql(self) -> Decimal | None:
        return _ratio(Decimal(self.figures.sql), Decimal(self.figures.mql))

    @property
    def win_rate(self) -> Decimal | None:
        if self.figures.closed <= 0:
            return None
        return _dec(self.figures.won) / _dec(self.figures.closed)

    @property
    def sales_cycle_days(self) -> Decimal | None:
        if self.figures.won <= 0:
            return None
        return _dec(self.figures.cycle_weighted_days) / _dec(self.figures.won)

    @property
    def ltv_to_cac(self) -> Decimal | None:
        cac = self.cac
        if cac is None or cac == 0 or self.ltv is None:
            return None
        return self.ltv / cac

    @property
    def budget(self) -> Decimal | None:
        return self.figures.budget

    def health_failures(self, settings: Settings) -> list[str]:
        """The health rules this row fails (DESIGN section 5); a rule whose figure is null
        (no cost yet, no MQL) cannot fail."""
        failures = []
        checks: list[tuple[str, Decimal | None, Decimal | int | None, bool]] = [
            ("roas", self.roas, settings.roas_min, True),
            ("mql_to_sql", self.mql_to_sql, settings.mql_to_sql_min, True),
            ("ltv_to_cac", self.ltv_to_cac, settings.ltv_to_cac_min, True),
            ("sales_cycle_days", self.sales_cycle_days, settings.sales_cycle_days_max, False),
            ("cpl", self.cpl, settings.cpl_max, False),
        ]
        for name, value, limit, at_least in checks:
            if value is None or limit is None:
                continue
            if at_least and value < limit:
                failures.append(f"{name} {number_against(value, limit, below=True)} < {limit}")
            elif not at_least and value > limit:
                failures.append(f"{name} {number_against(value, limit, below=False)} > {limit}")
        return failures

    @property
    def budget_consumed(self) -> Decimal | None:
        budget = self.figures.budget
        return None if budget is None or budget == 0 else self.cost / budget


def _dec(value: float) -> Decimal:
    """A credit sum as Decimal (credits are float shares; money never is)."""
    return Decimal(repr(round(value, 12)))


@dataclass
class Report:
    as_of: datetime
    currency: str
    model: str
    period: str
    by: str
    rows: list[Row]
    unmapped: list[tuple[str, str, str, Decimal]] = field(default_factory=list)
    unattributed_opportunities: int = 0
    unattributed_pipeline: Decimal = Decimal(0)


class RoiEngine:
    """Attribution and ROI over one snapshot of the store."""

    def __init__(self, data: Dataset, settings: Settings, *, as_of: datetime) -> None:
        self.data = data
        self.settings = settings
        self.as_of = as_of
        self.tz = ZoneInfo(settings.timezone)
        self.as_of_day = as_of.astimezone(self.tz).date()
        self.currency = settings.reporting_currency
        self.fx = fx_rates_for(data, settings)
        self.inputs = journey_builder.build(
            data,
            as_of=as_of,
            tz=self.tz,
            lookback_days=settings.lookback_days,
            responded_only=settings.responded_only,
        )
        self.mapper = CampaignMapper(data.campaigns, settings.mapping, settings.name_regex)
        self.costs: DailyCost = daily_costs(
            data.campaigns, data.ad_campaigns, data.spend, data.expenses, self.mapper, self.fx
        )
        opps = self.inputs.opportunities
        self.amount_minor = np.asarray([self._amount_minor(o) for o in opps], dtype=np.int64)
        self.created_day = [
            (o.created_at.astimezone(self.tz).date() if o.created_at else None) for o in opps
        ]
        self._credits: dict[str, np.ndarray] = {}
        self._allocations: dict[str, attribution.Allocation] = {}
        self._stage_by_root: dict[journey_builder.PersonKey, int] = {}
        people = self.inputs.people
        for key, person in people.records.items():
            rank = _STAGE_RANK.get(person.lifecycle_stage, 0)
            # a person who reached SQL and was later recycled to "lead" still reached it
            if person.sql_at is not None:
                rank = max(rank, _STAGE_RANK["sql"])
            elif person.mql_at is not None:
                rank = max(rank, _STAGE_RANK["mql"])
            root = people.root(key)
            self._stage_by_root[root] = max(self._stage_by_root.get(root, 0), rank)

    def _amount_minor(self, opp: model.Opportunity) -> int:
        if opp.amount is None:
            return 0  # a missing amount counts as 0 (DESIGN section 4)
        if opp.is_closed and opp.close_date is not None:
            on = opp.close_date
        elif opp.created_at is not None:
            on = opp.created_at.astimezone(self.tz).date()
        else:
            on = self.as_of_day
        converted = self.fx.convert(opp.amount, opp.currency or self.currency, on)
        return to_minor(converted, self.currency)

    # ----- attribution ---------------------------------------------------------------

    def credits(self, model_name: str) -> np.ndarray:
        if model_name not in self._credits:
            j = self.inputs.journeys
            if model_name == "markov":
                credits, _ = attribution.markov_credits(
                    j, self.inputs.nonconverting, self.settings.markov_level
                )
            elif model_name == "shapley":
                credits, _ = attribution.shapley_credits(j, self.inputs.nonconverting)
            elif model_name in attribution.MODELS:
                credits = attribution.rule_credits(
                    j,
                    model_name,
                    half_life_days=self.settings.half_life_days,
                    custom=self.settings.custom_weights,
                )
            else:
                raise ValueError(
                    f"unknown attribution model {model_name!r}; choose one of "
                    + ", ".join(ALL_MODELS)
                )
            self._credits[model_name] = credits
        return self._credits[model_name]

    def allocation(self, model_name: str) -> attribution.Allocation:
        if model_name not in self._allocations:
            self._allocations[model_name] = attribution.allocate(
                self.inputs.journeys, self.credits(model_name), self.amount_minor
            )
        return self._allocations[model_name]

    # ----- figures per campaign ------------------------------------------------------

    def campaign_figures(self, model_name: str, period: Period | None) -> list[Figures]:
        campaigns = self.inputs.campaigns
        figures = [Figures() for _ in campaigns]
        for i, campaign in enumerate(campaigns):
            key = (campaign.source, campaign.external_id)
            figures[i].cost = campaign_cost(self.costs, key, self.currency, period, self.as_of_day)
            figures[i].cost_owned = key in self.costs.owned
            figures[i].budget = self._campaign_budget(campaign, period)

        for root, (when, index) in self.inputs.first_touch.items():
            if period is not None and when.astimezone(self.tz).date() not in period:
                continue
            figures[index].leads += 1
            stage = self._stage_rank(root)
            if stage >= _STAGE_RANK["mql"]:
                figures[index].mql += 1
            if stage >= _STAGE_RANK["sql"]:
                figures[index].sql += 1

        alloc = self.allocation(model_name)
        opps = self.inputs.opportunities
        in_created = np.ones(len(opps), dtype=bool)
        in_closed = np.asarray([o.is_closed for o in opps], dtype=bool)
        if period is not None:
            in_created = np.asarray(
                [d is not None and d in period for d in self.created_day], dtype=bool
            )
            in_closed &= np.asarray(
                [o.close_date is not None and o.close_date in period for o in opps], dtype=bool
            )
        won = np.asarray([o.is_won for o in opps], dtype=bool)
        cycle = np.asarray(
            [
                (o.close_date - self.created_day[i]).days
                if o.close_date is not None and self.created_day[i] is not None
                else 0
                for i, o in enumerate(opps)
            ],
            dtype=np.float64,
        )
        pair_opp = alloc.opp
        pair_campaign = alloc.campaign
        credit = alloc.credit
        n = len(campaigns)
        c_created = in_created[pair_opp]
        c_closed = in_closed[pair_opp]
        c_won = c_closed & won[pair_opp]
        pipeline_minor = np.zeros(n, dtype=np.int64)
        np.add.at(pipeline_minor, pair_campaign[c_created], alloc.amount_minor[c_created])
        revenue_minor = np.zeros(n, dtype=np.int64)
        np.add.at(revenue_minor, pair_campaign[c_won], alloc.amount_minor[c_won])
        opps_credit = np.bincount(pair_campaign[c_created], weights=credit[c_created], minlength=n)
        won_credit = np.bincount(pair_campaign[c_won], weights=credit[c_won], minlength=n)
        closed_credit = np.bincount(pair_campaign[c_closed], weights=credit[c_closed], minlength=n)
        cycle_credit = np.bincount(
            pair_campaign[c_won], weights=credit[c_won] * cycle[pair_opp[c_won]], minlength=n
        )
        influenced = np.bincount(pair_campaign[c_created | c_closed], minlength=n)
        for i in range(n):
            f = figures[i]
            f.pipeline_minor = int(pipeline_minor[i])
            f.revenue_minor = int(revenue_minor[i])
            f.opportunities = float(opps_credit[i])
            f.won = float(won_credit[i])
            f.closed = float(closed_credit[i])
            f.cycle_weighted_days = float(cycle_credit[i])
            f.influenced = int(influenced[i])
        return figures

    def _stage_rank(self, root: journey_builder.PersonKey) -> int:
        """The furthest lifecycle stage any record of the person reached."""
        return self._stage_by_root.get(root, 0)

    def _campaign_budget(self, campaign: model.Campaign, period: Period | None) -> Decimal | None:
        explicit = self._budget_for(f"campaign:{campaign.external_id}", period)
        if explicit is not None:
            return explicit
        if campaign.budgeted_cost is None:
            return None
        on = campaign.start_date or self.as_of_day
        amount = self.fx.convert_exact(
            campaign.budgeted_cost, campaign.currency or self.currency, on
        )
        if period is not None:
            start, end = campaign.start_date, campaign.end_date
            if start is None or end is None or end < start:
                return None
            overlap = (min(end, period.end) - max(start, period.start)).days + 1
            if overlap <= 0:
                return None
            amount = amount * overlap / ((end - start).days + 1)
        return quantize(amount, self.currency)

    def budgets(self) -> list[model.Budget]:
        merged = {(b.scope, b.period): b for b in self.data.budgets}
        merged.update({(b.scope, b.period): b for b in self.settings.budgets})
        return list(merged.values())

    def _budget_for(self, scope: str, period: Period | None) -> Decimal | None:
        if period is None:
            return None
        for budget in self.budgets():
            if budget.scope == scope and Period.parse(budget.period) == period:
                return quantize(
                    self.fx.convert_exact(budget.amount, budget.currency, period.start),
                    self.currency,
                )
        return None

    # ----- reports --------------------------------------------------------------------

    def report(
        self, *, model_name: str, by: str = "campaign", period: Period | None = None
    ) -> Report:
        if by not in GROUPINGS:
            raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
        figures = self.campaign_figures(model_name, period)
        campaigns = self.inputs.campaigns
        ltv = self._ltv()
        rows: list[Row] = []
        if by == "campaign":
            for campaign, f in zip(campaigns, figures, strict=True):
                rows.append(
                    Row(
                        key=f"{campaign.source}:{campaign.external_id}",
                        name=campaign.name,
                        currency=self.currency,
                        figures=f,
                        ltv=ltv,
                        campaign=campaign,
                    )
                )
        else:
            groups: dict[str, Figures] = {}
            for campaign, f in zip(campaigns, figures, strict=True):
                name = _group_name(campaign, by)
                group = groups.setdefault(name, Figures())
                budget = group.budget
                group.add(f)
                group.budget = budget
            scope_kind = "category" if by == "category" else by
            for name in _ordered(groups, by):
                f = groups[name]
                f.budget = self._budget_for(f"{scope_kind}:{name}", period)
                rows.append(Row(key=name, name=name, currency=self.currency, figures=f, ltv=ltv))
        for row in rows:
            row.health = row.health_failures(self.settings)
        alloc = self.allocation(model_name)
        unattributed = alloc.unattributed
        return Report(
            as_of=self.as_of,
            currency=self.currency,
            model=model_name,
            period=period.name if period else "lifetime",
            by=by,
            rows=rows,
            unmapped=unmapped_spend(self.costs, self.currency, period),
            unattributed_opportunities=int(unattributed.shape[0]),
            unattributed_pipeline=from_minor(
                int(self.amount_minor[unattributed].sum()), self.currency
            ),
        )

    def available_models(self) -> tuple[str, ...]:
        """Every model that can run with these settings (``custom`` needs its weights)."""
        return tuple(
            m for m in ALL_MODELS if m != "custom" or self.settings.custom_weights is not None
        )

    def compare_models(
        self, models: Iterable[str] | None = None, period: Period | None = None
    ) -> tuple[list[model.Campaign], dict[str, list[Decimal]]]:
        """Attributed revenue per campaign under each model, side by side."""
        out: dict[str, list[Decimal]] = {}
        for name in models or self.available_models():
            figures = self.campaign_figures(name, period)
            out[name] = [from_minor(f.revenue_minor, self.currency) for f in figures]
        return self.inputs.campaigns, out

    def _ltv(self) -> Decimal | None:
        if self.settings.ltv is not None:
            return self.settings.ltv
        won = [
            int(a)
            for a, o in zip(self.amount_minor, self.inputs.opportunities, strict=True)
            if o.is_won
        ]
        if not won:
            return None
        mean = from_minor(sum(won), self.currency) / len(won)
        return mean * self.settings.gross_margin * self.settings.expected_years


def _group_name(campaign: model.Campaign, by: str) -> str:
    if by == "channel":
        return campaign.channel or "other"
    if by == "department":
        return campaign.department or "(none)"
    return campaign.budget_category or "(none)"


def _ordered(groups: dict[str, Figures], by: str) -> list[str]:
    if by == "channel":
        order = {c: i for i, c in enumerate(model.CHANNELS)}
        return sorted(groups, key=lambda g: (order.get(g, len(order)), g))
    if by == "category":
        order = {c: i for i, c in enumerate(model.BUDGET_CATEGORIES)}
        return sorted(groups, key=lambda g: (order.get(g, len(order)), g))
    return sorted(groups)
