"""Pulling a Salesforce org into the store: cursors, deletes, limits, sessions, currencies."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from adapters.salesforce import build_source
from adapters.salesforce.client import soql_datetime
from connector import model
from connector.roi import RoiEngine, Settings
from connector.store.dataset import Dataset
from sync.runner import sync_source
from tests.test_salesforce_fake import (
    NOW,
    SECRET,
    at,
    fake_orgs,
    fixture,
    seed_world,
    sf_config,
    sf_time,
)


@pytest.fixture
def fake() -> Iterator:
    with fake_orgs() as make:
        yield make


def source_for(store, config=None, slept=None):
    return build_source(
        config or sf_config(),
        store,
        sleep=(slept.append if slept is not None else lambda _s: None),
        rng=random.Random(7),
    )


def sync(store, config=None, *, full=False, now=NOW, slept=None, progress=None):
    source = source_for(store, config, slept)
    try:
        return sync_source(store, source, full=full, now=now, progress=progress), source
    finally:
        source.close()


def errors(result) -> dict[str, str]:
    return {s.stream: s.error for s in result.streams if s.error}


def test_first_sync_reads_every_stream_into_the_store(fake, store) -> None:
    org = fake(page_size=2)
    ids = seed_world(org)
    result, source = sync(store)
    assert errors(result) == {}
    campaign = store.get(model.Campaign, "salesforce", ids["search"])
    assert campaign is not None
    assert campaign.channel == "paid_search" and campaign.owner_name == "Maria Marketer"
    assert campaign.budgeted_cost == Decimal("20000") and campaign.currency == "USD"
    assert campaign.ad_campaign_ref == "20583018"
    webinar = store.get(model.Campaign, "salesforce", ids["webinar"])
    assert webinar.channel == "webinar" and webinar.actual_cost == Decimal("1200.50")
    lead = store.get(model.Person, "salesforce", ids["lead"])
    assert lead.converted_contact_id == ids["contact"]
    assert lead.converted_opportunity_id == ids["opp"]
    assert lead.lifecycle_stage == "opportunity" and lead.email == "ada@example.com"
    touch = store.get(model.Touchpoint, "salesforce", ids["m1"])
    assert touch.person_id == ids["contact"] and touch.responded
    assert touch.occurred_at == at(1, 7, 30)
    assert store.get(model.Touchpoint, "salesforce", ids["m3"]).responded is False
    opp = store.get(model.Opportunity, "salesforce", ids["opp"])
    assert opp.amount == Decimal("10000.00") and opp.primary_campaign_id == ids["search"]
    assert opp.close_date == date(2026, 3, 5) and opp.is_won
    assert store.get(model.ContactRole, "salesforce", ids["role"]).person_id == ids["contact"]
    # every incremental stream used queryAll with a sorted, closed-bound SOQL
    campaign_query = next(q for q in org.queries() if "FROM Campaign " in q)
    assert "ORDER BY SystemModstamp ASC, Id ASC" in campaign_query
    assert org.calls("GET", r"/queryAll/$")
    assert org.calls("GET", r"/query/01g")  # nextRecordsUrl pages were followed
    # the single-currency org's amounts never select CurrencyIsoCode
    selects = [q for q in org.queries() if " FROM Opportunity " in q or " FROM Campaign " in q]
    assert selects and not any("CurrencyIsoCode" in q for q in selects)
    assert source.api_calls() > 0


def test_incremental_cursor_is_closed_capped_and_dedupes_the_boundary(fake, store) -> None:
    org = fake(page_size=2)
    ids = seed_world(org)
    org.now = at(4)
    skewed = org.add(
        "Lead", LastName="Clock", Company="Skew", SystemModstamp=sf_time(NOW + timedelta(hours=2))
    )
    sync(store)
    # the newest lead is stamped after the run started: the cursor stops at the start
    assert store.get_cursor("salesforce", "Lead") == soql_datetime(NOW)
    assert store.get_cursor("salesforce", "Campaign") == soql_datetime(at(1))
    before = store.count(model.Person)

    org.requests.clear()
    org.now = at(9)
    org.touch("Campaign", ids["webinar"], Name="Spring Webinar (renamed)")
    result, _ = sync(store, now=NOW + timedelta(days=1))
    assert errors(result) == {}
    lead_query = next(q for q in org.queries() if "FROM Lead " in q)
    assert "WHERE SystemModstamp >= 2026-03-10T12:00:00+00:00" in lead_query
    # the boundary row is read again but stays one row
    assert store.count(model.Person) == before
    assert store.get(model.Person, "salesforce", skewed) is not None
    assert store.get(model.Campaign, "salesforce", ids["webinar"]).name.endswith("(renamed)")
    campaign_stream = next(s for s in result.streams if s.stream == "Campaign")
    # the campaign stamped at the cursor is read again (closed bound), but only the changed
    # one is rewritten
    assert (campaign_stream.read, campaign_stream.updated, campaign_stream.inserted) == (2, 1, 0)
    assert store.get_cursor("salesforce", "Campaign") == soql_datetime(at(9))


def test_deleted_and_merged_rows_arrive_as_deletes(fake, store) -> None:
    org = fake()
    ids = seed_world(org)
    sync(store)
    org.now = at(5)
    org.delete("Lead", ids["open_lead"])  # in the Recycle Bin: queryAll returns it
    org.touch("Contact", ids["contact"], IsDeleted=True, MasterRecordId="003xx0000000MASTER")
    result, _ = sync(store)
    assert errors(result) == {}
    assert store.get(model.Person, "salesforce", ids["open_lead"]).deleted_at is not None
    assert store.get(model.Person, "salesforce", ids["contact"]).deleted_at is not None
    assert store.count(model.Person) == 1  # only the converted lead is live


def test_full_sync_finds_hard_deleted_members_and_rates(fake, store) -> None:
    org = fake(multi_currency=True)
    ids = seed_world(org)
    org.add("CurrencyType", IsoCode="USD", IsCorporate=True, ConversionRate=1, IsActive=True)
    rate = org.add(
        "DatedConversionRate", IsoCode="EUR", ConversionRate=Decimal("0.9"), StartDate="2026-01-01"
    )
    sync(store)
    assert store.get(model.Touchpoint, "salesforce", ids["m3"]) is not None
    org.delete("CampaignMember", ids["m3"], hard=True)  # never reaches the Recycle Bin
    org.delete("DatedConversionRate", rate, hard=True)
    sync(store)  # incremental: a hard delete is invisible...
    assert store.get(model.Touchpoint, "salesforce", ids["m3"]).deleted_at is None
    assert store.get(model.FxRate, "salesforce", rate).deleted_at is not None  # ...rates: full
    result, _ = sync(store, full=True)  # ...until a full run compares ids
    assert errors(result) == {}
    assert store.get(model.Touchpoint, "salesforce", ids["m3"]).deleted_at is not None
    assert store.get(model.Touchpoint, "salesforce", ids["m1"]).deleted_at is None


def test_full_sync_catches_deletes_purged_from_the_recycle_bin(fake, store) -> None:
    org = fake()
    ids = seed_world(org)
    sync(store)
    org.delete("Lead", ids["open_lead"], hard=True)  # deleted, then purged after 15 days
    org.delete("Opportunity", ids["opp"], hard=True)
    result, _ = sync(store, full=True)
    assert errors(result) == {}
    assert store.get(model.Person, "salesforce", ids["open_lead"]).deleted_at is not None
    assert store.get(model.Opportunity, "salesforce", ids["opp"]).deleted_at is not None
    # a contact is not mistaken for a missing lead (one table, two streams)
    assert store.get(model.Person, "salesforce", ids["contact"]).deleted_at is None
    assert store.get(model.Person, "salesforce", ids["lead"]).deleted_at is None
    assert store.get(model.Campaign, "salesforce", ids["search"]).deleted_at is None


def test_cursor_moves_only_with_committed_pages(fake, store) -> None:
    org = fake(page_size=3)
    org.now = at(1)
    for i in range(7):
        org.now = at(1, 10, i)
        org.add("Lead", LastName=f"L{i}", Company="C")
    # the second page of leads fails for good (a 400 is not retried)
    org.fail("GET", r"/query/01g", 400, fixture("error_invalid_field.json"))
    result, _ = sync(store)
    assert "INVALID_FIELD" in errors(result)["Lead"]
    assert store.count(model.Person) == 3
    assert store.get_cursor("salesforce", "Lead") == soql_datetime(at(1, 10, 2))
    assert not errors(result).get("Contact")  # the other streams went on

    result, _ = sync(store)
    assert errors(result) == {}
    assert store.count(model.Person) == 7
    assert store.get_cursor("salesforce", "Lead") == soql_datetime(at(1, 10, 6))


def test_quota_share_stops_the_run_politely_and_the_next_run_resumes(fake, store, caplog) -> None:
    org = fake(usage_used=49_990, usage_limit=100_000)
    seed_world(org)
    result, _ = sync(store, sf_config(quota_stop_share=0.5))
    stopped = [s for s in result.streams if s.error]
    assert len(stopped) == 1, "the stream that hit the quota stops the source"
    message = stopped[0].error
    assert "50 %" in message and "50,000 of 100,000" in message and "resumes" in message
    calls_at_stop = len(org.requests)
    assert org.usage_used == 50_000
    assert result.streams[-1] is stopped[0]  # no stream ran after it
    # a new day: the quota was reset; the run picks up where the cursors are
    org.usage_used = 10
    result, _ = sync(store, sf_config(quota_stop_share=0.5))
    assert errors(result) == {}
    assert len(org.requests) > calls_at_stop
    assert store.count(model.Opportunity) == 1


def test_request_limit_exceeded_ends_the_source_without_retrying(fake, store) -> None:
    org = fake()
    seed_world(org)
    org.fail("GET", r"/queryAll/", 403, fixture("error_request_limit.json"), times=99)
    slept: list[float] = []
    result, _ = sync(store, slept=slept)
    assert len(result.streams) == 1
    assert "REQUEST_LIMIT_EXCEEDED" in result.streams[0].error
    assert len(org.calls("GET", r"/queryAll/")) == 1 and slept == []


def test_session_expiry_mid_run_logs_in_again_once_and_goes_on(fake, store) -> None:
    org = fake()
    seed_world(org)
    expired: list[str] = []

    def expire_after_campaigns(stream: str, _read: int, _pages: int) -> None:
        if stream == "salesforce.Campaign" and not expired:
            expired.append(stream)
            org.expire_session()

    result, _ = sync(store, progress=expire_after_campaigns)
    assert errors(result) == {}
    assert len(org.logins) == 2
    refused = [r for r in org.requests if r.headers["Authorization"].endswith("token-1")]
    assert refused, "the first token was used until it expired"
    assert store.count(model.Opportunity) == 1 and store.count(model.Touchpoint) == 3


def test_503_burst_is_retried_with_backoff(fake, store) -> None:
    org = fake()
    seed_world(org)
    org.fail("GET", r"/queryAll/", 503, fixture("error_server_unavailable.json"), times=3)
    slept: list[float] = []
    result, _ = sync(store, slept=slept)
    assert errors(result) == {}
    assert len(slept) == 3
    assert store.count(model.Campaign) == 2


def test_owner_rename_reaches_campaigns_through_the_user_stream(fake, store) -> None:
    org = fake()
    ids = seed_world(org)
    sync(store)
    org.now = NOW + timedelta(hours=1)
    org.touch("User", ids["owner"], Name="Maria Marketing-Lead")
    result, _ = sync(store, now=NOW + timedelta(days=1))
    assert errors(result) == {}
    assert store.get(model.Campaign, "salesforce", ids["search"]).owner_name == (
        "Maria Marketing-Lead"
    )
    owner_query = next(q for q in org.queries() if "WHERE OwnerId IN" in q)
    assert f"'{ids['owner']}'" in owner_query


def test_hidden_or_missing_fields_are_left_out_of_the_query(fake, store, caplog) -> None:
    org = fake()
    ids = seed_world(org)
    del org.fields["Campaign"]["Ad_Campaign_Id__c"]
    del org.fields["Campaign"]["BudgetedCost"]  # hidden by field-level security
    with caplog.at_level(logging.WARNING):
        result, _ = sync(store)
    assert errors(result) == {}
    assert "Campaign.BudgetedCost is missing or hidden" in caplog.text
    assert store.get(model.Campaign, "salesforce", ids["search"]).budgeted_cost is None


def test_multi_currency_org_converts_at_the_dated_rate_of_each_close_date(fake, store) -> None:
    org = fake(multi_currency=True)
    org.now = at(1)
    owner = org.add("User", Name="Owner", IsActive=True)
    campaign = org.add(
        "Campaign", Name="EMEA Events", Type="Trade Show", OwnerId=owner, CurrencyIsoCode="EUR"
    )
    org.add("CurrencyType", IsoCode="USD", IsCorporate=True, ConversionRate=1, IsActive=True)
    org.add(
        "CurrencyType",
        IsoCode="EUR",
        IsCorporate=False,
        ConversionRate=Decimal("0.8"),
        IsActive=True,
    )
    # 1 USD = ConversionRate units from StartDate on
    for iso, start, rate in [
        ("USD", "0001-01-01", "1"),
        ("EUR", "0001-01-01", "0.90"),
        ("EUR", "2026-02-01", "0.80"),
        ("GBP", "0001-01-01", "0.75"),
        ("GBP", "2026-02-15", "0.625"),
    ]:
        org.add("DatedConversionRate", IsoCode=iso, StartDate=start, ConversionRate=Decimal(rate))
    deals = [
        ("EUR", "900.00", "2026-01-20"),  # 900 / 0.90 = 1000.00 USD
        ("EUR", "900.00", "2026-02-10"),  # 900 / 0.80 = 1125.00 USD
        ("GBP", "500.00", "2026-02-14"),  # 500 / 0.75 = 666.67 USD
        ("GBP", "500.00", "2026-02-15"),  # 500 / 0.625 = 800.00 USD
    ]
    for n, (iso, amount, close) in enumerate(deals):
        contact = org.add(
            "Contact",
            LastName=f"C{n}",
            Email=f"c{n}@example.com",
            CreatedDate=sf_time(at(1, 8)).replace("03-01", "01-01"),
        )
        opp = org.add(
            "Opportunity",
            Name=f"D{n}",
            Amount=Decimal(amount),
            CurrencyIsoCode=iso,
            StageName="Closed Won",
            IsClosed=True,
            IsWon=True,
            CloseDate=close,
            CreatedDate="2026-01-10T09:00:00.000+0000",
        )
        org.add("OpportunityContactRole", OpportunityId=opp, ContactId=contact, IsPrimary=True)
        org.add(
            "CampaignMember",
            CampaignId=campaign,
            ContactId=contact,
            HasResponded=True,
            Status="Responded",
            CreatedDate="2026-01-05T09:00:00.000+0000",
        )
    result, _ = sync(store)
    assert errors(result) == {}
    assert any("CurrencyIsoCode" in q for q in org.queries() if "FROM Opportunity " in q)
    rates = list(store.iter_records(model.FxRate))
    assert {(r.currency, r.base_currency, r.quote) for r in rates} >= {
        ("EUR", "USD", "per_base"),
        ("GBP", "USD", "per_base"),
    }
    assert {r.rate for r in rates if r.currency == "GBP"} == {Decimal("0.75"), Decimal("0.625")}
    engine = RoiEngine(Dataset.load(store), Settings(reporting_currency="USD"), as_of=NOW)
    row = next(r for r in engine.report(model_name="w_shaped").rows if r.name == "EMEA Events")
    assert row.attributed_revenue == Decimal("1000.00") + Decimal("1125.00") + Decimal(
        "666.67"
    ) + Decimal("800.00")
    campaign_row = store.get(model.Campaign, "salesforce", campaign)
    assert campaign_row.currency == "EUR" and campaign_row.channel == "event"


def test_org_without_advanced_currency_management_uses_its_static_rates(fake, store) -> None:
    org = fake(multi_currency=True, acm=False)
    org.add("CurrencyType", IsoCode="USD", IsCorporate=True, ConversionRate=1, IsActive=True)
    org.add(
        "CurrencyType",
        IsoCode="EUR",
        IsCorporate=False,
        ConversionRate=Decimal("0.8"),
        IsActive=True,
    )
    result, _ = sync(store)
    assert errors(result) == {}
    eur = next(r for r in store.iter_records(model.FxRate) if r.currency == "EUR")
    assert eur.rate == Decimal("0.8") and eur.start_date == date(1900, 1, 1)


def test_single_currency_org_uses_the_org_currency(fake, store) -> None:
    org = fake(org_currency="EUR")
    ids = seed_world(org)
    result, _ = sync(store)
    assert errors(result) == {}
    assert store.get(model.Opportunity, "salesforce", ids["opp"]).currency == "EUR"
    assert store.count(model.FxRate) == 0


def test_secrets_stay_out_of_logs_and_errors(fake, store, caplog) -> None:
    org = fake()
    seed_world(org)
    org.login_error = fixture("token_error.json")
    with caplog.at_level(logging.DEBUG):
        result, _ = sync(store)
        failure = next(iter(errors(result).values()))
        assert "invalid_client" in failure
        org.login_error = None
        org.fail("GET", r"/queryAll/", 400, fixture("error_invalid_field.json"))
        result, _ = sync(store)
    texts = [caplog.text, failure, *errors(result).values()]
    assert not any(SECRET in text for text in texts)
    assert not any("token-1" in text for text in texts)  # nor the session id
    assert SECRET not in repr(source_for(store).client.auth)


def test_requests_ca_bundle_is_honoured(fake, store, monkeypatch, tmp_path) -> None:
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("not really a certificate")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    org = fake()
    seed_world(org)
    sync(store)
    assert org.logins[0]["verify"] == str(bundle)
    assert {r.verify for r in org.requests} == {str(bundle)}


def test_check_proves_the_login_and_shows_the_quota_left(fake, store) -> None:
    fake(usage_used=100, usage_limit=15_000)
    source = source_for(store)
    ((ok, text),) = source.check()
    assert ok and "logged in to https://acme.my.salesforce.com" in text
    assert "14,899 of 15,000 API calls left today" in text
