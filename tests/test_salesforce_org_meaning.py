"""Issue 14: department, budget category and lead lifecycle come from the org's own fields
(configurable), with rules where a campaign's field is empty, and doctor says what is used."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.salesforce import records
from adapters.salesforce.cli import meaning_checks
from adapters.salesforce.fields import FieldSpec, check_fields, field_specs
from adapters.salesforce.org_meaning import CampaignMeaning, LeadLifecycle, category_value
from connector import model
from connector.config import CampaignRule
from tests.test_salesforce_fake import fake_orgs, seed_world, sf_config
from tests.test_salesforce_sync import errors, sync


def _rule(**values: str) -> CampaignRule:
    return CampaignRule.model_validate(values)


def test_department_and_category_from_fields_then_rules() -> None:
    meaning = CampaignMeaning(
        "Department__c",
        "Budget_Category__c",
        (
            _rule(type="Webinar", category="growth", department="Demand Gen"),
            _rule(name_regex="^EMEA", department="EMEA Field"),
            _rule(name_regex="Summit", category="strategic"),
        ),
    )
    row = {"Id": "701A", "Name": "EMEA Summit", "Type": "Event", "Department__c": " Brand "}
    row["Budget_Category__c"] = "Retention"
    campaign = records.campaign(row, ad_field=None, currency="USD", meaning=meaning)
    assert (campaign.department, campaign.budget_category) == ("Brand", "retention")
    row = {"Id": "701B", "Name": "EMEA Summit", "Type": "Event", "Budget_Category__c": "??"}
    campaign = records.campaign(row, ad_field=None, currency="USD", meaning=meaning)
    assert (campaign.department, campaign.budget_category) == ("EMEA Field", "strategic")
    row = {"Id": "701C", "Name": "Q2 webinar", "Type": "webinar"}
    campaign = records.campaign(row, ad_field=None, currency="USD", meaning=meaning)
    assert (campaign.department, campaign.budget_category) == ("Demand Gen", "growth")
    bare = records.campaign({"Id": "701D", "Name": "x"}, ad_field=None, currency="USD")
    assert (bare.department, bare.budget_category) == (None, None)
    assert [category_value(v) for v in ("Growth ", "增长型", "战略型", "维系", "other", 3)] == [
        "growth",
        "growth",
        "strategic",
        "retention",
        None,
        None,
    ]


def test_a_campaign_rule_must_match_something_and_give_something() -> None:
    with pytest.raises(ValueError, match="type or a name_regex"):
        _rule(category="growth")
    with pytest.raises(ValueError, match="department or a category"):
        _rule(type="Webinar")
    with pytest.raises(ValueError, match="regular expression"):
        _rule(name_regex="(", category="growth")


def test_lead_stage_from_status_dates_and_checkboxes() -> None:
    lifecycle = LeadLifecycle(
        frozenset({"marketing qualified"}), frozenset({"sales accepted"}), "MQL_Date__c", "SQL__c"
    )

    def stage(**row: object) -> tuple[str, datetime | None]:
        person = records.lead({"Id": "00Q1", **row}, lifecycle)
        return person.lifecycle_stage, person.mql_at

    assert stage() == ("lead", None)
    assert stage(Status="Marketing Qualified") == ("mql", None)
    assert stage(MQL_Date__c="2026-03-02") == ("mql", datetime(2026, 3, 2, tzinfo=UTC))
    assert stage(MQL_Date__c="2026-03-02T10:00:00.000+0000")[1] == datetime(
        2026, 3, 2, 10, tzinfo=UTC
    )
    assert stage(Status="Sales Accepted", MQL_Date__c="2026-03-02")[0] == "sql"
    assert stage(SQL__c=True)[0] == "sql"
    assert stage(SQL__c=False)[0] == "lead"
    assert stage(IsConverted=True)[0] == "sql"
    assert stage(IsConverted=True, ConvertedOpportunityId="006X")[0] == "opportunity"
    # with nothing configured, as before: only conversion counts
    assert records.lead({"Id": "00Q2", "Status": "Marketing Qualified"}).lifecycle_stage == "lead"


def test_doctor_says_which_mapping_is_in_force() -> None:
    bare = meaning_checks(sf_config(), {"Status": {}})
    texts = [t for _, t in bare]
    assert all(ok for ok, _ in bare)
    assert any(t.startswith("warning: salesforce: no department or budget category") for t in texts)
    assert any("lead lifecycle: inferred" in t for t in texts)
    configured = sf_config(
        department_field="Department__c",
        mql_statuses=["Marketing Qualified"],
        mql_date_field="MQL_Date__c",
    )
    checks = meaning_checks(configured, {"Status": {}})
    assert (False, "salesforce: Lead.MQL_Date__c is missing or hidden from the API user") in checks
    assert (
        True,
        "salesforce: campaigns: department from Campaign.Department__c, no category field",
    ) in checks
    assert any(
        t == "salesforce: lead lifecycle: MQL = Status in marketing qualified or Lead.MQL_Date__c "
        "set; SQL = converted"
        for _, t in checks
    )


def test_setup_fields_offers_the_department_and_category_fields() -> None:
    specs = field_specs("USD", department_field="Department__c", category_field="Category__c")
    extra = {s.name: s for s in specs if s.name in ("Department__c", "Category__c")}
    assert set(extra) == {"Department__c", "Category__c"}
    assert all(not s.written for s in extra.values())
    # an org's existing read-only picklist is as good as the text field setup-fields makes
    visible = {s.name: {"type": s.describe_type(), "updateable": True} for s in specs}
    visible["ActualCost"] = {"type": "currency", "updateable": True}
    visible["Category__c"] = {"type": "picklist", "updateable": False}
    assert check_fields(visible, specs).ok
    del visible["Department__c"]
    assert [s.name for s in check_fields(visible, specs).missing] == ["Department__c"]


@pytest.fixture
def fake() -> Iterator:
    with fake_orgs() as make:
        yield make


def test_a_sync_reads_the_configured_fields(fake, store) -> None:
    org = fake(page_size=50)
    for sobject, spec in (
        ("Campaign", FieldSpec("Department__c", "Department", "Text", "d", length=80)),
        ("Campaign", FieldSpec("Budget_Category__c", "Category", "Text", "c", length=20)),
        ("Lead", FieldSpec("MQL_Date__c", "MQL Date", "DateTime", "m")),
    ):
        org._add_field(sobject, spec, visible=True)
    ids = seed_world(org)
    org.touch("Campaign", ids["search"], Department__c="Demand Gen", Budget_Category__c="Growth")
    org.touch("Lead", ids["open_lead"], MQL_Date__c="2026-03-02T10:00:00.000+0000")
    config = sf_config(
        department_field="Department__c",
        category_field="Budget_Category__c",
        mql_date_field="MQL_Date__c",
        campaign_rules=[{"type": "Webinar", "category": "retention", "department": "Field"}],
    )
    result, _ = sync(store, config)
    assert errors(result) == {}
    search = store.get(model.Campaign, "salesforce", ids["search"])
    assert (search.department, search.budget_category) == ("Demand Gen", "growth")
    webinar = store.get(model.Campaign, "salesforce", ids["webinar"])
    assert (webinar.department, webinar.budget_category) == ("Field", "retention")
    lead = store.get(model.Person, "salesforce", ids["open_lead"])
    assert lead.lifecycle_stage == "mql" and lead.mql_at == datetime(2026, 3, 2, 10, tzinfo=UTC)
    campaign_query = next(q for q in org.queries() if "FROM Campaign " in q)
    assert "Department__c" in campaign_query and "Budget_Category__c" in campaign_query
