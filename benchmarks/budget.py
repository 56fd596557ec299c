"""Budget consumption and alerts for 5,000 campaigns x 365 days of ad spend in the store.

Run from the repository root:

    python -m benchmarks.budget                         # 5,000 campaigns x 365 days, SQLite
    python -m benchmarks.budget --campaigns 500 --days 90

The world is written through ``Store.upsert`` into a throwaway SQLite file: 5,000 CRM
campaigns under 250 parent programs (each with a budgeted cost over its dates), one ad
campaign each with a day of spend for every day of the year (a fifth of them in EUR, at monthly
dated rates), and budgets per channel (month, quarter, year), department, category and the
total. Then it times each stage — reading the store, costs and budget lines, every line's
consumption, evaluating and recording the alerts, and a second alert run that must change
nothing — and prints the process's peak memory (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from connector import model
from connector.alerts.run import evaluate_alerts
from connector.budgets.engine import BudgetEngine
from connector.config import parse_config
from connector.roi import Settings
from connector.store import Store

CRM = "salesforce"
END = date(2026, 11, 22)  # the last day of spend; the run is as of the next morning
DEPARTMENTS = ("Demand Gen", "Field", "Brand", "Product Marketing", "Customer")
PAID = ("paid_search", "paid_social", "display", "video")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def world(n_campaigns: int, n_days: int) -> Iterator[model.Record]:
    rng = random.Random(11)
    start = END - timedelta(days=n_days - 1)
    n_parents = max(n_campaigns // 20, 1)
    for p in range(n_parents):
        yield model.Campaign(
            source=CRM,
            external_id=f"701P{p:011d}",
            name=f"Program {p}",
            channel=PAID[p % len(PAID)],
            start_date=start,
            end_date=END + timedelta(days=60),
            budgeted_cost=Decimal(rng.randrange(50_000, 200_000)),
            currency="USD",
            department=DEPARTMENTS[p % len(DEPARTMENTS)],
            budget_category=model.BUDGET_CATEGORIES[p % 3],
            owner_id=f"005{p:012d}",
        )
    for i in range(n_campaigns):
        ad_id = f"{30_000_000 + i}"
        eur = i % 5 == 0
        parent = i % n_parents
        c_start = start + timedelta(days=rng.randrange(0, max(n_days // 3, 1)))
        yield model.Campaign(
            source=CRM,
            external_id=f"701C{i:011d}",
            name=f"Campaign {i}",
            channel=PAID[parent % len(PAID)],
            parent_id=f"701P{parent:011d}",
            start_date=c_start,
            end_date=END + timedelta(days=rng.randrange(0, 90)),
            budgeted_cost=Decimal(rng.randrange(5_000, 60_000)),
            currency="USD",
            department=DEPARTMENTS[parent % len(DEPARTMENTS)],
            budget_category=model.BUDGET_CATEGORIES[parent % 3],
            owner_id=f"005{parent:012d}",
            ad_campaign_ref=ad_id,
        )
        source = "meta_ads" if i % 2 else "google_ads"
        yield model.AdCampaign(
            source=source,
            external_id=ad_id,
            account_id="acct",
            name=f"Ad {i}",
            currency="EUR" if eur else "USD",
        )
        level = rng.uniform(20, 200)
        for d in range(n_days):
            day = start + timedelta(days=d)
            yield model.AdSpendDay(
                source=source,
                external_id=model.AdSpendDay.key("acct", ad_id, day),
                account_id="acct",
                ad_campaign_id=ad_id,
                day=day,
                spend=Decimal(int(level * rng.uniform(0.5, 1.5) * 100)) / 100,
                currency="EUR" if eur else "USD",
                impressions=rng.randrange(1000, 20000),
                clicks=rng.randrange(10, 400),
            )
    month = date(start.year, start.month, 1)
    while month <= END:
        yield model.FxRate(
            source="config",
            external_id=f"EUR|{month}",
            currency="EUR",
            base_currency="USD",
            start_date=month,
            rate=Decimal("1.08") + Decimal(month.month) / 1000,
        )
        month = (month + timedelta(days=32)).replace(day=1)
    yield from budgets(n_campaigns, n_days)


def budgets(n_campaigns: int, n_days: int) -> Iterator[model.Budget]:
    per_day = Decimal(n_campaigns) * 110  # about the mean spend
    year = str(END.year)
    quarter = f"{END.year}-Q{(END.month - 1) // 3 + 1}"
    month = f"{END.year}-{END.month:02d}"

    def budget(scope: str, period: str, amount: Decimal) -> model.Budget:
        return model.Budget(
            source="config",
            external_id=model.Budget.key(scope, period),
            scope=scope,
            period=period,
            amount=amount.quantize(Decimal(1)),
            currency="USD",
        )

    share = Decimal(1) / len(PAID)
    for i, channel in enumerate(PAID):
        tight = Decimal("0.85") if i == 1 else Decimal("1.2")  # paid social runs over
        yield budget(f"channel:{channel}", year, per_day * 365 * share * tight)
        yield budget(f"channel:{channel}", quarter, per_day * 92 * share * tight)
        yield budget(f"channel:{channel}", month, per_day * 30 * share * tight)
    for department in DEPARTMENTS:
        yield budget(f"department:{department}", year, per_day * 365 / len(DEPARTMENTS))
    for category, target in zip(model.BUDGET_CATEGORIES, ("0.2", "0.5", "0.3"), strict=True):
        yield budget(f"category:{category}", year, per_day * 365 * Decimal(target))
    yield budget("total", year, per_day * 365)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--db", type=Path, default=None, help="keep the SQLite file here")
    args = parser.parse_args(argv)
    print(
        f"campaigns={args.campaigns:,} days={args.days} spend rows={args.campaigns * args.days:,} "
        f"python={sys.version.split()[0]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "budget-bench.db"
        url = f"sqlite:///{path}"
        store = Store.open(url)
        config = parse_config({"connector": {"database_url": url}}, env={})
        as_of = datetime(END.year, END.month, END.day, 6, tzinfo=UTC) + timedelta(days=1)

        def stage(name: str, started: float, extra: str = "") -> None:
            print(
                f"{name:34} {time.perf_counter() - started:8.2f} s   peak {peak_mib():7,.0f} MiB"
                + (f"   {extra}" if extra else ""),
                flush=True,
            )

        t = time.perf_counter()
        loaded = store.upsert(world(args.campaigns, args.days), batch_size=20_000)
        stage("generate + Store.upsert", t, f"{loaded.total.read:,} records")

        t = time.perf_counter()
        engine = BudgetEngine.from_store(store, Settings.from_config(config), as_of=as_of)
        stage(
            "read store + costs (FX per day)",
            t,
            f"{sum(len(d) for d in engine.costs.by_campaign.values()):,} campaign-days, "
            f"{len(engine.lines):,} budget lines",
        )

        t = time.perf_counter()
        consumption = [engine.measure(line) for line in engine.lines]
        over = sum(1 for c in consumption if c.forecast_cost > c.budget)
        stage("consumption of every line", t, f"{over:,} forecast over budget")

        t = time.perf_counter()
        first = evaluate_alerts(store, config, as_of=as_of, budget_engine=engine)
        stage(
            "alerts: evaluate + record (1st)",
            t,
            f"{first.evaluated:,} rules, {len(first.outcome.fired):,} fired, "
            f"{len(first.outcome.passed):,} passed",
        )

        t = time.perf_counter()
        second = evaluate_alerts(store, config, as_of=as_of, budget_engine=engine)
        changed = len(second.outcome.fired) + len(second.outcome.resolved)
        stage("alerts: same run again (2nd)", t, f"{changed} changes (must be 0)")

        del engine, consumption
        t = time.perf_counter()
        again = evaluate_alerts(store, config, as_of=as_of)
        stage("alerts run from scratch (all)", t, f"{len(again.outcome.fired)} fired")
        store.close()
    print(f"peak memory {peak_mib():,.0f} MiB")
    return 0 if changed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
