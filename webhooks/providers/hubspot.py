"""HubSpot webhooks: ``/webhooks/hubspot``.

Wire format (shared/reference/api-wire-formats.md 6.7; HubSpot's "Validating requests" doc
and ``hubspot.utils.signature``): the body is a JSON **array** of events; the request is
signed with ``X-HubSpot-Signature-v3`` (base64 HMAC-SHA256 of method + full URI + body +
``X-HubSpot-Request-Timestamp`` with the app's client secret) and is refused once the
timestamp is more than 5 minutes away from now, so a captured request cannot be replayed
later. The URI is the one HubSpot called: behind a proxy set ``[webhooks] public_url``.

HubSpot's ``eventId`` "is not guaranteed to be unique", so an event's dedup key is
``portalId:eventId:objectId:occurredAt`` (a redelivery differs only in ``attemptNumber``).
These are CRM change notices, not ad leads: the lead already is in HubSpot, so processing
records the notice and leaves the change to the next incremental sync.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

from webhooks.providers.base import (
    Action,
    InboundRequest,
    Item,
    ProcessContext,
    Skip,
    dedup_key,
    dumps,
    expect_list,
    expect_object,
    ident,
    parse_json,
    text_or_none,
)
from webhooks.verify import Rejected, hmac_sha256, require, same

HUBSPOT_MAX_AGE_SECONDS = 300  # HubSpot's documented window (and its client library's)


# HubSpot's doc: decode these escapes in the URI before hashing (and only these).
_HUBSPOT_DECODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """Base64 HMAC-SHA256 of ``method + uri + body + timestamp`` with the app's secret."""
    message = method.upper().encode() + uri.encode("utf-8") + body + timestamp.encode("ascii")
    return base64.b64encode(hmac_sha256(secret, message)).decode("ascii")


def hubspot_uri_forms(uri: str) -> list[str]:
    """The URI as sent, and with HubSpot's listed escapes decoded (its doc asks for the
    decoding, its Python library does not do it; both forms are accepted)."""
    decoded = _HUBSPOT_DECODED.sub(lambda m: unquote(m.group(0)), uri)
    return [uri] if decoded == uri else [uri, decoded]


def check_hubspot_v3(
    secret: str,
    *,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    max_age: float = HUBSPOT_MAX_AGE_SECONDS,
) -> None:
    """Signature v3 plus the timestamp window that stops a captured request being replayed."""
    given = require(signature, "X-HubSpot-Signature-v3")
    stamp = require(timestamp, "X-HubSpot-Request-Timestamp")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        raise Rejected(401, "X-HubSpot-Request-Timestamp must be epoch milliseconds")
    age = now - int(stamp) / 1000
    if abs(age) > max_age:
        raise Rejected(401, f"X-HubSpot-Request-Timestamp is outside the {max_age:.0f} s window")
    ok = False
    for form in hubspot_uri_forms(uri):
        # no short-circuit: every form is compared, so timing does not tell which one matched
        ok |= same(hubspot_v3_signature(secret, method, form, body, stamp), given)
    if not ok:
        raise Rejected(403, "X-HubSpot-Signature-v3 does not match the request")


class Hubspot:
    name = "hubspot"
    headers = ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp")
    secret = ("webhooks", "hubspot_client_secret")

    def verify(self, request: InboundRequest, secret: str) -> None:
        check_hubspot_v3(
            secret,
            method=request.method,
            uri=request.uri,
            body=request.body,
            signature=request.headers.get("X-HubSpot-Signature-v3"),
            timestamp=request.headers.get("X-HubSpot-Request-Timestamp"),
            now=request.now,
        )

    def items(self, request: InboundRequest) -> list[Item]:
        data = request.json
        events = [data] if isinstance(data, dict) else expect_list(data, "the body")
        found: dict[str, Item] = {}
        for i, event in enumerate(events):
            event = expect_object(event, f"[{i}]")
            key = dedup_key(
                *(
                    ident(event.get(name), f"[{i}].{name}", required=name == "eventId") or ""
                    for name in ("portalId", "eventId", "objectId", "occurredAt")
                )
            )
            found.setdefault(key, Item(key, dumps(event)))
        if len(found) == 1 and isinstance(data, list) and len(data) == 1:
            return [Item(next(iter(found)), request.text)]
        return list(found.values())

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Action:
        data = parse_json(body)
        event = data[0] if isinstance(data, list) and data else data
        kind = text_or_none(event.get("subscriptionType")) if isinstance(event, dict) else None
        return Skip(f"HubSpot {kind or 'event'} noted; the next sync pulls the change")
