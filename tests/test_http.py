"""The shared HTTP behaviour, faked at the wire with `responses`."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
import responses

from adapters.http import (
    AuthError,
    ClientError,
    Decision,
    HttpClient,
    RateLimited,
    ServerError,
    TransportError,
    error_text,
    redact_url,
    retry_after_seconds,
)

BASE = "https://api.example.test"


class RecordingAuth:
    def __init__(self) -> None:
        self.token = "tok-1"
        self.refreshes = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh(self) -> None:
        self.refreshes += 1
        self.token = f"tok-{self.refreshes + 1}"


def client(**kwargs) -> tuple[HttpClient, list[float]]:
    slept: list[float] = []
    made = HttpClient("Example API", BASE, sleep=slept.append, rng=random.Random(1), **kwargs)
    return made, slept


@responses.activate
def test_retries_5xx_with_backoff_then_succeeds() -> None:
    responses.get(f"{BASE}/items", status=503, json={"message": "busy"})
    responses.get(f"{BASE}/items", status=502, body="<html>bad gateway</html>")
    responses.get(f"{BASE}/items", json={"amount": 12.10})
    http, slept = client()
    assert http.get_json("/items") == {"amount": Decimal("12.10")}
    assert len(slept) == 2 and all(0 <= s <= 2 for s in slept)
    assert http.stats.calls == 3 and http.stats.retries == 2


@responses.activate
def test_retry_after_seconds_and_http_date_are_honoured() -> None:
    responses.get(f"{BASE}/a", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/a", json={})
    http, slept = client()
    http.get_json("/a")
    assert slept == [7.0]
    assert (
        retry_after_seconds(
            "Wed, 21 Oct 2015 07:28:00 GMT", now=datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
        )
        == 30.0
    )
    assert retry_after_seconds("soon") is None


@responses.activate
def test_a_wait_longer_than_max_wait_stops_with_rate_limited() -> None:
    responses.get(
        f"{BASE}/a", status=429, headers={"Retry-After": "3600"}, json={"message": "daily quota"}
    )
    http, slept = client(max_wait=60)
    with pytest.raises(RateLimited) as info:
        http.get_json("/a")
    assert info.value.retry_after == 3600 and slept == []
    assert "retry after 3600 s" in str(info.value)


@responses.activate
def test_gives_up_after_max_attempts() -> None:
    for _ in range(3):
        responses.get(f"{BASE}/a", status=500, json=[{"errorCode": "UNKNOWN", "message": "x"}])
    http, _ = client(max_attempts=3)
    with pytest.raises(ServerError, match="after 3 attempts"):
        http.get_json("/a")


@responses.activate
def test_expired_token_is_refreshed_once() -> None:
    auth = RecordingAuth()
    responses.get(f"{BASE}/a", status=401, json={"message": "expired"})
    responses.get(f"{BASE}/a", json={"ok": True})
    http, _ = client(auth=auth)
    assert http.get_json("/a") == {"ok": True}
    assert auth.refreshes == 1
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok-2"

    responses.get(f"{BASE}/b", status=401, json={"message": "nope"})
    responses.get(f"{BASE}/b", status=401, json={"message": "nope"})
    with pytest.raises(AuthError, match="credentials"):
        http.get_json("/b")


@responses.activate
def test_posts_are_not_repeated_unless_the_server_did_not_act() -> None:
    responses.post(f"{BASE}/create", status=500, json={"message": "oops"})
    http, slept = client()
    with pytest.raises(ServerError):
        http.request("POST", "/create", json_body={"a": 1})
    assert len(responses.calls) == 1 and slept == []
    responses.post(f"{BASE}/create2", status=429, json={"message": "slow down"})
    responses.post(f"{BASE}/create2", status=201, json={"id": "1"})
    assert http.request("POST", "/create2", json_body={}).status_code == 201


@responses.activate
def test_connection_errors_are_retried_then_reported_without_secrets() -> None:
    responses.get(f"{BASE}/a", body=requests.ConnectionError("refused"))
    responses.get(f"{BASE}/a", body=requests.ConnectionError("refused"))
    http, slept = client(max_attempts=2)
    with pytest.raises(TransportError) as info:
        http.get_json("/a", params={"access_token": "EAAB-secret"})
    assert len(slept) == 1
    assert "EAAB-secret" not in str(info.value)


@responses.activate
def test_classify_hook_maps_api_quirks() -> None:
    # Meta reports throttling as HTTP 400 with error code 17 in the body
    responses.get(
        f"{BASE}/insights",
        status=400,
        json={"error": {"message": "User request limit reached", "code": 17}},
    )
    responses.get(f"{BASE}/insights", json={"data": []})

    def meta(response: requests.Response) -> Decision | None:
        if response.status_code == 400 and response.json()["error"]["code"] == 17:
            return Decision.RETRY
        return None

    http, slept = client(classify=meta)
    assert http.get_json("/insights") == {"data": []}
    assert len(slept) == 1


@responses.activate
def test_client_errors_carry_the_apis_message_and_hooks_see_headers() -> None:
    seen: list[str] = []
    responses.get(
        f"{BASE}/q",
        status=400,
        headers={"Sforce-Limit-Info": "api-usage=25/15000"},
        json=[{"message": "unexpected token: FROM", "errorCode": "MALFORMED_QUERY"}],
    )
    http, _ = client(on_response=[lambda r: seen.append(r.headers["Sforce-Limit-Info"])])
    with pytest.raises(ClientError, match="MALFORMED_QUERY: unexpected token") as info:
        http.get_json("/q")
    assert info.value.status == 400 and seen == ["api-usage=25/15000"]


def test_redaction_and_error_shapes() -> None:
    url = "https://graph.example/v23.0/123?access_token=EAAB&fields=id&appsecret_proof=abc"
    assert redact_url(url) == (
        "https://graph.example/v23.0/123?access_token=***&fields=id&appsecret_proof=***"
    )

    def fake(body: object, status: int = 400) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = (
            body if isinstance(body, bytes) else __import__("json").dumps(body).encode()
        )
        return response

    assert (
        error_text(fake({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}))
        == "INVALID_ARGUMENT: bad"
    )
    assert (
        error_text(fake({"error": "invalid_grant", "error_description": "Token expired"}))
        == "invalid_grant: Token expired"
    )
    assert (
        error_text(fake({"status": 403, "message": "Not enough permissions"}))
        == "Not enough permissions"
    )
    assert error_text(fake(b"<html>   Service   Unavailable </html>")) == (
        "<html> Service Unavailable </html>"
    )


@responses.activate
def test_secret_path_is_never_shown() -> None:
    url = "https://hooks.example.test/services/T000/B000/XXXXSECRETXXXX"
    responses.post(url, status=404, body="no_service")
    http = HttpClient("Slack", "https://hooks.example.test", secret_path=True, sleep=lambda s: None)
    with pytest.raises(ClientError) as info:
        http.request("POST", url, json_body={"text": "hi"})
    assert "XXXXSECRETXXXX" not in str(info.value) and "POST ***" in str(info.value)


def test_secret_path_stays_out_of_urllib3_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    """With -vv urllib3 logs every request line; a Slack-style secret path must not be in it."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        http = HttpClient("Slack", base, secret_path=True, sleep=lambda s: None)
        plain = HttpClient("Other", base, sleep=lambda s: None)
        with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
            http.request("POST", f"{base}/services/T000/B000/XXXXSECRETXXXX", json_body={})
            plain.request("POST", f"{base}/api/open?access_token=TOKENVALUE", json_body={})
    finally:
        server.shutdown()
    assert '"POST /*** HTTP/1.1" 200' in caplog.text
    assert "XXXXSECRETXXXX" not in caplog.text and "TOKENVALUE" not in caplog.text
    assert "/api/open?access_token=" in caplog.text  # other paths stay readable
