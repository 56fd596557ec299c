"""Per-provider verification against the golden values of the documented examples."""

from __future__ import annotations

import hmac

import pytest

from tests.test_webhooks_support import fixture_bytes
from webhooks import verify
from webhooks.providers import generic, google_ads, hubspot, linkedin, meta
from webhooks.verify import Rejected

META_GOLDEN = "sha256=eee2eb993bc85979bc15c206465ca245344f22ae0a277b327bcec5f1fc3cb44a"
LI_CHALLENGE = "890e4665-4dfe-4ab1-b689-ed553bceeed0"
LI_CHALLENGE_GOLDEN = "3ceda89cb18cf5471b844e08c4b771bcab6f5bec8ab1b0837ca04ab05c909d8c"
LI_GOLDEN = "2b8ac9c59c2183cfdb8ff95bb1fa296de26ba6cd9fbf30045b2a832883ca42ca"
HS_GOLDEN = "7JMAUMimzpinovZ21bSLbfO3lKAtQzyB0X7UyzkGRwY="
HS_URI = "https://example.com/webhooks/hubspot"


def test_meta_golden_signature() -> None:
    body = fixture_bytes("meta/webhook_leadgen_golden.json")
    assert meta.meta_signature("app_secret_123", body) == META_GOLDEN
    meta.check_meta("app_secret_123", body, META_GOLDEN)
    meta.check_meta("app_secret_123", body, META_GOLDEN.upper().replace("SHA256", "sha256"))
    with pytest.raises(Rejected) as wrong:
        meta.check_meta("app_secret_124", body, META_GOLDEN)
    assert wrong.value.status == 403
    with pytest.raises(Rejected) as missing:
        meta.check_meta("app_secret_123", body, None)
    assert missing.value.status == 401
    with pytest.raises(Rejected):  # one byte more: the signature no longer holds
        meta.check_meta("app_secret_123", body + b" ", META_GOLDEN)


def test_meta_verify_token() -> None:
    meta.check_meta_verify_token("meatyhamhock", "subscribe", "meatyhamhock")
    for mode, token in [
        ("subscribe", "meatyhamhocks"),
        ("unsubscribe", "meatyhamhock"),
        ("subscribe", None),
    ]:
        with pytest.raises(Rejected) as exc:
            meta.check_meta_verify_token("meatyhamhock", mode, token)
        assert exc.value.status == 403


def test_linkedin_golden_challenge_and_signature() -> None:
    assert (
        linkedin.linkedin_challenge_response("li_client_secret", LI_CHALLENGE)
        == LI_CHALLENGE_GOLDEN
    )
    body = fixture_bytes("linkedin/webhook_lead_notification.json")
    assert linkedin.linkedin_signature("li_client_secret", body) == LI_GOLDEN
    linkedin.check_linkedin("li_client_secret", body, LI_GOLDEN)
    with pytest.raises(Rejected) as exc:
        linkedin.check_linkedin("li_client_secret", body, LI_GOLDEN[:-1] + "0")
    assert exc.value.status == 403


def test_hubspot_golden_v3_and_timestamp_window() -> None:
    body = fixture_bytes("hubspot/webhook_events_golden.json")
    assert (
        hubspot.hubspot_v3_signature("client_secret_123", "POST", HS_URI, body, "1700000000000")
        == HS_GOLDEN
    )
    args = dict(
        method="POST", uri=HS_URI, body=body, signature=HS_GOLDEN, timestamp="1700000000000"
    )
    hubspot.check_hubspot_v3("client_secret_123", now=1_700_000_100.0, **args)
    # a captured request replayed six minutes later is refused, however valid its signature
    with pytest.raises(Rejected) as late:
        hubspot.check_hubspot_v3("client_secret_123", now=1_700_000_360.0, **args)
    assert late.value.status == 401 and "window" in late.value.reason
    with pytest.raises(Rejected) as future:
        hubspot.check_hubspot_v3("client_secret_123", now=1_699_999_600.0, **args)
    assert future.value.status == 401
    with pytest.raises(Rejected) as other_uri:
        hubspot.check_hubspot_v3(
            "client_secret_123", now=1_700_000_000.0, **{**args, "uri": HS_URI + "?x=1"}
        )
    assert other_uri.value.status == 403
    with pytest.raises(Rejected) as bad_stamp:
        hubspot.check_hubspot_v3("client_secret_123", now=1.0, **{**args, "timestamp": "12a"})
    assert bad_stamp.value.status == 401


def test_hubspot_uri_escapes_as_documented() -> None:
    assert hubspot.hubspot_uri_forms("https://x.io/a%3Ab?c=%40d") == [
        "https://x.io/a%3Ab?c=%40d",
        "https://x.io/a:b?c=@d",
    ]
    assert hubspot.hubspot_uri_forms("https://x.io/a%20b") == ["https://x.io/a%20b"]


def test_google_key_and_generic_and_bearer() -> None:
    google_ads.check_google_key("k-1", "k-1")
    for given, status in [("k-2", 403), ("", 401), (None, 401), (12, 401)]:
        with pytest.raises(Rejected) as exc:
            google_ads.check_google_key("k-1", given)
        assert exc.value.status == status
    body = b'{"email":"a@b.c"}'
    header = generic.generic_signature("s", "1700000000", body)
    generic.check_generic("s", body, header, "1700000000", now=1_700_000_100)
    generic.check_generic("s", body, header.removeprefix("sha256="), "1700000000", now=1.7e9)
    with pytest.raises(Rejected):
        generic.check_generic("s", body, "sha256=" + "0" * 64, "1700000000", now=1.7e9)
    verify.check_bearer("tok", "Bearer tok")
    for value, status in [
        (None, 401),
        ("Basic tok", 403),
        ("Bearer tok2", 403),
        ("Bearer ünï", 403),
    ]:
        with pytest.raises(Rejected) as exc:
            verify.check_bearer("tok", value)
        assert exc.value.status == status


def test_every_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(verify.hmac, "compare_digest", spy)
    body = fixture_bytes("meta/webhook_leadgen_golden.json")
    meta.check_meta("app_secret_123", body, META_GOLDEN)
    linkedin.check_linkedin(
        "li_client_secret", fixture_bytes("linkedin/webhook_lead_notification.json"), LI_GOLDEN
    )
    google_ads.check_google_key("k", "k")
    generic.check_generic("s", b"x", generic.generic_signature("s", "1", b"x"), "1", now=1)
    verify.check_bearer("t", "Bearer t")
    meta.check_meta_verify_token("v", "subscribe", "v")
    hubspot.check_hubspot_v3(
        "client_secret_123",
        method="POST",
        uri=HS_URI,
        body=fixture_bytes("hubspot/webhook_events_golden.json"),
        signature=HS_GOLDEN,
        timestamp="1700000000000",
        now=1_700_000_000.0,
    )
    assert len(calls) == 7


def test_reasons_never_carry_the_secret_or_the_signatures() -> None:
    secret = "s3cr3t-Zq7-UNIQUE"
    body = b"{}"
    expected = meta.meta_signature(secret, body)
    with pytest.raises(Rejected) as exc:
        meta.check_meta(secret, body, "sha256=" + "1" * 64)
    text = str(exc.value) + exc.value.reason
    assert secret not in text and expected not in text and "1" * 64 not in text
