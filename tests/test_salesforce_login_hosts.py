"""Logging in on any host the config names (issue 14), against a real local HTTPS server.

Salesforce on Alibaba Cloud (``*.sfcrmproducts.cn``), a corporate reverse proxy and a test
server all put the token endpoint somewhere other than ``*.salesforce.com``. Each test here
points ``salesforce.login_url`` / ``salesforce.instance_url`` at a server on 127.0.0.1 (a
self-signed certificate trusted through ``REQUESTS_CA_BUNDLE``, as a proxy's CA would be)
and checks the exact request its token endpoint receives, then that REST calls use the
token it issued.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.http import AuthError, TransportError
from adapters.salesforce import build_client
from adapters.salesforce.auth import Credentials, SalesforceAuth
from adapters.salesforce.client import SalesforceClient
from connector.config import ConfigError
from tests.test_salesforce_fake import API, FIXTURES, SECRET, sf_config

TOKEN_PATH = "/services/oauth2/token"
QUERY_PATH = f"/services/data/v{API}/query/"
CLIENT_ID = "3MVG9-client-id"
USERNAME = "integration@acme.example"
# never resolves (RFC 6761): a login that wrongly went to the default host fails fast
UNUSED = "https://login.invalid"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    query: dict[str, list[str]]


@dataclass
class OrgServer:
    """A Salesforce stand-in: the OAuth token endpoint plus ``query``, on one local host.

    ``prefix`` is where the token endpoint lives (a reverse proxy may add a path);
    ``login_error`` makes the token endpoint refuse with that OAuth error body.
    """

    base: str = ""
    prefix: str = ""
    seen: list[Seen] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    issued: int = 0
    login_error: dict[str, str] | None = None

    def expire_sessions(self) -> None:
        self.tokens.clear()

    @property
    def logins(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith(TOKEN_PATH)]

    def answer(self, seen: Seen) -> tuple[int, Any]:
        self.seen.append(seen)
        if seen.method == "POST" and seen.path == self.prefix + TOKEN_PATH:
            if self.login_error is not None:
                return 400, self.login_error
            self.issued += 1
            body = json.loads((FIXTURES / "token_success.json").read_text(encoding="utf-8"))
            body["access_token"] = f"00Dxx0000001gPL!token-{self.issued}"
            body["instance_url"] = self.base
            self.tokens.add(body["access_token"])
            return 200, body
        bearer = seen.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            return 401, json.loads(
                (FIXTURES / "error_invalid_session.json").read_text(encoding="utf-8")
            )
        if seen.method == "GET" and seen.path == QUERY_PATH:
            return 200, {"totalSize": 1, "done": True, "records": [{"Id": "701xx0000001AAA"}]}
        return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]


def _handler(org: OrgServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            status, body = org.answer(
                Seen(
                    self.command,
                    parts.path,
                    dict(self.headers.items()),
                    parse_qs(raw, keep_blank_values=True),
                    parse_qs(parts.query),
                )
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest's output to the assertions

    return Handler


def _serve(org: OrgServer, tls: ssl.SSLContext | None) -> Iterator[OrgServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(org))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    org.base = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield org
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def org(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[OrgServer]:
    """An HTTPS org on 127.0.0.1 whose certificate ``requests`` trusts (REQUESTS_CA_BUNDLE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    yield from _serve(OrgServer(), context)


@pytest.fixture
def plain_org() -> Iterator[OrgServer]:
    yield from _serve(OrgServer(), None)


def client(config) -> SalesforceClient:
    return build_client(config, sleep=lambda _s: None, rng=random.Random(1))


def assert_form_post(seen: Seen, form: dict[str, str]) -> None:
    """A form POST carrying exactly ``form`` (each field once)."""
    assert seen.method == "POST"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.form == {k: [v] for k, v in form.items()}


def query_ok(sf: SalesforceClient) -> None:
    assert sf.query("SELECT Id FROM Campaign") == [{"Id": "701xx0000001AAA"}]


# ----- the four flows on a host that is not *.salesforce.com ------------------------------


def test_client_credentials_posts_basic_auth_to_the_configured_instance(org) -> None:
    sf = client(sf_config(instance_url=org.base, login_url=UNUSED))
    query_ok(sf)
    login, query = org.seen
    assert login.path == TOKEN_PATH
    assert_form_post(login, {"grant_type": "client_credentials"})
    basic = login.headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(basic).decode() == f"{CLIENT_ID}:{SECRET}"
    assert query.path == QUERY_PATH
    assert query.headers["Authorization"] == "Bearer 00Dxx0000001gPL!token-1"


def test_password_flow_posts_to_login_url_with_its_path_and_learns_the_instance(org) -> None:
    org.prefix = "/proxy/salesforce"  # a reverse proxy that serves Salesforce under a path
    sf = client(sf_config(auth="password", instance_url="", login_url=org.base + org.prefix))
    query_ok(sf)
    login, query = org.seen
    assert login.path == "/proxy/salesforce" + TOKEN_PATH
    assert_form_post(
        login,
        {
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "username": USERNAME,
            # Salesforce wants the security token appended to the password
            "password": f"pw-{SECRET}tok{SECRET}",
        },
    )
    assert "Authorization" not in login.headers
    assert sf.auth.instance_url == org.base  # from the token response's instance_url
    assert query.path == QUERY_PATH


def test_jwt_bearer_assertion_names_the_configured_login_host_as_audience(org, tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "server.key"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = sf_config(
        auth="jwt", instance_url="", login_url=org.base, jwt_private_key_file=str(pem)
    )
    sf = client(config)
    query_ok(sf)
    login, _query = org.seen
    assert login.path == TOKEN_PATH
    assertion = login.form["assertion"][0]
    assert_form_post(
        login,
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert jwt.get_unverified_header(assertion)["alg"] == "RS256"
    claims = jwt.decode(assertion, key.public_key(), algorithms=["RS256"], audience=org.base)
    assert set(claims) == {"iss", "sub", "aud", "exp"}
    assert claims["iss"] == CLIENT_ID and claims["sub"] == USERNAME
    assert claims["aud"] == org.base
    assert 0 < claims["exp"] - time.time() <= 300  # Salesforce allows a few minutes at most


def test_an_existing_session_is_sent_to_the_configured_instance_and_never_renewed(org) -> None:
    org.tokens.add(f"00Dxx!session-{SECRET}")
    sf = client(sf_config(auth="session", instance_url=org.base, login_url=UNUSED))
    query_ok(sf)
    org.expire_sessions()
    with pytest.raises(AuthError) as failure:
        query_ok(sf)
    assert org.logins == []
    assert [s.path for s in org.seen] == [QUERY_PATH, QUERY_PATH]
    message = str(failure.value)
    assert "session_id_env" in message and "cannot be renewed" in message
    assert SECRET not in message


# ----- mid-run expiry, refusals, transport -------------------------------------------------


@pytest.mark.parametrize("auth", ["client_credentials", "password"])
def test_invalid_session_mid_run_logs_in_again_on_the_same_host(org, auth) -> None:
    sf = client(sf_config(auth=auth, instance_url=org.base, login_url=org.base))
    query_ok(sf)
    org.expire_sessions()  # Salesforce ended the session (timeout, admin, password change)
    query_ok(sf)
    assert [(s.method, s.path) for s in org.seen] == [
        ("POST", TOKEN_PATH),
        ("GET", QUERY_PATH),
        ("GET", QUERY_PATH),  # 401 INVALID_SESSION_ID
        ("POST", TOKEN_PATH),
        ("GET", QUERY_PATH),
    ]
    assert org.seen[1].headers["Authorization"].endswith("token-1")
    assert org.seen[2].headers["Authorization"].endswith("token-1")
    assert org.seen[4].headers["Authorization"].endswith("token-2")
    assert org.seen[0].form == org.seen[3].form and sf.auth.logins == 2


def test_a_refused_login_names_the_flow_and_what_to_do_without_secrets(org, caplog) -> None:
    org.login_error = {"error": "invalid_grant", "error_description": "authentication failure"}
    sf = client(sf_config(auth="password", instance_url="", login_url=org.base))
    with pytest.raises(AuthError) as failure:
        sf.query("SELECT Id FROM Campaign")
    message = str(failure.value)
    assert "login (password)" in message
    assert "invalid_grant: authentication failure" in message
    assert "security token" in message  # what to check for this flow
    assert failure.value.code == "invalid_grant" and failure.value.status == 400
    assert len(org.logins) == 1  # a refusal is final: no retry
    assert SECRET not in message and SECRET not in caplog.text


def test_an_unreachable_login_host_is_a_transport_error_after_retries() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slept: list[float] = []
    auth = SalesforceAuth(
        Credentials(
            auth="client_credentials",
            instance_url=f"https://127.0.0.1:{port}",
            client_id=CLIENT_ID,
            client_secret=SECRET,
        ),
        sleep=slept.append,
        attempts=3,
    )
    with pytest.raises(TransportError) as failure:
        auth.headers()
    assert "client_credentials" in str(failure.value) and len(slept) == 2
    assert SECRET not in str(failure.value)


def test_an_untrusted_certificate_says_how_to_trust_a_proxy(certificate, monkeypatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    for org in _serve(OrgServer(), context):
        slept: list[float] = []
        auth = SalesforceAuth(
            Credentials(auth="password", login_url=org.base, client_id=CLIENT_ID),
            sleep=slept.append,
        )
        with pytest.raises(TransportError, match="REQUESTS_CA_BUNDLE"):
            auth.headers()
        assert slept == []  # a certificate does not get better by waiting
        assert org.seen == []


# ----- which URLs are accepted ---------------------------------------------------------------


def test_plain_http_is_allowed_for_a_local_test_server(plain_org) -> None:
    sf = client(sf_config(auth="password", instance_url="", login_url=plain_org.base))
    query_ok(sf)
    assert [s.path for s in plain_org.seen] == [TOKEN_PATH, QUERY_PATH]


@pytest.mark.parametrize(
    ("auth", "settings", "key"),
    [
        ("password", {"login_url": "http://login.example-proxy.test"}, "salesforce.login_url"),
        ("jwt", {"login_url": "http://10.0.0.7:8080"}, "salesforce.login_url"),
        (
            "client_credentials",
            {"instance_url": "http://acme.sfcrmproducts.cn"},
            "salesforce.instance_url",
        ),
    ],
)
def test_plain_http_elsewhere_is_refused_before_any_secret_is_sent(auth, settings, key) -> None:
    auth_ = SalesforceAuth(
        Credentials(auth=auth, client_id=CLIENT_ID, client_secret=SECRET, **settings)
    )
    with pytest.raises(ConfigError, match="unencrypted") as failure:
        auth_.headers()
    assert failure.value.key == key and "https://" in str(failure.value)
