"""Announcing that an alert is over: once, on each channel that received it (and no other),
failures kept apart and retried, a re-firing never marked as announced, the CRM task
completed, and no flood of old resolutions after the upgrade that brought the feature."""

from __future__ import annotations

import json
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest
import responses
from sqlalchemy import text

from connector.alerts import log as alert_log
from connector.alerts.cli import doctor_checks
from connector.config import parse_config
from connector.store import Store
from sync.alerts.channels import CrmTaskChannel, WebhookChannel, delivery_id
from sync.alerts.delivery import deliver_alerts
from tests.smtp_sink import SmtpSink
from tests.test_alert_delivery import (
    CAMPAIGN,
    HOOK_URL,
    NOW,
    SLACK_URL,
    FakeCrm,
    email_channel,
    evaluation,
    open_alerts,
    slack,
    slack_answer,
)

LATER = NOW + timedelta(hours=1)


def clear(store: Store, *scopes: str, keep: tuple[str, ...] = (), now=LATER) -> None:
    """The alerts of ``scopes`` clear; those of ``keep`` are still met."""
    evaluations = [evaluation(s, met=False) for s in scopes]
    evaluations += [evaluation(s, **CAMPAIGN) for s in keep]
    alert_log.record(store, evaluations, ("budget_threshold",), now=now)


@responses.activate
def test_each_channel_that_got_the_alert_hears_once_that_it_is_over(store: Store) -> None:
    open_alerts(store, "channel:paid_social", "channel:display")
    crm = FakeCrm()
    responses.add(slack_answer("ok"))
    hook = responses.add(responses.POST, HOOK_URL, body="", status=204)
    channels = [CrmTaskChannel(crm), slack(), WebhookChannel(HOOK_URL, "s3cret", sleep=[].append)]
    assert deliver_alerts(store, channels, now=NOW).delivered == {
        "crm": 2,
        "slack": 2,
        "webhook": 2,
    }
    opened = [c.request for c in responses.calls if c.request.url == HOOK_URL]
    responses.calls.reset()

    clear(store, "channel:paid_social", keep=("channel:display",))
    report = deliver_alerts(store, channels, now=LATER)
    assert report.delivered == {} and report.ok
    assert report.resolved == {"crm": 1, "slack": 1, "webhook": 1}
    (task_id, note) = crm.completed[0]
    paid = next(a for a in alert_log.list_alerts(store) if a.scope == "channel:paid_social")
    assert task_id == paid.crm_task_id
    assert note == (
        "Resolved: channel:paid_social reached 80.0% of its 2026-Q4 budget\n"
        "The condition cleared (2026-10-11 07:00 UTC)."
    )
    slack_body = json.loads(
        next(c.request.body for c in responses.calls if c.request.url == SLACK_URL)
    )
    assert slack_body["text"].startswith(":white_check_mark: *Resolved: channel:paid_social")
    (resolved,) = [c.request for c in responses.calls if c.request.url == HOOK_URL]
    assert resolved.headers["X-CRM-ROI-Event"] == "alert.resolved"
    assert resolved.headers["X-CRM-ROI-Delivery"] == delivery_id(paid, "alert.resolved")
    assert resolved.headers["X-CRM-ROI-Delivery"] not in {
        r.headers["X-CRM-ROI-Delivery"] for r in opened
    }
    payload = json.loads(resolved.body)
    assert payload["event"] == "alert.resolved" and payload["alert"]["state"] == "resolved"
    assert payload["alert"]["resolution"] == "condition cleared"
    assert payload["alert"]["resolved_at"] == LATER.isoformat()
    assert set(paid.delivered_to) == {"crm", "slack", "webhook"}
    assert all("resolved_at" in entry for entry in paid.delivered_to.values())
    assert [e["event"] for e in paid.history].count("resolution_delivered") == 3

    responses.calls.reset()
    again = deliver_alerts(store, channels, now=LATER + timedelta(hours=1))
    assert again.resolved == {} and len(responses.calls) == 0 and len(crm.completed) == 1
    assert hook.call_count == 3


@responses.activate
def test_a_channel_that_never_got_the_alert_hears_nothing_of_its_end(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    crm = FakeCrm()
    responses.add(slack_answer("no_service"))
    first = deliver_alerts(db, [CrmTaskChannel(crm), slack()], now=NOW)
    assert first.delivered == {"crm": 1} and "slack" in first.failed
    clear(db, "channel:paid_social")
    responses.replace(slack_answer("ok"))
    responses.calls.reset()
    report = deliver_alerts(db, [CrmTaskChannel(crm), slack()], now=LATER)
    assert report.resolved == {"crm": 1} and report.delivered == {}
    assert len(responses.calls) == 0, "Slack never heard of the alert, so not of its end"


@responses.activate
def test_a_failed_announcement_is_kept_apart_and_retried(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    responses.add(slack_answer("ok"))
    deliver_alerts(db, [slack()], now=NOW)
    clear(db, "channel:paid_social")
    responses.replace(slack_answer("no_service"))
    failed = deliver_alerts(db, [slack()], now=LATER)
    assert list(failed.failed) == ["slack:resolved"] and failed.resolved == {}
    (alert,) = alert_log.list_alerts(db)
    assert alert.delivery_errors["slack:resolved"]["attempts"] == 1
    assert "resolved_at" not in alert.delivered_to["slack"]
    responses.replace(slack_answer("ok"))
    assert deliver_alerts(db, [slack()], now=LATER).resolved == {"slack": 1}
    (alert,) = alert_log.list_alerts(db)
    assert alert.delivery_errors == {} and "resolved_at" in alert.delivered_to["slack"]


def test_a_refiring_is_never_marked_as_an_announced_resolution(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    crm = FakeCrm()
    deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    clear(db, "channel:paid_social")
    (stale,) = alert_log.unannounced_resolutions(db, "crm")
    open_alerts(db, "channel:paid_social", now=LATER + timedelta(hours=1))  # fires again
    assert not alert_log.mark_resolution_delivered(db, stale, "crm", now=LATER)
    (alert,) = alert_log.list_alerts(db)
    assert alert.state == "open" and alert.delivered_to == {}, "the new firing starts afresh"
    assert alert_log.unannounced_resolutions(db, "crm") == []


def test_no_longer_evaluated_says_so_and_a_deleted_task_is_noted(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    crm = FakeCrm()
    deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    alert_log.record(db, [], ("budget_threshold",), now=LATER)  # the budget was removed
    crm.complete_task = lambda task_id, note: (
        crm.completed.append((task_id, note)) or ("task 00T1 no longer exists in Salesforce")
    )
    assert deliver_alerts(db, [CrmTaskChannel(crm, language="zh-CN")], now=LATER).resolved == {
        "crm": 1
    }
    assert "已不再检查" in crm.completed[0][1]
    (alert,) = alert_log.list_alerts(db)
    assert alert.history[-1]["note"] == "task 00T1 no longer exists in Salesforce"


def test_email_announces_resolutions_in_one_digest(
    db: Store,
    smtp: SmtpSink,
    certificate: tuple[Path, Path],
) -> None:
    assert smtp._server is not None
    port = smtp._server.server_address[1]
    open_alerts(db, "channel:paid_social", "channel:display")
    channel = email_channel(smtp, port, certificate[0])
    deliver_alerts(db, [channel], now=NOW)
    clear(db, "channel:paid_social", "channel:display")
    assert deliver_alerts(db, [channel], now=LATER).resolved == {"email": 2}
    message = message_from_bytes(smtp.received[-1].data)
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject.startswith("[crm-roi] 2 alerts resolved: ")
    body = message.get_payload(decode=True).decode()
    assert body.count("Resolved: ") == 2 and "The condition cleared" in body
    assert deliver_alerts(db, [channel], now=LATER).resolved == {}
    assert len(smtp.received) == 2


@pytest.fixture
def db(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
        yield opened


def test_resolutions_before_the_upgrade_count_as_announced(store_url: str) -> None:
    with Store.open(store_url) as store:
        open_alerts(store, "channel:paid_social", "channel:display")
        deliver_alerts(store, [CrmTaskChannel(FakeCrm())], now=NOW)
        clear(store, "channel:paid_social", keep=("channel:display",))
        # as a store of revision 0004 had it: a resolved, delivered alert without the mark
        with store.begin() as conn:
            conn.execute(
                text("UPDATE alerts SET delivered_to = :d WHERE state = 'resolved'"),
                {"d": json.dumps({"crm": {"at": NOW.isoformat(), "ref": "00T1"}})},
            )
            conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    with Store.open(store_url) as store:
        crm = FakeCrm()
        assert alert_log.unannounced_resolutions(store, "crm") == []
        assert deliver_alerts(store, [CrmTaskChannel(crm)], now=LATER).resolved == {}
        assert crm.completed == []


@responses.activate
def test_doctor_names_what_is_still_owed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'doctor.db'}"
    with Store.open(url) as store:
        open_alerts(store, "channel:paid_social", "channel:display")
        responses.add(slack_answer("ok"))
        responses.add(slack_answer("no_service"))
        deliver_alerts(store, [slack()], now=NOW)  # display: not delivered
        clear(store, "channel:paid_social", keep=("channel:display",))
        deliver_alerts(store, [slack()], now=LATER)  # paid_social's end: not announced
    lines = [
        text
        for ok, text in doctor_checks(parse_config({"connector": {"database_url": url}}, env={}))
        if not ok
    ]
    assert any(
        line.startswith("1 open alerts not delivered to slack (2 attempts)") for line in lines
    )
    assert any(
        line.startswith("1 resolutions not announced on slack (1 attempts)") for line in lines
    )
