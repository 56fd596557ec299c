"""The alert rules: which conditions hold right now (DESIGN section 5).

Each rule looks at one scope and period and says whether its condition is met; what that
means over time (firing once per crossing, resolving, delivering) is :mod:`connector.alerts.log`.
Rules:

- ``budget_threshold``: budget_consumed >= a threshold (default 0.5, 0.8, 1.0);
- ``forecast_over_budget``: forecast_cost > budget, while the period runs;
- ``under_pacing``: pacing below ``[alerts] under_pacing`` once ``min_days_elapsed`` days of
  the period are gone, while it runs;
- ``category_drift``: a category's share of the period's spend further than the tolerance
  from its target;
- ``health_<figure>``: a campaign in flight failing a ``[health]`` rule (roas, mql_to_sql,
  ltv_to_cac, sales_cycle_days, cpl).

The threshold rules and the forecast of one budget form a group: when one run crosses several
of them at once only the highest fires. The forecast ranks above every threshold under 100 %
and below 100 % itself: "will overspend" says more than "used 80 %", "has overspent" more
than "will".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from connector.alerts import messages as texts
from connector.budgets.category_mix import CategoryMix
from connector.budgets.consumption import Consumption
from connector.budgets.engine import BudgetEngine
from connector.config import Config
from connector.roi import Report, Settings
from connector.store.dbtypes import canonical_decimal

BUDGET_RULES: tuple[str, ...] = (
    "budget_threshold",
    "forecast_over_budget",
    "under_pacing",
    "category_drift",
)
HEALTH_FIGURES: tuple[str, ...] = ("roas", "mql_to_sql", "ltv_to_cac", "sales_cycle_days", "cpl")
HEALTH_RULES: tuple[str, ...] = tuple(f"health_{f}" for f in HEALTH_FIGURES)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertSettings:
    """What the rules take from ``[alerts]`` (category targets are the engine's, from
    ``[budget_categories]``)."""

    thresholds: tuple[Decimal, ...] = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
    forecast_over_budget: bool = True
    under_pacing: Decimal = Decimal("0.5")
    language: str = "en"
    min_days_elapsed: int = 7
    grace_days: int = 30
    health: bool = True

    @classmethod
    def from_config(cls, config: Config) -> AlertSettings:
        alerts = config.alerts
        return cls(
            thresholds=tuple(alerts.thresholds),
            forecast_over_budget=alerts.forecast_over_budget,
            under_pacing=alerts.under_pacing,
            language=alerts.language,
            min_days_elapsed=alerts.min_days_elapsed,
            grace_days=alerts.grace_days,
            health=alerts.health,
        )


def dedup_key(rule: str, scope: str, period: str, threshold: Decimal | None) -> str:
    """rule + scope + period + threshold: one alert per crossing (DESIGN section 5)."""
    shown = "-" if threshold is None else canonical_decimal(threshold)
    return f"{rule}|{scope}|{period}|{shown}"


@dataclass(frozen=True)
class Evaluation:
    """One rule on one scope and period at this run: met or not, with its text when met."""

    rule: str
    scope: str
    period: str
    threshold: Decimal | None
    met: bool
    value: Decimal | None = None
    severity: str = "warning"
    message: str = ""
    """Subject line, a newline, the body (only when met)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    """Evaluations of one group newly met in one run: only the highest rank fires."""
    rank: tuple[Any, ...] = ()

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.rule, self.scope, self.period, self.threshold)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _ratio(value: Decimal | None) -> str | None:
    return None if value is None else canonical_decimal(round(value, 6))


def _threshold_severity(threshold: Decimal) -> str:
    if threshold >= 1:
        return "critical"
    return "warning" if threshold >= Decimal("0.8") else "info"


def _details(c: Consumption, engine: BudgetEngine) -> dict[str, Any]:
    line = c.line
    out: dict[str, Any] = {
        "label": c.label,
        "currency": c.currency,
        "budget": _money(c.budget),
        "cost": _money(c.cost),
        "budget_consumed": _ratio(c.budget_consumed),
        "pacing": _ratio(c.pacing),
        "forecast_cost": _money(c.forecast_cost),
        "remaining": _money(c.remaining),
        "run_rate": _money(c.run_rate),
        "exhausted_on": c.exhausted_on.isoformat() if c.exhausted_on else None,
        "period_start": line.period.start.isoformat(),
        "period_end": line.period.end.isoformat(),
    }
    out.update(_campaign_details(engine, c.owner_campaign))
    return out


def _campaign_details(engine: BudgetEngine, key: tuple[str, str] | None) -> dict[str, Any]:
    if key is None or key not in engine.tree:
        return {}
    campaign = engine.tree.campaigns[key]
    return {
        "campaign_source": key[0],
        "campaign_id": key[1],
        "campaign_name": campaign.name,
        "owner_id": campaign.owner_id,
        "owner_name": campaign.owner_name,
    }


def _values(c: Consumption, language: str) -> dict[str, str]:
    line = c.line
    return {
        "scope": texts.scope_label(language, line.scope, c.label),
        "period": texts.period_label(
            language, line.period.name, line.period.start, line.period.end
        ),
        "cost": texts.money(c.cost, c.currency),
        "budget": texts.money(c.budget, c.currency),
        "consumed": texts.percent(c.budget_consumed),
        "forecast": texts.money(c.forecast_cost, c.currency),
        "forecast_pct": texts.percent(c.forecast_consumed),
        "run_rate": texts.money(c.run_rate, c.currency),
        "pacing": texts.percent(c.pacing),
        "elapsed": texts.percent(c.fraction_elapsed),
        "exhausted_on": c.exhausted_on.isoformat() if c.exhausted_on else "",
    }


def _message(language: str, rule: str, **values: str) -> str:
    subject, body = texts.render(language, rule, **values)
    return f"{subject}\n{body}"


def budget_evaluations(
    consumptions: Iterable[Consumption],
    engine: BudgetEngine,
    settings: AlertSettings,
) -> list[Evaluation]:
    """Threshold, forecast and pacing rules for each budget line."""
    as_of_day = engine.as_of_day
    language = settings.language
    out: list[Evaluation] = []
    for c in consumptions:
        line = c.line
        scope, period = line.scope, line.period.name
        group = f"budget|{scope}|{period}"
        usage = c.budget_consumed
        overspent_zero = c.budget == 0 and c.cost > 0
        running = c.in_progress(as_of_day)
        crossed = [
            (t, overspent_zero or (usage is not None and usage >= t)) for t in settings.thresholds
        ]
        forecast_met = running and c.forecast_cost > c.budget
        pacing_met = (
            running
            and c.days_elapsed >= settings.min_days_elapsed
            and c.pacing is not None
            and c.pacing < settings.under_pacing
        )
        details = _details(c, engine)
        values = (
            _values(c, language)
            if forecast_met or pacing_met or any(met for _, met in crossed)
            else {}
        )
        for threshold, met in crossed:
            out.append(
                Evaluation(
                    rule="budget_threshold",
                    scope=scope,
                    period=period,
                    threshold=threshold,
                    met=met,
                    value=usage,
                    severity=_threshold_severity(threshold),
                    message=_message(
                        language,
                        "budget_threshold",
                        **values,
                        threshold=texts.percent(threshold),
                    )
                    if met
                    else "",
                    details=details,
                    group=group,
                    rank=(threshold >= 1, threshold),
                )
            )
        if settings.forecast_over_budget:
            out.append(
                Evaluation(
                    rule="forecast_over_budget",
                    scope=scope,
                    period=period,
                    threshold=Decimal(1),
                    met=forecast_met,
                    value=c.forecast_consumed,
                    severity="warning",
                    message=_message(language, "forecast_over_budget", **values)
                    if forecast_met
                    else "",
                    details=details,
                    group=group,
                    rank=(True, Decimal(0)),
                )
            )
        if settings.under_pacing > 0:
            out.append(
                Evaluation(
                    rule="under_pacing",
                    scope=scope,
                    period=period,
                    threshold=settings.under_pacing,
                    met=pacing_met,
                    value=c.pacing,
                    severity="info",
                    message=_message(
                        language,
                        "under_pacing",
                        **values,
                        threshold=texts.percent(settings.under_pacing),
                    )
                    if pacing_met
                    else "",
                    details=details,
                )
            )
    return out


def category_evaluations(
    mixes: Iterable[CategoryMix], as_of_day: date, settings: AlertSettings, currency: str
) -> list[Evaluation]:
    """A category whose share of the period's spend drifted off its target."""
    out = []
    language = settings.language
    for mix in mixes:
        period = mix.period
        waited = period.days_elapsed(as_of_day) >= min(settings.min_days_elapsed, period.days)
        for share in mix.shares:
            met = waited and share.drifting
            message = ""
            if met:
                message = _message(
                    language,
                    "category_drift",
                    category=share.category,
                    share=texts.percent(share.share),
                    target=texts.percent(share.target),
                    tolerance=texts.percent(share.tolerance),
                    period=period.name,
                    cost=texts.money(share.cost, currency),
                )
            out.append(
                Evaluation(
                    rule="category_drift",
                    scope=f"category:{share.category}",
                    period=period.name,
                    threshold=share.tolerance,
                    met=met,
                    value=share.share,
                    severity="warning",
                    message=message,
                    details={
                        "label": f"category:{share.category}",
                        "currency": currency,
                        "cost": _money(share.cost),
                        "share": _ratio(share.share),
                        "target": _ratio(share.target),
                        "planned_share": _ratio(share.planned),
                        "drift": _ratio(share.drift),
                        "period_start": period.start.isoformat(),
                        "period_end": period.end.isoformat(),
                    },
                )
            )
    return out


_HEALTH_LIMITS: Mapping[str, tuple[str, str]] = {
    "roas": ("roas_min", "≥"),
    "mql_to_sql": ("mql_to_sql_min", "≥"),
    "ltv_to_cac": ("ltv_to_cac_min", "≥"),
    "sales_cycle_days": ("sales_cycle_days_max", "≤"),
    "cpl": ("cpl_max", "≤"),
}


def health_evaluations(
    report: Report,
    engine: BudgetEngine,
    roi_settings: Settings,
    settings: AlertSettings,
) -> list[Evaluation]:
    """Health rules on campaigns in flight (or ended within the grace days); a figure that
    is null (no cost, no MQL yet) cannot fail, as in the ROI report."""
    if not settings.health:
        return []
    as_of_day = engine.as_of_day
    language = settings.language
    out = []
    for row in report.rows:
        campaign = row.campaign
        if campaign is None or not _in_flight(
            campaign.start_date, campaign.end_date, as_of_day, settings.grace_days
        ):
            continue
        failed = {text.split(" ", 1)[0] for text in row.health_failures(roi_settings)}
        key = (campaign.source, campaign.external_id)
        scope = f"campaign:{campaign.external_id}"
        for figure in HEALTH_FIGURES:
            attribute, op = _HEALTH_LIMITS[figure]
            limit = getattr(roi_settings, attribute)
            if limit is None:
                continue
            limit = Decimal(limit)
            value: Decimal | None = getattr(row, figure)
            met = figure in failed
            message = ""
            if met:
                message = _message(
                    language,
                    f"health_{figure}",
                    scope=texts.scope_label(language, scope, campaign.name),
                    figure=texts.figure_label(language, figure),
                    value=texts.number_against(value, limit, below=op == "≥")
                    if value is not None
                    else texts.number(value),
                    op=op,
                    limit=texts.number(limit),
                    cost=texts.money(row.cost, row.currency),
                )
            out.append(
                Evaluation(
                    rule=f"health_{figure}",
                    scope=scope,
                    period="lifetime",
                    threshold=limit,
                    met=met,
                    value=value,
                    severity="warning",
                    message=message,
                    details={
                        "label": campaign.name,
                        "currency": row.currency,
                        "cost": _money(row.cost),
                        "figure": figure,
                        "value": _ratio(value),
                        **_campaign_details(engine, key),
                    },
                )
            )
    return out


def _in_flight(start: date | None, end: date | None, as_of_day: date, grace_days: int) -> bool:
    if start is None or start > as_of_day:
        return False
    return end is None or (as_of_day - end).days <= grace_days


def evaluate(
    engine: BudgetEngine,
    settings: AlertSettings,
    *,
    report: Report | None = None,
    roi_settings: Settings | None = None,
) -> tuple[list[Evaluation], tuple[str, ...]]:
    """Every rule over the budgets a run looks at; returns the evaluations and the rules
    that were evaluated (their open alerts with no evaluation this run are resolved).

    Health rules need attribution: they run only when the ROI ``report`` (by campaign,
    lifetime) is given.
    """
    lines = engine.evaluated_lines(settings.grace_days)
    consumptions = [engine.measure(line) for line in lines]
    evaluations = budget_evaluations(consumptions, engine, settings)
    mixes = [engine.mix(p) for p in engine.mix_periods(lines)]
    evaluations += category_evaluations(mixes, engine.as_of_day, settings, engine.currency)
    rules: Sequence[str] = BUDGET_RULES
    if report is not None and roi_settings is not None:
        evaluations += health_evaluations(report, engine, roi_settings, settings)
        rules = (*BUDGET_RULES, *HEALTH_RULES)
    return evaluations, tuple(rules)
