"""Meta Lead Ads: ``/webhooks/meta``.

Wire format (shared/reference/api-wire-formats.md 1.1-1.3; Meta's "Webhooks for Leadgen"
and "Retrieving leads" docs): the GET handshake echoes ``hub.challenge`` when
``hub.verify_token`` matches; each POST is signed with ``X-Hub-Signature-256`` over the raw
body with the app secret and may batch several entries and changes. A ``leadgen`` change
only refers to the lead (``leadgen_id``, ``form_id``, ``ad_id``...); the answers are read
from the Graph API at processing time. Ids come as numbers or strings and are compared as
strings; ``ad_id``/``adgroup_id`` are 0 or missing for organic and test leads.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from adapters import meta_ads
from adapters.http import HttpError
from adapters.http import parse_json as parse_http_json
from connector.config import Config
from webhooks.providers.base import (
    Action,
    Handshake,
    InboundRequest,
    Item,
    LeadData,
    MakeClient,
    PermanentError,
    ProcessContext,
    dumps,
    expect_list,
    expect_object,
    from_epoch,
    from_iso,
    ident,
    parse_json,
    split_name,
    text_or_none,
)
from webhooks.verify import Rejected, hmac_sha256, require, same


def meta_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` as Meta sends it: ``sha256=`` + lowercase hex."""
    return "sha256=" + hmac_sha256(secret, body).hex()


def check_meta(secret: str, body: bytes, header: str | None) -> None:
    """Meta signs the raw body (in its escaped-unicode form) with the app secret."""
    given = require(header, "X-Hub-Signature-256")
    if not same(meta_signature(secret, body), given.lower()):
        raise Rejected(403, "X-Hub-Signature-256 does not match the body")


def check_meta_verify_token(expected: str, mode: str | None, given: str | None) -> None:
    """The subscription handshake: ``hub.mode=subscribe`` with the token typed into Meta."""
    if mode != "subscribe":
        raise Rejected(403, "hub.mode must be 'subscribe'")
    if given is None or not same(expected, given):
        raise Rejected(403, "hub.verify_token does not match")


AD_SOURCE = "meta_ads"
LEAD_READ = "created_time,ad_id,form_id,campaign_id,campaign_name,field_data,platform"
LEAD_FIELDS = ("created_time", "ad_id", "form_id", "campaign_id", "campaign_name", "field_data")
_EMAIL = ("email", "work_email")
_PHONE = ("phone_number", "work_phone_number", "phone")
_COMPANY = ("company_name", "company")


def _leadgen_changes(data: Any) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(entry, change, leadgen_id) for every leadgen change of a notification."""
    body = expect_object(data, "the body")
    found = []
    for i, entry in enumerate(expect_list(body.get("entry"), "entry")):
        entry = expect_object(entry, f"entry[{i}]")
        changes = entry.get("changes", [])
        for j, change in enumerate(expect_list(changes, f"entry[{i}].changes")):
            change = expect_object(change, f"entry[{i}].changes[{j}]")
            if change.get("field") != "leadgen":
                continue  # another subscribed field: not a lead
            where = f"entry[{i}].changes[{j}].value"
            value = expect_object(change.get("value"), where)
            leadgen_id = ident(value.get("leadgen_id"), f"{where}.leadgen_id")
            assert leadgen_id is not None
            found.append((entry, change, leadgen_id))
    return found


MAX_CHALLENGE = 256


class Meta:
    name = "meta"
    headers = ("X-Hub-Signature-256",)  # kept with each event
    secret = ("meta_ads", "app_secret")
    handshake_secret = ("meta_ads", "verify_token")

    def handshake(self, query: Mapping[str, str], secret: str | None) -> Handshake:
        """Echo ``hub.challenge`` when ``hub.verify_token`` is the one typed into Meta."""
        if secret is None:
            raise Rejected(404, "Meta verification is off: set meta_ads.verify_token_env")
        check_meta_verify_token(secret, query.get("hub.mode"), query.get("hub.verify_token"))
        challenge = query.get("hub.challenge", "")
        if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
            raise Rejected(400, "hub.challenge is missing or not a short printable value")
        return Handshake(challenge, "text/plain")

    def verify(self, request: InboundRequest, secret: str) -> None:
        check_meta(secret, request.body, request.headers.get("X-Hub-Signature-256"))

    def items(self, request: InboundRequest) -> list[Item]:
        data = request.json
        changes = _leadgen_changes(data)
        keys = {leadgen_id for _, _, leadgen_id in changes}
        if len(keys) == 1:
            return [Item(changes[0][2], request.text)]
        items: dict[str, Item] = {}
        for entry, change, leadgen_id in changes:
            single = {
                "object": data.get("object"),
                "entry": [{"id": entry.get("id"), "time": entry.get("time"), "changes": [change]}],
            }
            items.setdefault(leadgen_id, Item(leadgen_id, dumps(single)))
        return list(items.values())

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Action:
        try:
            changes = _leadgen_changes(parse_json(body))
        except Exception as exc:
            raise PermanentError(f"stored Meta notification is unreadable: {exc}") from None
        value = next((c["value"] for _, c, key in changes if key == dedup), None)
        if value is None:
            raise PermanentError(f"stored Meta notification has no leadgen_id {dedup}")
        lead = context.fetcher.of(self).lead(dedup)
        return lead_data(dedup, value, lead)

    def reader(self, config: Config, make_client: MakeClient) -> MetaLeads:
        return MetaLeads(config, make_client)


class MetaLeads:
    """``GET /{api_version}/{leadgen_id}?fields=...&access_token=...&appsecret_proof=...``
    (``appsecret_proof`` = hex HMAC-SHA256 of the token under the app secret, as the
    facebook-business SDK sends it), answered ``{"id", "created_time", "campaign_id",
    "field_data": [{"name", "values": [...]}]}``; errors are Meta's ``{"error": {...}}``
    envelope, classified by the Meta adapter's rules."""

    def __init__(self, config: Config, make_client: MakeClient) -> None:
        token = config.secret("meta_ads", "access_token")
        self.auth = {"access_token": token}
        if config.meta_ads.app_secret_env:
            secret = config.secret("meta_ads", "app_secret")
            self.auth["appsecret_proof"] = hmac.new(
                secret.encode(), token.encode(), hashlib.sha256
            ).hexdigest()
        self.version = config.meta_ads.api_version
        self.client = make_client(
            "Meta Graph API", config.meta_ads.base_url, classify=meta_ads.classify
        )

    def lead(self, leadgen_id: str) -> dict[str, Any]:
        path = f"/{self.version}/{quote(leadgen_id, safe='')}"
        try:
            response = self.client.request("GET", path, params={"fields": LEAD_READ, **self.auth})
        except HttpError as exc:
            raise meta_ads.explain(exc, f"lead {leadgen_id}") from None
        body = parse_http_json(response)
        if not isinstance(body, dict):
            raise HttpError(f"Meta Graph API: lead {leadgen_id}: not a JSON object", service="Meta")
        return body


def _answers(lead: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for row in lead.get("field_data") or []:
        if not isinstance(row, dict):
            continue
        name = text_or_none(row.get("name"), 80)
        values = row.get("values")
        if name and isinstance(values, list) and values:
            value = text_or_none(", ".join(str(v) for v in values), 1000)
            if value:
                out[name.lower()] = value
    return out


def _first(answers: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((answers[n] for n in names if answers.get(n)), None)


def lead_data(leadgen_id: str, value: dict[str, Any], lead: dict[str, Any]) -> LeadData:
    """The Graph lead (fields ``LEAD_FIELDS``) plus the notification's references."""
    answers = _answers(lead)
    first = answers.get("first_name")
    last = answers.get("last_name")
    if not (first or last):
        first, last = split_name(answers.get("full_name"))
    campaign = ident(lead.get("campaign_id"), "campaign_id", required=False)
    extra = {
        k: v
        for k, v in {
            "form_id": ident(
                lead.get("form_id") or value.get("form_id"), "form_id", required=False
            ),
            "ad_id": ident(lead.get("ad_id") or value.get("ad_id"), "ad_id", required=False),
            "page_id": ident(value.get("page_id"), "page_id", required=False),
            "platform": text_or_none(lead.get("platform")),
        }.items()
        if v and v != "0"
    }
    for name, answer in answers.items():
        if name not in (*_EMAIL, *_PHONE, *_COMPANY, "first_name", "last_name", "full_name"):
            extra[f"answer:{name}"] = answer
    return LeadData(
        ref=leadgen_id,
        email=_first(answers, _EMAIL),
        first_name=first,
        last_name=last,
        company=_first(answers, _COMPANY),
        phone=_first(answers, _PHONE),
        ad_source=AD_SOURCE,
        ad_campaign_id=campaign if campaign != "0" else None,
        ad_campaign_name=text_or_none(lead.get("campaign_name")),
        occurred_at=from_iso(lead.get("created_time")) or from_epoch(value.get("created_time")),
        extra=extra,
    )
