"""Logging in to Salesforce, and logging in again when the session expires.

The four flows of ``salesforce.auth`` (DESIGN section 9) are done by simple-salesforce's
``SalesforceLogin``, which knows their wire formats:

- ``client_credentials``: a connected app's key and secret, posted with HTTP Basic to the
  org's **My Domain** token endpoint (``login.salesforce.com`` refuses this flow);
- ``password``: the OAuth username-password flow of a connected app. Salesforce wants the
  user's security token appended to the password there; simple-salesforce appends it only on
  its SOAP path, so we do it;
- ``jwt``: a JWT bearer assertion signed with the connected app's private key (no secret);
- ``session``: an existing session id; nothing to log in with, so an expired session is an
  error that says what to do.

:class:`SalesforceAuth` is the :class:`adapters.http.Auth` the REST client uses: its
``refresh()`` logs in again, which the shared HTTP behaviour calls once when a request comes
back ``401 INVALID_SESSION_ID`` mid-run, then repeats the request.

Secrets never leave this module except in the login request itself: the credentials' repr
hides them, errors carry Salesforce's error code and message only, and log lines name the
flow and the instance, never a token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin

from adapters.http import AuthError, TransportError
from connector.config import Config, ConfigError

log = logging.getLogger(__name__)

SERVICE = "Salesforce"
_SUFFIX = ".salesforce.com"


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


def salesforce_domain(url: str, key: str) -> str:
    """The ``domain`` simple-salesforce wants: the host without ``.salesforce.com``.

    simple-salesforce builds ``https://{domain}.salesforce.com`` itself, so a login host
    elsewhere cannot be used for logging in (the REST base URL can be anything).
    """
    host = (urlsplit(url).hostname or "").lower()
    if not host.endswith(_SUFFIX) or host == _SUFFIX[1:]:
        raise ConfigError(
            f"{url!r} is not a salesforce.com host; logging in needs login.salesforce.com, "
            "test.salesforce.com (sandboxes) or your My Domain (acme.my.salesforce.com)",
            key=key,
        )
    return host[: -len(_SUFFIX)]


class _TimeoutSession(requests.Session):
    """A session whose requests time out: simple-salesforce's login calls pass no timeout,
    and a login hanging forever would hang the scheduler with it."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout
        self.headers.update({"User-Agent": "crm-roi-connector/0.1"})

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any):  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


Login = Callable[..., tuple[str, str]]


class SalesforceAuth:
    """Bearer headers for the REST client; logs in lazily and again on ``refresh()``."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 3,
        login: Login = SalesforceLogin,
    ) -> None:
        self.credentials = credentials
        self.timeout = (min(10.0, timeout), timeout)
        self.sleep = sleep
        self.attempts = max(1, attempts)
        self._login_fn = login
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

    def _login_kwargs(self) -> dict[str, Any]:
        c = self.credentials
        common: dict[str, Any] = {"sf_version": c.api_version}
        if c.auth == "client_credentials":
            # this flow only works on the org's own My Domain host
            instance_host = (urlsplit(c.instance_url).hostname or "").lower()
            source, key = (
                (c.instance_url, "salesforce.instance_url")
                if instance_host.endswith(_SUFFIX)
                else (c.login_url, "salesforce.login_url")
            )
            domain = salesforce_domain(source, key)
            if domain in ("login", "test"):
                raise ConfigError(
                    "auth = 'client_credentials' logs in on your My Domain; set instance_url "
                    "to it (https://acme.my.salesforce.com)",
                    key="salesforce.instance_url",
                )
            return {
                **common,
                "consumer_key": c.client_id,
                "consumer_secret": c.client_secret,
                "domain": domain,
            }
        domain = salesforce_domain(c.login_url, "salesforce.login_url")
        if c.auth == "password":
            return {
                **common,
                "username": c.username,
                # the OAuth username-password flow wants password + security token
                "password": c.password + (c.security_token or ""),
                "consumer_key": c.client_id,
                "consumer_secret": c.client_secret,
                "domain": domain,
            }
        if c.auth == "jwt":
            return {
                **common,
                "username": c.username,
                "consumer_key": c.client_id,
                "privatekey_file": c.private_key_file,
                "domain": domain,
            }
        raise ConfigError(f"unknown auth {c.auth!r}", key="salesforce.auth")

    def _login(self) -> None:
        """Log in (retrying network failures and 5xx); caller holds the lock."""
        kwargs = self._login_kwargs()
        flow = self.credentials.auth
        for attempt in range(1, self.attempts + 1):
            session = _TimeoutSession(self.timeout)
            try:
                token, instance = self._login_fn(session=session, **kwargs)
                break
            except SalesforceAuthenticationFailed as exc:
                code = getattr(exc, "code", None)
                transient = isinstance(code, int) and code >= 500
                if transient and attempt < self.attempts:
                    self.sleep(2.0**attempt)
                    continue
                detail = getattr(exc, "auth_message", None) or ""
                message = " ".join(str(detail).split())[:300]
                raise AuthError(
                    f"{SERVICE}: login ({flow}) failed: {code}: {message}; check the connected "
                    "app, the API user and the salesforce.* settings",
                    service=SERVICE,
                    code=str(code),
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt < self.attempts:
                    self.sleep(2.0**attempt)
                    continue
                raise TransportError(
                    f"{SERVICE}: login ({flow}) failed after {attempt} attempts: "
                    f"{type(exc).__name__} (check the network and salesforce.login_url)",
                    service=SERVICE,
                ) from None
            except OSError as exc:  # the JWT private key cannot be read
                raise ConfigError(
                    f"cannot read the private key: {exc.strerror or exc}",
                    key="salesforce.jwt_private_key_file",
                ) from None
            finally:
                session.close()
        self.logins += 1
        self._token = token
        if not self.credentials.instance_url:
            self._instance_url = "https://" + str(instance).rstrip("/")
        log.info("%s: logged in (%s) to %s", SERVICE, flow, self._instance_url)
