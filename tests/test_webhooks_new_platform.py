"""Issue 15: a new webhook platform is one provider module. A stub platform, registered in the
providers table only, is verified, stored, de-duplicated, handshaken and interpreted by the
unchanged app and worker code (then removed by the monkeypatch)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from connector.store import Store
from tests.test_webhooks_support import GENERIC_SECRET, make_config
from webhooks import events
from webhooks.app import create_app
from webhooks.intake import Intake
from webhooks.providers import PROVIDERS
from webhooks.providers.base import (
    Handshake,
    InboundRequest,
    Item,
    LeadData,
    ProcessContext,
    expect_object,
    parse_json,
)
from webhooks.verify import Rejected, require, same


class Acme:
    """A made-up form tool: ``X-Acme-Signature`` = hex HMAC-SHA256 of the body."""

    name = "acme"
    secret = ("webhooks", "generic_secret")  # any configured secret will do for the stub
    headers = ("X-Acme-Signature",)
    handshake_secret = secret

    def handshake(self, query: Mapping[str, str], secret: str | None) -> Handshake:
        if secret is None:
            raise Rejected(404, "acme is off")
        return Handshake(query.get("echo", ""), "text/plain")

    def verify(self, request: InboundRequest, secret: str) -> None:
        given = require(request.headers.get("X-Acme-Signature"), "X-Acme-Signature")
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not same(expected, given):
            raise Rejected(403, "X-Acme-Signature does not match")

    def items(self, request: InboundRequest) -> list[Item]:
        body = expect_object(request.json, "the body")
        return [Item(str(body["id"]), request.text)]

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Any:
        data = expect_object(parse_json(body), "the body")
        return LeadData(ref=dedup, email=data["email"], ad_source=None)


def test_a_platform_registered_in_the_providers_table_alone_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROVIDERS, "acme", Acme())
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store:
        intake = Intake(store).start()
        client = create_app(make_config(url), store, intake=intake).test_client()
        body = json.dumps({"id": "a-1", "email": "ann@example.com"}).encode()
        signed = hmac.new(GENERIC_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Acme-Signature": signed, "Content-Type": "application/json"}
        assert client.post("/webhooks/acme", data=body, headers=headers).json["stored"] == 1
        assert client.post("/webhooks/acme", data=body, headers=headers).json["duplicates"] == 1
        forged = {**headers, "X-Acme-Signature": "0" * 64}
        assert client.post("/webhooks/acme", data=body, headers=forged).status_code == 403
        echo = client.get("/webhooks/acme?echo=hello")
        assert echo.status_code == 200 and echo.data == b"hello"
        (event,) = events.list_events(store, limit=10)
        assert (event.provider, event.dedup_key) == ("acme", "a-1")
        lead = PROVIDERS["acme"].interpret(event.dedup_key, body.decode(), None)  # type: ignore[arg-type]
        assert lead.email == "ann@example.com"
        intake.close()
