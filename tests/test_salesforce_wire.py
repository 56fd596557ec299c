"""The adapter against the documented wire shapes themselves (fixtures/salesforce/*.json)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
import responses

from adapters.base import CampaignFields
from adapters.http import Decision, error_text
from adapters.salesforce.auth import Credentials, SalesforceAuth
from adapters.salesforce.client import ApiUsage, SalesforceClient, classify, dumps
from adapters.salesforce.fields import check_fields, field_specs
from adapters.salesforce.org import Org
from adapters.salesforce.records import channel_for
from adapters.salesforce.records import lead as lead_record
from adapters.salesforce.streams import SoqlStream
from adapters.salesforce.writeback import CampaignWriteBack
from connector import model
from connector.store.writeback_ledger import WritebackLedger
from tests.test_salesforce_fake import FIXTURES, INSTANCE, fixture

DATA = f"{INSTANCE}/services/data/v62.0"
LIMIT = {"Sforce-Limit-Info": "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-app)"}


def body(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def make_client(**kwargs) -> SalesforceClient:
    auth = SalesforceAuth(
        Credentials(auth="session", instance_url=INSTANCE, session_id="00D!sess"),
    )
    return SalesforceClient(auth, sleep=lambda _s: None, rng=random.Random(1), **kwargs)


def response(status: int, name: str) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = body(name).encode()
    return made


@pytest.mark.parametrize(
    ("status", "name", "decision", "text"),
    [
        (401, "error_invalid_session.json", None, "INVALID_SESSION_ID: Session expired"),
        (403, "error_request_limit.json", Decision.RATE_LIMITED, "REQUEST_LIMIT_EXCEEDED"),
        (503, "error_server_unavailable.json", Decision.RETRY, "SERVER_UNAVAILABLE"),
        (400, "error_invalid_field.json", None, "INVALID_FIELD"),
    ],
)
def test_error_arrays_are_classified_and_shown(status, name, decision, text) -> None:
    answer = response(status, name)
    assert classify(answer) is decision
    assert error_text(answer).startswith(text)


def test_limit_header_is_read_from_the_org_usage_not_the_per_app_one() -> None:
    assert ApiUsage.parse(LIMIT["Sforce-Limit-Info"]) == ApiUsage(25, 5000)
    assert ApiUsage.parse("api-usage=10018/100000").share == Decimal("0.10018")
    assert ApiUsage.parse(None) is None


@responses.activate
def test_query_pages_follow_next_records_url_and_deletes_come_from_query_all() -> None:
    responses.get(
        f"{DATA}/sobjects/Opportunity/describe",
        json={"fields": [{"name": "Amount"}]},
        headers=LIMIT,
    )
    responses.get(
        f"{DATA}/sobjects/Lead/describe",
        json={"fields": [{"name": n} for n in ("Id", "SystemModstamp", "IsDeleted", "Email")]},
        headers=LIMIT,
    )
    responses.get(
        f"{DATA}/query/",
        json={"done": True, "totalSize": 1, "records": [{"DefaultCurrencyIsoCode": "USD"}]},
        headers=LIMIT,
    )
    responses.get(f"{DATA}/queryAll/", body=body("query_page_more.json"), headers=LIMIT)
    responses.get(
        f"{DATA}/query/01gxx0000002Abc-2000", body=body("query_page_last.json"), headers=LIMIT
    )
    client = make_client()
    stream = SoqlStream(
        name="Lead",
        sobject="Lead",
        record_type=model.Person,
        fields=("Email",),
        convert=lambda row, _p: lead_record(row),
        client=client,
        org=Org(client, fallback_currency="USD"),
    )
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    first, last = list(stream.read("2026-03-01T00:00:00.000Z", full=False, now=now))
    assert [r.external_id for r in first.records] == ["00Qxx0000001AAAAAA", "00Qxx0000001BBBBBB"]
    assert first.cursor == "2026-03-01T10:00:00.000Z"
    assert last.records == [] and last.deleted == ["00Qxx0000001EEEEEE"]
    assert last.cursor == "2026-03-02T11:15:30.250Z"
    query = responses.calls[-2].request
    assert query.url.startswith(f"{DATA}/queryAll/?q=SELECT+Id")
    assert "SystemModstamp+%3E%3D+2026-03-01T00%3A00%3A00%2B00%3A00" in query.url
    assert responses.calls[-1].request.url == f"{DATA}/query/01gxx0000002Abc-2000"
    assert client.usage == ApiUsage(25, 5000)


@responses.activate
def test_single_update_answers_204_and_collections_answer_per_record(store) -> None:
    responses.patch(f"{DATA}/sobjects/CampaignMember/00vxx0000000001AAA", status=204)
    client = make_client()
    assert client.patch("sobjects/CampaignMember/00vxx0000000001AAA", {"Status": "x"}) is None

    describe = json.loads(body("describe_campaign.json"))
    for spec in field_specs("USD"):
        if spec.name != "ROI__c":  # already in the documented sample
            describe["fields"].append({"name": spec.name, "updateable": True})
    responses.get(f"{DATA}/sobjects/Campaign/describe", json=describe)
    responses.patch(f"{DATA}/composite/sobjects", body=body("collections_update_mixed.json"))
    ids = ["701xx000000AAAAAAA", "701xx000000BBBBBBB", "001xx000003DGb2999"]
    updates = [
        CampaignFields(
            cid,
            Decimal("12.50"),
            None,
            Decimal("50.00"),
            None,
            None,
            None,
            None,
            "w_shaped",
            datetime(2026, 3, 1, tzinfo=UTC),
        )
        for cid in ids
    ]
    writer = CampaignWriteBack(client, WritebackLedger(store, "salesforce"))
    result = writer.write(updates)
    assert result.written == [ids[0]] and result.calls == 1
    assert result.failed[ids[1]].startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert result.failed[ids[2]] == (
        "MALFORMED_ID: Campaign ID: id value of incorrect type: 001xx000003DGb2999 (fields: Id)"
    )
    sent = responses.calls[-1].request.body.decode()
    assert '"ROI_Attributed_Revenue__c":12.50' in sent and '"ROI__c":50.00' in sent
    assert '"allOrNone":false' in sent
    assert '"ROI_Synced_At__c":"2026-03-01T00:00:00.000Z"' in sent
    assert '"ROI_Attributed_Pipeline__c":null' in sent  # a null figure: an empty field
    assert "ActualCost" not in sent


def test_describe_fixture_check() -> None:
    visible = {f["name"]: f for f in fixture("describe_campaign.json")["fields"]}
    report = check_fields(visible, field_specs("USD"))
    assert "ROI__c" not in [s.name for s in report.missing]
    assert "ROI_ROAS__c" in [s.name for s in report.missing]
    assert report.read_only == [] and report.wrong_type == []


def test_json_bodies_keep_decimals_exact() -> None:
    assert dumps({"a": Decimal("0.10"), "b": [Decimal("1E+2"), None, True]}) == (
        '{"a":0.10,"b":[100,null,true]}'
    )
    with pytest.raises(TypeError):
        dumps({"a": 0.1})


@pytest.mark.parametrize(
    ("value", "channel"),
    [
        ("Webinar", "webinar"),
        ("Trade Show", "event"),
        ("Banner Ads", "display"),
        ("Paid Search", "paid_search"),
        ("paid_social", "paid_social"),
        ("Referral Program", "referral"),
        ("Telemarketing", "other"),
        (None, "other"),
    ],
)
def test_campaign_types_map_to_contract_channels(value, channel) -> None:
    assert channel_for(value) == channel
    assert channel in model.CHANNELS
