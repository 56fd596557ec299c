"""LinkedIn adAnalytics, faked at the wire with payloads shaped like the documented ones
(tests/fixtures/linkedin/README.md names the pages)."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import linkedin_ads
from adapters.ad_windows import AdAccount, Window
from adapters.http import AuthError, HttpError, parse_json
from adapters.linkedin_ads import LinkedinAdsSource, analytics_query, spend_rows
from connector import model
from connector.config import load_config
from connector.store import Store
from sync.runner import sync_source

FIXTURES = Path(__file__).parent / "fixtures" / "linkedin"
BASE = "https://linkedin.test"
ACCOUNT_ID = "502840441"
TOKEN = "AQX-SECRET-TOKEN"
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
_RANGE = re.compile(
    r"dateRange=\(start:\(year:(\d+),month:(\d+),day:(\d+)\),end:\(year:(\d+),month:(\d+),day:(\d+)\)\)"
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeLinkedIn:
    """One ad account; analytics from ``upstream`` ((campaign, day) -> (cost string,
    impressions, clicks)); refuses calls without the versioned headers or with a mangled
    Rest.li query, as the real API does."""

    def __init__(
        self,
        mock: responses.RequestsMock,
        upstream: dict[tuple[str, date], tuple],
        cap: int = 15_000,
    ):
        self.upstream = upstream
        self.cap = cap
        self.failures: list[tuple[str, int, Any, dict[str, str]]] = []
        self.queries: list[str] = []
        mock.add_callback(
            responses.GET, re.compile(rf"{re.escape(BASE)}/rest/.*"), callback=self._handle
        )

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        headers = request.headers
        if headers.get("X-Restli-Protocol-Version") != "2.0.0" or not headers.get(
            "LinkedIn-Version"
        ):
            return (
                400,
                {},
                json.dumps(
                    {
                        "status": 400,
                        "code": "VERSION_MISSING",
                        "message": "A version must be present",
                    }
                ),
            )
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        parts = urlsplit(request.url)
        self.queries.append(parts.query)
        for i, (needle, status, body, extra) in enumerate(self.failures):
            if needle in parts.path:
                del self.failures[i]
                return status, extra, json.dumps(body)
        if parts.path == f"/rest/adAccounts/{ACCOUNT_ID}":
            return 200, {}, json.dumps(fixture("ad_account.json"))
        if parts.path.endswith("/adCampaigns"):
            page = (
                "ad_campaigns_page2.json"
                if "pageToken=" in parts.query
                else "ad_campaigns_page1.json"
            )
            return 200, {}, json.dumps(fixture(page))
        assert parts.path == "/rest/adAnalytics"
        found = _RANGE.search(parts.query)
        if found is None or "accounts=List(urn%3Ali%3AsponsoredAccount%3A" not in parts.query:
            return 400, {}, json.dumps({"status": 400, "message": "Invalid query parameters"})
        y1, m1, d1, y2, m2, d2 = map(int, found.groups())
        start, end = date(y1, m1, d1), date(y2, m2, d2)
        elements = []
        for (campaign, day), (cost, impressions, clicks) in sorted(self.upstream.items()):
            if start <= day <= end:
                stamp = {"year": day.year, "month": day.month, "day": day.day}
                elements.append(
                    {
                        "dateRange": {"start": stamp, "end": stamp},
                        "pivotValues": [f"urn:li:sponsoredCampaign:{campaign}"],
                        "impressions": impressions,
                        "clicks": clicks,
                        "costInLocalCurrency": cost,
                    }
                )
        return (
            200,
            {},
            json.dumps(
                {"paging": {"start": 0, "count": 10, "links": []}, "elements": elements[: self.cap]}
            ),
        )


def make_source(slept: list[float] | None = None, **overrides: Any) -> LinkedinAdsSource:
    kwargs: dict[str, Any] = {
        "account_ids": [ACCOUNT_ID],
        "access_token": TOKEN,
        "api_version": "202511",
        "base_url": BASE,
        "lookback_days": 7,
        "history_days": 40,
        "sleep": (slept if slept is not None else []).append,
    }
    kwargs.update(overrides)
    source = LinkedinAdsSource(**kwargs)
    source.http.rng = random.Random(0)
    return source


ACCOUNT = AdAccount(ACCOUNT_ID, "Acme LinkedIn", "USD", "UTC")


def test_the_restli_query_keeps_its_structure_and_encodes_the_urn() -> None:
    text = analytics_query(ACCOUNT_ID, Window(date(2026, 3, 1), date(2026, 3, 31)))
    assert text == (
        "q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY"
        "&dateRange=(start:(year:2026,month:3,day:1),end:(year:2026,month:3,day:31))"
        "&accounts=List(urn%3Ali%3AsponsoredAccount%3A502840441)"
        "&fields=dateRange,pivotValues,costInLocalCurrency,impressions,clicks,"
        "externalWebsiteConversions,oneClickLeads"
    )
    assert len(text.split("fields=")[1].split(",")) <= 20


@responses.activate
def test_the_query_reaches_the_wire_unmangled_with_the_version_headers() -> None:
    seen: list[requests.PreparedRequest] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        seen.append(request)
        return 200, {}, json.dumps(fixture("ad_analytics.json"))

    responses.add_callback(responses.GET, f"{BASE}/rest/adAnalytics", callback=answer)
    make_source().fetch_spend(ACCOUNT, Window(date(2026, 11, 20), date(2026, 11, 21)))
    (request,) = seen
    assert request.headers["LinkedIn-Version"] == "202511"
    assert request.headers["X-Restli-Protocol-Version"] == "2.0.0"
    assert (
        "dateRange=(start:(year:2026,month:11,day:20),end:(year:2026,month:11,day:21))"
        in request.url
    )
    assert "accounts=List(urn%3Ali%3AsponsoredAccount%3A502840441)" in request.url


def test_analytics_elements_become_exact_spend_days() -> None:
    data = json.loads((FIXTURES / "ad_analytics.json").read_text(), parse_float=Decimal)
    rows = {r.external_id: r for r in spend_rows(data["elements"], ACCOUNT)}
    first = rows[f"{ACCOUNT_ID}:2026-11-20:145282384"]
    assert first.spend == Decimal("19.918330000000001")  # every decimal the API sent
    assert (first.impressions, first.clicks, first.conversions, first.currency) == (
        165,
        11,
        3,
        "USD",
    )
    second = rows[f"{ACCOUNT_ID}:2026-11-21:145282385"]
    assert (second.spend, second.conversions) == (Decimal("0.1"), 0)


@settings(max_examples=300, deadline=None)
@given(
    cost=st.decimals(allow_nan=False, allow_infinity=False, places=15, min_value=0, max_value=10**9)
)
def test_cost_strings_never_pass_through_float(cost: Decimal) -> None:
    wire = json.dumps(
        {
            "elements": [
                {
                    "dateRange": {
                        "start": {"year": 2026, "month": 11, "day": 20},
                        "end": {"year": 2026, "month": 11, "day": 20},
                    },
                    "pivotValues": ["urn:li:sponsoredCampaign:1"],
                    "costInLocalCurrency": str(cost),
                    "impressions": 1,
                    "clicks": 0,
                }
            ]
        }
    )
    response = requests.Response()
    response._content, response.status_code = wire.encode(), 200
    (row,) = spend_rows(parse_json(response)["elements"], ACCOUNT)
    assert row.spend == cost and row.spend.as_tuple() == cost.as_tuple()


@responses.activate
def test_campaign_names_are_paged_with_page_tokens() -> None:
    fake = FakeLinkedIn(responses.mock, {})
    source = make_source()
    account = source.account(ACCOUNT_ID)
    assert (account.currency, account.timezone) == ("USD", "UTC")
    records = [c for page in source.fetch_campaigns(account) for c in page]
    assert [(c.external_id, c.name, c.status) for c in records] == [
        ("145282384", "ABM | Enterprise EMEA", "ACTIVE"),
        ("145282385", "Webinar Nov | Lead Gen Form", "PAUSED"),
        ("145282386", "Brand 2025 (archived)", "ARCHIVED"),
    ]
    assert "q=search" in fake.queries[1] and "pageToken=DgGPJfTjmK-next" in fake.queries[2]
    assert "search=(status:(values:List(ACTIVE,PAUSED,ARCHIVED" in unquote(fake.queries[1])


@responses.activate
def test_an_answer_at_the_element_cap_is_reread_in_halves() -> None:
    upstream = {
        (str(c), date(2026, 11, 1) + timedelta(days=d)): ("1.5", 1, 0)
        for c in range(4)
        for d in range(6)
    }
    fake = FakeLinkedIn(responses.mock, upstream, cap=10)
    got = make_source(max_elements=10).fetch_spend(
        ACCOUNT, Window(date(2026, 11, 1), date(2026, 11, 6))
    )
    assert len(got.rows) == 24 and got.pages == 4
    assert sum(r.spend for r in got.rows) == Decimal("36.0")
    assert len(fake.queries) == 1 + 2 + 4  # 6 days -> 3 + 3 (12 each, cut) -> 1 + 2 days


def test_windows_shrink_for_accounts_with_many_campaigns() -> None:
    source = make_source()
    assert source.slice_days(ACCOUNT) == 30
    source.state.campaigns[ACCOUNT_ID] = {str(i) for i in range(2000)}
    assert source.slice_days(ACCOUNT) == 6  # 2,000 campaigns x 6 days < 15,000 elements


@responses.activate
def test_errors_are_named_expired_token_version_and_throttling() -> None:
    fake = FakeLinkedIn(responses.mock, {("1", date(2026, 11, 20)): ("1", 1, 1)})
    fake.failures.append((ACCOUNT_ID, 401, fixture("error_401.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "expired or was revoked" in message and TOKEN not in message
    fake.failures.append((ACCOUNT_ID, 426, fixture("error_426.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "linkedin_ads.api_version" in message
    fake.failures.append((ACCOUNT_ID, 404, {"status": 404, "message": "Not found"}, {}))
    ok, message = make_source().check()[0]
    assert not ok and "linkedin_ads.account_ids" in message
    with pytest.raises(AuthError):
        fake.failures.append(("adAnalytics", 401, fixture("error_401.json"), {}))
        make_source().fetch_spend(ACCOUNT, Window(date(2026, 11, 20), date(2026, 11, 20)))
    # throttling: LinkedIn sends 429 without Retry-After (backoff), proxies may add one
    slept: list[float] = []
    fake.failures += [
        ("adAnalytics", 429, fixture("error_429.json"), {}),
        ("adAnalytics", 429, fixture("error_429.json"), {"Retry-After": "3"}),
    ]
    got = make_source(slept).fetch_spend(ACCOUNT, Window(date(2026, 11, 20), date(2026, 11, 20)))
    assert len(got.rows) == 1 and len(slept) == 2 and 0 <= slept[0] <= 1 and slept[1] == 3.0
    fake.failures += [("adAnalytics", 429, fixture("error_429.json"), {})] * 6
    with pytest.raises(HttpError, match="rate limiting this app"):
        make_source().fetch_spend(ACCOUNT, Window(date(2026, 11, 20), date(2026, 11, 20)))


@responses.activate
def test_rereading_the_7_day_lookback_replaces_and_never_adds(tmp_path: Path) -> None:
    today = date(2026, 11, 23)
    upstream = {
        (c, today - timedelta(days=i)): (f"{i}.123456789", 10, 1)
        for c in ("145282384", "145282385")
        for i in range(41)
    }
    fake = FakeLinkedIn(responses.mock, upstream)
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sync_source(store, make_source(), now=NOW)
        assert store.get_cursor("linkedin_ads", "daily_spend", ACCOUNT_ID) == "2026-11-22"
        count = store.count(model.AdSpendDay)
        total = sum(r.spend for r in store.iter_records(model.AdSpendDay))
        assert count == 2 * 41
        sync_source(store, make_source(), now=NOW + timedelta(hours=1))
        assert store.count(model.AdSpendDay) == count
        assert sum(r.spend for r in store.iter_records(model.AdSpendDay)) == total
        fake.upstream[("145282385", today - timedelta(days=6))] = ("0.5", 1, 0)
        sync_source(store, make_source(), now=NOW + timedelta(hours=2))
        assert store.count(model.AdSpendDay) == count
        assert sum(r.spend for r in store.iter_records(model.AdSpendDay)) == (
            total - Decimal("6.123456789") + Decimal("0.5")
        )
        names = {c.external_id: c.name for c in store.iter_records(model.AdCampaign)}
        assert names["145282385"] == "Webinar Nov | Lead Gen Form"


def test_build_source_reads_the_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[connector]\n[linkedin_ads]\nenabled = true\naccount_ids = ["502840441"]\n')
    config = load_config(path, {"LINKEDIN_TOKEN": TOKEN})
    source = linkedin_ads.build_source(config)
    assert source.account_ids == [ACCOUNT_ID]
    assert source.http.session.headers["LinkedIn-Version"] == "202607"
    assert source.policy.lookback_days == 7
    source.close()
