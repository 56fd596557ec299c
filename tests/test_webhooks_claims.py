"""Claims of stored webhook events: a claim takes at most its limit, on SQLite and on
PostgreSQL, and two processes on one PostgreSQL store drain the queue with each event
processed exactly once."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.base import InboundLead, LeadOutcome
from connector import model
from connector.store import Store
from tests.test_webhooks_support import make_config
from webhooks import events
from webhooks.providers.base import Item
from webhooks.worker import RetryPolicy, Workers, process_pending

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def _put(store: Store, n: int) -> None:
    with store.begin() as conn:
        items = [
            Item(f"k{i}", json.dumps({"email": f"p{i}@example.com", "campaign_id": "701GOOG"}))
            for i in range(n)
        ]
        events.insert_items(conn, "generic", items, {}, NOW)


@pytest.mark.parametrize("limit", [1, 2, 7])
def test_a_claim_takes_at_most_its_limit(store: Store, limit: int) -> None:
    _put(store, 30)
    claimed = events.claim(store, now=NOW, lease=LEASE, limit=limit, max_attempts=3)
    assert [e.dedup_key for e in claimed] == [f"k{i}" for i in range(limit)]  # oldest first
    assert events.counts(store) == {
        "pending": 30 - limit,
        "processing": limit,
        "done": 0,
        "dead": 0,
    }
    # the events left pending were not charged an attempt
    left = events.list_events(store, status="pending", limit=100)
    assert {e.attempts for e in left} == {0}


def test_claims_filtered_by_provider_still_take_at_most_the_limit(store: Store) -> None:
    _put(store, 5)
    with store.begin() as conn:
        events.insert_items(conn, "meta", [Item(f"m{i}", "{}") for i in range(5)], {}, NOW)
    claimed = events.claim(store, now=NOW, lease=LEASE, limit=2, max_attempts=3, providers=["meta"])
    assert [(e.provider, e.dedup_key) for e in claimed] == [("meta", "m0"), ("meta", "m1")]
    assert events.counts(store)["processing"] == 2


class FileWriter:
    """A CRM that appends each lead it receives to this process's own file."""

    name = "demo_crm"

    def __init__(self, path: Path) -> None:
        self.path = path

    def upsert_inbound_lead(self, lead: InboundLead) -> LeadOutcome:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(lead.external_ref + "\n")
        time.sleep(0.001)  # room for the other process to interleave
        return LeadOutcome("lead", f"L-{lead.external_ref}", True, f"M-{lead.external_ref}")


def _drain(url: str, out: str, start: float) -> None:
    """One worker process: wait for the common start, then claim and process until the
    queue is empty."""
    while time.time() < start:
        time.sleep(0.005)
    with Store.open(url) as store:
        workers = Workers(make_config(url), store, policy=RetryPolicy(max_attempts=3))
        report = process_pending(workers, FileWriter(Path(out)))  # type: ignore[arg-type]
    if report.dead or report.retried or report.lost:
        raise SystemExit(f"{os.getpid()}: {report}")


@pytest.mark.postgres
def test_two_processes_drain_300_events_each_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    n = 300
    with Store.open(postgres_url) as store:
        store.upsert(
            [model.Campaign(source="demo_crm", external_id="701GOOG", name="Search Brand")]
        )
        _put(store, n)
    outs = [tmp_path / f"worker{i}.txt" for i in range(2)]
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 3  # both processes imported and connected before either claims
    procs = [ctx.Process(target=_drain, args=(postgres_url, str(o), start)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    seen = [line for o in outs if o.exists() for line in o.read_text().split()]
    assert sorted(seen) == sorted(f"generic:k{i}" for i in range(n))  # each lead exactly once
    assert all(o.exists() and o.read_text() for o in outs)  # both processes really worked
    with Store.open(postgres_url) as store:
        assert events.counts(store) == {"pending": 0, "processing": 0, "done": n, "dead": 0}
        assert {e.attempts for e in events.list_events(store, limit=n)} == {1}
