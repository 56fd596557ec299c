"""The one HTTP behaviour every adapter shares: timeouts, retries, rate limits, safe errors.

Every outside call goes through :class:`HttpClient`, so all adapters behave the same way:

- **timeouts** on connect and read, always (``requests`` has none by default);
- **retries** with exponential backoff and full jitter for connection errors, timeouts, 429
  and 5xx (and for anything an adapter's :attr:`HttpClient.classify` hook calls retryable,
  such as Meta's throttling codes inside a 400), honouring ``Retry-After`` (seconds or an HTTP
  date) up to ``max_wait``; a wait longer than that is not slept through but raised as
  :class:`RateLimited`, so a sync can stop politely and resume next run;
- **auth refresh**: an :class:`Auth` whose token expired is refreshed once on a 401 (or when
  ``classify`` says so) and the request repeated;
- **rate-limit headers** handed to ``on_response`` hooks (Salesforce ``Sforce-Limit-Info``,
  Meta ``X-Business-Use-Case-Usage``) so adapters can stop before a quota is gone;
- **errors that are safe to show**: messages name the service, method, path and status and
  the API's own error text, never a header value, a token or a secret query parameter.

``REQUESTS_CA_BUNDLE`` (corporate proxies) is honoured because sessions trust the
environment, as ``requests`` does by default.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from connector.gc_pause import paused_gc

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SECRET_PARAMS = frozenset(
    {
        "access_token",
        "token",
        "key",
        "api_key",
        "apikey",
        "client_secret",
        "refresh_token",
        "password",
        "signature",
        "sig",
        "code",
        "appsecret_proof",
        "google_key",
        "session_id",
    }
)
_SHOWN_BODY = 300


class Decision(Enum):
    """What to do with a response (see :attr:`HttpClient.classify`)."""

    OK = "ok"
    RETRY = "retry"  # transient: back off and try again
    REFRESH_AUTH = "refresh_auth"  # credentials expired: refresh once, then repeat
    RATE_LIMITED = "rate_limited"  # quota exhausted: stop now, resume later
    FAIL = "fail"  # permanent: raise


class HttpError(RuntimeError):
    """An outside call failed; ``str()`` is safe to log and to show (no secrets)."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.code = code
        self.response = response


class TransportError(HttpError):
    """No usable answer: connection refused, DNS, TLS, timeout — after all retries."""


class AuthError(HttpError):
    """401/403 that a refresh did not cure: the credentials or their permissions are wrong."""


class RateLimited(HttpError):
    """The service asked us to wait longer than we will, or a quota is exhausted."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(HttpError):
    """5xx after all retries."""


class ClientError(HttpError):
    """Another 4xx: the request itself is wrong (bad id, bad field, bad query)."""


class Auth(Protocol):
    """Supplies auth headers and can refresh them (OAuth tokens, Salesforce sessions)."""

    def headers(self) -> Mapping[str, str]: ...

    def refresh(self) -> None: ...


class StaticAuth:
    """Fixed headers (an API key, a long-lived token); nothing to refresh."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def headers(self) -> Mapping[str, str]:
        return self._headers

    def refresh(self) -> None:
        raise AuthError("the token was refused and cannot be refreshed", service="auth")


def redact_url(url: str) -> str:
    """The URL with secret query values replaced by ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "***" if k.lower() in SECRET_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def error_text(response: requests.Response) -> str:
    """The API's own error message, from the common JSON shapes, else the body's start.

    Covers Salesforce (``[{"message", "errorCode"}]``), Google (``{"error": {"message",
    "status"}}``), Meta (``{"error": {"message", "code", "error_subcode"}}``), HubSpot and
    LinkedIn (``{"message", "status"}``), OAuth (``{"error", "error_description"}``).
    """
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:_SHOWN_BODY] + ("…" if len(text) > _SHOWN_BODY else "")
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        code = first.get("errorCode") or first.get("code")
        return f"{code}: {first.get('message')}" if code else str(first.get("message"))
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("status") or err.get("code")
            message = err.get("message") or err.get("error_user_msg") or ""
            return f"{code}: {message}" if code else str(message)
        if isinstance(err, str):
            return f"{err}: {body.get('error_description', '')}".rstrip(": ")
        if "message" in body:
            return str(body["message"])
    text = json.dumps(body)[:_SHOWN_BODY]
    return text


def parse_json(response: requests.Response) -> Any:
    """The body as JSON with non-integer numbers as Decimal.

    A page of a bulk read is megabytes of JSON: parsed with the garbage collector paused
    (:mod:`connector.gc_pause`), it takes half the time.
    """
    with paused_gc():
        return json.loads(response.content or b"null", parse_float=Decimal)


@dataclass
class CallStats:
    """Counts for the run history: calls made, retries, and time spent waiting."""

    calls: int = 0
    retries: int = 0
    waited_seconds: float = 0.0
    by_status: dict[int, int] = field(default_factory=dict)


Classifier = Callable[[requests.Response], Decision | None]
ResponseHook = Callable[[requests.Response], None]
RetryAfterHint = Callable[[requests.Response], float | None]


class _RedactingFilter(logging.Filter):
    """Redacts secrets in urllib3's debug lines (``'"POST /path?query HTTP/1.1" 200'``).

    Some APIs take their token as a query parameter (Meta's ``access_token``), and for some
    services the URL path is the credential (a Slack incoming webhook); with ``-vv`` the
    connection pool logs every request line, which would otherwise put them in the log.
    Clients made with ``secret_path=True`` register each path they call here.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secret_paths: set[str] = set()

    def hide_path(self, path: str) -> None:
        if path.strip("/"):
            self._secret_paths.add(path)

    def _clean(self, text: str) -> str:
        for path in self._secret_paths:
            if path in text:
                text = text.replace(path, "/***")
        return redact_url(text) if "?" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) if isinstance(a, str) else a for a in record.args)
        return True


_URLLIB3_REDACTION = _RedactingFilter()
logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_REDACTION)


class HttpClient:
    """A ``requests`` session with the connector's shared behaviour for one service.

    ``service`` names the system in messages ("Salesforce", "Meta Marketing API");
    ``base_url`` is the configurable base (sandboxes, proxies, tests). ``classify`` lets an
    adapter map its API's quirks to a :class:`Decision` (return None for the default rules);
    ``on_response`` hooks see every response (rate-limit headers). ``retry_after`` gives the
    wait an API states somewhere other than the ``Retry-After`` header (Google's
    ``quotaErrorDetails.retryDelay`` in the body, Meta's ``estimated_time_to_regain_access`` in
    a usage header); it is consulted only when that header is absent. ``secret_path`` is for
    services whose URL *is* the credential (a Slack incoming webhook): messages and logs then
    show ``***`` instead of the path. ``sleep`` and ``rng`` are injectable so tests run
    instantly and deterministically.
    """

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        max_wait: float = 300.0,
        classify: Classifier | None = None,
        on_response: Iterable[ResponseHook] = (),
        retry_after: RetryAfterHint | None = None,
        secret_path: bool = False,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.secret_path = secret_path
        self.base_url = base_url.rstrip("/") + "/"
        self.auth = auth
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_wait = max_wait
        self.classify = classify
        self.on_response = list(on_response)
        self.retry_after = retry_after
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "crm-roi-connector/0.1"})
        if headers:
            self.session.headers.update(headers)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.stats = CallStats()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def _backoff(self, attempt: int) -> float:
        # full jitter (AWS architecture blog): spreads retries of many workers apart
        return self.rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    def _decide(self, response: requests.Response) -> Decision:
        if self.classify is not None:
            decision = self.classify(response)
            if decision is not None:
                return decision
        if response.ok:
            return Decision.OK
        if response.status_code == 401:
            return Decision.REFRESH_AUTH
        if response.status_code in RETRY_STATUSES:
            return Decision.RETRY
        return Decision.FAIL

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send a request with retries; return the successful response or raise HttpError.

        Non-idempotent requests (POST without ``idempotent=True``) are retried only when the
        server certainly did not act on them (429, 503, connection refused before sending),
        because a repeated create would duplicate records in the CRM.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")
        url = self.url(path)
        if self.secret_path:
            _URLLIB3_REDACTION.hide_path(urlsplit(url).path)
        shown = f"{method} {'***' if self.secret_path else redact_url(urlsplit(url).path)}"
        send = dict(params=params, json=json_body, data=data)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, url, headers, send)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._after_transport_error(exc, attempt, idempotent, shown)
                continue
            decision = self._observe(response, shown)
            if decision is Decision.OK:
                return response
            if decision is Decision.REFRESH_AUTH and self.auth is not None and not refreshed:
                refreshed = True
                log.info(
                    "%s: credentials expired (%s), refreshing once",
                    self.service,
                    response.status_code,
                )
                self.auth.refresh()
                attempt -= 1  # a refresh is not a failed attempt
                continue
            wait = self._refusal_or_wait(response, decision, shown)
            retryable_post = response.status_code in (429, 503)
            if (
                decision is Decision.RETRY
                and attempt < self.max_attempts
                and (idempotent or retryable_post)
            ):
                self._wait(attempt, wait, f"{shown} -> {response.status_code}")
                continue
            raise self._final_error(response, attempt, shown)

    def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None, send: dict[str, Any]
    ) -> requests.Response:
        request_headers = dict(headers or {})
        if self.auth is not None:
            request_headers.update(self.auth.headers())
        self.stats.calls += 1
        return self.session.request(
            method, url, headers=request_headers, timeout=self.timeout, **send
        )

    def _after_transport_error(
        self, exc: Exception, attempt: int, idempotent: bool, shown: str
    ) -> None:
        """Wait before the next attempt, or raise: a request that may have reached the
        server is repeated only when repeating it is harmless."""
        safe_to_repeat = idempotent or isinstance(exc, requests.ConnectTimeout)
        if attempt < self.max_attempts and safe_to_repeat:
            self._wait(attempt, None, f"{shown}: {type(exc).__name__}")
            return
        raise TransportError(
            f"{self.service}: {shown} failed after {attempt} attempt(s): "
            f"{type(exc).__name__} (check the network and the base URL "
            f"{redact_url(self.base_url)})",
            service=self.service,
        ) from None

    def _observe(self, response: requests.Response, shown: str) -> Decision:
        """Count the answer, let the hooks read it (usage headers), classify it."""
        self.stats.by_status[response.status_code] = (
            self.stats.by_status.get(response.status_code, 0) + 1
        )
        for hook in self.on_response:
            hook(response)
        decision = self._decide(response)
        log.debug("%s %s -> %s (%s)", self.service, shown, response.status_code, decision.value)
        return decision

    def _refusal_or_wait(
        self, response: requests.Response, decision: Decision, shown: str
    ) -> float | None:
        """Raise when the answer ends the call (credentials refused, a rate limit longer
        than we wait); else the seconds the server asked us to wait, if it did."""
        detail = error_text(response)
        status = response.status_code
        if decision is Decision.REFRESH_AUTH or (
            decision is Decision.FAIL and status in (401, 403)
        ):
            raise AuthError(
                f"{self.service}: {shown} was refused ({status} {detail}); check the "
                "credentials and the API user's permissions",
                service=self.service,
                status=status,
                response=response,
            )
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is None and self.retry_after is not None:
            wait = self.retry_after(response)
        if decision is Decision.RATE_LIMITED or (
            decision is Decision.RETRY and wait is not None and wait > self.max_wait
        ):
            raise RateLimited(
                f"{self.service}: rate limit reached on {shown} ({status} {detail})"
                + (f"; retry after {wait:.0f} s" if wait is not None else ""),
                retry_after=wait,
                service=self.service,
                status=status,
                response=response,
            )
        return wait

    def _final_error(self, response: requests.Response, attempt: int, shown: str) -> HttpError:
        status = response.status_code
        error_type: type[HttpError]
        if status == 429:
            error_type = RateLimited
        elif status >= 500:
            error_type = ServerError
        else:
            error_type = ClientError
        return error_type(
            f"{self.service}: {shown} failed with {status}: {error_text(response)}"
            + (f" (after {attempt} attempts)" if attempt > 1 else ""),
            service=self.service,
            status=status,
            response=response,
        )

    def _wait(self, attempt: int, retry_after: float | None, why: str) -> None:
        delay = retry_after if retry_after is not None else self._backoff(attempt)
        self.stats.retries += 1
        self.stats.waited_seconds += delay
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            self.service,
            why,
            delay,
            attempt + 1,
            self.max_attempts,
        )
        self.sleep(delay)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET and parse JSON with every non-integer number as a Decimal: money from an API
        (Meta's spend, Salesforce's Amount) must never pass through float."""
        return parse_json(self.request("GET", path, **kwargs))

    def close(self) -> None:
        self.session.close()
