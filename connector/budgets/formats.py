"""``crm-roi budget`` and ``crm-roi alerts`` output: a table with bars, CSV and JSON.

As in the ROI report (:mod:`connector.roi.formats`), money in JSON and CSV is a string with
the currency's decimals and ratios are numbers as ratios (0.85 is 85 %). The bar shows the
budget used, with ``│`` where the period's elapsed time is: a bar running past its marker is
spending ahead of time. Green is on track, yellow is forecast over budget, red is over.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.alerts.log import AlertRecord, reached
from connector.budgets.category_mix import CategoryMix
from connector.budgets.consumption import Consumption
from connector.budgets.engine import BudgetReport
from connector.roi.formats import money_text, ratio_number

BAR_WIDTH = 20
CSV_FIELDS = (
    "scope",
    "name",
    "period",
    "start",
    "end",
    "budget",
    "cost",
    "budget_consumed",
    "pacing",
    "forecast_cost",
    "forecast_consumed",
    "remaining",
    "run_rate",
    "exhausted_on",
    "days_elapsed",
    "days_left",
    "status",
    "source",
)


def status(c: Consumption) -> str:
    """``over`` (cost above budget), ``at_risk`` (forecast above budget) or ``on_track``."""
    if c.cost > c.budget:
        return "over"
    if c.forecast_cost > c.budget:
        return "at_risk"
    return "on_track"


def consumption_dict(c: Consumption) -> dict[str, Any]:
    line = c.line
    return {
        "scope": line.scope,
        "name": c.label,
        "period": line.period.name,
        "start": line.period.start.isoformat(),
        "end": line.period.end.isoformat(),
        "budget": money_text(c.budget),
        "cost": money_text(c.cost),
        "budget_consumed": ratio_number(c.budget_consumed),
        "pacing": ratio_number(c.pacing),
        "forecast_cost": money_text(c.forecast_cost),
        "forecast_consumed": ratio_number(c.forecast_consumed),
        "remaining": money_text(c.remaining),
        "run_rate": money_text(c.run_rate),
        "exhausted_on": c.exhausted_on.isoformat() if c.exhausted_on else None,
        "days_elapsed": c.days_elapsed,
        "days_left": c.days_left,
        "status": status(c),
        "source": line.source,
    }


def mix_dict(mix: CategoryMix) -> dict[str, Any]:
    return {
        "period": mix.period.name,
        "uncategorized_cost": money_text(mix.uncategorized_cost),
        "categories": [
            {
                "category": s.category,
                "cost": money_text(s.cost),
                "share": ratio_number(s.share),
                "target": ratio_number(s.target),
                "planned_share": ratio_number(s.planned),
                "drift": ratio_number(s.drift),
                "tolerance": ratio_number(s.tolerance),
                "drifting": s.drifting,
            }
            for s in mix.shares
        ],
    }


def to_json(report: BudgetReport) -> str:
    payload = {
        "as_of": report.as_of.isoformat(),
        "currency": report.currency,
        "period": report.period or "current",
        "rows": [consumption_dict(c) for c in report.rows],
        "categories": [mix_dict(m) for m in report.mixes],
        "unmapped_spend": [
            {
                "ad_source": u.source,
                "ad_campaign_id": u.ad_campaign_id,
                "name": u.name,
                "channel": u.channel,
                "spend": money_text(u.spend),
            }
            for u in report.unmapped
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def to_csv(report: BudgetReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in report.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in consumption_dict(c).items()})
    return out.getvalue()


def bar(consumed: Decimal | None, elapsed: Decimal, state: str, width: int = BAR_WIDTH) -> str:
    """``███████│░░░░`` in rich markup: used share of the budget, ``│`` at the time elapsed."""
    if consumed is None:
        return " " * width
    filled = min(int((min(consumed, Decimal(1)) * width).to_integral_value()), width)
    marker = min(int((elapsed * width).to_integral_value()), width - 1)
    cells = ["█" if i < filled else "░" for i in range(width)]
    if 0 < elapsed < 1:
        cells[marker] = "│"
    colour = {"over": "red", "at_risk": "yellow"}.get(state, "green")
    overflow = "▶" if consumed > 1 else " "
    return f"[{colour}]{''.join(cells)}{overflow}[/]"


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value * 100:,.1f}%"


def _amount(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def render_table(report: BudgetReport, console: Console, *, limit: int | None = None) -> None:
    period = report.period or "running today"
    title = f"Budgets · {period} · {report.currency} · as of {report.as_of:%Y-%m-%d %H:%M} UTC"
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in [
        ("scope", "left"),
        ("period", "left"),
        ("budget", "right"),
        ("cost", "right"),
        ("used", "right"),
        ("", "left"),
        ("pacing", "right"),
        ("forecast", "right"),
        ("fcst", "right"),
        ("remaining", "right"),
        ("runs out", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = report.rows if limit is None else report.rows[:limit]
    for c in rows:
        state = status(c)
        table.add_row(
            escape(c.label),
            c.line.period.name
            if not c.line.is_lifetime
            else f"{c.line.period.start:%Y-%m-%d}..{c.line.period.end:%Y-%m-%d}",
            _amount(c.budget),
            _amount(c.cost),
            _pct(c.budget_consumed),
            bar(c.budget_consumed, c.fraction_elapsed, state),
            _pct(c.pacing),
            _amount(c.forecast_cost),
            _pct(c.forecast_consumed),
            _amount(c.remaining),
            c.exhausted_on.isoformat() if c.exhausted_on else "",
        )
    if not report.rows:
        console.print(
            f"No budgets for {period}: set [[budgets]] in config or run `crm-roi budget "
            "import FILE`.",
            highlight=False,
            markup=False,
        )
        render_unmapped(report, console)
        return
    console.print(table)
    if limit is not None and len(report.rows) > limit:
        console.print(f"  … {len(report.rows) - limit} more rows (use --format csv or json)")
    for mix in report.mixes:
        render_mix(mix, console)
    render_unmapped(report, console)


def render_unmapped(report: BudgetReport, console: Console) -> None:
    """Unmapped spend under the budgets, as the ROI report lists it: it is counted in its
    channel and the total above, and someone should map it to a campaign."""
    for u in report.unmapped:
        console.print(
            f"  [yellow]unmapped spend[/] (counted in channel:{u.channel} and total): "
            f"{escape(u.source)} campaign {escape(u.ad_campaign_id)} ({escape(u.name)}): "
            f"{u.spend:,.2f} {report.currency} — add a \\[\\[mapping]] row",
            highlight=False,
        )


def render_mix(mix: CategoryMix, console: Console) -> None:
    table = Table(
        title=f"Budget categories · {mix.period.name} · share of categorized spend",
        title_justify="left",
        header_style="bold",
    )
    for name in ("category", "cost", "share", "target", "planned", "drift"):
        table.add_column(name, justify="left" if name == "category" else "right")
    for s in mix.shares:
        drift = _pct(s.drift)
        if s.drifting:
            drift = f"[yellow]{drift}[/]"
        table.add_row(
            s.category, _amount(s.cost), _pct(s.share), _pct(s.target), _pct(s.planned), drift
        )
    console.print(table)
    if mix.uncategorized_cost:
        console.print(
            f"  uncategorized spend: {mix.uncategorized_cost:,.2f} (set the campaigns' "
            "budget category to count it)"
        )


# ----- alerts ----------------------------------------------------------------------------


def alert_dict(alert: AlertRecord) -> dict[str, Any]:
    return {
        "dedup_key": alert.dedup_key,
        "rule": alert.rule,
        "scope": alert.scope,
        "period": alert.period,
        "threshold": ratio_number(alert.threshold),
        "severity": alert.severity,
        "state": alert.state,
        "value": ratio_number(alert.value),
        "subject": alert.subject,
        "message": alert.body,
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "firings": alert.firings,
        "delivered_to": alert.delivered_to,
        "delivery_errors": alert.delivery_errors,
        "crm_task_id": alert.crm_task_id,
        "details": alert.details,
        "history": alert.history,
    }


def alerts_json(alerts: Sequence[AlertRecord]) -> str:
    return json.dumps({"alerts": [alert_dict(a) for a in alerts]}, indent=2, ensure_ascii=False)


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def render_alerts(
    alerts: Sequence[AlertRecord], console: Console, *, title: str = "Alerts"
) -> None:
    if not alerts:
        console.print(f"{title}: none.", highlight=False)
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in ("state", "severity", "alert", "opened", "delivered"):
        table.add_column(name)
    for alert in alerts:
        style = _SEVERITY_STYLE.get(alert.severity, "")
        delivered = ", ".join(reached(alert)) or "—"
        skipped = sorted(set(alert.delivered_to) - set(reached(alert)))
        if skipped:
            delivered += f" [dim](no way by {escape(', '.join(skipped))})[/]"
        if alert.delivery_errors:
            failing = ", ".join(sorted(alert.delivery_errors))
            delivered += f" [red](failing: {escape(failing)})[/]"
        table.add_row(
            alert.state,
            f"[{style}]{alert.severity}[/]" if style else alert.severity,
            escape(alert.subject),
            f"{alert.opened_at:%Y-%m-%d %H:%M}",
            delivered,
        )
    console.print(table)
