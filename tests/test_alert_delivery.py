"""Delivering alerts (DESIGN section 5 and 7): once per channel, failures retried next run
without blocking the others, never duplicated — to a CRM task, Slack (payloads as Slack
answers them, tests/fixtures/slack), a signed generic webhook and e-mail over a real local
SMTP server with STARTTLS."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest
import responses

from adapters.base import AlertTask
from adapters.http import ClientError, RateLimited
from connector.alerts import log as alert_log
from connector.alerts.rules import Evaluation
from connector.config import parse_config
from connector.store import Store
from sync.alerts import channels as alert_channels
from sync.alerts.channels import (
    CrmTaskChannel,
    EmailChannel,
    SlackChannel,
    SmtpSettings,
    WebhookChannel,
)
from sync.alerts.delivery import channels_from_config, deliver_alerts
from tests.smtp_sink import SmtpSink

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
SLACK_URL = "https://hooks.slack.com/services/T0000SECRET/B0000SECRET/XXXXSECRETXXXX"
HOOK_URL = "https://alerts.example.com/crm-roi"
NOW = datetime(2026, 10, 11, 6, tzinfo=UTC)


def slack_answer(name: str, url: str = SLACK_URL) -> responses.Response:
    spec = json.loads((FIXTURES / f"{name}.json").read_text())
    return responses.Response(
        responses.POST,
        url,
        body=spec["body"],
        status=spec["status"],
        content_type=spec["content_type"],
        headers=spec["headers"],
    )


def evaluation(scope: str, threshold: str = "0.8", *, met: bool = True, **details: Any):
    return Evaluation(
        rule="budget_threshold",
        scope=scope,
        period="2026-Q4",
        threshold=Decimal(threshold),
        met=met,
        value=Decimal("0.85"),
        severity="warning",
        message=f"{scope} reached 80.0% of its 2026-Q4 budget\nSpent 850.00 USD of 1,000.00 USD.",
        details=details,
    )


CAMPAIGN = {"campaign_source": "salesforce", "campaign_id": "701A", "owner_id": "005A"}


def open_alerts(store: Store, *scopes: str, now: datetime = NOW) -> list[alert_log.AlertRecord]:
    alert_log.record(
        store, [evaluation(s, **CAMPAIGN) for s in scopes], ("budget_threshold",), now=now
    )
    return alert_log.list_alerts(store, open_only=True)


class FakeCrm:
    """A CrmWriter that records tasks, and can be told to fail."""

    name = "fake"

    def __init__(self) -> None:
        self.tasks: list[AlertTask] = []
        self.completed: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None

    def create_task(self, task: AlertTask) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.tasks.append(task)
        return f"00T{len(self.tasks):015d}"

    def complete_task(self, task_id: str, note: str) -> str | None:
        if self.fail_with is not None:
            raise self.fail_with
        self.completed.append((task_id, note))
        return None

    def write_campaign_fields(self, updates: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError

    def upsert_inbound_lead(self, lead: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: the PostgreSQL runs of the bookkeeping are the tests taking ``store``."""
    with Store.open(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
        yield opened


def slack(sleeps: list[float] | None = None) -> SlackChannel:
    return SlackChannel(SLACK_URL, sleep=(sleeps if sleeps is not None else []).append)


# ----- once per channel, failures retried, never duplicated ------------------------------


@responses.activate
def test_failed_channel_is_retried_next_run_and_does_not_block_the_others(store: Store) -> None:
    open_alerts(store, "channel:paid_social", "channel:display")
    crm = FakeCrm()
    hook_calls = responses.add(responses.POST, HOOK_URL, body="", status=204)
    responses.add(slack_answer("no_service"))
    channels = [CrmTaskChannel(crm), slack(), WebhookChannel(HOOK_URL, "s3cret", sleep=[].append)]

    first = deliver_alerts(store, channels, now=NOW)
    assert first.delivered == {"crm": 2, "webhook": 2}
    # no_service means the webhook itself is gone: one call, the second alert waits
    assert len(first.failed["slack"]) == 2
    assert [c.request.url for c in responses.calls].count(SLACK_URL) == 1
    assert len(crm.tasks) == 2 and hook_calls.call_count == 2
    for alert in alert_log.list_alerts(store):
        assert set(alert.delivered_to) == {"crm", "webhook"}
        assert alert.delivery_errors["slack"]["attempts"] == 1
        assert SLACK_URL not in json.dumps(alert.delivery_errors)  # the URL is the secret
        assert "T0000SECRET" not in json.dumps(alert.history)

    responses.replace(slack_answer("ok"))
    second = deliver_alerts(store, channels, now=NOW + timedelta(minutes=30))
    assert second.delivered == {"slack": 2} and second.ok
    assert len(crm.tasks) == 2 and hook_calls.call_count == 2  # nothing sent twice
    third = deliver_alerts(store, channels, now=NOW + timedelta(hours=1))
    assert third.delivered == {} and len(responses.calls) == 1 + 2 + 2  # slack, hook, slack
    for alert in alert_log.list_alerts(store):
        assert set(alert.delivered_to) == {"crm", "slack", "webhook"}
        assert alert.delivery_errors == {}
        assert alert.crm_task_id is not None and alert.crm_task_id.startswith("00T")


@responses.activate
def test_invalid_payload_concerns_one_message_only(db: Store) -> None:
    open_alerts(db, "channel:paid_social", "channel:display")
    responses.add(slack_answer("invalid_payload"))
    responses.add(slack_answer("ok"))
    report = deliver_alerts(db, [slack()], now=NOW)
    assert report.delivered == {"slack": 1}
    assert "400: invalid_payload" in report.failed["slack"][0]


@pytest.mark.parametrize("answer", ["channel_is_archived", "action_prohibited"])
@responses.activate
def test_a_dead_webhook_stops_the_channel_for_this_run(db: Store, answer: str) -> None:
    open_alerts(db, "channel:paid_social", "channel:display")
    responses.add(slack_answer(answer))
    report = deliver_alerts(db, [slack()], now=NOW)
    assert len(responses.calls) == 1 and len(report.failed["slack"]) == 2


@responses.activate
def test_slack_429_waits_for_retry_after(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    responses.add(slack_answer("rate_limited"))
    responses.add(slack_answer("ok"))
    sleeps: list[float] = []
    report = deliver_alerts(db, [slack(sleeps)], now=NOW)
    assert report.delivered == {"slack": 1}
    assert sleeps == [2.0]
    body = json.loads(responses.calls[1].request.body)
    assert body["text"].startswith(":large_yellow_circle: *channel:paid_social reached 80.0%")
    assert body["blocks"][0]["type"] == "section"


def test_resolved_alerts_are_not_delivered(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    alert_log.record(
        db,
        [evaluation("channel:paid_social", met=False)],
        ("budget_threshold",),
        now=NOW + timedelta(hours=1),
    )
    crm = FakeCrm()
    assert deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW).delivered == {}
    assert crm.tasks == []


# ----- CRM tasks ----------------------------------------------------------------------------


def test_crm_task_goes_to_the_campaign_owner_once_per_firing(store: Store) -> None:
    (alert,) = open_alerts(store, "channel:paid_social")
    crm = FakeCrm()
    deliver_alerts(store, [CrmTaskChannel(crm)], now=NOW)
    (task,) = crm.tasks
    assert (task.campaign_id, task.owner_id, task.priority) == ("701A", "005A", "Normal")
    assert task.alert_key == alert.dedup_key
    assert task.subject == "channel:paid_social reached 80.0% of its 2026-Q4 budget"
    assert "campaign that spent most" in task.description
    # resolved, then crossed again: a new firing, a new task with its own key
    alert_log.record(
        store, [evaluation("channel:paid_social", met=False)], ("budget_threshold",), now=NOW
    )
    open_alerts(store, "channel:paid_social", now=NOW + timedelta(days=1))
    deliver_alerts(store, [CrmTaskChannel(crm)], now=NOW + timedelta(days=1))
    assert [t.alert_key for t in crm.tasks] == [alert.dedup_key, alert.dedup_key + "#2"]


def test_crm_failure_is_kept_and_retried(db: Store) -> None:
    open_alerts(db, "channel:paid_social")
    crm = FakeCrm()
    crm.fail_with = RuntimeError("UNABLE_TO_LOCK_ROW")
    first = deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    assert "UNABLE_TO_LOCK_ROW" in first.failed["crm"][0]
    crm.fail_with = None
    assert deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW).delivered == {"crm": 1}
    assert len(crm.tasks) == 1


def test_no_campaign_no_task(db: Store) -> None:
    alert_log.record(db, [evaluation("category:growth")], ("budget_threshold",), now=NOW)
    crm = FakeCrm()
    report = deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    # never counted or shown as delivered: nothing reached anyone
    assert report.delivered == {} and report.skipped == {"crm": 1} and crm.tasks == []
    (alert,) = alert_log.list_alerts(db)
    assert alert.history[-1]["note"] == "no campaign to attach a task to"
    assert alert.history[-1]["event"] == "skipped" and alert_log.reached(alert) == []
    # not offered again next run, and no resolution is announced for it either
    assert deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW).skipped == {}
    assert alert_log.unannounced_resolutions(db, "crm") == []
    # and doctor says the alert reached nobody
    from connector.alerts.cli import _stranded_check

    ok, text = _stranded_check([alert])
    assert ok and text.startswith("warning: 1 open alert(s) reached nobody")
    assert "no campaign for a CRM task" in text
    # an alert no channel took at all is a failure
    open_alerts(db, "campaign:701Z")
    unsent = [a for a in alert_log.list_alerts(db, open_only=True) if not a.delivered_to]
    ok, text = _stranded_check(unsent)
    assert not ok and "no channel has taken it" in text


class BatchingCrm(FakeCrm):
    """A CrmWriter with ``create_tasks`` (as Salesforce's, 200 a call inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.refuse: set[str] = set()

    def create_tasks(self, tasks: list[AlertTask]) -> Any:
        from adapters.salesforce.tasks import TaskBatch

        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(len(tasks))
        batch = TaskBatch()
        for task in tasks:
            if task.alert_key in self.refuse:
                batch.failed[task.alert_key] = ClientError(
                    "Salesforce: REQUIRED_FIELD_MISSING: Due date", service="Salesforce", status=400
                )
            else:
                self.tasks.append(task)
                batch.created[task.alert_key] = f"00T{len(self.tasks):015d}"
        return batch


def test_crm_tasks_go_out_in_one_batch_and_failures_stay_per_alert(db: Store) -> None:
    evaluations = [evaluation(f"campaign:701A{i:03d}", **CAMPAIGN) for i in range(420)]
    evaluations.append(evaluation("category:growth"))  # no campaign: nothing to attach to
    alert_log.record(db, evaluations, ("budget_threshold",), now=NOW)
    crm = BatchingCrm()
    crm.refuse = {alert_log.list_alerts(db, open_only=True)[5].firing_key}
    report = deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    assert crm.batches == [421 - 1]  # one call to the writer; the category alert is skipped
    assert report.delivered == {"crm": 419} and report.skipped == {"crm": 1}
    assert len(report.failed["crm"]) == 1 and "REQUIRED_FIELD_MISSING" in report.failed["crm"][0]
    # the refused one is retried next run, alone
    crm.refuse = set()
    again = deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    assert crm.batches == [420, 1] and again.delivered == {"crm": 1}


def test_a_crm_down_for_the_whole_batch_leaves_every_alert_for_next_run(db: Store) -> None:
    open_alerts(db, "campaign:701A", "campaign:701B")
    crm = BatchingCrm()
    crm.fail_with = RateLimited("Salesforce: REQUEST_LIMIT_EXCEEDED", service="Salesforce")
    report = deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW)
    assert report.delivered == {} and len(report.failed["crm"]) == 2
    crm.fail_with = None
    assert deliver_alerts(db, [CrmTaskChannel(crm)], now=NOW).delivered == {"crm": 2}


# ----- the generic webhook ------------------------------------------------------------------


@responses.activate
def test_webhook_is_signed_and_a_retry_keeps_its_delivery_id(db: Store) -> None:
    (alert,) = open_alerts(db, "channel:paid_social")
    responses.add(responses.POST, HOOK_URL, status=503)
    responses.add(responses.POST, HOOK_URL, status=200)
    clock = iter([1_790_000_000.0, 1_790_000_005.0])
    channel = WebhookChannel(HOOK_URL, "s3cret", sleep=[].append, clock=lambda: next(clock))
    assert deliver_alerts(db, [channel], now=NOW).delivered == {"webhook": 1}
    first, second = (c.request for c in responses.calls)
    for request in (first, second):
        timestamp = request.headers["X-CRM-ROI-Timestamp"]
        assert timestamp == "1790000000"
        expected = hmac.new(
            b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        assert request.headers["X-CRM-ROI-Signature"] == f"sha256={expected}"
        assert request.headers["X-CRM-ROI-Event"] == "alert.opened"
    assert first.headers["X-CRM-ROI-Delivery"] == second.headers["X-CRM-ROI-Delivery"]
    payload = json.loads(second.body)
    assert payload["alert"]["dedup_key"] == alert.dedup_key
    assert payload["alert"]["value"] == "0.85" and payload["alert"]["threshold"] == "0.8"
    assert payload["alert"]["details"]["campaign_id"] == "701A"
    assert (
        alert_channels.sign("s3cret", 1_790_000_000, first.body)
        == first.headers["X-CRM-ROI-Signature"]
    )


# ----- e-mail over a real local SMTP server -------------------------------------------------


def email_channel(sink: SmtpSink, port: int, cafile: Path, **options: Any) -> EmailChannel:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        starttls=True,
        from_addr="crm-roi@example.com",
        to_addrs=("marketing-ops@example.com", "cmo@example.com"),
        username="alerts",
        password="pw",
        cafile=str(cafile),
        timeout=10,
    )
    return EmailChannel(settings, clock=lambda: NOW, **options)


def test_email_digest_over_starttls_with_login(
    db: Store, smtp: SmtpSink, certificate: tuple[Path, Path]
) -> None:
    assert smtp._server is not None
    port = smtp._server.server_address[1]
    open_alerts(db, "channel:paid_social", "channel:display")
    channel = email_channel(smtp, port, certificate[0])
    assert deliver_alerts(db, [channel], now=NOW).delivered == {"email": 2}
    (mail,) = smtp.received
    assert mail.tls and mail.login == "alerts"
    assert mail.rcpt_to == ["marketing-ops@example.com", "cmo@example.com"]
    message = message_from_bytes(mail.data)
    assert str(make_header(decode_header(message["Subject"]))).startswith(
        "[crm-roi] 2 new alerts: "
    )
    text = message.get_payload(decode=True).decode()
    assert "channel:paid_social reached 80.0%" in text and "channel:display" in text
    # delivered: the next run sends nothing
    assert deliver_alerts(db, [channel], now=NOW).delivered == {}
    assert len(smtp.received) == 1


def test_email_in_chinese(db: Store, smtp: SmtpSink, certificate: tuple[Path, Path]) -> None:
    assert smtp._server is not None
    port = smtp._server.server_address[1]
    open_alerts(db, "channel:paid_social", "channel:display")
    deliver_alerts(db, [email_channel(smtp, port, certificate[0], language="zh-CN")], now=NOW)
    message = message_from_bytes(smtp.received[0].data)
    assert "2 条新提醒" in str(make_header(decode_header(message["Subject"])))
    assert "由 crm-roi-connector 发送" in message.get_payload(decode=True).decode()


def test_email_refuses_a_server_without_starttls(db: Store, certificate: tuple[Path, Path]) -> None:
    sink = SmtpSink(offer_starttls=False, credentials=("alerts", "pw"))
    port = sink.start()
    try:
        open_alerts(db, "channel:paid_social")
        report = deliver_alerts(db, [email_channel(sink, port, certificate[0])], now=NOW)
        assert "does not offer STARTTLS" in report.failed["email"][0]
        assert sink.received == []
        (alert,) = alert_log.list_alerts(db)
        assert alert.delivery_errors["email"]["attempts"] == 1
    finally:
        sink.stop()


def test_email_wrong_password_is_a_failure_to_retry(
    db: Store, certificate: tuple[Path, Path]
) -> None:
    sink = SmtpSink(cert=certificate[0], key=certificate[1], credentials=("alerts", "other"))
    port = sink.start()
    try:
        open_alerts(db, "channel:paid_social")
        report = deliver_alerts(db, [email_channel(sink, port, certificate[0])], now=NOW)
        assert "login refused (535)" in report.failed["email"][0]
        assert sink.received == []
    finally:
        sink.stop()


# ----- channels from config -------------------------------------------------------------


def test_channels_from_config_skip_those_missing_a_secret() -> None:
    cfg = parse_config(
        {
            "connector": {},
            "alerts": {
                "slack_webhook_url_env": "SLACK_URL_FOR_TEST",
                "webhook_url": HOOK_URL,
                "webhook_secret_env": "HOOK_SECRET_FOR_TEST",
                "email": {
                    "smtp_host": "smtp.example.com",
                    "from_addr": "a@example.com",
                    "to_addrs": ["b@example.com"],
                    "username_env": "SMTP_USER_FOR_TEST",
                    "password_env": "SMTP_PASSWORD_FOR_TEST",
                },
            },
        },
        env={
            "SLACK_URL_FOR_TEST": SLACK_URL,
            "SMTP_USER_FOR_TEST": "u",
            "SMTP_PASSWORD_FOR_TEST": "p",
        },
    )
    channels, problems = channels_from_config(cfg, crm_writer=FakeCrm(), env={})
    assert [c.name for c in channels] == ["crm", "slack", "email"]
    # a configured secret that is missing never turns into unsigned deliveries
    assert len(problems) == 1 and "HOOK_SECRET_FOR_TEST is not set" in problems[0]
    email = next(c for c in channels if isinstance(c, EmailChannel))
    assert (email.settings.username, email.settings.password) == ("u", "p")
