"""Google Ads over REST, faked at the wire with payloads shaped like the documented ones
(tests/fixtures/google_ads/README.md names the pages)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import google_ads
from adapters.ad_windows import AdAccount, spend_day
from adapters.google_ads import GoogleAdsSource, spend_rows
from adapters.http import AuthError, HttpError, parse_json
from connector import model
from connector.cli import run
from connector.store import Store
from sync.runner import sync_source

FIXTURES = Path(__file__).parent / "fixtures" / "google_ads"
BASE = "https://googleads.test"
TOKEN_URL = "https://oauth2.test/token"
CID = "1234567890"
STREAM = f"{BASE}/v26/customers/{CID}/googleAds:searchStream"
SECRETS = ("dev-token-SECRET", "client-id", "client-secret-SECRET", "refresh-SECRET")
NOW = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # already the 23rd in Berlin


def fixture(name: str) -> Any:
    """A fixture parsed as the adapter parses the wire: non-integer numbers as Decimal."""
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def served(name: str) -> Any:
    """A fixture to answer with (these hold no non-integer numbers, so plain JSON is exact)."""
    return json.loads((FIXTURES / name).read_text())


dumps = json.dumps


class FakeGoogleAds:
    """The token endpoint and searchStream of one customer, answering GAQL from ``upstream``
    ((campaign id, day) -> (cost micros, impressions, clicks)); ``failures`` are answered
    first, in order, to searchStream calls whose query contains their key."""

    def __init__(self, mock: responses.RequestsMock, upstream: dict[tuple[str, date], tuple]):
        self.upstream = upstream
        self.failures: list[tuple[str, int, Any, dict[str, str]]] = []
        self.queries: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.tokens_issued = 0
        mock.add_callback(responses.POST, TOKEN_URL, callback=self._token)
        mock.add_callback(responses.POST, STREAM, callback=self._stream)

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        self.tokens_issued += 1
        body = dict(served("token.json"), access_token=f"ya29.token-{self.tokens_issued}")
        return 200, {}, dumps(body)

    def _stream(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        payload = json.loads(request.body)
        query = payload["query"]
        self.queries.append(query)
        self.headers.append(dict(request.headers))
        if "pageSize" in payload:
            return (
                400,
                {},
                json.dumps(
                    {
                        "error": {
                            "code": 400,
                            "status": "INVALID_ARGUMENT",
                            "message": "PAGE_SIZE_NOT_SUPPORTED",
                        }
                    }
                ),
            )
        for i, (needle, status, body, headers) in enumerate(self.failures):
            if needle in query:
                del self.failures[i]
                return status, headers, dumps(body)
        if "FROM customer" in query:
            return 200, {}, dumps(served("customer.json"))
        if "segments.date" not in query:
            return 200, {}, dumps(served("campaigns.json"))
        start, end = (date.fromisoformat(d) for d in query.split("'")[1::2])
        results = []
        for (campaign, day), (micros, impressions, clicks) in sorted(self.upstream.items()):
            if start <= day <= end:
                metrics = {"costMicros": str(micros), "impressions": str(impressions)}
                if clicks:  # proto3 JSON omits zero values
                    metrics["clicks"] = str(clicks)
                results.append(
                    {
                        "campaign": {
                            "resourceName": f"customers/{CID}/campaigns/{campaign}",
                            "id": campaign,
                        },
                        "metrics": metrics,
                        "segments": {"date": day.isoformat()},
                    }
                )
        return 200, {}, json.dumps([{"results": results, "fieldMask": "...", "requestId": "r"}])


def make_source(slept: list[float] | None = None, **overrides: Any) -> GoogleAdsSource:
    kwargs: dict[str, Any] = {
        "customer_ids": [CID],
        "developer_token": SECRETS[0],
        "client_id": SECRETS[1],
        "client_secret": SECRETS[2],
        "refresh_token": SECRETS[3],
        "login_customer_id": "987-654-3210",
        "base_url": BASE,
        "token_url": TOKEN_URL,
        "api_version": "v26",
        "lookback_days": 30,
        "history_days": 40,
        "sleep": (slept if slept is not None else []).append,
    }
    kwargs.update(overrides)
    source = GoogleAdsSource(**kwargs)
    source.http.rng = random.Random(0)
    return source


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- parsing ---------------------------------------------------------------------------------

ACCOUNT = AdAccount(CID, "Acme", "EUR", "Europe/Berlin")


def test_search_stream_rows_become_exact_spend_days() -> None:
    rows = {r.external_id: r for r in spend_rows(fixture("spend.json"), ACCOUNT)}
    first = rows[f"{CID}:2026-11-20:20583018"]
    assert first.spend == Decimal("12.345670") and first.currency == "EUR"
    assert (first.impressions, first.clicks, first.conversions) == (1000, 42, Decimal("3.0"))
    thirds = rows[f"{CID}:2026-11-21:20583018"]
    assert thirds.spend == Decimal("0.999999")
    assert thirds.conversions == Decimal("0.3333333333333333")  # a double, kept as written
    # zero metrics are omitted on the wire (proto3 JSON): they are zeros, not errors
    removed = rows[f"{CID}:2026-11-21:9007199254740993"]
    assert (removed.spend, removed.clicks, removed.impressions) == (Decimal(0), 0, 12)
    # int64 max micros: a float would lose the last digits
    huge = rows[f"{CID}:2026-11-22:20583019"]
    assert huge.spend == Decimal("9223372036854.775807") and huge.conversions == 2


def test_an_error_inside_the_stream_is_raised_not_truncated() -> None:
    with pytest.raises(HttpError, match=r"broke off.*INTERNAL_ERROR"):
        spend_rows(fixture("error_mid_stream.json"), ACCOUNT)


def _response(payload: str) -> requests.Response:
    response = requests.Response()
    response._content = payload.encode()
    response.status_code = 200
    return response


@settings(max_examples=300, deadline=None)
@given(
    micros=st.integers(min_value=0, max_value=2**63 - 1),
    conversions=st.decimals(
        allow_nan=False, allow_infinity=False, places=12, min_value=0, max_value=10**9
    ),
)
def test_micros_and_decimals_never_pass_through_float(micros: int, conversions: Decimal) -> None:
    wire = json.dumps(
        [
            {
                "results": [
                    {
                        "campaign": {"id": "1"},
                        "segments": {"date": "2026-11-20"},
                        "metrics": {"costMicros": str(micros), "conversions": "@@"},
                    }
                ]
            }
        ]
    ).replace('"@@"', str(conversions))  # a JSON number with up to 12 decimals
    (row,) = spend_rows(parse_json(_response(wire)), ACCOUNT)
    assert isinstance(row.spend, Decimal) and Fraction(row.spend) == Fraction(micros, 10**6)
    assert row.spend.as_tuple().exponent == -6
    assert row.conversions == conversions


# -- the wire --------------------------------------------------------------------------------


@responses.activate
def test_calls_carry_the_headers_and_gaql_and_days_are_the_customers() -> None:
    upstream = {("20583018", date(2026, 11, 23)): (1_500_000, 10, 1)}
    fake = FakeGoogleAds(responses.mock, upstream)
    source = make_source()
    spend = source.streams()[1]
    batches = list(spend.read(None, full=False, now=NOW, partition=CID))
    # customer time zone Europe/Berlin: 23:30 UTC on the 22nd is the 23rd there
    assert batches[-1].cursor == "2026-11-22"
    assert fake.queries[-1].endswith("BETWEEN '2026-11-13' AND '2026-11-23'")
    assert batches[-1].records[0].spend == Decimal("1.500000")
    for headers in fake.headers:
        assert headers["developer-token"] == SECRETS[0]
        assert headers["login-customer-id"] == "9876543210"
        assert headers["Authorization"].startswith("Bearer ya29.")
    assert fake.queries[0].startswith("SELECT customer.id")
    assert "FROM campaign WHERE segments.date BETWEEN" in fake.queries[1]
    assert fake.tokens_issued == 1  # one token for the whole run
    assert source.api_calls() == len(fake.queries) + 1


@responses.activate
def test_an_expired_token_is_refreshed_once_and_only_once() -> None:
    fake = FakeGoogleAds(responses.mock, {})
    expired = served("error_token_expired.json")
    fake.failures.append(("FROM customer", 401, expired, {}))
    source = make_source()
    account = source.account(CID)
    assert account.currency == "EUR" and account.timezone == "Europe/Berlin"
    assert fake.tokens_issued == 2
    assert fake.headers[0]["Authorization"] == "Bearer ya29.token-1"
    assert fake.headers[1]["Authorization"] == "Bearer ya29.token-2"

    # refused again right after the refresh: an AuthError, not a loop of refreshes
    fake.failures += [("FROM campaign", 401, expired, {}), ("FROM campaign", 401, expired, {})]
    with pytest.raises(AuthError) as caught:
        list(source.fetch_campaigns(account))
    assert fake.tokens_issued == 3
    assert "OAuth access token was refused even after a refresh" in str(caught.value)
    assert_no_secret(str(caught.value))


@responses.activate
def test_a_revoked_refresh_token_says_what_to_do() -> None:
    responses.add(responses.POST, TOKEN_URL, status=400, json=served("token_invalid_grant.json"))
    source = make_source()
    with pytest.raises(AuthError) as caught:
        source.account(CID)
    assert "invalid_grant" in str(caught.value) and "refresh_token_env" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert len(responses.calls) == 1  # a 400 from the token endpoint is not retried


@responses.activate
def test_a_bad_developer_token_is_named_and_not_refreshed() -> None:
    fake = FakeGoogleAds(responses.mock, {})
    fake.failures.append(("FROM customer", 401, served("error_developer_token_invalid.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "developer token is missing or not valid" in message
    assert fake.tokens_issued == 1
    fake.failures.append(
        ("FROM customer", 403, served("error_developer_token_not_approved.json"), {})
    )
    ok, message = make_source().check()[0]
    assert not ok and "approved for test accounts only" in message


@responses.activate
def test_doctor_names_wrong_ids_missing_manager_and_sunset_versions() -> None:
    fake = FakeGoogleAds(responses.mock, {})
    fake.failures.append(("FROM customer", 403, served("error_user_permission_denied.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "google_ads.login_customer_id" in message
    fake.failures.append(("FROM customer", 400, served("error_customer_not_found.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "no such customer id" in message
    fake.failures.append(("FROM customer", 400, served("error_unsupported_version.json"), {}))
    ok, message = make_source().check()[0]
    assert not ok and "sunset" in message and "google_ads.api_version" in message
    manager = served("customer.json")
    manager[0]["results"][0]["customer"]["manager"] = True
    fake.failures.append(("FROM customer", 200, manager, {}))
    ok, message = make_source().check()[0]
    assert not ok and "manager (MCC) account" in message
    ok, message = make_source().check()[0]
    assert ok and "Acme Paid Search" in message and "EUR" in message and "Europe/Berlin" in message


@responses.activate
def test_short_term_quota_waits_the_stated_delay_with_and_without_retry_after() -> None:
    fake = FakeGoogleAds(responses.mock, {})
    body = served("error_temporarily_exhausted.json")
    fake.failures += [
        ("FROM customer", 429, body, {}),
        ("FROM campaign", 429, body, {"Retry-After": "5"}),
    ]
    slept: list[float] = []
    source = make_source(slept)
    account = source.account(CID)
    list(source.fetch_campaigns(account))
    assert slept == [30.0, 5.0]  # retryDelay from the body; the header wins when present


@responses.activate
def test_daily_quota_stops_the_sync_politely_keeping_committed_slices(tmp_path: Path) -> None:
    upstream = {
        ("20583018", date(2026, 11, 23) - timedelta(days=i)): (1_000_000, 1, 1) for i in range(41)
    }
    fake = FakeGoogleAds(responses.mock, upstream)
    # the second spend slice of the first sync hits the developer token's daily cap
    fake.failures.append(("BETWEEN '2026-11-13'", 429, served("error_resource_exhausted.json"), {}))
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        result = sync_source(store, make_source(), now=NOW)
        (failed,) = result.failed
        assert "daily operations quota is used up" in failed.error and "next run" in failed.error
        assert store.get_cursor("google_ads", "daily_spend", CID) == "2026-11-12"
        assert store.count(model.AdSpendDay) == 30
        # the next run resumes: the lookback re-reads, nothing doubles
        sync_source(store, make_source(), now=NOW + timedelta(hours=1))
        assert store.count(model.AdSpendDay) == 41
        assert store.get_cursor("google_ads", "daily_spend", CID) == "2026-11-22"


@responses.activate
def test_rereads_replace_changed_days_and_keep_unchanged_totals(tmp_path: Path) -> None:
    today = date(2026, 11, 23)
    upstream = {
        (c, today - timedelta(days=i)): (1_234_567 * (i + 1), 10, 0)
        for c in ("20583018", "20583019")
        for i in range(45)
    }
    fake = FakeGoogleAds(responses.mock, upstream)
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sync_source(store, make_source(), now=NOW)
        before = {r.external_id: r.spend for r in store.iter_records(model.AdSpendDay)}
        sync_source(store, make_source(), now=NOW + timedelta(hours=1))
        assert {r.external_id: r.spend for r in store.iter_records(model.AdSpendDay)} == before
        fake.upstream[("20583018", today - timedelta(days=3))] = (99_000_000, 10, 0)
        sync_source(store, make_source(), now=NOW + timedelta(hours=2))
        after = {r.external_id: r.spend for r in store.iter_records(model.AdSpendDay)}
        changed = f"{CID}:{today - timedelta(days=3)}:20583018"
        assert after.pop(changed) == Decimal("99.000000")
        before.pop(changed)
        assert after == before
        names = {c.external_id: c.name for c in store.iter_records(model.AdCampaign)}
        assert names["20583019"] == "Webinar Q4 | Performance Max"
        assert len(names) == 3


# -- build_source and doctor -------------------------------------------------------------------

ENV = {
    "GADS_DEV_TOKEN": SECRETS[0],
    "GADS_CLIENT_ID": SECRETS[1],
    "GADS_CLIENT_SECRET": SECRETS[2],
    "GADS_REFRESH_TOKEN": SECRETS[3],
}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[google_ads]\nenabled = true\ncustomer_ids = ["{CID}"]\n'
        f'base_url = "{BASE}"\ntoken_url = "{TOKEN_URL}"\napi_version = "v26"\n'
    )
    return path


@responses.activate
def test_doctor_checks_google_and_lists_unmapped_spend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = _config(tmp_path)
    FakeGoogleAds(responses.mock, {})
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        account = AdAccount(CID, "Acme", "EUR", "Europe/Berlin")
        store.upsert(
            [
                model.AdCampaign(
                    source="google_ads", external_id="555", account_id=CID, name="Nobody's campaign"
                ),
                spend_day("google_ads", account, "555", date(2026, 11, 1), Decimal("1234.5")),
            ]
        )
    # unmapped spend is a warning to act on, not a failing check
    assert run(["--config", str(config), "doctor"]) == 0
    out = capsys.readouterr().out
    assert "Acme Paid Search" in out
    assert "WARN" in out
    assert "1 of 1 ad campaigns with spend map to no CRM" in out
    assert "Nobody's campaign" in out and "1,234.50 EUR" in out
    assert_no_secret(out)
    assert run(["--config", str(config), "ad-campaigns", "--unmapped"]) == 0
    assert "Nobody's campaign" in capsys.readouterr().out

    # once the CRM campaign names it in its ad-id field, the spend is mapped and doctor is happy
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.upsert(
            [
                model.Campaign(
                    source="salesforce",
                    external_id="701Hs00000AbCdE",
                    name="Webinar",
                    ad_campaign_ref="20583018, 555",
                )
            ]
        )
    assert run(["--config", str(config), "doctor"]) == 0
    out = capsys.readouterr().out
    assert "all 1 ad campaigns with spend map to a CRM campaign" in out
    assert run(["--config", str(config), "ad-campaigns"]) == 0
    out = capsys.readouterr().out
    assert "701Hs00000AbCdE" in out and "ad_id_field" in out


def test_build_source_reads_the_section_and_its_secrets(tmp_path: Path) -> None:
    from connector.config import load_config

    config = load_config(_config(tmp_path), ENV)
    source = google_ads.build_source(config)
    assert source.account_ids == [CID] and source.api_version == "v26"
    assert source.http.session.headers["developer-token"] == SECRETS[0]
    assert "login-customer-id" not in source.http.session.headers
    assert (source.policy.lookback_days, source.policy.history_days) == (30, 400)
    assert [s.name for s in source.streams()] == ["campaigns", "daily_spend"]
    source.close()
