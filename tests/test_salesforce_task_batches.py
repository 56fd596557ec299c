"""Alert tasks in sObject Collections batches (issue 14): 200 a call, each alert's task
created once, also when the run dies between Salesforce's answer and the ledger.

The fake org of ``tests/test_salesforce_fake.py`` takes ``POST composite/sobjects`` creates,
answered in the shape of ``fixtures/salesforce/collections_create_mixed.json`` ("Create
Records Using sObject Collections", see that folder's README).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from adapters.base import AlertTask
from adapters.http import ClientError, RateLimited
from adapters.salesforce import build_writer
from adapters.salesforce.tasks import ledger_key
from tests.test_salesforce_fake import (
    INACTIVE_IN_FIXTURE,
    NOW,
    FakeSalesforce,
    _collection_answer,
    fake_orgs,
    fixture,
    sf_config,
)

COLLECTION = r"composite/sobjects$"
SINGLE_TASK = r"sobjects/Task/$"


INACTIVE = INACTIVE_IN_FIXTURE


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeSalesforce]]:
    with fake_orgs() as make:
        yield make


def writer_for(store):
    writer = build_writer(sf_config(), store, sleep=lambda _s: None, rng=random.Random(1))
    writer.tasks.clock = lambda: NOW  # the fake org's clock: CreatedDate compares with it
    return writer


def alerts(campaigns: list[str], owner: str, count: int, prefix: str = "a") -> list[AlertTask]:
    return [
        AlertTask(
            alert_key=f"budget:{prefix}{n}|2026-Q1|0.8",
            campaign_id=campaigns[n % len(campaigns)],
            owner_id=owner,
            subject=f"Campaign {prefix}{n} reached 80% of budget",
            description=f"Alert {prefix}{n}.",
            priority="High",
        )
        for n in range(count)
    ]


def collection_posts(org: FakeSalesforce) -> list[list[dict[str, Any]]]:
    return [call.body["records"] for call in org.calls("POST", COLLECTION)]


def task_queries(org: FakeSalesforce) -> list[str]:
    return [q for q in org.queries() if "FROM Task " in q]


def assert_one_task_each(org: FakeSalesforce, batch: list[AlertTask], ids: dict[str, str]):
    tasks = org.objects["Task"]
    assert len(tasks) == len(batch) and len(set(ids.values())) == len(batch)
    for a in batch:
        assert tasks[ids[a.alert_key]]["Subject"] == a.subject


# ----- 200 a call ----------------------------------------------------------------------------


def test_420_alerts_take_three_collection_calls_and_a_rerun_none(fake, store) -> None:
    org = fake()
    campaigns = [org.add("Campaign", Name=f"C{n}", OwnerId=org.user_id) for n in range(7)]
    batch = alerts(campaigns, org.user_id, 420)
    result = writer_for(store).create_tasks(batch)
    assert not result.failed and len(result.created) == 420
    posts = collection_posts(org)
    assert [len(records) for records in posts] == [200, 200, 20]
    assert all(r["attributes"] == {"type": "Task"} for records in posts for r in records)
    assert not org.calls("POST", SINGLE_TASK)
    assert len(org.requests) == 3, "no lookups: nothing was pending"
    assert_one_task_each(org, batch, result.created)
    ledger = writer_for(store).tasks.ledger.load(ledger_key(a.alert_key) for a in batch)
    assert {row.written["task_id"] for row in ledger.values()} == set(result.created.values())

    org.requests.clear()
    again = writer_for(store).create_tasks(batch)
    assert again.created == result.created and not again.failed
    assert org.requests == [], "everything created: no call at all"


# ----- mixed results -------------------------------------------------------------------------


def test_a_batch_with_mixed_results(fake, store) -> None:
    org = fake()
    org.add("User", Id=INACTIVE, Name="Former", IsActive=False)
    org.inactive_users.add(INACTIVE)
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    batch = alerts([campaign], org.user_id, 5)
    batch[1] = replace(batch[1], owner_id=INACTIVE)
    # Salesforce's own answer, as documented, to the first call
    org.fail("POST", COLLECTION, 200, fixture("collections_create_mixed.json"))
    result = writer_for(store).create_tasks(batch)

    keys = [a.alert_key for a in batch]
    assert [result.created.get(k) for k in (keys[0], keys[2], keys[4])] == [
        "00Txx000009AAAAAAA",
        "00Txx000009BBBBAAA",
        "00Txx000009CCCCAAA",
    ]
    (first,) = collection_posts(org)
    assert len(first) == 5 and first[1]["OwnerId"] == INACTIVE
    # only the inactive owner's record is sent again, without OwnerId (alone: a plain create)
    (retry,) = org.calls("POST", SINGLE_TASK)
    orphan = retry.body
    assert "OwnerId" not in orphan and orphan["Subject"] == batch[1].subject
    assert orphan["Description"].startswith(f"(For the campaign owner {INACTIVE},")
    assert org.objects["Task"][result.created[keys[1]]]["Subject"] == batch[1].subject
    refused = result.failed[keys[3]]
    assert isinstance(refused, ClientError) and refused.code == "REQUIRED_FIELD_MISSING"
    assert "Region__c" in str(refused) and set(result.failed) == {keys[3]}
    row = writer_for(store).tasks.ledger.get(ledger_key(keys[3]))
    assert row.pending and "REQUIRED_FIELD_MISSING" in row.last_error and row.attempts == 1

    # next run: the refused alert is looked up (it might exist), then created; the rest stands
    org.requests.clear()
    again = writer_for(store).create_tasks(batch)
    assert not again.failed
    assert {k: again.created[k] for k in result.created} == result.created
    assert len(task_queries(org)) == 1
    assert not collection_posts(org)
    (create,) = org.calls("POST", SINGLE_TASK)
    assert create.body["Subject"] == batch[3].subject
    assert org.objects["Task"][again.created[keys[3]]]["OwnerId"] == org.user_id


def test_inactive_owners_of_a_batch_are_retried_together(fake, store) -> None:
    org = fake()
    gone = org.add("User", Name="Former", IsActive=False)
    org.inactive_users.add(gone)
    campaign = org.add("Campaign", Name="C", OwnerId=gone)
    batch = alerts([campaign], gone, 3)
    batch[1] = replace(batch[1], owner_id=org.user_id)
    result = writer_for(store).create_tasks(batch)
    assert not result.failed
    first, retry = collection_posts(org)
    assert len(first) == 3 and [r["Subject"] for r in retry] == [batch[0].subject, batch[2].subject]
    assert all("OwnerId" not in r and gone in r["Description"] for r in retry)
    tasks = org.objects["Task"]
    assert tasks[result.created[batch[1].alert_key]]["OwnerId"] == org.user_id
    assert "OwnerId" not in tasks[result.created[batch[0].alert_key]]


def test_a_refused_record_fails_its_alert_only_and_is_created_next_run(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    batch = alerts([campaign], org.user_id, 3)
    org.refuse[batch[1].subject] = _collection_answer("REQUIRED_FIELD_MISSING")["errors"]
    writer = writer_for(store)
    with pytest.raises(ClientError, match="REQUIRED_FIELD_MISSING") as raised:
        writer.create_tasks(batch).task_id(batch[1].alert_key)
    assert raised.value.code == "REQUIRED_FIELD_MISSING"
    assert len(org.objects["Task"]) == 2
    task_id = writer_for(store).create_task(batch[1])  # the channel's one-alert call
    assert len(org.objects["Task"]) == 3 and org.objects["Task"][task_id]["Subject"] == (
        batch[1].subject
    )


# ----- crash safety --------------------------------------------------------------------------


class Killed(BaseException):
    """The process dying: nothing after it runs (not an Exception, so nothing catches it)."""


def die_on_recording_ids(writer) -> None:
    record_written = writer.tasks.ledger.record_written

    def killed(sobject: str, written, **kw) -> None:
        if sobject == "Task" and written:
            raise Killed
        record_written(sobject, written, **kw)

    writer.tasks.ledger.record_written = killed


def test_a_run_killed_after_the_call_adopts_instead_of_creating_again(fake, store) -> None:
    org = fake()
    campaigns = [org.add("Campaign", Name=f"C{n}", OwnerId=org.user_id) for n in range(3)]
    batch = alerts(campaigns, org.user_id, 230)
    writer = writer_for(store)
    die_on_recording_ids(writer)
    with pytest.raises(Killed):
        writer.create_tasks(batch)
    assert len(org.objects["Task"]) == 200, "Salesforce created the first batch"
    rows = writer.tasks.ledger.load(ledger_key(a.alert_key) for a in batch)
    assert len(rows) == 200 and all(r.pending and not r.written for r in rows.values())

    org.requests.clear()
    result = writer_for(store).create_tasks(batch)
    assert not result.failed
    assert len(task_queries(org)) == 1, "one lookup query for the interrupted batch"
    (records,) = collection_posts(org)
    assert [r["Subject"] for r in records] == [a.subject for a in batch[200:]]
    assert not org.calls("POST", SINGLE_TASK)
    assert_one_task_each(org, batch, result.created)

    org.requests.clear()
    assert writer_for(store).create_tasks(batch).created == result.created
    assert org.requests == []


def test_alerts_with_the_same_subject_adopt_different_tasks(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    twins = [
        AlertTask(f"budget:twin{n}", campaign, org.user_id, "Same subject", f"d{n}")
        for n in range(2)
    ]
    writer = writer_for(store)
    die_on_recording_ids(writer)
    with pytest.raises(Killed):
        writer.create_tasks(twins)
    org.requests.clear()
    result = writer_for(store).create_tasks(twins)
    assert sorted(result.created.values()) == sorted(org.objects["Task"])
    assert not org.calls("POST", r"sobjects/"), "both adopted: zero new creates"


def test_a_spent_quota_stops_the_batches_and_the_next_run_resumes(fake, store) -> None:
    org = fake()
    campaign = org.add("Campaign", Name="C", OwnerId=org.user_id)
    batch = alerts([campaign], org.user_id, 250)
    org.fail("POST", COLLECTION, 403, fixture("error_request_limit.json"))
    result = writer_for(store).create_tasks(batch)
    assert set(result.failed) == {a.alert_key for a in batch} and not result.created
    assert all(isinstance(exc, RateLimited) for exc in result.failed.values())
    assert len(org.calls("POST", COLLECTION)) == 1, "no call after the quota ran out"

    org.requests.clear()
    again = writer_for(store).create_tasks(batch)
    assert not again.failed
    assert len(task_queries(org)) == 1, "the 200 attempted are looked up first"
    assert [len(records) for records in collection_posts(org)] == [200, 50]
    assert_one_task_each(org, batch, again.created)
