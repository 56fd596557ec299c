"""Google Ads lead form webhook: ``/webhooks/google-ads``.

Wire format (shared/reference/api-wire-formats.md 2.1; Google's "Lead form webhook
implementation" doc, ``WebhookLead`` proto): one lead per POST with all its answers in
``user_column_data``; no signature header: the advertiser's ``google_key`` travels in the
body and is compared with ``[google_ads] webhook_key_env``. ``lead_id`` is unique across
forms and is the dedup key. Ids are int64 JSON numbers (or strings in proto3 JSON).
The key is a shared secret, so the stored event is the body without it (nothing needs it
after verification). ``is_test`` leads come from the "Send test data" button and are kept
out of the CRM unless ``[webhooks] process_test_leads`` says otherwise.
"""

from __future__ import annotations

from typing import Any

from webhooks.providers.base import (
    Action,
    InboundRequest,
    Item,
    LeadData,
    PermanentError,
    ProcessContext,
    Skip,
    dumps,
    expect_object,
    from_iso,
    ident,
    parse_json,
    split_name,
    text_or_none,
)
from webhooks.verify import Rejected, same


def check_google_key(expected: str, given: object) -> None:
    """Google's lead form webhook carries the advertiser's key in the body; no HMAC."""
    if not isinstance(given, str) or not given:
        raise Rejected(401, "missing google_key")
    if not same(expected, given):
        raise Rejected(403, "google_key does not match")


AD_SOURCE = "google_ads"
_EMAIL = ("EMAIL", "WORK_EMAIL")
_PHONE = ("PHONE_NUMBER", "WORK_PHONE")


class GoogleAds:
    name = "google-ads"
    headers: tuple[str, ...] = ()  # the key is in the body
    secret = ("google_ads", "webhook_key")

    def verify(self, request: InboundRequest, secret: str) -> None:
        body = expect_object(request.json, "the body")
        check_google_key(secret, body.get("google_key"))

    def items(self, request: InboundRequest) -> list[Item]:
        body = expect_object(request.json, "the body")
        lead_id = ident(body.get("lead_id"), "lead_id")
        assert lead_id is not None
        kept = {k: v for k, v in body.items() if k != "google_key"}
        return [Item(lead_id, dumps(kept))]

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Action:
        try:
            data = expect_object(parse_json(body), "the body")
        except Exception as exc:
            raise PermanentError(f"stored Google lead is unreadable: {exc}") from None
        if data.get("is_test") is True and not context.process_test_leads:
            return Skip("test lead (is_test) from Google's 'Send test data'")
        return lead_data(dedup, data)


def _columns(data: dict[str, Any]) -> dict[str, str]:
    """Answers keyed by ``column_id`` (always populated), falling back to ``column_name``."""
    out: dict[str, str] = {}
    rows = data.get("user_column_data")
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        key = text_or_none(row.get("column_id"), 80) or text_or_none(row.get("column_name"), 80)
        value = text_or_none(row.get("string_value"), 1000)
        if key and value:
            out.setdefault(key, value)
    return out


def lead_data(lead_id: str, data: dict[str, Any]) -> LeadData:
    columns = _columns(data)
    first, last = columns.get("FIRST_NAME"), columns.get("LAST_NAME")
    if not (first or last):
        first, last = split_name(columns.get("FULL_NAME"))
    campaign = ident(data.get("campaign_id"), "campaign_id", required=False)
    extra = {
        k: v
        for k, v in {
            "form_id": ident(data.get("form_id"), "form_id", required=False),
            "adgroup_id": ident(data.get("adgroup_id"), "adgroup_id", required=False),
            "creative_id": ident(data.get("creative_id"), "creative_id", required=False),
            "gclid": text_or_none(data.get("gcl_id")),
            "job_title": columns.get("JOB_TITLE"),
            "country": columns.get("COUNTRY"),
        }.items()
        if v
    }
    known = {*_EMAIL, *_PHONE, "FIRST_NAME", "LAST_NAME", "FULL_NAME", "COMPANY_NAME"}
    for key, value in columns.items():
        if key not in known and key not in ("JOB_TITLE", "COUNTRY"):
            extra[f"answer:{key}"] = value
    return LeadData(
        ref=lead_id,
        email=next((columns[k] for k in _EMAIL if columns.get(k)), None),
        first_name=first,
        last_name=last,
        company=columns.get("COMPANY_NAME"),
        phone=next((columns[k] for k in _PHONE if columns.get(k)), None),
        ad_source=AD_SOURCE,
        ad_campaign_id=campaign,
        occurred_at=from_iso(data.get("lead_submit_time")),
        extra=extra,
    )
