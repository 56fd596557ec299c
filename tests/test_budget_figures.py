"""Budget figures on hand-computed cases (DESIGN section 5): cost in the period, consumption,
pacing, forecast, remaining and the exhaustion day, across period boundaries, currencies,
days without spend, campaign hierarchies and the CRM's actual cost."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.budgets import formats as budget_format
from connector.money import DatedRate
from connector.periods import Period
from connector.roi import RoiEngine, Settings
from connector.store.dataset import Dataset
from tests.budget_world import (
    ad_campaign,
    at,
    budget,
    campaign,
    days,
    engine,
    expense,
    figures,
    spend,
)

OCT5, OCT6 = date(2026, 10, 5), date(2026, 10, 6)


def base_world() -> list:
    """C1 (paid social, 2026-09-15..12-31, budgeted 10,000) spends 100 a day from Sep 15 to
    Oct 10, except Oct 5 and 6; the channel has a Q3 budget of 2,000 and a Q4 one of 3,000."""
    return [
        campaign(
            "C1",
            ad_campaign_ref="AD1",
            start_date=date(2026, 9, 15),
            end_date=date(2026, 12, 31),
            budgeted_cost=Decimal("10000"),
        ),
        ad_campaign("AD1"),
        *spend("AD1", days(date(2026, 9, 15), date(2026, 10, 10), skip=[OCT5, OCT6]), "100"),
        budget("channel:paid_social", "2026-Q3", "2000"),
        budget("channel:paid_social", "2026-Q4", "3000"),
    ]


def test_quarter_in_progress_with_days_without_spend() -> None:
    e = engine(base_world(), at(date(2026, 10, 11)))
    q4 = figures(e, "channel:paid_social", "2026-Q4")
    # Oct 1..10 without Oct 5, 6: 8 days x 100; Sep 30 belongs to Q3
    assert q4.cost == Decimal("800.00")
    assert q4.budget == Decimal("3000.00")
    assert q4.budget_consumed == Decimal(800) / Decimal(3000)
    # 10 complete days of 92 elapsed before Oct 11
    assert q4.days_elapsed == 10
    assert q4.pacing == Decimal(800) / 3000 * 92 / 10
    # run rate: Oct 4..10 = 100 + 0 + 0 + 4 x 100 = 500 over 7 days; 82 days left (Oct 11..Dec 31)
    assert q4.days_left == 82
    assert q4.run_rate == Decimal("71.43")
    assert q4.forecast_cost == Decimal("6657.14")  # 800 + 500 x 82 / 7 = 6657.142857...
    assert q4.remaining == Decimal("2200.00")
    # 2200 / (500 / 7) = 30.8 -> the 31st day counting Oct 11 is Nov 10
    assert q4.exhausted_on == date(2026, 11, 10)
    assert q4.owner_campaign == ("salesforce", "C1")


def test_period_that_ended_counts_only_its_days() -> None:
    e = engine(base_world(), at(date(2026, 10, 11)))
    q3 = figures(e, "channel:paid_social", "2026-Q3")
    assert q3.cost == Decimal("1600.00")  # Sep 15..30
    assert q3.budget_consumed == Decimal("0.8")
    assert q3.pacing == Decimal("0.8")  # the whole period elapsed
    assert q3.days_left == 0
    assert q3.forecast_cost == q3.cost  # nothing left to spend
    assert q3.exhausted_on is None


def test_campaign_own_budget_spans_both_quarters() -> None:
    e = engine(base_world(), at(date(2026, 10, 11)))
    own = figures(e, "campaign:C1", "lifetime")
    assert own.line.period.start == date(2026, 9, 15) and own.line.period.days == 108
    assert own.cost == Decimal("2400.00")  # 16 days in Q3 + 8 in Q4
    assert own.budget == Decimal("10000.00")
    assert own.days_elapsed == 26
    assert own.pacing == Decimal("0.24") * 108 / 26
    assert own.forecast_cost == Decimal("8257.14")  # 2400 + 500 x 82 / 7
    assert own.label == "Campaign C1"


def test_forecast_on_the_first_day_of_the_period() -> None:
    # As of Oct 1: no complete day of Q4 yet (pacing is null); the run rate is the 7 days
    # before (Sep 24..30, 100 a day) and all 92 days are left. Oct 1's own spend is already
    # in "cost so far" (the contract's formula counts the as-of day in both).
    e = engine(base_world(), at(date(2026, 10, 1)))
    q4 = figures(e, "channel:paid_social", "2026-Q4")
    assert q4.days_elapsed == 0
    assert q4.pacing is None
    assert q4.cost == Decimal("100.00")
    assert q4.days_left == 92
    assert q4.forecast_cost == Decimal("9300.00")  # 100 + 100 x 92
    assert q4.exhausted_on == date(2026, 10, 29)  # 2900 / 100 = 29 days from Oct 1


def test_forecast_on_the_last_day_of_the_period() -> None:
    records = [
        campaign("C3", ad_campaign_ref="AD3", start_date=date(2026, 12, 1)),
        ad_campaign("AD3"),
        *spend("AD3", days(date(2026, 12, 1), date(2026, 12, 30)), "50"),
        budget("channel:paid_social", "2026-12", "1600"),
    ]
    e = engine(records, at(date(2026, 12, 31)))
    dec = figures(e, "channel:paid_social", "2026-12")
    assert dec.cost == Decimal("1500.00")
    assert dec.days_elapsed == 30 and dec.days_left == 1
    assert dec.pacing == Decimal(1500) / 1600 * 31 / 30
    assert dec.forecast_cost == Decimal("1550.00")  # 1500 + 350 / 7 x 1
    # 100 left at 50 a day needs 2 days; only Dec 31 is left
    assert dec.exhausted_on is None


def test_exhaustion_on_the_last_day() -> None:
    records = [
        campaign("C3", ad_campaign_ref="AD3", start_date=date(2026, 12, 1)),
        ad_campaign("AD3"),
        *spend("AD3", days(date(2026, 12, 1), date(2026, 12, 30)), "50"),
        budget("channel:paid_social", "2026-12", "1540"),
    ]
    dec = figures(engine(records, at(date(2026, 12, 31))), "channel:paid_social", "2026-12")
    assert dec.forecast_cost == Decimal("1550.00") > dec.budget
    assert dec.exhausted_on == date(2026, 12, 31)


def test_exhausted_budget_names_the_day_it_ran_out() -> None:
    records = [*base_world()[:-1], budget("channel:paid_social", "2026-Q4", "350")]
    q4 = figures(engine(records, at(date(2026, 10, 11))), "channel:paid_social", "2026-Q4")
    assert q4.remaining == Decimal("-450.00")
    # Oct 1, 2, 3 = 300; Oct 4 reaches 400 >= 350
    assert q4.exhausted_on == date(2026, 10, 4)


def test_currencies_convert_at_each_days_rate_and_round_once() -> None:
    rates = [
        DatedRate("EUR", date(2026, 9, 1), Decimal("1.10")),
        DatedRate("EUR", date(2026, 10, 2), Decimal("1.20")),
    ]
    records = [
        campaign("C2", channel="display", ad_campaign_ref="AD2", start_date=date(2026, 10, 1)),
        ad_campaign("AD2", source="google_ads", currency="EUR"),
        *spend(
            "AD2",
            days(date(2026, 10, 1), date(2026, 10, 3)),
            "0.3375",
            source="google_ads",
            currency="EUR",
        ),
        budget("channel:display", "2026-Q4", "1000", currency="EUR"),
    ]
    q4 = figures(engine(records, at(date(2026, 10, 11)), rates=rates), "channel:display", "2026-Q4")
    # Oct 1 at 1.10 = 0.37125; Oct 2 and 3 at 1.20 = 0.405 each; exact sum 1.18125 -> 1.18.
    # Rounding each day first would give 0.37 + 0.40 + 0.40 = 1.17; one rate for all days
    # 1.11 (1.10) or 1.22 (1.20).
    assert q4.cost == Decimal("1.18")
    # the EUR budget converts at the rate of the period's first day (1.10)
    assert q4.budget == Decimal("1100.00")


def test_sub_cent_days_add_up_only_when_summed_exactly() -> None:
    records = [
        campaign("C2", channel="display", ad_campaign_ref="AD2", start_date=date(2026, 10, 1)),
        ad_campaign("AD2", source="google_ads"),
        *spend("AD2", days(date(2026, 10, 1), date(2026, 10, 9)), "0.004", source="google_ads"),
        budget("channel:display", "2026-Q4", "1"),
    ]
    q4 = figures(engine(records, at(date(2026, 10, 11))), "channel:display", "2026-Q4")
    assert q4.cost == Decimal("0.04")  # 9 x 0.004 = 0.036; rounded per day it would be 0


def test_only_approved_expenses_count() -> None:
    records = [
        *base_world(),
        expense("E1", "C1", date(2026, 10, 2), "500"),
        expense("E2", "C1", date(2026, 10, 2), "700", status="requested"),
        expense("E3", "C1", date(2026, 10, 3), "900", status="rejected"),
    ]
    q4 = figures(engine(records, at(date(2026, 10, 11))), "channel:paid_social", "2026-Q4")
    assert q4.cost == Decimal("1300.00")


def test_parent_rolls_up_children_without_double_counting() -> None:
    records = [
        *base_world(),
        # the parent's hand-entered actual cost is the hierarchy's total: not counted again
        campaign(
            "P",
            channel="event",
            start_date=date(2026, 9, 1),
            end_date=date(2026, 12, 31),
            budgeted_cost=Decimal("5000"),
            actual_cost=Decimal("9999"),
        ),
        campaign(
            "C4",
            channel="event",
            parent_id="P",
            start_date=date(2026, 10, 1),
            end_date=date(2026, 10, 3),
            budgeted_cost=Decimal("1000"),
        ),
        expense("E1", "C4", date(2026, 10, 2), "300"),
        budget("total", "2026-Q4", "100000"),
    ]
    records[0] = campaign(
        "C1",
        parent_id="P",
        ad_campaign_ref="AD1",
        start_date=date(2026, 9, 15),
        end_date=date(2026, 12, 31),
        budgeted_cost=Decimal("10000"),
    )
    e = engine(records, at(date(2026, 10, 11)))
    parent = figures(e, "campaign:P", "lifetime")
    assert parent.budget == Decimal("16000.00")  # 5000 own + 10000 + 1000
    assert parent.cost == Decimal("2700.00")  # 2400 (C1) + 300 (C4), not + 9999
    total = figures(e, "total", "2026-Q4")
    assert total.cost == Decimal("1100.00")  # 800 (C1 in Q4) + 300
    child = figures(e, "campaign:C4", "lifetime")
    assert child.cost == Decimal("300.00") and child.budget == Decimal("1000.00")


def test_crm_actual_cost_has_no_run_rate() -> None:
    records = [
        campaign(
            "EV",
            channel="event",
            start_date=date(2026, 10, 2),
            end_date=date(2026, 10, 3),
            actual_cost=Decimal("4000"),
        ),
        budget("channel:event", "2026-Q4", "10000"),
    ]
    q4 = figures(engine(records, at(date(2026, 10, 11))), "channel:event", "2026-Q4")
    assert q4.cost == Decimal("4000.00")
    assert q4.run_rate == 0
    assert q4.forecast_cost == q4.cost


def test_budgets_in_config_win_over_imported_ones() -> None:
    imported = budget("channel:paid_social", "2026-Q4", "9999")
    imported.source = "csv"
    configured = budget("channel:paid_social", "2026-Q4", "3000")
    data = Dataset.from_records([*base_world()[:-1], imported])
    from connector.budgets.engine import BudgetEngine

    e = BudgetEngine(data, Settings(budgets=(configured,)), as_of=at(date(2026, 10, 11)))
    assert figures(e, "channel:paid_social", "2026-Q4").budget == Decimal("3000.00")


def test_budget_consumed_matches_the_roi_report() -> None:
    records = base_world()
    as_of = at(date(2026, 10, 11))
    e = engine(records, as_of)
    roi = RoiEngine(Dataset.from_records(records), Settings(), as_of=as_of)
    row = next(
        r
        for r in roi.report(model_name="linear", by="channel", period=Period.parse("2026-Q4")).rows
        if r.key == "paid_social"
    )
    q4 = figures(e, "channel:paid_social", "2026-Q4")
    assert (row.cost, row.budget, row.budget_consumed) == (q4.cost, q4.budget, q4.budget_consumed)


def test_report_lists_running_budgets_and_category_mix() -> None:
    records = [
        *base_world(),
        campaign("S1", channel="display", budget_category="strategic", ad_campaign_ref="AD9"),
        ad_campaign("AD9"),
        *spend("AD9", days(date(2026, 10, 1), date(2026, 10, 2)), "100"),
        budget("total", "2026-Q4", "10000"),
        budget("category:strategic", "2026-Q4", "2000"),
    ]
    report = engine(records, at(date(2026, 10, 11))).report()
    assert [(c.line.scope, c.line.period.name) for c in report.rows] == [
        ("total", "2026-Q4"),
        ("category:strategic", "2026-Q4"),
        ("channel:paid_social", "2026-Q4"),
    ]
    (mix,) = report.mixes
    shares = {s.category: s for s in mix.shares}
    assert shares["strategic"].share == Decimal(200) / Decimal(1000)  # 200 of 800 + 200
    assert shares["growth"].share == Decimal(800) / Decimal(1000)
    assert shares["strategic"].planned == Decimal("0.2")
    assert shares["growth"].drifting and not shares["strategic"].drifting
    with_campaigns = engine(records, at(date(2026, 10, 11))).report(campaigns=True)
    assert ("campaign:C1", "lifetime") in [r.line.key for r in with_campaigns.rows]
    q3 = engine(records, at(date(2026, 10, 11))).report(period="2026-Q3")
    assert [r.line.key for r in q3.rows] == [("channel:paid_social", "2026-Q3")]


# ----- properties ------------------------------------------------------------------------

_cents = st.integers(min_value=0, max_value=500_000).map(lambda c: Decimal(c) / 100)


@settings(max_examples=60, deadline=None)
@given(
    daily=st.lists(_cents, min_size=92, max_size=92),
    budget_cents=st.integers(min_value=1, max_value=20_000_000),
    as_of_offset=st.integers(min_value=0, max_value=91),
)
def test_figures_are_consistent(daily: list[Decimal], budget_cents: int, as_of_offset: int) -> None:
    """For any spend, budget and as-of day inside a quarter: the cost is the exact sum of
    the days up to the as-of day; pacing is consumption over elapsed time; the forecast is
    never below the cost; a projected exhaustion day exists exactly when the forecast reaches
    the budget (and lies inside the period)."""
    start = date(2026, 10, 1)
    records = [
        campaign("C1", ad_campaign_ref="AD1", start_date=start),
        ad_campaign("AD1"),
        budget("channel:paid_social", "2026-Q4", str(Decimal(budget_cents) / 100)),
    ]
    for i, amount in enumerate(daily):
        if amount:
            records += spend("AD1", [start + timedelta(days=i)], amount)
    as_of_day = start + timedelta(days=as_of_offset)
    q4 = figures(engine(records, at(as_of_day)), "channel:paid_social", "2026-Q4")
    assert q4.cost == sum(daily[: as_of_offset + 1], Decimal(0))
    assert q4.budget_consumed == q4.cost / q4.budget
    if as_of_offset == 0:
        assert q4.pacing is None
    else:
        expected = q4.cost / q4.budget * 92 / as_of_offset
        assert q4.pacing == expected
    assert q4.forecast_cost >= q4.cost
    assert q4.remaining == q4.budget - q4.cost
    if q4.cost < q4.budget:
        window = sum(daily[max(as_of_offset - 7, 0) : as_of_offset], Decimal(0))
        exact_forecast = q4.cost + window * q4.days_left / 7
        reaches = exact_forecast >= q4.budget
        assert (q4.exhausted_on is not None) == reaches
        if q4.exhausted_on is not None:
            assert as_of_day <= q4.exhausted_on <= date(2026, 12, 31)
    else:
        assert q4.exhausted_on is not None and q4.exhausted_on <= as_of_day


def test_forecast_written_back_is_the_campaigns_own() -> None:
    records = [
        *base_world(),
        campaign("P", channel="event", end_date=date(2026, 12, 31)),
        campaign("NOEND", ad_campaign_ref="AD7", start_date=date(2026, 10, 1)),
        ad_campaign("AD7"),
        *spend("AD7", [date(2026, 10, 2)], "5"),
    ]
    records[0] = campaign(
        "C1",
        parent_id="P",
        ad_campaign_ref="AD1",
        start_date=date(2026, 9, 15),
        end_date=date(2026, 12, 31),
    )
    e = engine(records, at(date(2026, 10, 11)))
    by_id = {c.external_id: c for c in records if getattr(c, "entity", "") == "campaign"}
    assert e.forecast_for(by_id["C1"]) == Decimal("8257.14")  # 2400 + 500 x 82 / 7
    assert e.forecast_for(by_id["P"]) is None  # no cost of its own: children not rolled in
    assert e.forecast_for(by_id["NOEND"]) is None  # no end date, no days left to count


def test_forecast_of_a_campaign_costed_by_the_crm_is_its_cost_so_far() -> None:
    """DESIGN 5: where there is no daily cost (the CRM's actual cost), the forecast is the
    cost so far: with or without an end date, with or without a start date."""
    records = [
        *base_world(),
        campaign(
            "DATED",
            channel="event",
            start_date=date(2026, 9, 1),
            end_date=date(2026, 12, 31),
            actual_cost=Decimal("700"),
        ),
        campaign("OPEN", channel="event", start_date=date(2026, 9, 1), actual_cost=Decimal("45.5")),
        campaign("UNDATED", channel="event", actual_cost=Decimal("300")),
        campaign("NOTHING", channel="event", start_date=date(2026, 9, 1)),
    ]
    e = engine(records, at(date(2026, 10, 11)))
    by_id = {c.external_id: c for c in records if getattr(c, "entity", "") == "campaign"}
    assert e.forecast_for(by_id["DATED"]) == Decimal("700.00")
    assert e.forecast_for(by_id["OPEN"]) == Decimal("45.50")
    assert e.forecast_for(by_id["UNDATED"]) == Decimal("300.00")
    assert e.forecast_for(by_id["NOTHING"]) is None


def test_unmapped_ad_spend_counts_in_its_channel_and_the_total_and_is_listed() -> None:
    """Issue 14: spend of an ad campaign that maps to no CRM campaign still went to its
    platform's channel; budgets of that channel and the total count it."""
    records = [
        *base_world(),
        ad_campaign("ORPHAN"),  # a Meta campaign nobody mapped
        *spend("ORPHAN", days(date(2026, 10, 1), date(2026, 10, 4)), "50"),
        ad_campaign("G1", source="google_ads"),
        *spend("G1", [date(2026, 10, 2)], "7", source="google_ads"),
        budget("total", "2026-Q4", "10000"),
        budget("category:growth", "2026-Q4", "5000"),
        budget("channel:paid_search", "2026-Q4", "100"),
    ]
    e = engine(records, at(date(2026, 10, 11)))
    assert figures(e, "channel:paid_social", "2026-Q4").cost == Decimal("1000.00")  # 800 + 200
    assert figures(e, "channel:paid_search", "2026-Q4").cost == Decimal("7.00")
    assert figures(e, "total", "2026-Q4").cost == Decimal("1007.00")
    assert figures(e, "category:growth", "2026-Q4").cost == Decimal("800.00")  # no category
    report = e.report(period="2026-Q4")
    listed = {(u.source, u.ad_campaign_id, u.channel, u.spend) for u in report.unmapped}
    assert listed == {
        ("meta_ads", "ORPHAN", "paid_social", Decimal("200.00")),
        ("google_ads", "G1", "paid_search", Decimal("7.00")),
    }
    payload = json.loads(budget_format.to_json(report))
    assert {u["ad_campaign_id"] for u in payload["unmapped_spend"]} == {"ORPHAN", "G1"}
