"""Rendering reports as a terminal table, CSV or JSON (DESIGN section 10).

JSON is the contract: one object with ``as_of``, ``currency``, ``model``, ``period`` and
``rows``; money is a string with two decimals, ratios are numbers (or null) as ratios, so
``roi`` 0.5 is what is written to ``ROI__c`` as 50.00. Rows also carry the other figures of
DESIGN section 5; unmapped spend and unattributed opportunities come beside the rows so they
are never silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.roi import Report, Row

CONTRACT_FIELDS = (
    "key",
    "name",
    "cost",
    "leads",
    "opportunities",
    "won",
    "attributed_pipeline",
    "attributed_revenue",
    "roi",
    "roas",
    "cpl",
    "budget",
    "budget_consumed",
)
EXTRA_FIELDS = (
    "influenced_opportunities",
    "cost_per_opportunity",
    "cac",
    "mql_to_sql",
    "win_rate",
    "sales_cycle_days",
    "ltv_to_cac",
    "health",
)


def money_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def ratio_number(value: Decimal | None, places: int = 6) -> float | None:
    """A ratio as a JSON number (rounded half-even in Decimal first, then shown as float)."""
    if value is None:
        return None
    return float(round(value, places))


def row_dict(row: Row) -> dict[str, Any]:
    f = row.figures
    return {
        "key": row.key,
        "name": row.name,
        "cost": money_text(row.cost),
        "leads": f.leads,
        "opportunities": round(f.opportunities, 4),
        "won": round(f.won, 4),
        "attributed_pipeline": money_text(row.attributed_pipeline),
        "attributed_revenue": money_text(row.attributed_revenue),
        "roi": ratio_number(row.roi),
        "roas": ratio_number(row.roas),
        "cpl": money_text(row.cpl),
        "budget": money_text(row.budget),
        "budget_consumed": ratio_number(row.budget_consumed),
        "influenced_opportunities": f.influenced,
        "cost_per_opportunity": money_text(row.cost_per_opportunity),
        "cac": money_text(row.cac),
        "mql_to_sql": ratio_number(row.mql_to_sql),
        "win_rate": ratio_number(row.win_rate),
        "sales_cycle_days": ratio_number(row.sales_cycle_days, 2),
        "ltv_to_cac": ratio_number(row.ltv_to_cac),
        "health": row.health,
    }


def to_json(report: Report) -> str:
    payload = {
        "as_of": report.as_of.isoformat(),
        "currency": report.currency,
        "model": report.model,
        "period": report.period,
        "by": report.by,
        "rows": [row_dict(r) for r in report.rows],
        "unmapped_spend": [
            {"ad_source": s, "ad_campaign_id": i, "name": n, "spend": money_text(a)}
            for s, i, n, a in report.unmapped
        ],
        "unattributed": {
            "opportunities": report.unattributed_opportunities,
            "pipeline": money_text(report.unattributed_pipeline),
        },
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*CONTRACT_FIELDS, *EXTRA_FIELDS], lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        values = row_dict(row)
        values["health"] = "; ".join(values["health"])
        writer.writerow({k: ("" if v is None else v) for k, v in values.items()})
    return out.getvalue()


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value * 100:,.1f}%"


def _amount(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def render_table(report: Report, console: Console, *, limit: int | None = None) -> None:
    title = (
        f"ROI by {report.by} · model {report.model} · period {report.period} · "
        f"{report.currency} · as of {report.as_of:%Y-%m-%d %H:%M} UTC"
    )
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in [
        ("", "left"),
        ("cost", "right"),
        ("leads", "right"),
        ("opps", "right"),
        ("won", "right"),
        ("pipeline", "right"),
        ("revenue", "right"),
        ("ROI", "right"),
        ("ROAS", "right"),
        ("CPL", "right"),
        ("budget", "right"),
        ("used", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = report.rows
    if report.by == "campaign":
        rows = sorted(rows, key=lambda r: (-r.attributed_revenue, r.key))
    shown = rows if limit is None else rows[:limit]
    for row in shown:
        f = row.figures
        table.add_row(
            row.name,
            _amount(row.cost),
            f"{f.leads:,}",
            f"{f.opportunities:,.1f}",
            f"{f.won:,.1f}",
            _amount(row.attributed_pipeline),
            _amount(row.attributed_revenue),
            _pct(row.roi),
            "—" if row.roas is None else f"{row.roas:,.2f}",
            _amount(row.cpl),
            _amount(row.budget),
            _pct(row.budget_consumed),
            "[red]" + escape(", ".join(row.health)) + "[/]" if row.health else "[green]ok[/]",
        )
    console.print(table)
    if limit is not None and len(rows) > limit:
        console.print(f"  … {len(rows) - limit} more rows (use --format csv or json for all)")
    for source, ad_id, name, spend in report.unmapped:
        console.print(
            f"  [yellow]unmapped spend[/]: {source} campaign {ad_id} ({name}): "
            f"{spend:,.2f} {report.currency} — add a \\[\\[mapping]] row or set the CRM "
            "campaign's ad-id field"
        )
    if report.unattributed_opportunities:
        console.print(
            f"  unattributed: {report.unattributed_opportunities} opportunities "
            f"({report.unattributed_pipeline:,.2f} {report.currency}) have no touch in their "
            "journey"
        )


def render_comparison(
    names: list[str],
    revenue: dict[str, list[Decimal]],
    console: Console,
    currency: str,
    *,
    limit: int | None = None,
) -> None:
    table = Table(
        title=f"Attributed revenue by model ({currency})", title_justify="left", header_style="bold"
    )
    table.add_column("campaign")
    models = list(revenue)
    for name in models:
        table.add_column(name, justify="right")
    order = sorted(range(len(names)), key=lambda i: -max(revenue[m][i] for m in models))
    if limit is not None:
        order = order[:limit]
    for i in order:
        table.add_row(names[i], *(f"{revenue[m][i]:,.0f}" for m in models))
    console.print(table)


def comparison_json(keys: list[str], names: list[str], revenue: dict[str, list[Decimal]]) -> str:
    rows = [
        {"key": k, "name": n, **{m: money_text(revenue[m][i]) for m in revenue}}
        for i, (k, n) in enumerate(zip(keys, names, strict=True))
    ]
    return json.dumps({"models": list(revenue), "rows": rows}, indent=2, ensure_ascii=False)
