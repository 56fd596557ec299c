"""Campaign costs (DESIGN section 5): mapped ad spend plus approved expenses.

Each day's spend and each expense is converted at its own day's rate (the ad day is the ad
account's day), summed exactly, and rounded once. A CRM campaign with no ad mapping and no
expenses takes the CRM's own actual cost (events entered by hand); that cost counts in the
period where the campaign starts, and the connector does not own it (it is never written
back). Spend of ad campaigns that map to no CRM campaign is kept apart as unmapped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from connector import model
from connector.money import FxRates, quantize
from connector.periods import Period
from connector.roi.mapping import CampaignMapper

CampaignKey = tuple[str, str]


@dataclass
class DailyCost:
    """Exact (unrounded) cost per campaign and day in the reporting currency."""

    by_campaign: dict[CampaignKey, dict[date, Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    owned: set[CampaignKey] = field(default_factory=set)
    crm_actual: dict[CampaignKey, tuple[date | None, Decimal]] = field(default_factory=dict)
    unmapped: dict[tuple[str, str], dict[date, Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    unmapped_names: dict[tuple[str, str], str] = field(default_factory=dict)


def daily_costs(
    campaigns: Iterable[model.Campaign],
    ad_campaigns: Iterable[model.AdCampaign],
    spend: Iterable[model.AdSpendDay],
    expenses: Iterable[model.Expense],
    mapper: CampaignMapper,
    fx: FxRates,
) -> DailyCost:
    """Exact cost per campaign and day; ``spend`` may be a stream (it is read once)."""
    result = DailyCost()
    names = {(a.source, a.external_id): a.name for a in ad_campaigns}
    resolved: dict[tuple[str, str], CampaignKey | None] = {}
    for day in spend:
        ad_key = (day.source, day.ad_campaign_id)
        if ad_key not in resolved:
            found = mapper.resolve(day.source, day.ad_campaign_id, names.get(ad_key))
            resolved[ad_key] = (found.crm_source, found.crm_campaign_id) if found else None
        amount = fx.convert_exact(day.spend, day.currency, day.day)
        target = resolved[ad_key]
        if target is None:
            result.unmapped[ad_key][day.day] += amount
            result.unmapped_names[ad_key] = names.get(ad_key, day.ad_campaign_id)
        else:
            result.by_campaign[target][day.day] += amount
            result.owned.add(target)
    for expense in expenses:
        if expense.status != "approved":
            continue
        target = (expense.campaign_source, expense.campaign_id)
        result.by_campaign[target][expense.incurred_on] += fx.convert_exact(
            expense.amount, expense.currency, expense.incurred_on
        )
        result.owned.add(target)
    for campaign in campaigns:
        key = (campaign.source, campaign.external_id)
        if key in result.owned or campaign.actual_cost is None:
            continue
        on = campaign.start_date or campaign.end_date or date.today()
        result.crm_actual[key] = (
            campaign.start_date,
            fx.convert_exact(campaign.actual_cost, campaign.currency or fx.reporting_currency, on),
        )
    return result


def campaign_cost(
    costs: DailyCost,
    key: CampaignKey,
    currency: str,
    period: Period | None,
    as_of: date | None = None,
) -> Decimal:
    """A campaign's cost in ``period`` (or lifetime), rounded once, up to ``as_of``."""
    total = Decimal(0)
    days = costs.by_campaign.get(key)
    if days:
        for day, amount in days.items():
            if (period is None or day in period) and (as_of is None or day <= as_of):
                total += amount
    elif key in costs.crm_actual:
        start, amount = costs.crm_actual[key]
        if period is None or start is None or start in period:
            total = amount
    return quantize(total, currency)


def unmapped_spend(
    costs: DailyCost, currency: str, period: Period | None
) -> list[tuple[str, str, str, Decimal]]:
    """(ad source, ad campaign id, name, spend) for spend mapped to no CRM campaign."""
    rows = []
    for (source, ad_id), days in sorted(costs.unmapped.items()):
        total = sum((a for d, a in days.items() if period is None or d in period), Decimal(0))
        if total:
            rows.append(
                (
                    source,
                    ad_id,
                    costs.unmapped_names.get((source, ad_id), ad_id),
                    quantize(total, currency),
                )
            )
    return rows


# The channel of an ad platform's spend, known without a mapping to a CRM campaign: what lets
# unmapped spend count toward its channel's budget (and the total) instead of none.
AD_SOURCE_CHANNELS: dict[str, str] = {
    "google_ads": "paid_search",
    "microsoft_ads": "paid_search",
    "baidu": "paid_search",
    "meta_ads": "paid_social",
    "linkedin_ads": "paid_social",
    "tiktok_ads": "paid_social",
    "ocean_engine": "paid_social",
    "tencent_ads": "paid_social",
}
UNMAPPED_SOURCE = "unmapped"


def unmapped_campaigns(costs: DailyCost) -> list[model.Campaign]:
    """A stand-in campaign per unmapped ad campaign, in its platform's channel, so budgets
    of that channel and the total count its spend (its key: ``("unmapped",
    "<ad source>:<ad campaign id>")``)."""
    return [
        model.Campaign(
            source=UNMAPPED_SOURCE,
            external_id=f"{source}:{ad_id}",
            name=f"unmapped {source} {costs.unmapped_names.get((source, ad_id), ad_id)}",
            channel=AD_SOURCE_CHANNELS.get(source, "other"),
        )
        for source, ad_id in sorted(costs.unmapped)
    ]


def with_unmapped(costs: DailyCost) -> DailyCost:
    """``costs`` with unmapped spend under the stand-in campaigns' keys (a copy: the ROI
    report keeps unmapped spend apart, it is nobody's cost there)."""
    by_campaign = dict(costs.by_campaign)
    for (source, ad_id), days in costs.unmapped.items():
        by_campaign[(UNMAPPED_SOURCE, f"{source}:{ad_id}")] = days
    return DailyCost(
        by_campaign=by_campaign,
        owned=costs.owned,
        crm_actual=costs.crm_actual,
        unmapped=costs.unmapped,
        unmapped_names=costs.unmapped_names,
    )
