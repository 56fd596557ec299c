"""Logging in to Salesforce, and logging in again when the session expires.

Each flow of ``salesforce.auth`` (DESIGN section 9) is one form POST to the OAuth token
endpoint ``<base>/services/oauth2/token``, where ``<base>`` is the configured URL exactly as
written, path included. It is never rebuilt from a domain: Salesforce on Alibaba Cloud
(``*.sfcrmproducts.cn``), a corporate reverse proxy and a test server all serve the endpoint
somewhere other than ``*.salesforce.com`` (simple-salesforce's ``SalesforceLogin`` can only
build ``https://{domain}.salesforce.com``, which is why the requests are made here).

- ``client_credentials``: ``grant_type=client_credentials`` with the connected app's key and
  secret as HTTP Basic, posted to the org's **My Domain**, ``instance_url``
  (``login``/``test.salesforce.com`` refuse this flow);
- ``password``: the OAuth username-password flow on ``login_url``: ``grant_type=password``,
  ``client_id``, ``client_secret``, ``username`` and ``password`` with the user's security
  token appended, as Salesforce wants it;
- ``jwt``: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` on ``login_url`` with an
  RS256 ``assertion`` signed by the connected app's private key (``iss`` client id, ``sub``
  username, ``aud`` the login host, ``exp`` three minutes on); no secret is sent;
- ``session``: an existing session id; nothing to log in with, so an expired session is an
  error that says what to do.

Credentials go only to an ``https://`` URL, or to plain ``http://`` on localhost/127.0.0.1
for a test server.

:class:`SalesforceAuth` is the :class:`adapters.http.Auth` the REST client uses: its
``refresh()`` logs in again on the same URL, which the shared HTTP behaviour calls once when a
request comes back ``401 INVALID_SESSION_ID`` mid-run, then repeats the request.

Secrets never leave this module except in the login request itself: the credentials' repr
hides them, errors carry Salesforce's error code and message only (with any secret value
masked), and log lines name the flow and the URL, never a token.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from adapters.http import AuthError, ServerError, TransportError
from connector.config import Config, ConfigError

log = logging.getLogger(__name__)

SERVICE = "Salesforce"
TOKEN_PATH = "/services/oauth2/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce refuses an assertion whose exp is more than three minutes away.
_JWT_LIFETIME = 180
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
# Salesforce's shared login hosts: no org lives there, so client credentials cannot work on
# them, and a JWT names them (not a path on them) as its audience.
_SHARED_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
_SHOWN = 300


@dataclass(frozen=True)
class Credentials:
    """What one ``salesforce.auth`` flow needs; secrets are left out of ``repr``."""

    auth: str
    login_url: str = "https://login.salesforce.com"
    instance_url: str = ""
    api_version: str = "62.0"
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    security_token: str = field(default="", repr=False)
    private_key_file: str = ""
    session_id: str = field(default="", repr=False)

    @classmethod
    def from_config(cls, config: Config) -> Credentials:
        """Read the secrets the configured flow needs (only those: DESIGN section 9)."""
        section = config.salesforce

        def secret(name: str) -> str:
            return config.secret("salesforce", name)

        values: dict[str, Any] = {
            "auth": section.auth,
            "login_url": section.login_url,
            "instance_url": section.instance_url,
            "api_version": section.api_version,
            "private_key_file": section.jwt_private_key_file,
        }
        for key in section.secret_keys():  # e.g. "client_secret_env"
            name = key.removesuffix("_env")
            values[name] = secret(name)
        return cls(**values)

    def secrets(self) -> list[str]:
        """Every secret value, longest first (so a password is masked before its prefix)."""
        values = {
            self.client_secret,
            self.password,
            self.security_token,
            self.password + self.security_token,
            self.session_id,
        }
        return sorted((v for v in values if v), key=len, reverse=True)


def _shown(url: str) -> str:
    """``url`` for a message: scheme, host, port and path only (no user info, no query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def token_base(url: str, key: str) -> str:
    """``url`` as the base of the token endpoint: as configured, without a trailing slash.

    Refused unless it is ``https://``, or plain ``http://`` on the local machine (a test
    server): anything else would send the secrets in the clear.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # a bad port raises here rather than in the middle of a login
    except ValueError:
        raise ConfigError(f"expected an https:// URL, got {_shown(url)!r}", key=key) from None
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host in _LOOPBACK:
        return url.rstrip("/")
    if parts.scheme == "http" and host:
        raise ConfigError(
            f"{_shown(url)!r} would send the credentials unencrypted: use https:// (plain "
            "http is only for a test server on localhost or 127.0.0.1)",
            key=key,
        )
    raise ConfigError(f"expected an https:// URL, got {_shown(url)!r}", key=key)


def jwt_audience(login_base: str) -> str:
    """The ``aud`` of a JWT bearer assertion: the login host it is posted to.

    ``https://login.salesforce.com`` or ``https://test.salesforce.com`` for the shared hosts,
    else the configured ``login_url`` itself (a My Domain, an Experience Cloud site, an
    org outside salesforce.com).
    """
    host = (urlsplit(login_base).hostname or "").lower()
    return f"https://{host}" if host in _SHARED_LOGIN_HOSTS else login_base


@dataclass(frozen=True)
class TokenRequest:
    """One login: where it goes, which setting named that place, and what is posted."""

    url: str
    key: str
    form: dict[str, str] = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)


# What to check when Salesforce answers invalid_grant, by flow: the error is the same for a
# wrong password, an unapproved user and a bad signature, so the hint has to be per flow.
_GRANT_HINTS: Mapping[str, str] = {
    "client_credentials": (
        "check that the connected app enables the client credentials flow with a 'Run As' "
        "user, and that salesforce.instance_url is the org's My Domain"
    ),
    "password": (
        "check the user's username, password and security token (the variables named by "
        "salesforce.username_env, password_env and security_token_env), that the user may "
        "log in from this IP, and that the org allows the OAuth username-password flow"
    ),
    "jwt": (
        "check that the user is pre-authorized for the connected app (admin-approved users), "
        "that its certificate matches salesforce.jwt_private_key_file, and that "
        "salesforce.login_url is the host the org logs in on (it is the JWT's audience)"
    ),
}
_CLIENT_HINT = (
    "check the connected app's consumer key and secret (the variables named by "
    "salesforce.client_id_env and client_secret_env) and that the app allows this flow"
)
_DEFAULT_HINT = "check the connected app, the API user and the salesforce.* settings"


class SalesforceAuth:
    """Bearer headers for the REST client; logs in lazily and again on ``refresh()``."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 3,
    ) -> None:
        self.credentials = credentials
        self.timeout = (min(10.0, timeout), timeout)
        self.sleep = sleep
        self.attempts = max(1, attempts)
        self._token: str | None = None
        self._instance_url = credentials.instance_url.rstrip("/")
        self._lock = threading.Lock()
        self.logins = 0
        if credentials.auth == "session":
            self._token = credentials.session_id
            if not self._instance_url:
                raise ConfigError(
                    "auth = 'session' needs instance_url", key="salesforce.instance_url"
                )

    def __repr__(self) -> str:
        return f"SalesforceAuth({self.credentials!r}, logged_in={self._token is not None})"

    # ----- the adapters.http.Auth protocol ------------------------------------------------

    def headers(self) -> Mapping[str, str]:
        with self._lock:
            if self._token is None:
                self._login()
            return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> None:
        with self._lock:
            if self.credentials.auth == "session":
                raise AuthError(
                    f"{SERVICE}: the session id (salesforce.session_id_env) expired or is "
                    "invalid, and a session cannot be renewed by itself: set a fresh one, or "
                    "use auth = 'client_credentials', 'password' or 'jwt'",
                    service=SERVICE,
                    status=401,
                )
            log.info("%s: session expired; logging in again (%s)", SERVICE, self.credentials.auth)
            self._login()

    # ----- logging in ---------------------------------------------------------------------

    def ensure_instance_url(self) -> str:
        """The REST base: ``salesforce.instance_url`` when set (sandboxes, proxies, tests),
        else the instance the login answered with."""
        with self._lock:
            if not self._instance_url:
                self._login()
            return self._instance_url

    @property
    def instance_url(self) -> str:
        return self._instance_url

    def token_request(self) -> TokenRequest:
        """The login request of the configured flow (the JWT is signed afresh each time)."""
        c = self.credentials
        if c.auth == "client_credentials":
            # an org's own host; without instance_url, login_url may be the My Domain
            source, key = (
                (c.instance_url, "salesforce.instance_url")
                if c.instance_url
                else (c.login_url, "salesforce.login_url")
            )
            base = token_base(source, key)
            if (urlsplit(base).hostname or "").lower() in _SHARED_LOGIN_HOSTS:
                raise ConfigError(
                    "auth = 'client_credentials' logs in on your My Domain; set instance_url "
                    "to it (https://acme.my.salesforce.com)",
                    key="salesforce.instance_url",
                )
            basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
            return TokenRequest(
                base + TOKEN_PATH,
                key,
                {"grant_type": "client_credentials"},
                {"Authorization": f"Basic {basic}"},
            )
        if c.auth not in ("password", "jwt"):
            raise ConfigError(f"unknown auth {c.auth!r}", key="salesforce.auth")
        base = token_base(c.login_url, "salesforce.login_url")
        if c.auth == "password":
            form = {
                "grant_type": "password",
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "username": c.username,
                "password": c.password + (c.security_token or ""),
            }
            return TokenRequest(base + TOKEN_PATH, "salesforce.login_url", form)
        form = {"grant_type": JWT_BEARER, "assertion": self._assertion(jwt_audience(base))}
        return TokenRequest(base + TOKEN_PATH, "salesforce.login_url", form)

    def _assertion(self, audience: str) -> str:
        c = self.credentials
        key_file = "salesforce.jwt_private_key_file"
        try:
            key = Path(c.private_key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the private key: {exc.strerror or exc}", key=key_file
            ) from None
        claims = {
            "iss": c.client_id,
            "sub": c.username,
            "aud": audience,
            "exp": int(time.time()) + _JWT_LIFETIME,
        }
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            # the library's message may quote the key material: say what it should be instead
            raise ConfigError(
                "the private key is not an RSA private key in PEM form", key=key_file
            ) from None

    def _mask(self, text: str) -> str:
        for secret in self.credentials.secrets():
            text = text.replace(secret, "***")
        return text

    def _login(self) -> None:
        """Log in (retrying network failures and 5xx); caller holds the lock."""
        request = self.token_request()
        flow = self.credentials.auth
        where = _shown(request.url)
        with requests.Session() as session:
            session.headers.update(
                {"User-Agent": "crm-roi-connector/0.1", "Accept": "application/json"}
            )
            for attempt in range(1, self.attempts + 1):
                try:
                    # A dict goes out as application/x-www-form-urlencoded, as the endpoint
                    # wants. Redirects are not followed: the secrets go to the configured URL
                    # or nowhere (a redirect to a sign-in page is reported instead).
                    response = session.post(
                        request.url,
                        data=request.form,
                        headers=request.headers,
                        timeout=self.timeout,
                        allow_redirects=False,
                    )
                except requests.exceptions.SSLError:
                    raise TransportError(
                        f"{SERVICE}: login ({flow}) at {where}: the TLS certificate was not "
                        "trusted; behind a proxy that re-signs TLS, point REQUESTS_CA_BUNDLE "
                        f"at its CA certificate (else check {request.key})",
                        service=SERVICE,
                    ) from None
                except (requests.ConnectionError, requests.Timeout) as exc:
                    if attempt < self.attempts:
                        self._wait(attempt, f"{where}: {type(exc).__name__}")
                        continue
                    raise TransportError(
                        f"{SERVICE}: login ({flow}) at {where} failed after {attempt} "
                        f"attempts: {type(exc).__name__} (check the network and {request.key})",
                        service=SERVICE,
                    ) from None
                if response.status_code >= 500 and attempt < self.attempts:
                    self._wait(attempt, f"{where} -> {response.status_code}")
                    continue
                break
        token, instance = self._read_answer(response, request)
        self.logins += 1
        self._token = token
        if not self.credentials.instance_url:
            self._instance_url = token_base(instance, "salesforce.instance_url")
        log.info("%s: logged in (%s) to %s", SERVICE, flow, self._instance_url)

    def _wait(self, attempt: int, why: str) -> None:
        delay = 2.0**attempt
        log.warning(
            "%s: login (%s) at %s; retrying in %.0f s", SERVICE, self.credentials.auth, why, delay
        )
        self.sleep(delay)

    def _read_answer(self, response: requests.Response, request: TokenRequest) -> tuple[str, str]:
        """``(access_token, instance_url)`` from a token answer, or the error that says why."""
        flow = self.credentials.auth
        where = _shown(request.url)
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        token = body.get("access_token")
        if status == 200 and isinstance(token, str) and token:
            instance = body.get("instance_url")
            if not self.credentials.instance_url and not (isinstance(instance, str) and instance):
                raise AuthError(
                    f"{SERVICE}: login ({flow}) at {where} answered without an instance_url; "
                    "set salesforce.instance_url to the org's URL",
                    service=SERVICE,
                    status=status,
                )
            return token, str(instance or "")
        error = body.get("error")
        if isinstance(error, str) and error:
            description = " ".join(str(body.get("error_description") or "").split())
            if error == "invalid_grant":
                hint = _GRANT_HINTS.get(flow, _DEFAULT_HINT)
            elif error in ("invalid_client", "invalid_client_id", "unauthorized_client"):
                hint = _CLIENT_HINT
            else:
                hint = _DEFAULT_HINT
            detail = self._mask(f"{error}: {description}".rstrip(": "))[:_SHOWN]
            raise AuthError(
                f"{SERVICE}: login ({flow}) at {where} was refused: {detail}; {hint}",
                service=SERVICE,
                status=status,
                code=self._mask(error)[:_SHOWN],
            )
        # Not an OAuth answer (an HTML error page, a redirect to a sign-in page): its body
        # is not shown, since a misbehaving proxy may echo the posted form back.
        if status >= 500:
            raise ServerError(
                f"{SERVICE}: login ({flow}) at {where} failed with {status} after "
                f"{self.attempts} attempts",
                service=SERVICE,
                status=status,
            )
        raise AuthError(
            f"{SERVICE}: login ({flow}) at {where} answered {status} without a token; check "
            f"that {request.key} is the org's Salesforce URL (the token endpoint is "
            f"<url>{TOKEN_PATH})",
            service=SERVICE,
            status=status,
        )
