"""Small hand-built worlds for the budget, expense and alert tests (figures computed by hand
in the tests that use them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from connector import model
from connector.budgets.engine import BudgetEngine
from connector.money import DatedRate
from connector.roi import Settings
from connector.store.dataset import Dataset

SF = "salesforce"


def at(day: date, hour: int = 6) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def campaign(cid: str, channel: str = "paid_social", **extra: object) -> model.Campaign:
    values: dict[str, object] = {
        "source": SF,
        "external_id": cid,
        "name": f"Campaign {cid}",
        "channel": channel,
        "currency": "USD",
        "owner_id": f"005{cid}",
        "department": "Demand Gen",
        "budget_category": "growth",
    }
    values.update(extra)
    return model.Campaign(**values)  # type: ignore[arg-type]


def ad_campaign(ad_id: str, source: str = "meta_ads", currency: str = "USD") -> model.AdCampaign:
    return model.AdCampaign(
        source=source, external_id=ad_id, account_id="act_1", name=ad_id, currency=currency
    )


def spend(
    ad_id: str,
    days: Iterable[date],
    amount: Decimal | str,
    *,
    source: str = "meta_ads",
    currency: str = "USD",
) -> list[model.AdSpendDay]:
    return [
        model.AdSpendDay(
            source=source,
            external_id=model.AdSpendDay.key("act_1", ad_id, day),
            account_id="act_1",
            ad_campaign_id=ad_id,
            day=day,
            spend=Decimal(amount),
            currency=currency,
        )
        for day in days
    ]


def days(first: date, last: date, *, skip: Iterable[date] = ()) -> list[date]:
    skipped = set(skip)
    out = []
    day = first
    while day <= last:
        if day not in skipped:
            out.append(day)
        day += timedelta(days=1)
    return out


def budget(scope: str, period: str, amount: str, currency: str = "USD") -> model.Budget:
    return model.Budget(
        source="config",
        external_id=model.Budget.key(scope, period),
        scope=scope,
        period=period,
        amount=Decimal(amount),
        currency=currency,
    )


def expense(
    eid: str,
    cid: str,
    day: date,
    amount: str,
    status: str = "approved",
    currency: str = "USD",
) -> model.Expense:
    return model.Expense(
        source="manual",
        external_id=eid,
        campaign_source=SF,
        campaign_id=cid,
        incurred_on=day,
        amount=Decimal(amount),
        currency=currency,
        status=status,
    )


def engine(
    records: Iterable[model.Record],
    as_of: datetime,
    *,
    rates: Iterable[DatedRate] = (),
    tolerance: Decimal = Decimal("0.05"),
) -> BudgetEngine:
    return BudgetEngine(
        Dataset.from_records(list(records)),
        Settings(fx_rates=tuple(rates)),
        as_of=as_of,
        tolerance=tolerance,
    )


def line(e: BudgetEngine, scope: str, period: str):  # type: ignore[no-untyped-def]
    for candidate in e.lines:
        if candidate.scope == scope and candidate.period.name == period:
            return candidate
    raise AssertionError(f"no budget line {scope} {period}: {[x.key for x in e.lines]}")


def figures(e: BudgetEngine, scope: str, period: str):  # type: ignore[no-untyped-def]
    return e.measure(line(e, scope, period))
