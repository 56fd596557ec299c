"""Any other lead source: ``/webhooks/generic``.

For form tools and platforms without a module of their own (TikTok through a middleware,
a website form, Zapier). The sender signs each delivery as the connector signs its own alert
webhooks (Stripe's scheme): ``X-Webhook-Timestamp: <Unix seconds>`` and ``X-Signature-256:
sha256=<hex HMAC-SHA256("<timestamp>." + raw body, secret)>``, the secret being the variable
named by ``[webhooks] generic_secret_env``. A timestamp more than 5 minutes from the
connector's clock is refused, so a captured request cannot be replayed later. The body is
one lead:

    {"id": "form-123", "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
     "company": "Acme", "phone": "+15550100", "ad_source": "meta_ads",
     "ad_campaign_id": "120201", "campaign_id": "701...", "occurred_at": "2026-03-01T10:00:00Z"}

Only ``email`` is required; every field has one type (strings; ids may be whole numbers),
and a field of another type is refused (422) rather than guessed at. The dedup key comes from
the signed body only: its ``id``, else the SHA-256 of the body. ``X-Webhook-Id`` and
``Idempotency-Key`` are kept for tracing but no longer choose the key: they are outside the
signature, so a replay with a new one would have been stored as a new lead. ``campaign_id``
names the CRM campaign directly, ``ad_source`` + ``ad_campaign_id`` go through the campaign
mapping.
"""

from __future__ import annotations

import hashlib
from typing import Any

from webhooks.providers.base import (
    Action,
    InboundRequest,
    Item,
    LeadData,
    PermanentError,
    ProcessContext,
    dedup_key,
    expect_object,
    from_iso,
    ident,
    parse_json,
    text_or_none,
)
from webhooks.verify import Rejected, hmac_sha256, require, same

GENERIC_MAX_AGE_SECONDS = 300


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Signature-256`` of the generic endpoint: ``sha256=`` + hex HMAC-SHA256 of
    ``"<timestamp>." + body`` (the scheme of the connector's own alert webhooks)."""
    return "sha256=" + hmac_sha256(secret, timestamp.encode("ascii") + b"." + body).hex()


def check_generic(
    secret: str,
    body: bytes,
    header: str | None,
    timestamp: str | None,
    *,
    now: float,
    max_age: float = GENERIC_MAX_AGE_SECONDS,
) -> None:
    """The signature covers the timestamp and the body, and the timestamp must be recent: a
    captured request cannot be sent again later, and its body (which holds the dedup key)
    cannot be changed."""
    given = require(header, "X-Signature-256").lower()
    stamp = require(timestamp, "X-Webhook-Timestamp")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise Rejected(401, "X-Webhook-Timestamp must be Unix time in seconds")
    if abs(now - int(stamp)) > max_age:
        raise Rejected(
            401,
            f"X-Webhook-Timestamp is outside the {max_age:.0f} s window: sign each delivery "
            "with the current time (and check the sender's clock)",
        )
    if not given.startswith("sha256="):
        given = "sha256=" + given
    if not same(generic_signature(secret, stamp, body), given):
        raise Rejected(403, 'X-Signature-256 does not match "<X-Webhook-Timestamp>." + body')


AD_SOURCES = ("google_ads", "meta_ads", "linkedin_ads")
_FIELDS = ("first_name", "last_name", "company", "phone")


_TEXT_FIELDS = ("email", *_FIELDS, "ad_source", "occurred_at")
_ID_FIELDS = ("id", "ad_campaign_id", "campaign_id")


def _lead_body(data: Any) -> dict[str, Any]:
    body = expect_object(data, "the body")
    if text_or_none(body.get("email")) is None or not isinstance(body.get("email"), str):
        raise Rejected(422, "email is required (a non-empty string)")
    for name in _TEXT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise Rejected(422, f"{name} must be a string (or null)")
    for name in _ID_FIELDS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise Rejected(422, f"{name} must be a string or a whole number (or null)")
    source = body.get("ad_source")
    if source is not None and source not in AD_SOURCES:
        raise Rejected(422, f"ad_source must be one of {', '.join(AD_SOURCES)}")
    if body.get("occurred_at") is not None and from_iso(body["occurred_at"]) is None:
        raise Rejected(422, "occurred_at must be an ISO 8601 time, e.g. 2026-03-01T10:00:00Z")
    return body


class Generic:
    name = "generic"
    headers = ("X-Signature-256", "X-Webhook-Timestamp", "X-Webhook-Id", "Idempotency-Key")
    secret = ("webhooks", "generic_secret")

    def verify(self, request: InboundRequest, secret: str) -> None:
        check_generic(
            secret,
            request.body,
            request.headers.get("X-Signature-256"),
            request.headers.get("X-Webhook-Timestamp"),
            now=request.now,
        )

    def items(self, request: InboundRequest) -> list[Item]:
        body = _lead_body(request.json)
        key = ident(body.get("id"), "id", required=False)
        if key is None:
            key = "sha256:" + hashlib.sha256(request.body).hexdigest()
        return [Item(dedup_key(key), request.text)]

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Action:
        try:
            data = _lead_body(parse_json(body))
        except Rejected as exc:
            raise PermanentError(f"stored generic lead is unusable: {exc.reason}") from None
        values = {name: text_or_none(data.get(name)) for name in _FIELDS}
        extra = {
            str(k)[:80]: str(v)[:1000]
            for k, v in data.items()
            if k not in ("id", "email", "ad_source", "ad_campaign_id", "campaign_id", *_FIELDS)
            and isinstance(v, str | int | float)
            and not isinstance(v, bool)
        }
        return LeadData(
            ref=dedup,
            email=text_or_none(data.get("email")),
            first_name=values["first_name"],
            last_name=values["last_name"],
            company=values["company"],
            phone=values["phone"],
            ad_source=data.get("ad_source"),
            ad_campaign_id=ident(data.get("ad_campaign_id"), "ad_campaign_id", required=False),
            crm_campaign_id=ident(data.get("campaign_id"), "campaign_id", required=False),
            occurred_at=from_iso(data.get("occurred_at")),
            extra=extra,
        )
