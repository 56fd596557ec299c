"""Alerts over time (DESIGN section 5): one per crossing, the highest of a run only, resolved
when the condition clears, a new period starting clean — on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connector.alerts import log as alert_log
from connector.alerts.rules import Evaluation, dedup_key
from connector.alerts.run import evaluate_alerts
from connector.config import Config, parse_config
from connector.roi import RoiEngine, Settings
from connector.store import Store, schema
from connector.store.dataset import Dataset
from tests.budget_world import ad_campaign, at, budget, campaign, days, expense, spend

Q4_START = date(2026, 10, 1)
AS_OF = at(date(2026, 10, 11))


def config(store: Store, **alerts: Any) -> Config:
    return parse_config(
        {"connector": {"database_url": "sqlite:///unused.db"}, "alerts": alerts},
        env={},
    )


def thresholds_only(store: Store, **extra: Any) -> Config:
    return config(store, forecast_over_budget=False, under_pacing=0, **extra)


def world(store: Store, q4_budget: str = "1000") -> None:
    store.upsert(
        [
            campaign("C1", ad_campaign_ref="AD1", start_date=Q4_START),
            ad_campaign("AD1"),
            budget("channel:paid_social", "2026-Q4", q4_budget),
        ]
    )


def spend_on(store: Store, day: date, amount: str) -> None:
    store.upsert(spend("AD1", [day], amount))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: the PostgreSQL runs are the tests taking ``store``."""
    with Store.open(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
        yield opened


def states(store: Store) -> dict[str, tuple[str, int]]:
    return {a.dedup_key: (a.state, a.firings) for a in alert_log.list_alerts(store)}


KEY = "budget_threshold|channel:paid_social|2026-Q4|{}"


def test_crossing_twice_in_two_runs_gives_one_alert_and_a_refund_resolves_it(
    store: Store,
) -> None:
    world(store)
    cfg = thresholds_only(store)
    spend_on(store, date(2026, 10, 2), "850")
    first = evaluate_alerts(store, cfg, as_of=AS_OF)
    # 0.5 and 0.8 crossed in one run: only the highest fires
    assert first.outcome.fired == [KEY.format("0.8")]
    assert first.outcome.passed == [KEY.format("0.5")]
    spend_on(store, date(2026, 10, 3), "50")  # 0.9: still over 0.8
    second = evaluate_alerts(store, cfg, as_of=AS_OF + timedelta(hours=1))
    assert (second.outcome.fired, second.outcome.passed, second.outcome.resolved) == ([], [], [])
    open_alerts = alert_log.list_alerts(store, open_only=True)
    assert [a.dedup_key for a in open_alerts] == [KEY.format("0.8")]
    assert open_alerts[0].value == Decimal("0.9")  # the current value is kept up to date
    assert "reached 80.0% of its 2026-Q4 budget" in open_alerts[0].subject

    store.upsert([expense("REFUND", "C1", date(2026, 10, 4), "-200")])  # back to 0.7
    third = evaluate_alerts(store, cfg, as_of=AS_OF + timedelta(hours=2))
    assert third.outcome.resolved == [KEY.format("0.8")]
    assert states(store) == {KEY.format("0.8"): ("resolved", 1), KEY.format("0.5"): ("passed", 1)}
    events = [h["event"] for h in alert_log.list_alerts(store)[0].history]
    assert events[0] in ("opened", "passed") and "resolved" in [
        h["event"] for a in alert_log.list_alerts(store) for h in a.history
    ]


def test_recrossing_after_a_resolution_fires_again(store: Store) -> None:
    world(store)
    cfg = thresholds_only(store, thresholds=[0.8])
    spend_on(store, date(2026, 10, 2), "850")
    evaluate_alerts(store, cfg, as_of=AS_OF)
    store.upsert([expense("REFUND", "C1", date(2026, 10, 4), "-200")])
    evaluate_alerts(store, cfg, as_of=AS_OF + timedelta(hours=1))
    store.upsert([expense("MORE", "C1", date(2026, 10, 5), "300")])
    again = evaluate_alerts(store, cfg, as_of=AS_OF + timedelta(hours=2))
    assert again.outcome.fired == [KEY.format("0.8")]
    (alert,) = alert_log.list_alerts(store)
    assert (alert.state, alert.firings) == ("open", 2)
    assert alert.firing_key == KEY.format("0.8") + "#2"
    assert [h["event"] for h in alert.history] == ["opened", "resolved", "reopened"]


def test_new_period_starts_clean_and_old_ones_close_after_the_grace_days(db: Store) -> None:
    world(db)
    db.upsert([budget("channel:paid_social", "2027-Q1", "1000")])
    cfg = thresholds_only(db, grace_days=10)
    spend_on(db, date(2026, 12, 20), "900")
    evaluate_alerts(db, cfg, as_of=at(date(2026, 12, 21)))
    assert states(db)[KEY.format("0.8")] == ("open", 1)
    # a new quarter: its budget is evaluated from zero; Q4 still within its grace days
    spend_on(db, date(2027, 1, 2), "100")
    run = evaluate_alerts(db, cfg, as_of=at(date(2027, 1, 5)))
    assert run.outcome.fired == [] and run.outcome.resolved == []
    q1_keys = [k for k in states(db) if "2027-Q1" in k]
    assert q1_keys == []
    # past the grace days, Q4 is history: its open alert is closed, never re-fired
    later = evaluate_alerts(db, cfg, as_of=at(date(2027, 1, 20)))
    assert sorted(later.outcome.resolved) == [KEY.format("0.5"), KEY.format("0.8")]
    (resolved,) = [a for a in alert_log.list_alerts(db) if a.dedup_key == KEY.format("0.8")]
    assert resolved.history[-1]["note"] == "no longer evaluated"


def test_forecast_ranks_between_80_and_100_percent(db: Store) -> None:
    world(db)
    cfg = config(db, under_pacing=0)
    # 90 a day for Oct 1..10: 900 of 1000 used, forecast 900 + 90 x 82 far over budget
    db.upsert(spend("AD1", days(Q4_START, date(2026, 10, 10)), "90"))
    run = evaluate_alerts(db, cfg, as_of=AS_OF)
    assert run.outcome.fired == ["forecast_over_budget|channel:paid_social|2026-Q4|1"]
    assert sorted(run.outcome.passed) == [KEY.format("0.5"), KEY.format("0.8")]
    (alert,) = alert_log.list_alerts(db, open_only=True)
    assert alert.severity == "warning"
    assert alert.details["owner_id"] == "005C1" and alert.details["campaign_id"] == "C1"
    assert "runs out on 2026-10-12" in alert.body  # 100 left at 90 a day
    # crossing 100 % later fires: it ranks above the forecast
    spend_on(db, date(2026, 10, 11), "200")
    later = evaluate_alerts(db, cfg, as_of=AS_OF + timedelta(days=1))
    assert later.outcome.fired == [KEY.format("1")]
    assert alert_log.list_alerts(db, open_only=True)[0].severity == "critical"


def test_under_pacing_waits_for_min_days_and_speaks_chinese(db: Store) -> None:
    world(db)
    cfg = config(db, forecast_over_budget=False, language="zh-CN", min_days_elapsed=7)
    spend_on(db, Q4_START, "10")
    early = evaluate_alerts(db, cfg, as_of=at(date(2026, 10, 5)))
    assert early.outcome.fired == []
    late = evaluate_alerts(db, cfg, as_of=at(date(2026, 10, 20)))
    assert late.outcome.fired == ["under_pacing|channel:paid_social|2026-Q4|0.5"]
    (alert,) = alert_log.list_alerts(db, open_only=True)
    assert alert.subject == "渠道 paid_social的 2026-Q4 预算花费进度偏慢"
    assert "已花费 10.00 USD，预算 1,000.00 USD" in alert.body


def test_category_drift(db: Store) -> None:
    db.upsert(
        [
            campaign("G", ad_campaign_ref="ADG", budget_category="growth"),
            campaign("S", ad_campaign_ref="ADS", budget_category="strategic", channel="display"),
            ad_campaign("ADG"),
            ad_campaign("ADS"),
            *spend("ADG", days(Q4_START, date(2026, 10, 10)), "80"),
            *spend("ADS", days(Q4_START, date(2026, 10, 10)), "20"),
            budget("total", "2026-Q4", "100000"),
        ]
    )
    cfg = thresholds_only(db)
    run = evaluate_alerts(db, cfg, as_of=AS_OF)
    # growth 80 % (target 50 % ± 5), strategic 20 % (on target), retention 0 % (target 30 %)
    assert sorted(run.outcome.fired) == [
        "category_drift|category:growth|2026-Q4|0.05",
        "category_drift|category:retention|2026-Q4|0.05",
    ]
    growth = next(a for a in alert_log.list_alerts(db) if "growth" in a.dedup_key)
    assert growth.subject == "Category growth is 80.0% of 2026-Q4 spend, target 50.0%"
    assert "campaign_id" not in growth.details  # no campaign: no CRM task for this one


def test_health_rules_on_campaigns_in_flight(db: Store) -> None:
    db.upsert(
        [
            campaign("C1", ad_campaign_ref="AD1", start_date=Q4_START, end_date=date(2026, 12, 31)),
            campaign(
                "OLD",
                ad_campaign_ref="AD2",
                start_date=date(2025, 1, 1),
                end_date=date(2025, 3, 31),
            ),
            ad_campaign("AD1"),
            ad_campaign("AD2"),
            *spend("AD1", days(Q4_START, date(2026, 10, 10)), "90"),
            *spend("AD2", days(date(2025, 1, 1), date(2025, 1, 10)), "90"),
        ]
    )
    cfg = config(db)
    roi = RoiEngine(Dataset.load(db), Settings(), as_of=AS_OF)
    run = evaluate_alerts(db, cfg, as_of=AS_OF, roi_engine=roi)
    # cost and no revenue: ROAS 0 < 1; the campaign that ended in 2025 is not in flight
    assert run.outcome.fired == ["health_roas|campaign:C1|lifetime|1"]
    (alert,) = alert_log.list_alerts(db, open_only=True)
    assert alert.subject == "Campaign 'Campaign C1': ROAS 0.00 fails the health rule (≥ 1.00)"
    # with health alerts switched off the open one resolves
    off = evaluate_alerts(db, config(db, health=False), as_of=AS_OF, roi_engine=roi)
    assert off.outcome.resolved == ["health_roas|campaign:C1|lifetime|1"]


def test_migration_fills_new_alert_columns_on_existing_rows(store_url: str) -> None:
    with Store.open(store_url, upgrade=False) as store:
        store.upgrade("0002")
        with store.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO alerts (dedup_key, rule, scope, period, severity, message, state, "
                "opened_at, delivered_to, history) VALUES ('k', 'budget_threshold', 'total', "
                "'2026', 'info', 'm', 'open', '2026-01-01 00:00:00', '{}', '[]')"
            )
        store.upgrade()
        (alert,) = alert_log.list_alerts(store)
        assert (alert.details, alert.delivery_errors, alert.firings) == ({}, {}, 1)
        store.upgrade("0002")  # and back down
        store.upgrade()


# ----- the state machine, model-checked ----------------------------------------------------

THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))


def _evaluations(value: Decimal) -> list[Evaluation]:
    return [
        Evaluation(
            rule="budget_threshold",
            scope="total",
            period="2026",
            threshold=t,
            met=value >= t,
            value=value,
            message="m" if value >= t else "",
            group="budget|total|2026",
            rank=(t >= 1, t),
        )
        for t in THRESHOLDS
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=130), min_size=1, max_size=8))
def test_any_sequence_of_runs_matches_the_model(percents: list[int]) -> None:
    """Whatever the sequence of runs: one row per dedup key; a key fires (open or passed)
    on each rising edge of its condition, only the highest of what crosses or is open
    is open, and a key is active exactly while its condition holds."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 's.db'}")
        expected: dict[Decimal, tuple[str, int]] = {}
        now = datetime(2026, 5, 1, tzinfo=UTC)
        for i, pct in enumerate(percents):
            value = Decimal(pct) / 100
            alert_log.record(store, _evaluations(value), ("budget_threshold",), now=now)
            now += timedelta(hours=i + 1)
            # the model
            met = {t for t in THRESHOLDS if value >= t}
            crossing = {t for t in met if expected.get(t, ("resolved", 0))[0] == "resolved"}
            still_open = {t for t in met - crossing if expected[t][0] == "open"}
            best = max(crossing | still_open, key=lambda t: (t >= 1, t), default=None)
            for t in crossing:
                fires = expected.get(t, ("resolved", 0))[1] + 1
                expected[t] = ("open" if t == best else "passed", fires)
            for t, (state, fires) in list(expected.items()):
                if t not in met and state != "resolved":
                    expected[t] = ("resolved", fires)
        with store.engine.connect() as conn:
            keys = list(conn.execute(select(schema.alerts.c.dedup_key)).scalars())
        assert len(keys) == len(set(keys))
        got = states(store)
        assert got == {
            dedup_key("budget_threshold", "total", "2026", t): v for t, v in expected.items()
        }
        store.close()


@settings(max_examples=200, deadline=None)
@given(
    value=st.decimals(min_value=0, max_value=1000, places=8, allow_nan=False),
    limit=st.sampled_from([Decimal(1), Decimal(3), Decimal("0.3"), Decimal(45)]),
)
def test_a_failing_figure_is_shown_with_the_digits_that_make_it_fail(
    value: Decimal, limit: Decimal
) -> None:
    from connector.alerts.messages import number_against

    if value < limit:
        shown = Decimal(number_against(value, limit, below=True).replace(",", ""))
        assert shown < limit and abs(shown - value) < Decimal("0.005")
    if value > limit:
        shown = Decimal(number_against(value, limit, below=False).replace(",", ""))
        assert shown > limit and abs(shown - value) < Decimal("0.005")


def test_ltv_to_cac_just_under_three_reads_as_under_three() -> None:
    from connector.alerts.messages import number_against

    assert number_against(Decimal("2.9966"), 3, below=True) == "2.997"
    assert number_against(Decimal("2.5"), 3, below=True) == "2.50"
