"""Writing the ROI fields back: units and rounding, diffing, 200-record calls, partial failure."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapters.base import CampaignFields
from adapters.salesforce import build_source, build_writer
from adapters.salesforce import fields as sf
from connector import model
from connector.roi import Figures, RoiEngine, Row, Settings
from connector.store import schema
from connector.store.dataset import Dataset
from sync.runner import sync_source
from sync.writeback import campaign_fields, push_campaign_fields
from tests.test_salesforce_fake import (
    NOW,
    fake_orgs,
    fixture,
    seed_world,
    sf_config,
)


@pytest.fixture
def fake() -> Iterator:
    with fake_orgs() as make:
        yield make


def writer_for(store, config=None, slept=None):
    return build_writer(
        config or sf_config(),
        store,
        sleep=(slept.append if slept is not None else lambda _s: None),
        rng=random.Random(3),
    )


def updates_for(ids, *, revenue: str = "100.00", at=NOW) -> list[CampaignFields]:
    return [
        CampaignFields(
            campaign_id=cid,
            attributed_revenue=Decimal(revenue),
            attributed_pipeline=Decimal("250.00"),
            roi_percent=Decimal("50.00"),
            roas=Decimal("1.5000"),
            cost_per_lead=None,
            budget_consumed_percent=Decimal("80.00"),
            forecast_cost=None,
            model="w_shaped",
            synced_at=at,
        )
        for cid in ids
    ]


def campaigns(org, n: int) -> list[str]:
    return [org.add("Campaign", Name=f"C{i}") for i in range(n)]


# ----- values in the fields' units (sync/writeback.py) ---------------------------------------


def row(
    cost: str,
    revenue_minor: int,
    *,
    leads: int = 0,
    budget: str | None = None,
    owned: bool = False,
    source: str = "salesforce",
    currency: str = "USD",
) -> Row:
    campaign = model.Campaign(source=source, external_id="701xx0000000001AAA", name="C")
    figures = Figures(
        cost=Decimal(cost),
        cost_owned=owned,
        leads=leads,
        revenue_minor=revenue_minor,
        pipeline_minor=revenue_minor * 2,
        budget=Decimal(budget) if budget else None,
    )
    return Row(key="k", name="C", currency=currency, figures=figures, ltv=None, campaign=campaign)


def one(r: Row, **kwargs) -> CampaignFields:
    (out,) = campaign_fields(
        [r], model_name="w_shaped", synced_at=NOW, source="salesforce", **kwargs
    )
    return out


def test_ratios_become_percents_and_roas_has_four_decimals() -> None:
    out = one(row("100.00", 15000, leads=4, budget="125.00", owned=True))
    assert out.roi_percent == Decimal("50.00")  # roi 0.5
    assert out.roas == Decimal("1.5000")
    assert out.budget_consumed_percent == Decimal("80.00")
    assert out.cost_per_lead == Decimal("25.00")
    assert out.attributed_revenue == Decimal("150.00")
    assert out.attributed_pipeline == Decimal("300.00")
    assert out.actual_cost == Decimal("100.00") and out.owns_cost
    assert out.model == "w_shaped" and out.synced_at == NOW


def test_rounding_is_half_even_at_the_fields_scale() -> None:
    out = one(row("200.00", 20001))  # roi 0.00005, roas 1.00005
    assert out.roi_percent == Decimal("0.00")  # half-up would say 0.01
    assert out.roas == Decimal("1.0000")  # half-up would say 1.0001
    out = one(row("200.00", 20003))  # roas 1.00015 -> 1.0002 (to even)
    assert out.roas == Decimal("1.0002")
    forecast = one(row("1.00", 0), forecast_for=lambda c: Decimal("1234.565"))
    assert forecast.forecast_cost == Decimal("1234.56")
    yen = one(row("1000", 3333, leads=3, currency="JPY"))
    assert yen.attributed_revenue == Decimal("3333") and yen.cost_per_lead == Decimal("333")


def test_null_figures_stay_empty_and_cost_not_owned_is_not_written() -> None:
    out = one(row("0.00", 5000))
    assert out.roi_percent is None and out.roas is None and out.cost_per_lead is None
    assert out.budget_consumed_percent is None and out.forecast_cost is None
    assert out.actual_cost is None and not out.owns_cost
    assert one(row("10.00", 0)).roi_percent == Decimal("-100.00")  # cost, no revenue: -1
    assert (
        campaign_fields(
            [row("1", 1, source="hubspot")], model_name="m", synced_at=NOW, source="salesforce"
        )
        == []
    )


# ----- the write path ------------------------------------------------------------------------


def test_450_changed_campaigns_take_exactly_3_calls_then_none(fake, store) -> None:
    org = fake()
    ids = campaigns(org, 450)
    writer = writer_for(store)
    result = writer.write_campaign_fields(updates_for(ids))
    assert (len(result.written), result.failed, result.calls) == (450, {}, 3)
    sizes = [len(call.body["records"]) for call in org.write_calls]
    assert sizes == [200, 200, 50]
    first = org.write_calls[0].body
    assert first["allOrNone"] is False
    assert first["records"][0]["attributes"] == {"type": "Campaign"}
    record = org.objects["Campaign"][ids[0]]
    assert record[sf.ROI] == Decimal("50.00") and record[sf.ROAS] == Decimal("1.5000")
    assert record[sf.COST_PER_LEAD] is None  # null written as an empty field
    assert sf.ACTUAL_COST not in first["records"][0]  # the connector does not own the cost
    assert record[sf.SYNCED_AT] == "2026-03-10T12:00:00.000Z"

    org.requests.clear()
    again = writer_for(store).write_campaign_fields(updates_for(ids, at=NOW + timedelta(hours=1)))
    assert (again.written, again.failed, again.calls) == ([], {}, 0)
    assert org.requests == [], "nothing changed: no call at all, not even a describe"


def test_only_changed_fields_are_sent(fake, store) -> None:
    org = fake()
    ids = campaigns(org, 3)
    writer_for(store).write_campaign_fields(updates_for(ids))
    changed = updates_for(ids, at=NOW + timedelta(hours=1))
    changed[1] = updates_for([ids[1]], revenue="175.25", at=NOW + timedelta(hours=1))[0]
    result = writer_for(store).write_campaign_fields(changed)
    assert result.written == [ids[1]] and result.calls == 1
    (sent,) = org.write_calls[-1].body["records"]
    assert set(sent) == {"attributes", "id", sf.ATTRIBUTED_REVENUE, sf.SYNCED_AT}
    assert sent[sf.ATTRIBUTED_REVENUE] == Decimal("175.25")


def test_expiry_503_burst_and_per_record_failures_then_the_next_run_finishes(fake, store) -> None:
    org = fake()
    ids = campaigns(org, 450)
    org.reject = {
        ids[5]: fixture("collections_update_mixed.json")[1]["errors"],
        ids[300]: [
            {
                "statusCode": "UNABLE_TO_LOCK_ROW",
                "message": "unable to obtain exclusive access to this record",
                "fields": [],
            }
        ],
    }
    slept: list[float] = []
    writer = writer_for(store, slept=slept)
    # the first call is retried through a 503 burst; the session expires before the second
    org.fail(
        "PATCH", r"composite/sobjects$", 503, fixture("error_server_unavailable.json"), times=2
    )
    org.expire_at("PATCH", r"composite/sobjects$", 4)
    result = writer.write_campaign_fields(updates_for(ids))
    assert len(result.written) == 448 and result.calls == 3
    assert set(result.failed) == {ids[5], ids[300]}
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in result.failed[ids[5]]
    assert "UNABLE_TO_LOCK_ROW" in result.failed[ids[300]]
    assert len(slept) == 2  # the 503s were retried with backoff
    assert len(org.logins) == 2  # the expired session was renewed once, mid-run
    with store.engine.connect() as conn:
        state = {r.record_id: r for r in conn.execute(select(schema.writeback_state))}
    assert state[ids[5]].attempts == 1 and "FIELD_CUSTOM" in state[ids[5]].last_error
    assert state[ids[5]].pending_values[sf.ROI] == "50.00"
    assert state[ids[5]].written_values in (None, {})
    assert state[ids[0]].written_values[sf.ROI] == "50.00" and state[ids[0]].attempts == 0

    result = writer_for(store).write_campaign_fields(updates_for(ids))
    assert sorted(result.written) == sorted([ids[5], ids[300]]) and result.failed == {}
    assert result.calls == 1
    writes = Counter(rid for rid, _ in org.writes)
    assert set(writes) == set(ids) and set(writes.values()) == {1}, "nothing written twice"
    assert writer_for(store).write_campaign_fields(updates_for(ids)).calls == 0


def test_request_limit_mid_write_leaves_the_rest_for_the_next_run(fake, store) -> None:
    org = fake()
    ids = campaigns(org, 250)
    writer = writer_for(store)
    writer.write_campaign_fields(updates_for(ids[:1]))  # logged in, describe cached
    org.fail("PATCH", r"composite/sobjects$", 403, fixture("error_request_limit.json"))
    result = writer.write_campaign_fields(updates_for(ids, revenue="1.00"))
    assert result.written == [] and len(result.failed) == 250
    assert "REQUEST_LIMIT_EXCEEDED" in result.failed[ids[0]]
    assert len(org.write_calls) == 2, "stopped at the limit: the second chunk was not sent"
    again = writer_for(store).write_campaign_fields(updates_for(ids, revenue="1.00"))
    assert len(again.written) == 250 and again.calls == 2


def test_missing_fields_are_left_out_and_reported(fake, store) -> None:
    org = fake()
    ids = campaigns(org, 2)
    del org.fields["Campaign"][sf.FORECAST_COST]
    org.fields["Campaign"][sf.MODEL]["updateable"] = False
    result = writer_for(store).write_campaign_fields(updates_for(ids))
    assert result.calls == 1 and result.written == []
    assert "setup-fields" in result.failed[ids[0]] and sf.FORECAST_COST in result.failed[ids[0]]
    sent = org.write_calls[0].body["records"][0]
    assert sf.FORECAST_COST not in sent and sf.MODEL not in sent and sf.ROI in sent
    org.requests.clear()
    second = writer_for(store).write_campaign_fields(updates_for(ids))
    assert second.calls == 0 and not org.write_calls  # nothing writable changed
    assert set(second.failed) == set(ids)  # still reported until the fields exist


def test_sync_compute_push_end_to_end_with_exit_code_3(fake, store) -> None:
    from sync.pipeline import EXIT_OK, EXIT_PARTIAL, run_sync

    org = fake()
    ids = seed_world(org)
    config = sf_config()

    def run():
        return run_sync(
            store,
            config,
            sources=[("salesforce", lambda: build_source(config, store, sleep=lambda _s: None))],
            writer=writer_for(store, config),
            now=NOW,
        )

    org.reject = {
        ids["search"]: [
            {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "closed", "fields": []}
        ]
    }
    first = run()
    assert first.exit_code == EXIT_PARTIAL and ids["search"] in first.write_failed
    assert org.objects["Campaign"][ids["webinar"]][sf.MODEL] == "w_shaped"
    second = run()
    assert second.exit_code == EXIT_OK and second.write_failed == {}
    revenue = [
        org.objects["Campaign"][ids[k]][sf.ATTRIBUTED_REVENUE] for k in ("search", "webinar")
    ]
    assert revenue == [Decimal("6666.67"), Decimal("3333.33")]  # w_shaped: FT+LC 2/3, OC 1/3
    calls_before = len(org.write_calls)
    assert run().exit_code == EXIT_OK
    assert len(org.write_calls) == calls_before, "a run with nothing changed writes nothing"


def test_push_uses_the_configured_model_and_lifetime_figures(fake, store) -> None:
    org = fake()
    ids = seed_world(org)
    config = sf_config()
    source = build_source(config, store, sleep=lambda _s: None)
    sync_source(store, source, now=NOW)
    engine = RoiEngine(Dataset.load(store), Settings(), as_of=NOW)
    result = push_campaign_fields(store, engine, writer_for(store, config), config, now=NOW)
    assert set(result.written) == {ids["search"], ids["webinar"]}
    webinar = org.objects["Campaign"][ids["webinar"]]
    # the webinar's cost is the CRM's own ActualCost: read, never written
    assert sf.ACTUAL_COST not in next(
        r for call in org.write_calls for r in call.body["records"] if r["id"] == ids["webinar"]
    )
    assert webinar[sf.BUDGET_CONSUMED] == Decimal("24.01")  # 1200.50 / 5000
    assert webinar[sf.MODEL] == config.attribution.model
    assert date.fromisoformat(webinar[sf.SYNCED_AT][:10]) == NOW.date()
