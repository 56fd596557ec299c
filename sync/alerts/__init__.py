"""Alert delivery: the channels (Slack, e-mail, a signed webhook, CRM tasks), delivering open
alerts and their resolutions to them, and the ``alerts run`` command with its doctor line."""

from __future__ import annotations

from sync.alerts.channels import (
    Channel,
    ChannelDown,
    CrmTaskChannel,
    DeliveryError,
    EmailChannel,
    Sent,
    Skipped,
    SlackChannel,
    WebhookChannel,
)
from sync.alerts.delivery import DeliveryReport, channels_from_config, deliver_alerts

__all__ = [
    "Channel",
    "ChannelDown",
    "CrmTaskChannel",
    "DeliveryError",
    "DeliveryReport",
    "EmailChannel",
    "Sent",
    "Skipped",
    "SlackChannel",
    "WebhookChannel",
    "channels_from_config",
    "deliver_alerts",
]
