"""The push stage's write-back: ROI engine rows to the CRM's campaign fields (DESIGN section 7).

Values are put in each field's unit here, once, so every CRM writer receives the same
numbers:

- percents as Salesforce holds them (``roi`` 0.5 -> ``50.00``; ``budget_consumed`` likewise),
  two decimals, half-even;
- ``ROI_ROAS__c`` with four decimals;
- money in the reporting currency, half-even to its minor unit (0 decimals for JPY);
- a figure that is null (no cost yet, no lead) stays None and is written as an empty field;
- ``ActualCost`` only where the connector owns the campaign's cost (mapped ad spend or
  approved expenses); elsewhere the admin's value is read, never written.

Figures are each campaign's own, lifetime to date, from the configured attribution model.
The forecast comes from ``forecast_for(campaign)`` when a forecaster is available.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from adapters.base import CampaignFields, CrmWriter, WriteResult
from connector import model
from connector.config import Config
from connector.money import quantize
from connector.roi import RoiEngine, Row
from connector.store import Store

PERCENT_QUANTUM = Decimal("0.01")
ROAS_QUANTUM = Decimal("0.0001")
_HUNDRED = Decimal(100)

ForecastFor = Callable[[model.Campaign], Decimal | None]


def as_percent(ratio: Decimal | None) -> Decimal | None:
    """0.5 -> 50.00 (two decimals, half-even); None stays None."""
    if ratio is None:
        return None
    return (ratio * _HUNDRED).quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_EVEN)


def as_roas(ratio: Decimal | None) -> Decimal | None:
    return None if ratio is None else ratio.quantize(ROAS_QUANTUM, rounding=ROUND_HALF_EVEN)


def as_money(amount: Decimal | None, currency: str) -> Decimal | None:
    return None if amount is None else quantize(amount, currency)


def campaign_fields(
    rows: Iterable[Row],
    *,
    model_name: str,
    synced_at: datetime,
    source: str,
    forecast_for: ForecastFor | None = None,
) -> list[CampaignFields]:
    """The write-back values of every campaign row of ``source`` (rows of ``by="campaign"``)."""
    out: list[CampaignFields] = []
    for row in rows:
        campaign = row.campaign
        if campaign is None or campaign.source != source:
            continue
        currency = row.currency
        forecast = forecast_for(campaign) if forecast_for is not None else None
        owned = row.figures.cost_owned
        out.append(
            CampaignFields(
                campaign_id=campaign.external_id,
                attributed_revenue=as_money(row.attributed_revenue, currency),
                attributed_pipeline=as_money(row.attributed_pipeline, currency),
                roi_percent=as_percent(row.roi),
                roas=as_roas(row.roas),
                cost_per_lead=as_money(row.cpl, currency),
                budget_consumed_percent=as_percent(row.budget_consumed),
                forecast_cost=as_money(forecast, currency),
                model=model_name,
                synced_at=synced_at,
                actual_cost=as_money(row.cost, currency) if owned else None,
                owns_cost=owned,
            )
        )
    return out


def push_campaign_fields(
    store: Store,
    engine: RoiEngine,
    writer: CrmWriter,
    config: Config,
    *,
    now: datetime,
    forecast_for: ForecastFor | None = None,
) -> WriteResult:
    """Compute the campaign fields with the configured model and hand them to ``writer``,
    which sends only what changed. ``store`` is the writer's (its ledger lives there)."""
    model_name = config.attribution.model
    report = engine.report(model_name=model_name, by="campaign")
    updates = campaign_fields(
        report.rows,
        model_name=model_name,
        synced_at=now,
        source=writer.name,
        forecast_for=forecast_for,
    )
    return writer.write_campaign_fields(updates)
