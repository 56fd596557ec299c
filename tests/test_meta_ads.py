"""Meta Marketing API insights, faked at the wire with payloads shaped like the documented ones
(tests/fixtures/meta/README.md names the pages)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import meta_ads
from adapters.ad_windows import AdAccount, Window
from adapters.http import AuthError, parse_json
from adapters.meta_ads import MetaAdsSource, spend_rows
from connector import model
from connector.config import load_config
from connector.store import Store
from sync.runner import sync_source

FIXTURES = Path(__file__).parent / "fixtures" / "meta"
BASE = "https://graph.test"
V = f"{BASE}/v26.0"
ACT = "act_1234"
TOKEN = "EAAB-SECRET-TOKEN"
APP_SECRET = "app-SECRET"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 04:00 on the 23rd in Los Angeles
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def query(request: requests.PreparedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


class FakeMeta:
    """An ad account whose insights come from ``upstream``: (campaign, day) -> (spend string,
    impressions, clicks, lead value string). ``failures`` answer the next calls whose path ends
    with their key, in order. Every call must carry the token and its appsecret_proof."""

    def __init__(self, mock: responses.RequestsMock, upstream: dict[tuple[str, date], tuple]):
        self.upstream = upstream
        self.failures: list[tuple[str, int, Any, dict[str, str]]] = []
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.job_states: list[str] = []
        self.jobs: dict[str, dict[str, str]] = {}
        self.page_size_seen: list[str] = []
        self.usage_headers: dict[str, str] = {}
        any_path = re.compile(rf"{re.escape(V)}/.*")
        mock.add_callback(responses.GET, any_path, callback=self._handle)
        mock.add_callback(responses.POST, any_path, callback=self._handle)

    def _rows(self, since: date, until: date) -> list[dict[str, Any]]:
        rows = []
        for (campaign, day), (spend, impressions, clicks, leads) in sorted(self.upstream.items()):
            if since <= day <= until:
                row: dict[str, Any] = {
                    "campaign_id": campaign,
                    "campaign_name": f"Campaign {campaign}",
                    "account_currency": "EUR",
                    "spend": spend,
                    "impressions": str(impressions),
                    "date_start": day.isoformat(),
                    "date_stop": day.isoformat(),
                }
                if clicks:
                    row["clicks"] = str(clicks)
                if leads:
                    row["actions"] = [{"action_type": "lead", "value": leads}]
                rows.append(row)
        return rows

    def _page(self, rows: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
        size = int(params.get("limit", 25))
        start = int(params.get("after", "0"))
        body: dict[str, Any] = {"data": rows[start : start + size]}
        cursors = {"before": str(start), "after": str(start + size)}
        body["paging"] = {"cursors": cursors}  # Meta keeps "after" even on the last page
        if start + size < len(rows):
            body["paging"]["next"] = f"{V}/next?access_token={TOKEN}&after={start + size}"
        return body

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        params = query(request)
        assert params.get("access_token") == TOKEN and params.get("appsecret_proof") == PROOF
        path = urlsplit(request.url).path.removeprefix("/v26.0/")
        self.calls.append((request.method, path, params))
        for i, (needle, status, body, headers) in enumerate(self.failures):
            if path.endswith(needle):
                del self.failures[i]
                return status, headers, json.dumps(body)
        headers = dict(self.usage_headers)
        if path == ACT:
            return 200, headers, json.dumps(fixture("account.json"))
        if path == f"{ACT}/campaigns":
            page = "campaigns_page2.json" if params.get("after") else "campaigns_page1.json"
            return 200, headers, json.dumps(fixture(page))
        if path == f"{ACT}/insights" and request.method == "GET":
            assert (params["level"], params["time_increment"]) == ("campaign", "1")
            span = json.loads(params["time_range"])
            rows = self._rows(date.fromisoformat(span["since"]), date.fromisoformat(span["until"]))
            return 200, headers, json.dumps(self._page(rows, params))
        if path == f"{ACT}/insights" and request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.body).items()}
            assert json.loads(form["fields"])[0] == "campaign_id"  # fields as a JSON list
            run_id = str(6023920149050 + len(self.jobs))
            self.jobs[run_id] = form
            return 200, headers, json.dumps({"report_run_id": run_id})
        if path in self.jobs:
            state = self.job_states.pop(0) if self.job_states else "Job Completed"
            body = dict(fixture("async_completed.json"), id=path, async_status=state)
            return 200, headers, json.dumps(body)
        run_id = path.removesuffix("/insights")
        if run_id in self.jobs:
            span = json.loads(self.jobs[run_id]["time_range"])
            rows = self._rows(date.fromisoformat(span["since"]), date.fromisoformat(span["until"]))
            return 200, headers, json.dumps(self._page(rows, params))
        return 404, {}, json.dumps(fixture("error_no_account_100_33.json"))


def make_source(slept: list[float] | None = None, **overrides: Any) -> MetaAdsSource:
    kwargs: dict[str, Any] = {
        "ad_account_ids": [ACT],
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "api_version": "v26.0",
        "base_url": BASE,
        "lookback_days": 28,
        "history_days": 40,
        "page_size": 2,
        "sleep": (slept if slept is not None else []).append,
    }
    kwargs.update(overrides)
    source = MetaAdsSource(**kwargs)
    source.http.rng = random.Random(0)
    return source


ACCOUNT = AdAccount(ACT, "Acme EU", "EUR", "America/Los_Angeles")
SHORT = Window(date(2026, 11, 20), date(2026, 11, 22))


def test_insights_rows_become_exact_spend_days() -> None:
    data = fixture("insights_page1.json")["data"] + fixture("insights_page2.json")["data"]
    rows = {r.external_id: r for r in spend_rows(data, ACCOUNT, ("lead",))}
    first = rows[f"{ACT}:2026-11-20:120210000000000001"]
    assert (first.spend, first.currency, first.impressions, first.clicks) == (
        Decimal("12.34"),
        "EUR",
        1000,
        25,
    )
    assert first.conversions == 3  # "lead" only: onsite_conversion.lead_grouped is a subset
    tiny = rows[f"{ACT}:2026-11-21:120210000000000001"]
    assert (tiny.spend, tiny.clicks, tiny.conversions) == (Decimal("0.01"), 0, 0)
    big = rows[f"{ACT}:2026-11-21:120210000000000002"]
    assert big.spend == Decimal("5339.5") and big.conversions == Decimal("2.5")
    custom = spend_rows(data[:1], ACCOUNT, ("link_click", "lead"))
    assert custom[0].conversions == 23


def test_a_row_spanning_days_is_refused() -> None:
    row = dict(fixture("insights_page1.json")["data"][0], date_stop="2026-11-21")
    with pytest.raises(ValueError, match="not one day"):
        spend_rows([row], ACCOUNT, ("lead",))


@settings(max_examples=300, deadline=None)
@given(
    spend=st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=2,
        min_value=0,
        max_value=Decimal("99999999999999999.99"),
    ),
    leads=st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=0, max_value=10**12
    ),
)
def test_spend_strings_never_pass_through_float(spend: Decimal, leads: Decimal) -> None:
    wire = json.dumps(
        {
            "data": [
                {
                    "campaign_id": "1",
                    "spend": str(spend),
                    "impressions": "1",
                    "actions": [{"action_type": "lead", "value": str(leads)}],
                    "date_start": "2026-11-20",
                    "date_stop": "2026-11-20",
                }
            ]
        }
    )
    response = requests.Response()
    response._content, response.status_code = wire.encode(), 200
    (row,) = spend_rows(parse_json(response)["data"], ACCOUNT, ("lead",))
    assert row.spend == spend and str(row.spend) == str(spend)
    assert row.conversions == leads


@responses.activate
def test_cursor_paging_stops_when_next_is_absent_even_with_cursors() -> None:
    pages = iter([fixture("insights_page1.json"), fixture("insights_page2.json")])
    seen: list[dict[str, str]] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        seen.append(query(request))
        return 200, {}, json.dumps(next(pages))

    responses.add_callback(responses.GET, f"{V}/{ACT}/insights", callback=answer)
    got = make_source().fetch_spend(ACCOUNT, SHORT)
    assert len(seen) == 2 and "after" not in seen[0] and seen[1]["after"] == "MQZDZD"
    assert got.pages == 2 and len(got.rows) == 3
    assert json.loads(seen[0]["time_range"]) == {"since": "2026-11-20", "until": "2026-11-22"}
    assert seen[0]["fields"].split(",")[:2] == ["campaign_id", "campaign_name"]
    assert seen[0]["appsecret_proof"] == PROOF


@responses.activate
def test_campaigns_are_paged_and_keep_their_status() -> None:
    FakeMeta(responses.mock, {})
    source = make_source()
    pages = list(source.fetch_campaigns(source.account(ACT)))
    records = [c for page in pages for c in page]
    assert [c.external_id for c in records] == [
        "120210000000000001",
        "120210000000000002",
        "120210000000000003",
    ]
    assert records[1].status == "CAMPAIGN_PAUSED" and records[2].name == "Brand awareness 2025"
    assert records[0].timezone == "America/Los_Angeles" and records[0].currency == "EUR"


@responses.activate
def test_throttling_code_inside_a_400_waits_the_regain_time_or_backs_off() -> None:
    fake = FakeMeta(responses.mock, {("c1", date(2026, 11, 21)): ("1.00", 1, 0, None)})
    buc = {
        "1234": [
            {
                "type": "ads_insights",
                "call_count": 100,
                "total_cputime": 30,
                "total_time": 30,
                "estimated_time_to_regain_access": 2,
            }
        ]
    }
    throttled = fixture("error_throttled_17.json")
    fake.failures.append(
        ("insights", 400, throttled, {"X-Business-Use-Case-Usage": json.dumps(buc)})
    )
    slept: list[float] = []
    source = make_source(slept)
    assert len(source.fetch_spend(ACCOUNT, SHORT).rows) == 1
    assert slept == [120.0]  # two minutes, from the header on the error answer
    # no usage header and no Retry-After: exponential backoff with jitter
    fake.failures.append(("insights", 400, throttled, {}))
    slept.clear()
    source.fetch_spend(ACCOUNT, SHORT)
    assert len(slept) == 1 and 0 <= slept[0] <= 1.0
    # with Retry-After (a 503 from the edge): the header is honoured
    fake.failures.append(
        ("insights", 503, {"error": {"message": "Service Unavailable"}}, {"Retry-After": "7"})
    )
    slept.clear()
    source.fetch_spend(ACCOUNT, SHORT)
    assert slept == [7.0]


@responses.activate
def test_a_long_block_stops_the_sync_without_leaking_the_token(tmp_path: Path) -> None:
    fake = FakeMeta(responses.mock, {})
    buc = {
        "1234": [{"type": "ads_insights", "call_count": 100, "estimated_time_to_regain_access": 60}]
    }
    fake.failures.append(
        (
            "insights",
            400,
            fixture("error_throttled_17.json"),
            {"X-Business-Use-Case-Usage": json.dumps(buc)},
        )
    )
    slept: list[float] = []
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        result = sync_source(store, make_source(slept, lookback_days=3), now=NOW)
    (failed,) = result.failed
    assert "throttling" in failed.error and "next run" in failed.error
    assert TOKEN not in failed.error and PROOF not in failed.error
    assert slept == []  # an hour is not slept through: the next run resumes


@responses.activate
def test_high_usage_on_a_success_pauses_before_the_next_call() -> None:
    fake = FakeMeta(responses.mock, {})
    fake.usage_headers = {
        "X-Ad-Account-Usage": json.dumps(
            {
                "acc_id_util_pct": 97.5,
                "reset_time_duration": 45,
                "ads_api_access_tier": "standard_access",
            }
        )
    }
    slept: list[float] = []
    source = make_source(slept)
    source.account(ACT)
    assert slept == []
    fake.usage_headers = {}
    source.fetch_spend(ACCOUNT, SHORT)
    assert slept == [45.0]


@responses.activate
def test_an_expired_token_is_named_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeMeta(responses.mock, {})
    fake.failures.append((ACT, 400, fixture("error_token_expired_190.json"), {}))
    caplog.set_level(logging.DEBUG)
    ok, message = make_source().check()[0]
    assert not ok and "access token has expired" in message and "access_token_env" in message
    assert TOKEN not in message + caplog.text and PROOF not in message + caplog.text
    with pytest.raises(AuthError):
        fake.failures.append((ACT, 400, fixture("error_token_expired_190.json"), {}))
        make_source().account(ACT)


def test_urllib3_request_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "graph.facebook.com",
        443,
        "GET",
        f"/v26.0/{ACT}/insights?access_token={TOKEN}&appsecret_proof={PROOF}&limit=5",
        "HTTP/1.1",
        200,
        None,
    )
    assert TOKEN not in caplog.text and PROOF not in caplog.text and "limit=5" in caplog.text


@responses.activate
def test_doctor_names_a_wrong_account_and_a_dead_version() -> None:
    fake = FakeMeta(responses.mock, {})
    fake.failures.append((ACT, 400, fixture("error_no_account_100_33.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "meta_ads.ad_account_ids" in message
    fake.failures.append((ACT, 400, fixture("error_deprecated_version_2635.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "meta_ads.api_version" in message
    ok, message = make_source().check()[0]
    assert ok and "Acme EU" in message and "America/Los_Angeles" in message


@responses.activate
def test_long_ranges_use_the_async_report_job() -> None:
    upstream = {
        (c, date(2026, 11, 1) + timedelta(days=i)): ("2.50", 10, 1, "1")
        for c in ("c1", "c2")
        for i in range(20)
    }
    fake = FakeMeta(responses.mock, upstream)
    fake.job_states = ["Job Not Started", "Job Running"]
    slept: list[float] = []
    got = make_source(slept).fetch_spend(ACCOUNT, Window(date(2026, 11, 1), date(2026, 11, 20)))
    assert len(got.rows) == 40 and got.pages == 20  # page_size 2
    methods = [(m, p) for m, p, _ in fake.calls]
    assert methods[0] == ("POST", f"{ACT}/insights")
    assert methods[1:4] == [("GET", "6023920149050")] * 3
    assert slept == [2.0, 4.0]  # polling backs off
    assert sum(r.spend for r in got.rows) == Decimal("100.00")


@responses.activate
def test_a_failed_job_or_too_much_data_is_retried_in_halves() -> None:
    upstream = {("c1", date(2026, 11, 1) + timedelta(days=i)): ("1", 1, 0, None) for i in range(20)}
    fake = FakeMeta(responses.mock, upstream)
    fake.job_states = ["Job Failed"]
    got = make_source().fetch_spend(ACCOUNT, Window(date(2026, 11, 1), date(2026, 11, 20)))
    assert len(got.rows) == 20
    spans = [json.loads(form["time_range"]) for form in fake.jobs.values()]
    assert spans[1:] == [
        {"since": "2026-11-01", "until": "2026-11-10"},
        {"since": "2026-11-11", "until": "2026-11-20"},
    ]
    fake.failures.append(("insights", 400, fixture("error_too_much_data.json"), {}))
    got = make_source().fetch_spend(ACCOUNT, Window(date(2026, 11, 1), date(2026, 11, 6)))
    assert len(got.rows) == 6
    sync_calls = [
        json.loads(p["time_range"])
        for m, path, p in fake.calls
        if m == "GET" and path == f"{ACT}/insights" and "after" not in p
    ]
    assert sync_calls[-2:] == [
        {"since": "2026-11-01", "until": "2026-11-03"},
        {"since": "2026-11-04", "until": "2026-11-06"},
    ]


@responses.activate
def test_rereading_the_28_day_lookback_replaces_and_never_adds(store) -> None:
    today = date(2026, 11, 23)
    upstream = {
        (c, today - timedelta(days=i)): (f"{i}.{i:02d}", 100, 3, "1")
        for c in ("c1", "c2")
        for i in range(41)
    }
    fake = FakeMeta(responses.mock, upstream)
    sync_source(store, make_source(page_size=50), now=NOW)
    assert store.get_cursor("meta_ads", "daily_spend", ACT) == "2026-11-22"  # LA days
    rows = {r.external_id: r for r in store.iter_records(model.AdSpendDay)}
    assert len(rows) == 82 and rows[f"{ACT}:2026-11-23:c1"].spend == Decimal("0.00")
    total = sum(r.spend for r in rows.values())
    sync_source(store, make_source(page_size=50), now=NOW + timedelta(hours=1))
    assert store.count(model.AdSpendDay) == 82
    assert sum(r.spend for r in store.iter_records(model.AdSpendDay)) == total
    fake.upstream[("c2", today - timedelta(days=27))] = ("1000.00", 1, 1, None)
    sync_source(store, make_source(page_size=50), now=NOW + timedelta(hours=2))
    changed = store.get(model.AdSpendDay, "meta_ads", f"{ACT}:{today - timedelta(days=27)}:c2")
    assert changed.spend == Decimal("1000.00") and changed.conversions == 0
    assert store.count(model.AdSpendDay) == 82
    assert sum(r.spend for r in store.iter_records(model.AdSpendDay)) == (
        total - Decimal("27.27") + Decimal("1000.00")
    )


def test_build_source_reads_the_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[connector]\n[meta_ads]\nenabled = true\nad_account_ids = ["act_1234"]\n'
        'app_secret_env = "META_APP_SECRET"\nconversion_action_types = ["lead", "purchase"]\n'
    )
    config = load_config(path, {"META_TOKEN": TOKEN, "META_APP_SECRET": APP_SECRET})
    source = meta_ads.build_source(config)
    assert source.account_ids == [ACT] and source.version == "v26.0"
    assert source.action_types == ("lead", "purchase")
    assert source._auth == {"access_token": TOKEN, "appsecret_proof": PROOF}
    assert TOKEN not in repr(source.streams())
    source.close()
