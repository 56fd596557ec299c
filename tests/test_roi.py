"""Journeys, costs and ROI from the store, on a small world computed by hand (DESIGN 4 and 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import model
from connector.attribution import builder as journey_builder
from connector.money import DatedRate
from connector.periods import Period
from connector.roi import RoiEngine, Settings
from connector.roi.mapping import ExplicitMapping
from connector.store import Store
from connector.store.dataset import Dataset

SF = "salesforce"
AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def campaign(cid: str, name: str, channel: str, **extra: object) -> model.Campaign:
    return model.Campaign(
        source=SF, external_id=cid, name=name, channel=channel, currency="USD", **extra
    )  # type: ignore[arg-type]


def person(pid: str, kind: str, created: datetime, **extra: object) -> model.Person:
    return model.Person(
        source=SF,
        external_id=pid,
        kind=kind,
        created_at=created,
        email=f"{pid}@example.com",
        **extra,
    )  # type: ignore[arg-type]


def touch(tid: str, pid: str, cid: str, when: datetime, responded: bool = True) -> model.Touchpoint:
    return model.Touchpoint(
        source=SF,
        external_id=tid,
        person_source=SF,
        person_id=pid,
        campaign_source=SF,
        campaign_id=cid,
        occurred_at=when,
        responded=responded,
    )


def world() -> list[model.Record]:
    return [
        campaign("701A", "Search", "paid_search", ad_campaign_ref="111"),
        campaign("701B", "Newsletter", "email"),
        campaign(
            "701C",
            "Trade show",
            "event",
            actual_cost=Decimal("1000"),
            start_date=date(2026, 2, 5),
            end_date=date(2026, 2, 6),
        ),
        # L1 is converted into C1 (one person, created 01-10) and into opportunity O1
        person(
            "00QL1",
            "lead",
            at(1, 10),
            lifecycle_stage="opportunity",
            converted_contact_id="003C1",
            converted_opportunity_id="006O1",
            mql_at=at(1, 11),
            sql_at=at(1, 12),
        ),
        person("003C1", "contact", at(2, 1), lifecycle_stage="customer"),
        person("003C2", "contact", at(2, 15)),
        person("00QL3", "lead", at(3, 1), lifecycle_stage="mql", mql_at=at(3, 2)),
        person("003C4", "contact", at(4, 1)),
        touch("00v1", "00QL1", "701A", at(1, 5)),
        touch("00v2", "00QL1", "701B", at(1, 20)),
        touch("00v3", "003C1", "701A", at(2, 5)),
        # same time as 00v3: "00v10" < "00v3" as strings, so it comes first
        touch("00v10", "003C2", "701C", at(2, 5)),
        touch("00v4", "003C1", "701B", at(4, 2)),  # after O1's close date: outside
        touch("00v5", "003C1", "701B", datetime(2024, 12, 1, tzinfo=UTC)),  # before lookback
        touch("00v6", "003C1", "701C", at(2, 7), responded=False),  # did not respond
        touch("00v7", "003C1", "701C", at(2, 8)),  # deleted upstream below
        touch("00v8", "00QL3", "701B", at(3, 3)),  # an unconverted person
        model.Opportunity(
            source=SF,
            external_id="006O1",
            amount=Decimal("1000.02"),
            currency="EUR",
            is_closed=True,
            is_won=True,
            created_at=at(2, 10),
            close_date=date(2026, 3, 31),
            stage="Closed Won",
        ),
        model.Opportunity(
            source=SF,
            external_id="006O2",
            amount=None,
            currency="USD",
            created_at=at(4, 2),
            stage="Discovery",
        ),
        model.Opportunity(
            source=SF,
            external_id="006O3",
            amount=Decimal("500"),
            currency="USD",
            created_at=at(4, 3),
            stage="Proposal",
        ),
        model.ContactRole(source=SF, external_id="00K1", opportunity_id="006O1", person_id="003C1"),
        model.ContactRole(source=SF, external_id="00K2", opportunity_id="006O1", person_id="003C2"),
        model.ContactRole(source=SF, external_id="00K3", opportunity_id="006O3", person_id="003C4"),
        model.AdSpendDay(
            source="google_ads",
            external_id="g1",
            account_id="1",
            ad_campaign_id="111",
            day=date(2026, 3, 1),
            spend=Decimal("100.00"),
            currency="USD",
        ),
        # 0.005 EUR twice at 1.10: 0.0055 + 0.0055 = 0.011 -> 0.01 rounded once (0.02 if
        # each day were rounded)
        model.AdSpendDay(
            source="meta_ads",
            external_id="m1",
            account_id="act_1",
            ad_campaign_id="2385",
            day=date(2026, 3, 2),
            spend=Decimal("0.005"),
            currency="EUR",
        ),
        model.AdSpendDay(
            source="meta_ads",
            external_id="m2",
            account_id="act_1",
            ad_campaign_id="2385",
            day=date(2026, 3, 3),
            spend=Decimal("0.005"),
            currency="EUR",
        ),
        model.AdSpendDay(
            source="google_ads",
            external_id="g9",
            account_id="1",
            ad_campaign_id="999",
            day=date(2026, 3, 1),
            spend=Decimal("42.00"),
            currency="USD",
        ),
        model.AdCampaign(
            source="google_ads", external_id="999", account_id="1", name="Unmapped test"
        ),
        model.Expense(
            source="finance",
            external_id="e1",
            campaign_source=SF,
            campaign_id="701B",
            incurred_on=date(2026, 1, 15),
            amount=Decimal("200"),
            currency="USD",
            status="approved",
        ),
        model.Expense(
            source="finance",
            external_id="e2",
            campaign_source=SF,
            campaign_id="701B",
            incurred_on=date(2026, 1, 15),
            amount=Decimal("500"),
            currency="USD",
            status="rejected",
        ),
        model.Expense(
            source="finance",
            external_id="e3",
            campaign_source=SF,
            campaign_id="701B",
            incurred_on=date(2026, 1, 16),
            amount=Decimal("300"),
            currency="USD",
            status="requested",
        ),
    ]


SETTINGS = Settings(
    fx_rates=(
        DatedRate("EUR", date(2026, 1, 1), Decimal("1.10")),
        DatedRate("EUR", date(2026, 3, 31), Decimal("1.20")),
    ),
    mapping=(ExplicitMapping("meta_ads", "2385", "701A"),),
)


@pytest.fixture
def engine(store: Store) -> RoiEngine:
    store.upsert(world())
    store.mark_deleted(model.Touchpoint, SF, ["00v7"])
    return RoiEngine(Dataset.load(store), SETTINGS, as_of=AS_OF)


def test_journeys_follow_the_contract(engine: RoiEngine) -> None:
    inputs = engine.inputs
    j = inputs.journeys
    opps = [o.external_id for o in inputs.opportunities]
    assert opps == ["006O1", "006O2", "006O3"]
    names = [c.external_id for c in inputs.campaigns]
    first = [names[i] for i in j.touch_campaign[j.offsets[0] : j.offsets[1]]]
    # 00v1 A (01-05), 00v2 B (01-20), then the tie at 02-05: 00v10 C before 00v3 A
    assert first == ["701A", "701B", "701C", "701A"]
    assert j.offsets.tolist() == [0, 4, 4, 4]  # O2 has no persons; C4 has no touches
    # person created = the earliest of L1 (01-10), C1 (02-01), C2 (02-15)
    assert j.opp_person_created[0] == journey_builder.micros(at(1, 10))
    # closed: cutoff is the end of the close date in the connector's time zone
    assert j.opp_cutoff[0] == journey_builder.micros(
        datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
    )
    assert j.opp_won.tolist() == [True, False, False]
    # one non-converting path: L3 (C2 and L1/C1 are in the won O1)
    p = inputs.nonconverting
    assert p.n_paths == 1 and [names[i] for i in p.campaign] == ["701B"]


def test_cutoff_uses_the_connector_time_zone(store: Store) -> None:
    store.upsert(world())
    tokyo = Settings(timezone="Asia/Tokyo", fx_rates=SETTINGS.fx_rates)
    engine = RoiEngine(Dataset.load(store), tokyo, as_of=AS_OF)
    cutoff = engine.inputs.journeys.opp_cutoff[0]
    assert cutoff == journey_builder.micros(datetime(2026, 3, 31, 14, 59, 59, 999999, tzinfo=UTC))


def test_w_shaped_money_and_roi(engine: RoiEngine) -> None:
    report = engine.report(model_name="w_shaped", by="campaign")
    rows = {r.key: r for r in report.rows}
    a, b, c = rows["salesforce:701A"], rows["salesforce:701B"], rows["salesforce:701C"]
    # O1: 1000.02 EUR at the close date's rate 1.20 = 1200.024 -> 1200.02 USD.
    # FT=LC on 00v1 (A) 0.6, OC=CW on 00v3 (A) 0.3, rest 00v2 (B), 00v10 (C) 0.05 each.
    # A: 108001.8 -> floor 108001 + the one remaining cent (largest remainder) = 1080.02
    assert a.attributed_revenue == Decimal("1080.02")
    assert b.attributed_revenue == Decimal("60.00")
    assert c.attributed_revenue == Decimal("60.00")
    assert a.attributed_revenue + b.attributed_revenue + c.attributed_revenue == Decimal("1200.02")
    # O3 (500 USD) has a contact without touches: unattributed, as is O2 (no persons)
    assert report.unattributed_opportunities == 2
    assert report.unattributed_pipeline == Decimal("500.00")
    # costs: A = 100.00 USD + 2 x 0.0055 (exact) = 100.011 -> 100.01
    assert a.cost == Decimal("100.01")
    assert b.cost == Decimal("200.00")  # only the approved expense
    assert c.cost == Decimal("1000.00")  # the CRM's actual cost: no mapping, no expenses
    assert a.figures.cost_owned and b.figures.cost_owned and not c.figures.cost_owned
    assert a.roi == (Decimal("1080.02") - Decimal("100.01")) / Decimal("100.01")
    assert a.roas == Decimal("1080.02") / Decimal("100.01")
    # sourced leads: a person's first touch ever, window or not: L1/C1's is 00v5 (B, 2024),
    # C2's is 00v10 (C), L3's is 00v8 (B)
    assert (a.figures.leads, b.figures.leads, c.figures.leads) == (0, 2, 1)
    assert a.cpl is None and b.cpl == Decimal("100.00")
    # L1 reached SQL (so MQL too), L3 only MQL
    assert (b.figures.mql, b.figures.sql, b.mql_to_sql) == (2, 1, Decimal("0.5"))
    assert report.unmapped == [("google_ads", "999", "Unmapped test", Decimal("42.00"))]
    assert a.figures.won == pytest.approx(0.9) and a.figures.influenced == 1
    assert a.sales_cycle_days == Decimal(str(round(0.9 * 49, 12))) / Decimal(str(round(0.9, 12)))


def test_linear_remainder_tie_goes_to_the_earlier_first_touch(engine: RoiEngine) -> None:
    rows = {r.key: r for r in engine.report(model_name="linear").rows}
    # 120002 cents x (0.5, 0.25, 0.25) = 60001, 30000.5, 30000.5: one cent left, B and C
    # tie, B's first touch (01-20) comes before C's (02-05)
    assert rows["salesforce:701A"].attributed_revenue == Decimal("600.01")
    assert rows["salesforce:701B"].attributed_revenue == Decimal("300.01")
    assert rows["salesforce:701C"].attributed_revenue == Decimal("300.00")


def test_roi_edge_cases(engine: RoiEngine) -> None:
    report = engine.report(model_name="w_shaped", by="channel")
    rows = {r.key: r for r in report.rows}
    assert set(rows) == {"paid_search", "email", "event"}
    # a period with cost and no revenue: roi -1; a period with no cost: roi null
    march = engine.report(model_name="w_shaped", period=Period.parse("2026-03"))
    by_key = {r.key: r for r in march.rows}
    a = by_key["salesforce:701A"]
    assert a.cost == Decimal("100.01") and a.attributed_revenue == Decimal("1080.02")
    february = {
        r.key: r for r in engine.report(model_name="w_shaped", period=Period.parse("2026-02")).rows
    }
    assert february["salesforce:701C"].cost == Decimal("1000.00")
    assert february["salesforce:701C"].roi == Decimal(-1)
    assert february["salesforce:701A"].roi is None
    assert february["salesforce:701A"].attributed_pipeline == Decimal("1080.02")


def test_every_model_splits_each_opportunity_exactly(engine: RoiEngine) -> None:
    for name in [
        "first_touch",
        "lead_creation",
        "last_touch",
        "linear",
        "time_decay",
        "u_shaped",
        "w_shaped",
        "full_path",
        "markov",
        "shapley",
    ]:
        alloc = engine.allocation(name)
        per_opp = np.zeros(3, dtype=np.int64)
        np.add.at(per_opp, alloc.opp, alloc.amount_minor)
        attributed = [i for i in range(3) if i not in set(alloc.unattributed.tolist())]
        for i in attributed:
            assert per_opp[i] == engine.amount_minor[i], name


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_property_results_do_not_depend_on_record_order(seed: int) -> None:
    """The store returns rows in arrival order; no figure may depend on it."""
    import random

    records = [
        r for r in world() if not (isinstance(r, model.Touchpoint) and r.external_id == "00v7")
    ]
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    reports = []
    for recs in (records, shuffled):
        engine = RoiEngine(Dataset.from_records(recs), SETTINGS, as_of=AS_OF)
        for name in ("w_shaped", "time_decay", "markov", "shapley"):
            reports.append(
                (
                    name,
                    [
                        (
                            r.key,
                            r.cost,
                            r.attributed_revenue,
                            r.attributed_pipeline,
                            r.figures.leads,
                        )
                        for r in engine.report(model_name=name).rows
                    ],
                )
            )
    half = len(reports) // 2
    assert reports[:half] == reports[half:]
