"""Shared pieces of the webhook tests (no tests here): configs, signed requests, fixtures.

Fixtures follow the platforms' documented payloads, as distilled in
shared/reference/api-wire-formats.md:

- ``meta/webhook_leadgen_golden.json``: the exact bytes of 1.2 (golden ``X-Hub-Signature-256``
  with app secret ``app_secret_123``); ``webhook_leadgen_numbers.json``: Meta's own sample
  (ids as JSON numbers); ``webhook_leadgen_batch.json``: several entries and changes in one
  POST; ``lead_graph_*.json``: the Graph lead read of 1.3 (Meta "Retrieving leads") and
  Meta's error envelope for code 100 / subcode 33.
- ``google_ads/webhook_lead.json``: the ``WebhookLead`` example of 2.1 (Google's "Lead form
  webhook implementation").
- ``linkedin/webhook_lead_notification.json``: the Lead Sync notification of 3.2, compact;
  these are the exact bytes the reference's golden ``X-LI-Signature`` was computed over (the
  reference's sample minus ``associatedEntity``, which its golden value leaves out);
  ``lead_form_response_*.json`` and ``lead_form_1.json``: the leadFormResponses and
  leadForms reads of 3.2 (LinkedIn "Lead Sync" docs).
- ``hubspot/``: see its README (6.7, signature v3).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from connector.config import Config, parse_config

FIXTURES = Path(__file__).parent / "fixtures"

META_SECRET = "app_secret_123"
META_VERIFY = "meatyhamhock"
META_TOKEN = "EAAB-token-zq7"
GOOGLE_KEY = "the-key-typed-into-the-form"
LINKEDIN_SECRET = "li_client_secret"
LINKEDIN_TOKEN = "AQX-linkedin-token-zq7"
HUBSPOT_SECRET = "client_secret_123"
GENERIC_SECRET = "generic-secret-Zq7-UNIQUE"
ADMIN_TOKEN = "admin-token-Zq7-UNIQUE"

ENV = {
    "META_APP_SECRET": META_SECRET,
    "META_VERIFY_TOKEN": META_VERIFY,
    "META_TOKEN": META_TOKEN,
    "GADS_WEBHOOK_KEY": GOOGLE_KEY,
    "LI_WEBHOOK_SECRET": LINKEDIN_SECRET,
    "LINKEDIN_TOKEN": LINKEDIN_TOKEN,
    "HS_CLIENT_SECRET": HUBSPOT_SECRET,
    "GENERIC_SECRET": GENERIC_SECRET,
    "CRM_ROI_ADMIN_TOKEN": ADMIN_TOKEN,
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def config_data(database_url: str, **webhooks: Any) -> dict[str, Any]:
    return {
        "connector": {"database_url": database_url},
        "meta_ads": {
            "app_secret_env": "META_APP_SECRET",
            "verify_token_env": "META_VERIFY_TOKEN",
            "access_token_env": "META_TOKEN",
            "api_version": "v23.0",
            "base_url": "https://graph.facebook.com",
        },
        "google_ads": {"webhook_key_env": "GADS_WEBHOOK_KEY"},
        "linkedin_ads": {
            "webhook_secret_env": "LI_WEBHOOK_SECRET",
            "access_token_env": "LINKEDIN_TOKEN",
            "api_version": "202511",
        },
        "webhooks": {
            "generic_secret_env": "GENERIC_SECRET",
            "hubspot_client_secret_env": "HS_CLIENT_SECRET",
            "public_url": "https://example.com",
            "max_body_bytes": 65536,
            "max_attempts": 3,
            **webhooks,
        },
        "mapping": [
            {"ad_source": "meta_ads", "ad_campaign_id": "120201", "crm_campaign_id": "701META"},
            {
                "ad_source": "google_ads",
                "ad_campaign_id": "12345678901",
                "crm_campaign_id": "701GOOG",
            },
        ],
    }


def make_config(database_url: str, env: dict[str, str] | None = None, **webhooks: Any) -> Config:
    return parse_config(config_data(database_url, **webhooks), env=ENV if env is None else env)


def meta_headers(body: bytes, secret: str = META_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def linkedin_headers(body: bytes, secret: str = LINKEDIN_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), b"hmacsha256=" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-LI-Signature": digest}


# The clock of the test apps (``create_app(..., clock=lambda: TEST_NOW)``).
TEST_NOW = 1_700_000_000


def generic_headers(
    body: bytes, secret: str = GENERIC_SECRET, timestamp: int = TEST_NOW
) -> dict[str, str]:
    """A generic delivery signed as README documents: HMAC of ``"<timestamp>." + body``."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Webhook-Timestamp": str(timestamp),
        "X-Signature-256": f"sha256={digest}",
    }


def meta_body(leadgen_id: str, *, campaign_ad: str = "120203") -> bytes:
    value = {
        "leadgen_id": leadgen_id,
        "page_id": "153125381133",
        "form_id": "555",
        "ad_id": campaign_ad,
        "created_time": 1740823200,
    }
    body = {
        "object": "page",
        "entry": [
            {
                "id": "153125381133",
                "time": 1740823200,
                "changes": [{"field": "leadgen", "value": value}],
            }
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def graph_lead(leadgen_id: str, email: str, campaign_id: str = "120201") -> dict[str, Any]:
    lead = fixture_json("meta/lead_graph_444444444444.json")
    lead["id"] = leadgen_id
    lead["campaign_id"] = campaign_id
    lead["field_data"][0]["values"] = [email]
    return lead
