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
from webhooks.verify import check_hubspot_v3


class Hubspot:
    name = "hubspot"
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
