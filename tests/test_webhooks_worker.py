"""Processing stored events into CRM leads: fetching, mapping, the writer, touchpoints,
retries, dead letters, replay, and claims that stay safe with two workers."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses

from adapters.base import InboundLead, LeadOutcome
from adapters.sample_crm import SampleCrm, SampleWriter
from connector import model
from connector.store import Store
from tests.test_webhooks_support import (
    META_SECRET,
    META_TOKEN,
    fixture_bytes,
    fixture_json,
    graph_lead,
    make_config,
    meta_body,
)
from webhooks import events
from webhooks.intake import Intake
from webhooks.providers.base import Item
from webhooks.worker import PassReport, RetryPolicy, Workers, process_pending

GRAPH = re.compile(r"https://graph\.facebook\.com/v23\.0/(\d+)/?")
LINKEDIN = "https://api.linkedin.com"
PROOF = hmac.new(META_SECRET.encode(), META_TOKEN.encode(), hashlib.sha256).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    store: Store
    crm: SampleCrm
    writer: SampleWriter
    workers: Workers
    clock: Clock
    config: Any

    def put(self, provider: str, key: str, body: bytes | str) -> None:
        text = body.decode() if isinstance(body, bytes) else body
        with self.store.begin() as conn:
            events.insert_items(conn, provider, [Item(key, text)], {}, self.clock())

    def run(self, writer: Any = None) -> PassReport:
        return process_pending(self.workers, writer or self.writer)

    def persons(self) -> list[dict[str, Any]]:
        rows = self.crm.db.execute("SELECT payload FROM objects WHERE type = 'person' ORDER BY id")
        return [json.loads(p) for (p,) in rows]

    def members(self) -> list[dict[str, Any]]:
        rows = self.crm.db.execute(
            "SELECT payload FROM objects WHERE type = 'touchpoint' ORDER BY id"
        )
        return [json.loads(p) for (p,) in rows]

    def state(self) -> dict[str, int]:
        return events.counts(self.store)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = make_config(url)
    with Store.open(url) as store:
        store.upsert(
            [
                model.Campaign(source="demo_crm", external_id="701META", name="Spring Webinar"),
                model.Campaign(source="demo_crm", external_id="701GOOG", name="Search Brand"),
                model.Campaign(
                    source="demo_crm", external_id="701LI", name="LI ABM", ad_campaign_ref="789"
                ),
            ]
        )
        crm = SampleCrm(tmp_path / "crm.db")
        clock = Clock()
        policy = RetryPolicy(max_attempts=3, base_seconds=30, lease=timedelta(minutes=10))
        workers = Workers(config, store, policy=policy, clock=clock)
        yield World(store, crm, SampleWriter(crm), workers, clock, config)
        crm.close()


def graph_callback(leads: dict[str, Any], calls: list[dict[str, str]]):
    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        query = dict(re.findall(r"([^&?=]+)=([^&]*)", request.url.split("?", 1)[1]))
        calls.append(query)
        leadgen_id = GRAPH.match(request.url).group(1)  # type: ignore[union-attr]
        if leadgen_id not in leads:
            return 400, {}, fixture_bytes("meta/lead_graph_error_100_33.json").decode()
        return 200, {}, json.dumps(leads[leadgen_id])

    return callback


@responses.activate
def test_meta_lead_is_fetched_mapped_created_and_touched_once(world: World) -> None:
    calls: list[dict[str, str]] = []
    leads = {"444444444444": fixture_json("meta/lead_graph_444444444444.json")}
    responses.add_callback(responses.GET, GRAPH, callback=graph_callback(leads, calls))
    world.put("meta", "444444444444", meta_body("444444444444"))
    report = world.run()
    assert (report.done, report.dead) == (1, 0)
    # the Graph read: the documented fields, the token and its appsecret_proof
    assert calls[0]["access_token"] == META_TOKEN and calls[0]["appsecret_proof"] == PROOF
    assert "field_data" in calls[0]["fields"].replace("%2C", ",")
    [person] = world.persons()
    assert person["email"] == "ann.b@example.com" and person["lead_source"] == "Paid Lead Form"
    assert (person["first_name"], person["last_name"], person["company"]) == (
        "Ann",
        "B",
        "Acme GmbH",
    )
    [member] = world.members()
    assert member["campaign_id"] == "701META" and member["kind"] == "ad_lead_form"
    [touch] = list(world.store.iter_records(model.Touchpoint))
    assert touch.kind == "ad_lead_form" and touch.campaign_id == "701META"
    assert touch.external_id == member["external_id"] and touch.person_id == person["external_id"]
    assert touch.occurred_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert world.state()["done"] == 1
    # a replay of a done event writes nothing new anywhere
    [event] = events.list_events(world.store)
    events.replay(world.store, ids=[event.id])
    assert world.run().done == 1
    assert len(world.persons()) == 1 and len(world.members()) == 1
    assert world.store.count(model.Touchpoint) == 1


def test_google_lead_needs_no_fetch_and_test_leads_are_skipped(world: World) -> None:
    lead = fixture_json("google_ads/webhook_lead.json")
    world.put("google-ads", lead["lead_id"], json.dumps(lead))
    world.put("google-ads", "test-1", json.dumps({**lead, "lead_id": "test-1", "is_test": True}))
    report = world.run()
    assert report.done == 2
    [person] = world.persons()
    assert (person["email"], person["first_name"], person["last_name"]) == (
        "jane@example.com",
        "Jane",
        "Doe",
    )
    assert world.members()[0]["campaign_id"] == "701GOOG"
    skipped = events.list_events(world.store, status="done")[0]
    assert skipped.dedup_key == "test-1" and skipped.last_error.startswith("skipped: test lead")


@responses.activate
def test_linkedin_lead_is_read_from_lead_sync_and_mapped_by_the_ad_id_field(world: World) -> None:
    responses.add(
        responses.GET,
        f"{LINKEDIN}/rest/leadFormResponses/1a2b3c-4",
        json=fixture_json("linkedin/lead_form_response_1a2b3c-4.json"),
        match=[
            responses.matchers.header_matcher(
                {"LinkedIn-Version": "202511", "X-Restli-Protocol-Version": "2.0.0"}
            )
        ],
    )
    responses.add(
        responses.GET,
        f"{LINKEDIN}/rest/leadForms/1",
        json=fixture_json("linkedin/lead_form_1.json"),
    )
    body = fixture_bytes("linkedin/webhook_lead_notification.json")
    world.put("linkedin", "urn:li:leadGenFormResponse:1a2b3c-4:CREATED", body)
    world.put(
        "linkedin",
        "urn:li:leadGenFormResponse:1a2b3c-4:DELETED",
        body.replace(b"CREATED", b"DELETED"),
    )
    assert world.run().done == 2
    [person] = world.persons()
    assert (person["email"], person["first_name"], person["company"]) == (
        "kim@example.com",
        "Kim",
        "Initech",
    )
    assert world.members()[0]["campaign_id"] == "701LI"  # Ad_Campaign_Id__c holds 789
    assert responses.calls[0].request.headers["Authorization"] == "Bearer AQX-linkedin-token-zq7"
    deleted = next(e for e in events.list_events(world.store) if e.dedup_key.endswith("DELETED"))
    assert "deleted by the member" in deleted.last_error


def test_hubspot_notices_and_unmapped_leads_are_noted(world: World) -> None:
    world.put(
        "hubspot",
        "62515:100:123456:1700000000000",
        fixture_bytes("hubspot/webhook_events_golden.json"),
    )
    world.put(
        "generic",
        "g-1",
        json.dumps({"email": "zed@example.com", "ad_source": "meta_ads", "ad_campaign_id": "999"}),
    )
    assert world.run().done == 2
    notes = {e.provider: e.last_error for e in events.list_events(world.store)}
    assert "deal.propertyChange noted" in notes["hubspot"]
    assert "meta_ads:999 is not mapped" in notes["generic"]
    assert len(world.persons()) == 1 and world.members() == []
    assert world.store.count(model.Touchpoint) == 0


@responses.activate
def test_transient_failures_back_off_then_dead_letter_then_replay(world: World) -> None:
    responses.add(
        responses.GET,
        GRAPH,
        json={"error": {"message": "Service temporarily unavailable", "code": 2}},
        status=500,
    )
    world.put("meta", "444444444444", meta_body("444444444444"))
    world.workers.fetcher.sleep = lambda s: None  # type: ignore[attr-defined]
    first = world.run()
    assert first.retried == 1
    [event] = events.list_events(world.store)
    assert event.status == "pending" and event.attempts == 1
    assert "Meta Graph API" in event.last_error and META_TOKEN not in event.last_error
    assert event.next_attempt_at is not None
    wait = (event.next_attempt_at - world.clock()).total_seconds()
    assert 15 <= wait <= 30  # half to all of the first 30 s step
    assert world.run().states == {}  # not due yet: the pass does nothing
    world.clock.advance(31)
    assert world.run().retried == 1
    world.clock.advance(3600)
    assert world.run().dead == 1
    [dead] = events.list_events(world.store, status="dead")
    assert dead.attempts == 3 and "Meta Graph API" in dead.last_error
    # fixed upstream, replayed: processed
    responses.replace(responses.GET, GRAPH, json=graph_lead("444444444444", "ann@example.com"))
    assert events.replay(world.store, dead=True) == [dead.id]
    assert world.run().done == 1
    assert world.state() == {"pending": 0, "processing": 0, "done": 1, "dead": 0}


@responses.activate
def test_permanent_failures_are_dead_at_once(world: World) -> None:
    calls: list[dict[str, str]] = []
    responses.add_callback(responses.GET, GRAPH, callback=graph_callback({}, calls))
    world.put("meta", "444444444447", meta_body("444444444447"))  # Graph: no such lead
    world.put("generic", "no-mail", json.dumps({"email": "   "}))
    world.put("meta", "broken", "{not json")
    report = world.run()
    assert report.dead == 3 and report.retried == 0
    errors = {e.dedup_key: e.last_error for e in events.list_events(world.store)}
    assert "code 100" in errors["444444444447"] or "100" in errors["444444444447"]
    assert "unusable" in errors["no-mail"] or "e-mail" in errors["no-mail"]
    assert "unreadable" in errors["broken"]
    assert len(calls) == 1  # a 4xx is not retried


def test_no_writer_leaves_leads_pending(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from webhooks import worker

    world.put("generic", "g-1", json.dumps({"email": "a@example.com"}))
    with pytest.raises(worker.NoWriter, match=r"salesforce\.enabled is false"):
        worker.lead_writer(world.config, world.store)
    assert world.state()["pending"] == 1


def test_an_expired_lease_is_taken_over_and_the_stale_worker_is_fenced(world: World) -> None:
    world.put("generic", "g-1", json.dumps({"email": "a@example.com", "campaign_id": "701GOOG"}))
    policy = world.workers.policy
    [stale] = events.claim(
        world.store, now=world.clock(), lease=policy.lease, limit=1, max_attempts=3
    )
    # the worker holding it hangs (or its process was killed): nobody else may take it now
    assert world.workers.claim_one() is None
    world.clock.advance(policy.lease.total_seconds() + 1)
    assert world.run().done == 1
    # the stale worker wakes up: its claim is gone, it can neither finish nor fail the event
    with world.store.begin() as conn:
        assert not events.mark_done(conn, stale, now=world.clock(), note=None)
    assert events.mark_failed(world.store, stale, "late", retry_at=None) is None
    [event] = events.list_events(world.store)
    assert (event.status, event.attempts, event.last_error) == ("done", 2, None)
    assert len(world.persons()) == 1


def test_a_claim_that_keeps_killing_its_worker_ends_dead(world: World) -> None:
    world.put("generic", "poison", json.dumps({"email": "a@example.com"}))
    for _ in range(3):
        assert world.workers.claim_one() is not None  # then the process dies
        world.clock.advance(world.workers.policy.lease.total_seconds() + 1)
    assert world.workers.claim_one() is None
    [event] = events.list_events(world.store)
    assert event.status == "dead" and "lease expired" in event.last_error


class CountingWriter:
    """A CRM that records every call and is slow, so that races have room to happen."""

    name = "demo_crm"

    def __init__(self, path: Path, calls: list[str], lock: threading.Lock) -> None:
        self.inner = SampleWriter(SampleCrm(path))
        self.calls = calls
        self.lock = lock

    def upsert_inbound_lead(self, lead: InboundLead) -> LeadOutcome:
        with self.lock:
            self.calls.append(lead.external_ref)
        time.sleep(0.002)
        return self.inner.upsert_inbound_lead(lead)


def test_two_workers_process_each_event_exactly_once(world: World, tmp_path: Path) -> None:
    n = 60
    for i in range(n):
        # every fifth lead is a repeat visitor: same person, another form
        email = f"person{i % 50}@example.com" if i % 5 else f"repeat{i % 3}@example.com"
        world.put("generic", f"g-{i}", json.dumps({"email": email, "campaign_id": "701GOOG"}))
    calls: list[str] = []
    lock = threading.Lock()
    reports: list[PassReport] = []

    def work() -> None:
        writer = CountingWriter(tmp_path / "crm.db", calls, lock)
        reports.append(process_pending(world.workers, writer))  # type: ignore[arg-type]

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.done for r in reports) == n and all(r.lost == 0 for r in reports)
    assert sorted(calls) == sorted(f"generic:g-{i}" for i in range(n))  # each lead once
    assert all(r.done > 0 for r in reports)  # both really worked
    emails = [p["email"] for p in world.persons()]
    assert len(emails) == len(set(emails))  # one person per e-mail, despite the races
    assert world.state()["done"] == n


def test_claims_never_overlap(store: Store) -> None:
    """On SQLite and on PostgreSQL (FOR UPDATE SKIP LOCKED): concurrent claimers get
    disjoint events and together get all of them."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with store.begin() as conn:
        events.insert_items(conn, "generic", [Item(f"k{i}", "{}") for i in range(200)], {}, now)
    got: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        rng = random.Random()
        while True:
            claimed = events.claim(
                store, now=now, lease=timedelta(minutes=5), limit=rng.randint(1, 7), max_attempts=3
            )
            if not claimed:
                return
            with lock:
                got.extend(e.id for e in claimed)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200 and len(set(got)) == 200


def test_intake_group_commit_serves_concurrent_requests(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        intake = Intake(store).start()
        results = []

        def send(i: int) -> None:
            results.append(
                intake.store_items("generic", [Item(f"k{i % 40}", "{}")], {"Content-Type": "x"})
            )

        threads = [threading.Thread(target=send, args=(i,)) for i in range(80)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        intake.close()
        assert sum(r.created for r in results) == 40 and sum(r.duplicates for r in results) == 40
        assert intake.commits <= 80
        assert events.counts(store)["pending"] == 40
