"""Alert tasks (created once, for the campaign owner) and webhook leads (never duplicated)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.base import AlertTask, CampaignFields, InboundLead
from adapters.http import ClientError, ServerError
from adapters.salesforce import build_writer
from adapters.salesforce.client import soql_datetime
from adapters.salesforce.tasks import ledger_key
from tests.test_salesforce_fake import NOW, fake_orgs, fixture, sf_config


@pytest.fixture
def fake() -> Iterator:
    with fake_orgs() as make:
        yield make


def writer_for(store, config=None):
    return build_writer(config or sf_config(), store, sleep=lambda _s: None, rng=random.Random(1))


def alert(campaign: str, key: str = "budget:campaign:701|2026-Q1|0.8", owner=None) -> AlertTask:
    return AlertTask(
        alert_key=key,
        campaign_id=campaign,
        owner_id=owner,
        subject="Campaign 'Spring Leads' reached 80% of budget",
        description="Spend 8,012.34 of 10,000.00 (forecast 11,800.00).",
        priority="High",
    )


def tasks(org) -> list[dict]:
    return list(org.objects["Task"].values())


# ----- tasks ---------------------------------------------------------------------------------


def test_task_goes_on_the_campaign_for_its_owner_once(fake, store) -> None:
    org = fake()
    owner = org.add("User", Name="Owner", IsActive=True)
    campaign = org.add("Campaign", Name="Spring Leads", OwnerId=owner)
    writer = writer_for(store)
    task_id = writer.create_task(alert(campaign))
    (task,) = tasks(org)
    assert task["Id"] == task_id
    assert task["WhatId"] == campaign and task["OwnerId"] == owner
    assert task["Subject"].startswith("Campaign 'Spring Leads'") and task["Priority"] == "High"
    assert (
        task["Status"] == "Not Started"
        and task["ActivityDate"] == datetime.now(UTC).date().isoformat()
    )
    assert org.calls("GET", rf"sobjects/Campaign/{campaign}$")[0].params == {"fields": "OwnerId"}
    org.requests.clear()
    assert writer_for(store).create_task(alert(campaign)) == task_id
    assert org.requests == [] and len(tasks(org)) == 1, "created once: the id is kept"


def test_an_owner_named_by_the_alert_needs_no_lookup(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C")
    writer_for(store).create_task(alert(campaign, owner=org.user_id))
    assert not org.calls("GET", r"sobjects/Campaign/")
    assert tasks(org)[0]["OwnerId"] == org.user_id


def test_inactive_owner_gets_the_task_through_the_api_user(fake, store) -> None:
    org = fake()
    gone = org.add("User", Name="Former", IsActive=False)
    org.inactive_users.add(gone)
    campaign = org.add("Campaign", Name="C", OwnerId=gone)
    writer_for(store).create_task(alert(campaign))
    (task,) = tasks(org)
    assert "OwnerId" not in task and gone in task["Description"]
    assert len(org.calls("POST", r"sobjects/Task/$")) == 2


def test_a_failed_create_is_not_repeated_blindly(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    org.fail(
        "POST",
        r"sobjects/Task/$",
        500,
        [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred"}],
    )
    with pytest.raises(ServerError):
        writer_for(store).create_task(alert(campaign))
    assert len(org.calls("POST", r"sobjects/Task/$")) == 1, "a POST is not retried on a 500"
    task_id = writer_for(store).create_task(alert(campaign))
    assert [t["Id"] for t in tasks(org)] == [task_id]


def test_a_task_created_by_an_interrupted_attempt_is_adopted(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    writer = writer_for(store)
    the_alert = alert(campaign)
    # the process died after Salesforce created the task, before the id was recorded
    writer.tasks.ledger.mark_pending(
        "Task", {ledger_key(the_alert.alert_key): {"started_at": soql_datetime(NOW)}}
    )
    org.now = NOW
    existing = org.add("Task", WhatId=campaign, Subject=the_alert.subject, OwnerId=org.user_id)
    assert writer.create_task(the_alert) == existing
    assert not org.calls("POST", r"sobjects/Task/$") and len(tasks(org)) == 1


def test_a_resolved_alerts_task_is_completed_with_the_reason(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    writer = writer_for(store)
    task_id = writer.create_task(alert(campaign))
    note = "Resolved: Campaign 'Spring Leads' reached 80% of budget\nThe condition cleared."
    assert writer.complete_task(task_id, note) is None
    task = org.objects["Task"][task_id]
    assert task["Status"] == "Completed" and task["IsClosed"] is True
    assert task["Description"] == f"{alert(campaign).description}\n\n{note}"
    (patch,) = org.calls("PATCH", rf"sobjects/Task/{task_id}$")
    assert set(patch.body) == {"Status", "Description"}
    # again (a crash before the resolution was recorded): the task is closed, nothing changes
    org.requests.clear()
    assert "already closed" in (writer.complete_task(task_id, note) or "")
    assert not org.calls("PATCH", r"sobjects/Task/") and org.objects["Task"][task_id] == task


def test_a_task_someone_closed_or_deleted_is_left_alone(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    writer = writer_for(store)
    closed = writer.create_task(alert(campaign, key="a"))
    org.touch("Task", closed, Status="Deferred")
    org.touch("Task", closed, Status="Completed", Description="Handled by hand.")
    assert "already closed in Salesforce (Completed)" in (writer.complete_task(closed, "x") or "")
    assert org.objects["Task"][closed]["Description"] == "Handled by hand."
    deleted = writer.create_task(alert(campaign, key="b"))
    org.delete("Task", deleted)
    assert "no longer exists" in (writer.complete_task(deleted, "x") or "")
    org.delete("Task", deleted, hard=True)
    assert "no longer exists" in (writer.complete_task(deleted, "x") or "")
    assert not org.calls("PATCH", r"sobjects/Task/")


def test_a_404_without_salesforces_error_code_is_an_error_not_a_deleted_task(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    writer = writer_for(store)
    task_id = writer.create_task(alert(campaign))
    org.fail("GET", rf"sobjects/Task/{task_id}$", 404, "<html>Not Found</html>")
    with pytest.raises(ClientError):  # retried next run, never recorded as done
        writer.complete_task(task_id, "over")


def test_an_org_that_renamed_its_closed_status_gets_its_own(fake, store) -> None:
    org = fake(task_statuses=(("Open", False), ("Done", True), ("Cancelled", True)))
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    writer = writer_for(store)
    first = writer.create_task(alert(campaign, key="a"))
    second = writer.create_task(alert(campaign, key="b"))
    writer.complete_task(first, "over")
    writer.complete_task(second, "over")
    assert [org.objects["Task"][t]["Status"] for t in (first, second)] == ["Done", "Done"]
    assert len([q for q in org.queries() if "TaskStatus" in q]) == 1, "read once per writer"


def test_the_fake_refuses_a_status_the_org_does_not_have(fake, store) -> None:
    org = fake(task_statuses=(("Open", False), ("Done", True)))
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    writer = writer_for(store)
    task_id = writer.create_task(alert(campaign))
    writer.tasks._closed_status = "Completed"  # what a writer assuming the default would send
    with pytest.raises(ClientError, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        writer.complete_task(task_id, "over")


# ----- leads ---------------------------------------------------------------------------------


def lead(email: str = "Ada@Example.com", campaign: str | None = None, **kw) -> InboundLead:
    values = {
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": None,
        "phone": "+44 20 7946 0000",
        "campaign_id": campaign,
        "lead_source": "",
        "occurred_at": NOW,
        "external_ref": "meta:lead:1234567890",
    }
    values.update(kw)
    return InboundLead(**values)


def test_new_person_becomes_a_lead_and_a_responded_member_once(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="Lead Gen")
    org.add(
        "CampaignMemberStatus", CampaignId=campaign, Label="Sent", HasResponded=False, SortOrder=1
    )
    org.add(
        "CampaignMemberStatus",
        CampaignId=campaign,
        Label="Form Filled",
        HasResponded=True,
        SortOrder=2,
    )
    writer = writer_for(store)
    outcome = writer.upsert_inbound_lead(lead(campaign=campaign))
    assert outcome.person_kind == "lead" and outcome.created
    created = org.objects["Lead"][outcome.person_id]
    assert created["LeadSource"] == "Paid Lead Form"  # [webhooks] lead_source
    assert created["Company"] == "[not provided]" and created["Email"] == "ada@example.com"
    member = org.objects["CampaignMember"][outcome.member_id]
    assert member["Status"] == "Form Filled" and member["HasResponded"] is True
    assert member["LeadId"] == outcome.person_id

    again = writer_for(store).upsert_inbound_lead(lead(campaign=campaign))  # redelivery
    assert again.person_id == outcome.person_id and again.member_id == outcome.member_id
    assert not again.created
    assert len(org.objects["Lead"]) == 1 and len(org.objects["CampaignMember"]) == 1


def test_existing_contact_wins_and_its_member_is_marked_responded(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="Webinar")
    contact = org.add("Contact", Email="ada@example.com", LastName="Lovelace")
    org.add("Lead", Email="ADA@example.com", LastName="Old", Company="X")
    member = org.add(
        "CampaignMember", CampaignId=campaign, ContactId=contact, Status="Sent", HasResponded=False
    )
    outcome = writer_for(store).upsert_inbound_lead(lead(campaign=campaign))
    assert (outcome.person_kind, outcome.person_id, outcome.member_id) == (
        "contact",
        contact,
        member,
    )
    assert not outcome.created and len(org.objects["Lead"]) == 1
    patch = org.calls("PATCH", rf"sobjects/CampaignMember/{member}$")
    assert len(patch) == 1 and patch[0].body == {"Status": "Responded"}  # answered 204
    assert org.objects["CampaignMember"][member]["HasResponded"] is True


def test_a_converted_lead_leads_to_its_contact(fake, store) -> None:
    org = fake()
    contact = org.add("Contact", Email="other@example.com", LastName="L")
    org.add(
        "Lead",
        Email="ada@example.com",
        LastName="L",
        Company="C",
        IsConverted=True,
        ConvertedContactId=contact,
    )
    outcome = writer_for(store).upsert_inbound_lead(lead())
    assert (outcome.person_kind, outcome.person_id, outcome.member_id) == ("contact", contact, None)


def test_email_is_escaped_in_soql(fake, store) -> None:
    org = fake()
    tricky = "o'brien\\x@example.com"
    existing = org.add("Lead", Email=tricky, LastName="O'Brien", Company="C")
    outcome = writer_for(store).upsert_inbound_lead(lead(email=tricky))
    assert outcome.person_id == existing
    query = next(q for q in org.queries() if "FROM Lead" in q)
    assert "Email = 'o\\'brien\\\\x@example.com'" in query


def test_a_concurrent_delivery_winning_the_race_is_not_an_error(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C")
    person = org.add("Lead", Email="ada@example.com", LastName="L", Company="C")

    def other_worker(method: str, path: str) -> None:
        if method == "POST" and path.endswith("sobjects/CampaignMember/"):
            org.on_request = None
            org.add(
                "CampaignMember",
                Id="00vxx0000000RACEAAA",
                CampaignId=campaign,
                LeadId=person,
                Status="Responded",
                HasResponded=True,
            )

    org.on_request = other_worker
    org.fail("POST", r"sobjects/CampaignMember/$", 400, fixture("error_duplicate_member.json"))
    outcome = writer_for(store).upsert_inbound_lead(lead(campaign=campaign))
    assert outcome.member_id == "00vxx0000000RACEAAA"
    assert len(org.objects["CampaignMember"]) == 1


def test_leads_still_go_through_past_the_sync_quota_share(fake, store) -> None:
    org = fake(usage_used=90_000, usage_limit=100_000)
    campaign = org.add("Campaign", Name="C")
    writer = writer_for(store, sf_config(quota_stop_share=0.5))
    outcome = writer.upsert_inbound_lead(lead(campaign=campaign))
    assert outcome.created and outcome.member_id
    assert writer.client.usage.share > writer.client.quota_stop_share
    # ...while the sync's bulk work (write-back) stops at the share
    fields = CampaignFields(campaign, None, None, None, None, None, None, None, "w_shaped", NOW)
    result = writer.write_campaign_fields([fields])
    assert "stopped politely at 50 %" in result.failed[campaign]
    assert not org.write_calls


def test_a_lead_without_email_is_refused_rather_than_duplicated(fake, store) -> None:
    fake()
    with pytest.raises(ValueError, match="no e-mail"):
        writer_for(store).upsert_inbound_lead(lead(email="  "))
