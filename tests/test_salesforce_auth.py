"""The four login flows, re-login on expiry, and secrets kept out of messages."""

from __future__ import annotations

import random
from collections.abc import Iterator

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.http import AuthError, ServerError
from adapters.salesforce import build_client
from adapters.salesforce.auth import Credentials, SalesforceAuth
from connector.config import ConfigError
from tests.test_salesforce_fake import INSTANCE, SECRET, fake_orgs, fixture, sf_config


@pytest.fixture
def fake() -> Iterator:
    with fake_orgs() as make:
        yield make


def client(config):
    return build_client(config, sleep=lambda _s: None, rng=random.Random(1))


def test_client_credentials_post_basic_auth_to_my_domain(fake) -> None:
    org = fake()
    sf = client(sf_config())
    assert sf.limits()["DailyApiRequests"]["Max"] == org.usage_limit
    (login,) = org.logins
    assert login["url"] == f"{INSTANCE}/services/oauth2/token"
    assert login["grant_type"] == "client_credentials"
    assert login["basic"] == f"3MVG9-client-id:{SECRET}"
    assert org.requests[0].headers["Authorization"] == "Bearer 00Dxx0000001gPL!token-1"
    assert org.requests[0].path == "/services/data/v62.0/limits/"


def test_password_flow_appends_the_security_token_and_learns_the_instance(fake) -> None:
    org = fake()
    config = sf_config(auth="password", instance_url="", login_url="https://test.salesforce.com")
    sf = client(config)
    sf.limits()
    (login,) = org.logins
    assert login["url"] == "https://test.salesforce.com/services/oauth2/token"
    assert login["grant_type"] == "password"
    assert login["form"]["password"] == f"pw-{SECRET}tok{SECRET}"
    assert login["form"]["username"] == "integration@acme.example"
    assert login["form"]["client_id"] == "3MVG9-client-id"
    assert sf.auth.instance_url == INSTANCE  # from the token response


def test_jwt_bearer_signs_an_assertion_with_the_private_key(fake, tmp_path) -> None:
    org = fake()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "server.key"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sf = client(sf_config(auth="jwt", jwt_private_key_file=str(pem)))
    sf.limits()
    (login,) = org.logins
    assert login["url"] == "https://login.salesforce.com/services/oauth2/token"
    assert login["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        login["form"]["assertion"],
        key.public_key(),
        algorithms=["RS256"],
        audience="https://login.salesforce.com",
    )
    assert claims["iss"] == "3MVG9-client-id" and claims["sub"] == "integration@acme.example"


def test_an_existing_session_is_used_as_is_and_cannot_be_renewed(fake) -> None:
    org = fake()
    sf = client(sf_config(auth="session"))
    with pytest.raises(AuthError) as failure:
        sf.limits()  # the fake never issued that session: 401 INVALID_SESSION_ID
    assert org.logins == []
    assert org.requests[0].headers["Authorization"] == f"Bearer 00Dxx!session-{SECRET}"
    message = str(failure.value)
    assert "session_id_env" in message and "cannot be renewed" in message
    assert SECRET not in message


def test_expired_session_logs_in_again_once_per_request(fake) -> None:
    org = fake()
    sf = client(sf_config())
    sf.limits()
    org.expire_session()
    sf.limits()
    assert len(org.logins) == 2
    assert [r.headers["Authorization"][-7:] for r in org.requests] == [
        "token-1",
        "token-1",
        "token-2",
    ]
    assert sf.auth.logins == 2


def test_refused_login_says_why_without_the_secret(fake, caplog) -> None:
    org = fake()
    org.login_error = fixture("token_error.json")
    with pytest.raises(AuthError) as failure:
        client(sf_config()).limits()
    assert "invalid_client: invalid client credentials" in str(failure.value)
    assert SECRET not in str(failure.value) and SECRET not in caplog.text


@responses.activate
def test_login_retries_a_server_error_then_succeeds() -> None:
    token_url = "https://acme.sfcrmproducts.cn/services/oauth2/token"
    responses.post(token_url, status=503, body="<html>Service Unavailable</html>")
    success = fixture("token_success.json")
    responses.post(token_url, json={**success, "access_token": "00D!tok"})
    slept: list[float] = []
    auth = SalesforceAuth(
        Credentials(
            auth="client_credentials",
            instance_url="https://acme.sfcrmproducts.cn",
            client_id="id",
            client_secret=SECRET,
        ),
        sleep=slept.append,
    )
    assert auth.headers() == {"Authorization": "Bearer 00D!tok"}
    assert len(slept) == 1 and auth.logins == 1 and len(responses.calls) == 2


@responses.activate
def test_a_server_error_that_persists_is_a_server_error_without_its_body() -> None:
    responses.post(
        "https://login.example-proxy.test/services/oauth2/token",
        status=502,
        body=f"<html>echo: client_secret={SECRET}</html>",
    )
    slept: list[float] = []
    auth = SalesforceAuth(
        Credentials(
            auth="password",
            login_url="https://login.example-proxy.test",
            client_id="id",
            client_secret=SECRET,
        ),
        sleep=slept.append,
    )
    with pytest.raises(ServerError) as failure:
        auth.headers()
    assert "login (password)" in str(failure.value) and "502" in str(failure.value)
    assert SECRET not in str(failure.value) and len(slept) == 2


@pytest.mark.parametrize(
    "login_url",
    [
        "https://login.salesforce.com",
        "https://acme.my.sfcrmproducts.cn",
        "https://sso.example.com/salesforce",
        "http://localhost:8080",
    ],
)
def test_any_https_login_host_is_used_as_configured(login_url) -> None:
    request = SalesforceAuth(
        Credentials(auth="password", login_url=login_url + "/", client_id="id")
    ).token_request()
    assert request.url == f"{login_url}/services/oauth2/token"
    assert request.key == "salesforce.login_url"


def test_client_credentials_needs_my_domain_not_a_shared_login_host() -> None:
    for instance_url in ("https://login.salesforce.com", "https://test.salesforce.com/"):
        with pytest.raises(ConfigError, match="My Domain") as failure:
            SalesforceAuth(
                Credentials(auth="client_credentials", instance_url=instance_url)
            ).headers()
        assert failure.value.key == "salesforce.instance_url"
    # a proxy in front of the org is the org's URL as far as the connector can tell
    request = SalesforceAuth(
        Credentials(
            auth="client_credentials",
            login_url="https://login.salesforce.com",
            instance_url="https://proxy.example.com",
        )
    ).token_request()
    assert request.url == "https://proxy.example.com/services/oauth2/token"


def test_an_unreadable_or_wrong_private_key_is_a_config_error(tmp_path) -> None:
    missing = Credentials(auth="jwt", private_key_file=str(tmp_path / "none.key"))
    with pytest.raises(ConfigError, match="cannot read") as failure:
        SalesforceAuth(missing).headers()
    assert failure.value.key == "salesforce.jwt_private_key_file"
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="RSA private key") as failure:
        SalesforceAuth(Credentials(auth="jwt", private_key_file=str(garbage))).headers()
    assert "not a key" not in str(failure.value)


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials.from_config(sf_config(auth="password"))
    assert creds.client_secret == SECRET
    assert SECRET not in repr(creds) and SECRET not in repr(SalesforceAuth(creds))
