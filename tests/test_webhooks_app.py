"""The Flask app: every endpoint with documented payloads, refusals, durable intake, admin."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.config import ConfigError
from connector.store import Store, schema
from tests.test_webhooks_support import (
    ADMIN_TOKEN,
    ENV,
    GENERIC_SECRET,
    GOOGLE_KEY,
    META_SECRET,
    fixture_bytes,
    fixture_json,
    generic_headers,
    linkedin_headers,
    make_config,
    meta_headers,
)
from webhooks import events
from webhooks.app import create_app
from webhooks.intake import Intake

HS_GOLDEN = "7JMAUMimzpinovZ21bSLbfO3lKAtQzyB0X7UyzkGRwY="
META_GOLDEN = "sha256=eee2eb993bc85979bc15c206465ca245344f22ae0a277b327bcec5f1fc3cb44a"


@dataclass
class Env:
    client: FlaskClient
    store: Store
    intake: Intake

    def rows(self) -> list[tuple[str, str, str]]:
        t = schema.webhook_events
        with self.store.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(t.c.provider, t.c.dedup_key, t.c.status).order_by(t.c.id)
                )
            ]

    def count(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(schema.webhook_events)
            ).scalar_one()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        intake = Intake(store).start()
        app = create_app(make_config(url), store, intake=intake, clock=lambda: 1_700_000_000.0)
        yield Env(app.test_client(), store, intake)
        intake.close()


def test_meta_handshake(env: Env) -> None:
    ok = env.client.get(
        "/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"
    )
    assert ok.status_code == 200 and ok.data == b"1158201444" and ok.mimetype == "text/plain"
    bad = env.client.get("/webhooks/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=no")
    assert bad.status_code == 403 and b"1" not in bad.data.replace(b"403", b"")


def test_meta_golden_post_is_stored_once(env: Env) -> None:
    body = fixture_bytes("meta/webhook_leadgen_golden.json")
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": META_GOLDEN,
    }
    first = env.client.post("/webhooks/meta", data=body, headers=headers)
    assert first.status_code == 200 and first.json == {
        "stored": 1,
        "duplicates": 0,
        "ignored": False,
    }
    again = env.client.post("/webhooks/meta", data=body, headers=headers)
    assert again.status_code == 200 and again.json["duplicates"] == 1
    assert env.rows() == [("meta", "123123123123", "pending")]
    stored = events.list_events(env.store)[0]
    assert stored.body == body.decode()  # the raw body, byte for byte
    assert stored.headers["X-Hub-Signature-256"] == headers["X-Hub-Signature-256"]


def test_meta_ids_as_numbers_or_strings_are_one_lead(env: Env) -> None:
    numbers = fixture_bytes("meta/webhook_leadgen_numbers.json")
    assert (
        env.client.post("/webhooks/meta", data=numbers, headers=meta_headers(numbers)).status_code
        == 200
    )
    strings = fixture_bytes("meta/webhook_leadgen_golden.json")
    answer = env.client.post("/webhooks/meta", data=strings, headers=meta_headers(strings))
    assert answer.json["duplicates"] == 1
    assert env.rows() == [("meta", "123123123123", "pending")]


def test_meta_batch_is_one_event_per_lead(env: Env) -> None:
    body = fixture_bytes("meta/webhook_leadgen_batch.json")
    answer = env.client.post("/webhooks/meta", data=body, headers=meta_headers(body))
    assert answer.json == {"stored": 3, "duplicates": 0, "ignored": False}
    assert [r[1] for r in env.rows()] == ["444444444444", "444444444445", "444444444446"]
    second = events.list_events(env.store, limit=10)[1]
    only = json.loads(second.body)
    assert only["entry"][0]["changes"][0]["value"]["leadgen_id"] == 444444444445


def test_a_notification_without_leads_stores_nothing(env: Env) -> None:
    body = (
        b'{"object":"page","entry":[{"id":"1","time":1,"changes":[{"field":"feed","value":{}}]}]}'
    )
    answer = env.client.post("/webhooks/meta", data=body, headers=meta_headers(body))
    assert answer.status_code == 200 and answer.json["ignored"] is True and env.count() == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 403),
        ({"X-Hub-Signature-256": "sha1=7cb84ebd1b53e593a0127e123edcf045e7f93744"}, 403),
        ({"X-Hub-Signature-256": "garbage ünïcödé"}, 403),
    ],
)
def test_bad_or_missing_signature_stores_nothing(
    env: Env, headers: dict[str, str], status: int
) -> None:
    body = fixture_bytes("meta/webhook_leadgen_golden.json")
    answer = env.client.post("/webhooks/meta", data=body, headers=headers)
    assert answer.status_code == status and "error" in answer.json
    assert env.count() == 0


def test_signature_with_another_secret_stores_nothing(env: Env) -> None:
    body = fixture_bytes("meta/webhook_leadgen_golden.json")
    answer = env.client.post(
        "/webhooks/meta", data=body, headers=meta_headers(body, "not-the-secret")
    )
    assert answer.status_code == 403 and env.count() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"object":"page","entry":[', "malformed JSON"),
        (b"", "empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (
            b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{}}]}]}',
            "leadgen_id is missing",
        ),
        (b'{"object":"page","entry":{}}', "entry must be a JSON array"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"a":NaN}', "malformed JSON"),
    ],
)
def test_malformed_signed_bodies_are_400_with_a_reason(env: Env, body: bytes, reason: str) -> None:
    answer = env.client.post("/webhooks/meta", data=body, headers=meta_headers(body))
    assert answer.status_code == 400
    assert reason in answer.json["error"]
    assert env.count() == 0


def test_body_size_limit_is_413(env: Env) -> None:
    body = b'{"object":"page","entry":[]}' + b" " * 70_000
    answer = env.client.post("/webhooks/meta", data=body, headers=meta_headers(body))
    assert answer.status_code == 413 and env.count() == 0


def test_google_lead_key_and_dedup(env: Env) -> None:
    lead = fixture_json("google_ads/webhook_lead.json")
    body = json.dumps(lead).encode()
    assert env.client.post("/webhooks/google-ads", data=body).json["stored"] == 1
    assert env.client.post("/webhooks/google-ads", data=body).json["duplicates"] == 1
    wrong = json.dumps({**lead, "lead_id": "other", "google_key": "guess"}).encode()
    assert env.client.post("/webhooks/google-ads", data=wrong).status_code == 403
    missing = json.dumps(
        {k: v for k, v in lead.items() if k != "google_key"} | {"lead_id": "x"}
    ).encode()
    assert env.client.post("/webhooks/google-ads", data=missing).status_code == 401
    assert env.client.post("/webhooks/google-ads", data=b"{not json").status_code == 400
    assert env.rows() == [("google-ads", lead["lead_id"], "pending")]
    assert GOOGLE_KEY  # the key comes from the environment, never from the file
    # the shared key is not stored with the lead (the event table is not a secret store)
    with env.store.engine.connect() as conn:
        stored = conn.execute(select(schema.webhook_events.c.body)).scalar_one()
    assert GOOGLE_KEY not in stored and "google_key" not in stored
    assert json.loads(stored) == {k: v for k, v in lead.items() if k != "google_key"}


def test_linkedin_challenge_and_golden_notification(env: Env) -> None:
    code = "890e4665-4dfe-4ab1-b689-ed553bceeed0"
    answer = env.client.get(f"/webhooks/linkedin?challengeCode={code}")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.json == {
        "challengeCode": code,
        "challengeResponse": "3ceda89cb18cf5471b844e08c4b771bcab6f5bec8ab1b0837ca04ab05c909d8c",
    }
    body = fixture_bytes("linkedin/webhook_lead_notification.json")
    golden = {"X-LI-Signature": "2b8ac9c59c2183cfdb8ff95bb1fa296de26ba6cd9fbf30045b2a832883ca42ca"}
    assert env.client.post("/webhooks/linkedin", data=body, headers=golden).json["stored"] == 1
    assert env.client.post("/webhooks/linkedin", data=body, headers=golden).json["duplicates"] == 1
    deleted = body.replace(b'"CREATED"', b'"DELETED"')
    assert env.client.post("/webhooks/linkedin", data=deleted, headers=golden).status_code == 403
    assert (
        env.client.post("/webhooks/linkedin", data=deleted, headers=linkedin_headers(deleted)).json[
            "stored"
        ]
        == 1
    )
    assert [r[1] for r in env.rows()] == [
        "urn:li:leadGenFormResponse:1a2b3c-4:CREATED",
        "urn:li:leadGenFormResponse:1a2b3c-4:DELETED",
    ]


def test_linkedin_challenge_is_no_signing_oracle(env: Env) -> None:
    body = fixture_bytes("linkedin/webhook_lead_notification.json")
    # the attack of issue 13: the challenge answer was HMAC(secret, "hmacsha256=" + body)
    forged_code = "hmacsha256=" + body.decode()
    answer = env.client.get("/webhooks/linkedin", query_string={"challengeCode": forged_code})
    assert answer.status_code == 400 and "UUID" in answer.json["error"]
    assert "challengeResponse" not in answer.json
    for code in ["", "x" * 36, "890e4665-4dfe-4ab1-b689-ed553bceeed0\n", "hmacsha256=abc"]:
        refused = env.client.get("/webhooks/linkedin", query_string={"challengeCode": code})
        assert refused.status_code == 400, code
    # and no answer a UUID gets is a signature any POST would carry
    code = "890e4665-4dfe-4ab1-b689-ed553bceeed0"
    signed = env.client.get("/webhooks/linkedin", query_string={"challengeCode": code}).json
    forged = {"X-LI-Signature": signed["challengeResponse"]}
    assert env.client.post(
        "/webhooks/linkedin", data=code.encode(), headers=forged
    ).status_code in (
        400,
        403,
    )
    assert env.client.post("/webhooks/linkedin", data=body, headers=forged).status_code == 403
    assert env.count() == 0


def test_hubspot_golden_v3_splits_events(env: Env) -> None:
    body = fixture_bytes("hubspot/webhook_events_golden.json")
    headers = {"X-HubSpot-Signature-v3": HS_GOLDEN, "X-HubSpot-Request-Timestamp": "1700000000000"}
    answer = env.client.post("/webhooks/hubspot", data=body, headers=headers)
    assert answer.status_code == 200 and answer.json["stored"] == 1
    assert env.rows() == [("hubspot", "62515:100:123456:1700000000000", "pending")]
    stale = {**headers, "X-HubSpot-Request-Timestamp": "1699999000000"}
    assert env.client.post("/webhooks/hubspot", data=body, headers=stale).status_code == 401
    tampered = body.replace(b"closedwon", b"closedlost")
    assert env.client.post("/webhooks/hubspot", data=tampered, headers=headers).status_code == 403
    assert env.count() == 1


def test_generic_dedup_key_comes_from_the_signed_body_only(env: Env) -> None:
    body = json.dumps(
        {"id": "form-1", "email": "ann@example.com", "first_name": "Ann", "campaign_id": "701X"}
    ).encode()
    first = {**generic_headers(body), "X-Webhook-Id": "delivery-1"}
    assert env.client.post("/webhooks/generic", data=body, headers=first).json["stored"] == 1
    # a replay with a new delivery id (outside the signature) is the same lead
    for n in range(2, 8):
        again = {**generic_headers(body), "X-Webhook-Id": f"delivery-{n}", "Idempotency-Key": "x"}
        assert (
            env.client.post("/webhooks/generic", data=body, headers=again).json["duplicates"] == 1
        )
    # no id in the body: its hash is the key, so the same body is one event
    plain = json.dumps({"email": "bo@example.com"}).encode()
    assert (
        env.client.post("/webhooks/generic", data=plain, headers=generic_headers(plain)).json[
            "stored"
        ]
        == 1
    )
    assert (
        env.client.post("/webhooks/generic", data=plain, headers=generic_headers(plain)).json[
            "duplicates"
        ]
        == 1
    )
    assert [r[1] for r in env.rows()] == ["form-1", "sha256:" + hashlib.sha256(plain).hexdigest()]


def test_generic_refuses_old_missing_or_unsigned_timestamps(env: Env) -> None:
    body = b'{"email":"ann@example.com"}'
    old = generic_headers(body, timestamp=1_700_000_000 - 301)
    answer = env.client.post("/webhooks/generic", data=body, headers=old)
    assert answer.status_code == 401 and "X-Webhook-Timestamp" in answer.json["error"]
    future = generic_headers(body, timestamp=1_700_000_000 + 301)
    assert env.client.post("/webhooks/generic", data=body, headers=future).status_code == 401
    missing = {k: v for k, v in generic_headers(body).items() if k != "X-Webhook-Timestamp"}
    assert env.client.post("/webhooks/generic", data=body, headers=missing).status_code == 401
    # the timestamp is signed: moving it forward breaks the signature
    moved = {**generic_headers(body, timestamp=1_700_000_000 - 301)}
    moved["X-Webhook-Timestamp"] = "1700000000"
    assert env.client.post("/webhooks/generic", data=body, headers=moved).status_code == 403
    within = generic_headers(body, timestamp=1_700_000_000 - 299)
    assert env.client.post("/webhooks/generic", data=body, headers=within).json["stored"] == 1
    assert env.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"first_name":"Ann"}', "email"),
        (b'{"email":5}', "email"),
        (b'{"email":"a@b.c","first_name":["Ann"]}', "first_name"),
        (b'{"email":"a@b.c","campaign_id":{"x":1}}', "campaign_id"),
        (b'{"email":"a@b.c","id":true}', "id"),
        (b'{"email":"a@b.c","occurred_at":"yesterday"}', "occurred_at"),
        (b'{"email":"a@b.c","ad_source":"myspace"}', "ad_source"),
    ],
)
def test_generic_fields_of_the_wrong_type_are_refused(env: Env, body: bytes, field: str) -> None:
    refused = env.client.post("/webhooks/generic", data=body, headers=generic_headers(body))
    assert refused.status_code == 422 and field in refused.json["error"], refused.json
    assert env.count() == 0


def test_unknown_and_unconfigured_endpoints_are_404(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store:
        config = make_config(url, env={**ENV, "GENERIC_SECRET": ""} | {}, generic_secret_env="")
        intake = Intake(store).start()
        client = create_app(config, store, intake=intake).test_client()
        assert client.post("/webhooks/generic", data=b"{}").status_code == 404
        assert client.post("/webhooks/myspace", data=b"{}").status_code == 404
        assert client.get("/webhooks/google-ads").status_code == 405
        intake.close()


def test_a_named_secret_variable_that_is_not_set_is_a_config_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    env = {k: v for k, v in ENV.items() if k != "GENERIC_SECRET"}
    with Store.open(url) as store, pytest.raises(ConfigError) as exc:
        create_app(make_config(url, env=env), store, intake=Intake(store))
    assert "webhooks.generic_secret_env" in str(exc.value) and "GENERIC_SECRET" in str(exc.value)


def test_store_failure_is_503_never_200(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> list[bool]:
        raise OSError("disk full")

    monkeypatch.setattr(env.intake, "_commit", broken)
    body = fixture_bytes("meta/webhook_leadgen_golden.json")
    answer = env.client.post("/webhooks/meta", data=body, headers=meta_headers(body))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    monkeypatch.undo()
    assert env.count() == 0


def test_healthz_and_admin_api(env: Env) -> None:
    assert env.client.get("/healthz").json == {"status": "ok", "store": "ok"}
    assert env.client.get("/admin/webhooks").status_code == 401
    assert (
        env.client.get("/admin/webhooks", headers={"Authorization": "Bearer nope"}).status_code
        == 403
    )
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = fixture_bytes("meta/webhook_leadgen_batch.json")
    env.client.post("/webhooks/meta", data=body, headers=meta_headers(body))
    overview = env.client.get("/admin/webhooks", headers=auth).json
    assert overview["counts"] == {"pending": 3, "processing": 0, "done": 0, "dead": 0}
    first = events.list_events(env.store, limit=10)[-1]
    events.claim(
        env.store,
        now=first.received_at,
        lease=timedelta(seconds=1),
        limit=1,
        max_attempts=3,
    )
    claimed = events.list_events(env.store, status="processing")[0]
    events.mark_failed(env.store, claimed, "Boom: the CRM said no", retry_at=None)
    dead = env.client.get("/admin/webhooks/dead", headers=auth).json["events"]
    assert [(e["id"], e["last_error"]) for e in dead] == [(first.id, "Boom: the CRM said no")]
    assert "body" not in dead[0]  # lead data stays out of listings
    listing = env.client.get("/admin/webhooks/events?status=pending&limit=5", headers=auth).json
    assert len(listing["events"]) == 2
    assert env.client.get("/admin/webhooks/events?status=zzz", headers=auth).status_code == 400
    assert (
        env.client.post("/admin/webhooks/replay", headers=auth, json={"ids": ["x"]}).status_code
        == 400
    )
    assert env.client.post("/admin/webhooks/replay", headers=auth, data=b"nope").status_code == 400
    replayed = env.client.post("/admin/webhooks/replay", headers=auth, json={"dead": True})
    assert replayed.json == {"replayed": [first.id]}
    assert env.client.get("/admin/webhooks", headers=auth).json["counts"]["pending"] == 3


def test_secrets_never_reach_answers_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"email": "ann@example.com"}).encode()
    answers = [
        env.client.post("/webhooks/generic", data=body, headers=generic_headers(body, "wrong")),
        env.client.post("/webhooks/generic", data=body, headers=generic_headers(body)),
        env.client.get("/admin/webhooks", headers={"Authorization": "Bearer wrong"}),
        env.client.post("/webhooks/meta", data=b"{}", headers=meta_headers(b"{}", "x")),
    ]
    text = " ".join(a.get_data(as_text=True) for a in answers) + caplog.text
    for secret in (GENERIC_SECRET, ADMIN_TOKEN, META_SECRET):
        assert secret not in text
    assert "ann@example.com" not in caplog.text  # nor lead data


def test_no_static_files_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "notes.txt").write_text("private")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        intake = Intake(store).start()
        client = create_app(make_config(url), store, intake=intake).test_client()
        answer = client.get("/static/notes.txt")
        assert answer.status_code == 404 and b"private" not in answer.data
        assert not any(
            r.rule.startswith("/static") for r in client.application.url_map.iter_rules()
        )
        intake.close()
