"""Where alerts go: a CRM task, Slack, e-mail, a signed generic webhook.

Each channel turns :class:`~connector.alerts.log.AlertRecord` s into messages (for an alert
that opened and, later, for its resolution) and yields one result per alert as soon as it is
known, so the delivery loop can record it before the next send (a crash never repeats a
delivery that was recorded). A failure either concerns one alert
(:class:`DeliveryError`: that alert is retried next run, the others go on) or the channel
(:class:`ChannelDown`: a dead webhook, a rate limit, the server unreachable; the channel's
remaining alerts wait for the next run instead of hammering it). HTTP goes through
:class:`adapters.http.HttpClient` (timeouts, retries honouring ``Retry-After``, safe errors).

The generic webhook is signed like Stripe's: ``X-CRM-ROI-Timestamp`` holds the Unix time and
``X-CRM-ROI-Signature`` is ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<raw body>`` with the
shared secret, so a receiver can reject both forgeries and replays of old deliveries;
``X-CRM-ROI-Delivery`` is the same on every retry of one delivery, for de-duplication.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from adapters.base import AlertTask, CrmWriter
from adapters.http import AuthError, HttpClient, HttpError, RateLimited, TransportError
from connector.alerts.log import AlertRecord
from connector.alerts.messages import render_resolution

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CRM-ROI-Signature"
TIMESTAMP_HEADER = "X-CRM-ROI-Timestamp"
DELIVERY_HEADER = "X-CRM-ROI-Delivery"
EVENT_HEADER = "X-CRM-ROI-Event"
_PRIORITY = {"critical": "High", "warning": "Normal", "info": "Low"}
_ICON = {
    "critical": ":red_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":information_source:",
}


class DeliveryError(Exception):
    """This alert could not be delivered; the message is safe to store and show."""


class ChannelDown(DeliveryError):
    """The channel cannot take anything right now; its other alerts wait for the next run."""


@dataclass(frozen=True)
class Sent:
    """A delivery that succeeded (``ref``: the CRM task id) or was not needed (``note``)."""

    ref: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Nothing was sent because this channel has no way to carry the alert (a CRM task
    needs a campaign; a category's drift has none). Recorded as such, never as delivered."""

    note: str


Result = Sent | Skipped | DeliveryError


def resolution(alert: AlertRecord, language: str) -> tuple[str, str]:
    """The subject and body announcing that ``alert`` resolved."""
    return render_resolution(language, alert.subject, alert.resolution_note, alert.resolved_at)


class Channel:
    """A delivery channel; subclasses implement :meth:`send` and :meth:`send_resolved` (or
    :meth:`deliveries` and :meth:`resolutions`)."""

    name = ""

    def send(self, alert: AlertRecord) -> Sent | Skipped:
        raise NotImplementedError

    def send_resolved(self, alert: AlertRecord) -> Sent:
        raise NotImplementedError

    def deliveries(self, alerts: Sequence[AlertRecord]) -> Iterator[tuple[AlertRecord, Result]]:
        """One result per new alert, in order; after a :class:`ChannelDown` the rest get it
        too."""
        return self._each(alerts, self.send)

    def resolutions(self, alerts: Sequence[AlertRecord]) -> Iterator[tuple[AlertRecord, Result]]:
        """One result per resolved alert announced, like :meth:`deliveries`."""
        return self._each(alerts, self.send_resolved)

    def _each(
        self, alerts: Sequence[AlertRecord], send: Callable[[AlertRecord], Sent | Skipped]
    ) -> Iterator[tuple[AlertRecord, Result]]:
        for i, alert in enumerate(alerts):
            try:
                yield alert, send(alert)
            except ChannelDown as exc:
                for rest in alerts[i:]:
                    yield rest, exc
                return
            except DeliveryError as exc:
                yield alert, exc
            except Exception as exc:  # a bug or an adapter's own error: this alert only
                log.debug("%s delivery of %s failed", self.name, alert.dedup_key, exc_info=True)
                yield alert, DeliveryError(f"{type(exc).__name__}: {exc}")


def _task_failure(exc: Exception) -> DeliveryError:
    """A CRM task call's failure: the channel is down (quota, network, login), or this one
    alert was refused."""
    if isinstance(exc, RateLimited | TransportError | AuthError):
        return ChannelDown(str(exc))
    if isinstance(exc, HttpError):
        return DeliveryError(str(exc))
    return DeliveryError(f"{type(exc).__name__}: {exc}")


def _http_failure(exc: HttpError, per_alert_statuses: frozenset[int]) -> DeliveryError:
    """Map a failed call: a status in ``per_alert_statuses`` concerns this message only."""
    if isinstance(exc, RateLimited | TransportError | AuthError):
        return ChannelDown(str(exc))
    if exc.status is not None and exc.status in per_alert_statuses:
        return DeliveryError(str(exc))
    return ChannelDown(str(exc))


# ----- Slack ------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # https://api.slack.com/reference/surfaces/formatting#escaping
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(Channel):
    """A Slack incoming webhook (https://api.slack.com/messaging/webhooks): one message per
    alert. Slack answers ``ok``; ``invalid_payload`` / ``no_text`` (400) concern one message,
    ``no_service`` (404), ``channel_is_archived`` (410), ``action_prohibited`` (403) the
    webhook itself; 429 carries ``Retry-After``."""

    name = "slack"

    def __init__(
        self,
        webhook_url: str,
        *,
        language: str = "en",
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
    ) -> None:
        self.webhook_url = webhook_url
        self.language = language
        self.http = HttpClient(
            "Slack",
            "https://hooks.slack.com",
            secret_path=True,  # the webhook URL is the credential
            timeout=(10.0, 30.0),
            max_attempts=4,
            max_wait=max_wait,
            sleep=sleep,
        )

    @staticmethod
    def payload(alert: AlertRecord) -> dict[str, Any]:
        icon = _ICON.get(alert.severity, "")
        return SlackChannel._message(alert, icon, alert.subject, alert.body)

    def resolved_payload(self, alert: AlertRecord) -> dict[str, Any]:
        subject, body = resolution(alert, self.language)
        return self._message(alert, ":white_check_mark:", subject, body)

    @staticmethod
    def _message(alert: AlertRecord, icon: str, subject: str, body: str) -> dict[str, Any]:
        text = f"{icon} *{_slack_escape(subject)}*\n{_slack_escape(body)}".strip()
        context = f"crm-roi · {alert.rule} · {alert.scope} · {alert.period}"
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}],
                },
            ],
        }

    def send(self, alert: AlertRecord) -> Sent:
        return self._post(self.payload(alert))

    def send_resolved(self, alert: AlertRecord) -> Sent:
        return self._post(self.resolved_payload(alert))

    def _post(self, payload: dict[str, Any]) -> Sent:
        try:
            self.http.request("POST", self.webhook_url, json_body=payload)
        except HttpError as exc:
            raise _http_failure(exc, frozenset({400})) from None
        return Sent()


# ----- generic webhook --------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` (see the module docstring)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


OPENED = "alert.opened"
RESOLVED = "alert.resolved"


def delivery_id(alert: AlertRecord, event: str = OPENED) -> str:
    """Stable across retries of one delivery; differs between firings and between an alert's
    opening and its resolution."""
    key = alert.firing_key if event == OPENED else f"{alert.firing_key}#{event}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class WebhookChannel(Channel):
    """POSTs each alert as JSON to ``[alerts] webhook_url``, signed when a secret is set."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.secret = secret
        self.clock = clock
        self.http = HttpClient(
            "alert webhook", url, timeout=(10.0, 30.0), max_attempts=4, max_wait=60.0, sleep=sleep
        )

    @staticmethod
    def payload(alert: AlertRecord, event: str = OPENED) -> dict[str, Any]:
        """The JSON body; for ``alert.resolved`` ``state`` is ``resolved`` and ``resolved_at``
        and ``resolution`` (why) are set."""
        return {
            "event": event,
            "delivery_id": delivery_id(alert, event),
            "alert": {
                "dedup_key": alert.dedup_key,
                "firing": alert.firings,
                "rule": alert.rule,
                "scope": alert.scope,
                "period": alert.period,
                "threshold": None if alert.threshold is None else str(alert.threshold),
                "severity": alert.severity,
                "state": alert.state,
                "value": None if alert.value is None else str(alert.value),
                "subject": alert.subject,
                "message": alert.body,
                "opened_at": alert.opened_at.isoformat(),
                "resolved_at": (
                    alert.resolved_at.isoformat() if alert.resolved_at is not None else None
                ),
                "resolution": alert.resolution_note if event == RESOLVED else None,
                "details": alert.details,
            },
        }

    def send(self, alert: AlertRecord) -> Sent:
        return self._post(alert, OPENED)

    def send_resolved(self, alert: AlertRecord) -> Sent:
        return self._post(alert, RESOLVED)

    def _post(self, alert: AlertRecord, event: str) -> Sent:
        body = json.dumps(self.payload(alert, event), ensure_ascii=False, sort_keys=True).encode()
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id(alert, event),
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        try:
            # receivers de-duplicate on X-CRM-ROI-Delivery, so a retry after a 5xx is safe
            self.http.request("POST", self.url, data=body, headers=headers, idempotent=True)
        except HttpError as exc:
            raise _http_failure(exc, frozenset({400, 409, 413, 415, 422})) from None
        return Sent()


# ----- e-mail ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    starttls: bool
    from_addr: str
    to_addrs: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    """CA bundle to trust (``REQUESTS_CA_BUNDLE``), else the system's."""
    timeout: float = 30.0


_DIGEST_SUBJECT = {
    "en": "[crm-roi] {n} new alerts: {first}",
    "zh-CN": "[crm-roi] {n} 条新提醒：{first}",
}
_RESOLVED_DIGEST_SUBJECT = {
    "en": "[crm-roi] {n} alerts resolved: {first}",
    "zh-CN": "[crm-roi] {n} 条提醒已解除：{first}",
}
_FOOTER = {
    "en": "Sent by crm-roi-connector. Open alerts: crm-roi alerts --open",
    "zh-CN": "由 crm-roi-connector 发送。查看未关闭的提醒：crm-roi alerts --open",
}


class EmailChannel(Channel):
    """One e-mail per run listing every new alert (a digest, not one mail per alert), over
    SMTP with STARTTLS (or implicit TLS on port 465), logging in when a user is set."""

    name = "email"

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        language: str = "en",
        smtp_factory: Callable[..., smtplib.SMTP] = smtplib.SMTP,
        smtp_ssl_factory: Callable[..., smtplib.SMTP] = smtplib.SMTP_SSL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.language = language if language in _FOOTER else "en"
        self.smtp_factory = smtp_factory
        self.smtp_ssl_factory = smtp_ssl_factory
        self.clock = clock

    def message(self, alerts: Sequence[AlertRecord], *, resolved: bool = False) -> EmailMessage:
        """One mail for ``alerts``: new ones, or (``resolved``) the end of each."""
        s = self.settings
        msg = EmailMessage()
        if resolved:
            texts = [resolution(a, self.language) for a in alerts]
            digest = _RESOLVED_DIGEST_SUBJECT
        else:
            texts = [(a.subject, a.body) for a in alerts]
            digest = _DIGEST_SUBJECT
        if len(alerts) == 1:
            subject = f"[crm-roi] {texts[0][0]}"
        else:
            first = alerts[0].subject
            subject = digest[self.language].format(n=len(alerts), first=first)
        msg["Subject"] = subject
        msg["From"] = s.from_addr
        msg["To"] = ", ".join(s.to_addrs)
        msg["Date"] = format_datetime(self.clock())
        msg["Message-ID"] = make_msgid(domain=s.from_addr.rpartition("@")[2] or None)
        parts = [
            f"{subj}\n{body}\n" if resolved else f"[{a.severity}] {subj}\n{body}\n"
            for a, (subj, body) in zip(alerts, texts, strict=True)
        ]
        msg.set_content("\n".join(parts) + "\n-- \n" + _FOOTER[self.language] + "\n")
        return msg

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.cafile)

    def _send(self, msg: EmailMessage) -> None:
        s = self.settings
        if s.port == 465:
            smtp = self.smtp_ssl_factory(s.host, s.port, timeout=s.timeout, context=self._context())
        else:
            smtp = self.smtp_factory(s.host, s.port, timeout=s.timeout)
        with smtp:
            smtp.ehlo()
            if s.starttls and s.port != 465:
                if not smtp.has_extn("starttls"):
                    raise ChannelDown(
                        f"SMTP server {s.host}:{s.port} does not offer STARTTLS; refusing to "
                        "send alerts in clear text (set alerts.email.starttls = false to allow)"
                    )
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
            smtp.send_message(msg)

    def deliveries(self, alerts: Sequence[AlertRecord]) -> Iterator[tuple[AlertRecord, Result]]:
        return self._mail(alerts, resolved=False)

    def resolutions(self, alerts: Sequence[AlertRecord]) -> Iterator[tuple[AlertRecord, Result]]:
        return self._mail(alerts, resolved=True)

    def _mail(
        self, alerts: Sequence[AlertRecord], *, resolved: bool
    ) -> Iterator[tuple[AlertRecord, Result]]:
        if not alerts:
            return
        s = self.settings
        try:
            self._send(self.message(alerts, resolved=resolved))
        except ChannelDown as exc:
            failure: DeliveryError = exc
        except smtplib.SMTPAuthenticationError as exc:
            failure = ChannelDown(f"SMTP {s.host}: login refused ({exc.smtp_code})")
        except smtplib.SMTPException as exc:
            failure = ChannelDown(f"SMTP {s.host}:{s.port}: {type(exc).__name__}: {exc}")
        except (OSError, ssl.SSLError) as exc:
            failure = ChannelDown(f"SMTP {s.host}:{s.port}: {type(exc).__name__}: {exc}")
        else:
            for alert in alerts:
                yield alert, Sent()
            return
        for alert in alerts:
            yield alert, failure


# ----- CRM task -----------------------------------------------------------------------------


class CrmTaskChannel(Channel):
    """A task on the campaign, for its owner, through the CRM adapter (created once per
    firing: the task key is the alert's firing key, which adapters may use for idempotency).
    Alerts about a scope without a campaign (a category's drift, an empty total) get none.
    When the alert resolves, its task is completed with a note saying why, unless someone
    closed or deleted it first."""

    name = "crm"

    def __init__(self, writer: CrmWriter, *, language: str = "en") -> None:
        self.writer = writer
        self.language = language

    @staticmethod
    def task(alert: AlertRecord) -> AlertTask | None:
        campaign_id = alert.details.get("campaign_id")
        if not campaign_id:
            return None
        context = f"crm-roi alert {alert.dedup_key} ({alert.rule}, {alert.scope}, {alert.period})"
        if alert.scope != f"campaign:{campaign_id}":
            name = alert.details.get("campaign_name") or campaign_id
            context += f"; assigned via the campaign that spent most in the scope: {name}"
        return AlertTask(
            alert_key=alert.firing_key,
            campaign_id=str(campaign_id),
            owner_id=alert.details.get("owner_id"),
            subject=alert.subject[:255],
            description=f"{alert.body}\n\n{context}",
            priority=_PRIORITY.get(alert.severity, "Normal"),
        )

    def deliveries(self, alerts: Sequence[AlertRecord]) -> Iterator[tuple[AlertRecord, Result]]:
        """Every task in the CRM's largest batches where the writer has ``create_tasks``
        (Salesforce: 200 per sObject Collections call), else one call per alert."""
        create_many = getattr(self.writer, "create_tasks", None)
        if create_many is None:
            yield from super().deliveries(alerts)
            return
        pending: list[tuple[AlertRecord, AlertTask]] = []
        for alert in alerts:
            task = self.task(alert)
            if task is None:
                yield alert, Skipped("no campaign to attach a task to")
            else:
                pending.append((alert, task))
        if not pending:
            return
        try:
            batch = create_many([task for _, task in pending])
        except Exception as exc:  # the whole call: every alert of it waits for the next run
            failure = _task_failure(exc)
            for alert, _ in pending:
                yield alert, failure
            return
        for alert, task in pending:
            try:
                yield alert, Sent(ref=batch.task_id(task.alert_key))
            except Exception as exc:  # this alert's own refusal
                yield alert, _task_failure(exc)

    def send(self, alert: AlertRecord) -> Sent | Skipped:
        task = self.task(alert)
        if task is None:
            return Skipped("no campaign to attach a task to")
        try:
            return Sent(ref=self.writer.create_task(task))
        except (RateLimited, TransportError, AuthError) as exc:
            raise ChannelDown(str(exc)) from None
        except HttpError as exc:
            raise DeliveryError(str(exc)) from None

    def send_resolved(self, alert: AlertRecord) -> Sent:
        if not alert.crm_task_id:
            return Sent(note="no task to complete")
        subject, body = resolution(alert, self.language)
        try:
            note = self.writer.complete_task(alert.crm_task_id, f"{subject}\n{body}")
        except (RateLimited, TransportError, AuthError) as exc:
            raise ChannelDown(str(exc)) from None
        except HttpError as exc:
            raise DeliveryError(str(exc)) from None
        return Sent(ref=alert.crm_task_id, note=note)
