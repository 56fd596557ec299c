"""The push step of alerts: every open alert to every configured channel, once each, and
then, once each, the news that it resolved.

For each channel in turn, the open alerts it has not received yet are sent and each result
is recorded at once (:func:`connector.alerts.log.mark_delivered` / ``mark_failed``). A channel
that fails does not stop the others, and its alerts are simply still undelivered on the next
run, which retries them; an alert resolved in between is not sent any more. Then each
resolved alert the channel did receive is announced there (the CRM task is completed), with
the same once-only recording and retries.

Channels come from ``[alerts]``: a CRM task when a CRM writer is given and ``crm_tasks`` is
on, Slack when ``slack_webhook_url_env`` is set, e-mail when ``[alerts.email] smtp_host`` is
set, the generic webhook when ``webhook_url`` is set. A channel whose secret variable is
missing is reported and skipped (the sync itself goes on).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.base import CrmWriter
from connector import failpoints
from connector.alerts import log as alert_log
from connector.alerts.log import AlertRecord
from connector.config import Config, ConfigError
from connector.store import Store
from sync.alerts.channels import (
    Channel,
    CrmTaskChannel,
    DeliveryError,
    EmailChannel,
    Result,
    Skipped,
    SlackChannel,
    SmtpSettings,
    WebhookChannel,
)

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    delivered: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    """Alerts a channel had no way to carry (a CRM task needs a campaign), per channel."""
    resolved: dict[str, int] = field(default_factory=dict)
    """Per channel: resolutions announced."""
    failed: dict[str, list[str]] = field(default_factory=dict)
    """Per channel (``<channel>:resolved`` for resolution notices): this run's errors, one
    line each."""

    @property
    def ok(self) -> bool:
        return not self.failed


def channels_from_config(
    config: Config,
    *,
    crm_writer: CrmWriter | None = None,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[Channel], list[str]]:
    """The configured channels, and one line per channel that cannot be used (a secret
    variable not set)."""
    env = os.environ if env is None else env
    alerts = config.alerts
    channels: list[Channel] = []
    problems: list[str] = []
    if crm_writer is not None and alerts.crm_tasks:
        channels.append(CrmTaskChannel(crm_writer, language=alerts.language))
    if alerts.slack_webhook_url_env:
        try:
            channels.append(
                SlackChannel(
                    config.secret("alerts", "slack_webhook_url"),
                    language=alerts.language,
                    sleep=sleep,
                )
            )
        except ConfigError as exc:
            problems.append(f"Slack alerts skipped: {exc}")
    email = alerts.email
    if email.enabled:
        try:
            username = config.secret("alerts.email", "username") if email.username_env else None
            password = config.secret("alerts.email", "password") if email.password_env else None
            channels.append(
                EmailChannel(
                    SmtpSettings(
                        host=email.smtp_host,
                        port=email.smtp_port,
                        starttls=email.starttls,
                        from_addr=email.from_addr,
                        to_addrs=tuple(email.to_addrs),
                        username=username,
                        password=password,
                        cafile=env.get("REQUESTS_CA_BUNDLE") or None,
                    ),
                    language=alerts.language,
                )
            )
        except ConfigError as exc:
            problems.append(f"e-mail alerts skipped: {exc}")
    if alerts.webhook_url:
        try:
            secret = (
                config.secret("alerts", "webhook_secret") if alerts.webhook_secret_env else None
            )
            channels.append(WebhookChannel(alerts.webhook_url, secret, sleep=sleep))
        except ConfigError as exc:
            # never fall back to unsigned deliveries when a secret was configured
            problems.append(f"webhook alerts skipped: {exc}")
    return channels, problems


def deliver_alerts(
    store: Store, channels: Sequence[Channel], *, now: datetime | None = None
) -> DeliveryReport:
    """Send each channel the open alerts it has not received, then the resolutions of those
    it did receive; record every result as it comes."""
    report = DeliveryReport()
    for channel in channels:
        opened = alert_log.undelivered(store, channel.name)
        _deliver(store, channel, opened, channel.deliveries, report, now, resolved=False)
        over = alert_log.unannounced_resolutions(store, channel.name)
        _deliver(store, channel, over, channel.resolutions, report, now, resolved=True)
    return report


def _deliver(
    store: Store,
    channel: Channel,
    pending: Sequence[AlertRecord],
    send: Callable[[Sequence[AlertRecord]], Iterable[tuple[AlertRecord, Result]]],
    report: DeliveryReport,
    now: datetime | None,
    *,
    resolved: bool,
) -> None:
    if not pending:
        return
    # failures of resolution notices are kept apart, so they never mask the alert's own
    key = alert_log.resolution_channel(channel.name) if resolved else channel.name
    what = "resolution of alert" if resolved else "alert"
    done: set[int] = set()
    try:
        for alert, result in send(pending):
            failpoints.hit("alert-sent")  # sent, not yet recorded: the crash window
            when = now or datetime.now(UTC)
            done.add(alert.id)
            if isinstance(result, Skipped):
                alert_log.mark_skipped(store, alert.id, channel.name, result.note, now=when)
                report.skipped[channel.name] = report.skipped.get(channel.name, 0) + 1
            elif isinstance(result, DeliveryError):
                attempts = alert_log.mark_failed(store, alert.id, key, str(result), now=when)
                report.failed.setdefault(key, []).append(str(result))
                log.warning(
                    "%s %s not delivered to %s (attempt %d, retried next run): %s",
                    what,
                    alert.dedup_key,
                    channel.name,
                    attempts,
                    result,
                )
            elif resolved:
                if alert_log.mark_resolution_delivered(
                    store, alert, channel.name, now=when, note=result.note
                ):
                    report.resolved[channel.name] = report.resolved.get(channel.name, 0) + 1
            else:
                alert_log.mark_delivered(
                    store, alert.id, channel.name, now=when, ref=result.ref, note=result.note
                )
                report.delivered[channel.name] = report.delivered.get(channel.name, 0) + 1
    except Exception as exc:  # a channel's bug must not stop the other channels
        message = f"{type(exc).__name__}: {exc}"
        log.exception("delivering alerts to %s failed", channel.name)
        for alert in pending:
            if alert.id not in done:
                alert_log.mark_failed(store, alert.id, key, message, now=now or datetime.now(UTC))
        report.failed.setdefault(key, []).append(message)
