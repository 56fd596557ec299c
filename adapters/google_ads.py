"""Google Ads: daily spend per campaign over the REST interface (``googleAds:searchStream``).

The official ``google-ads`` library speaks only gRPC, so this module calls the REST API with
``requests`` through the shared :class:`~adapters.http.HttpClient`:

- **auth**: an OAuth access token from the refresh-token grant, refreshed once when the API
  answers ``OAUTH_TOKEN_EXPIRED`` (and ahead of its ``expires_in``); every call carries the
  ``developer-token`` header and, when access goes through a manager account, the
  ``login-customer-id`` header (digits only);
- **reads**: GAQL over ``campaign`` segmented by ``segments.date``, sent to
  ``POST /{version}/customers/{id}/googleAds:searchStream``; the answer is one JSON *array*
  of batches (no page tokens, so no ``pageSize``, which current versions refuse);
- **wire quirks**: int64 values (ids, ``costMicros``, ``impressions``, ``clicks``) are JSON
  strings; fields equal to zero are *omitted* (proto3 JSON); ``conversions`` is a double;
  ``cost_micros`` becomes a Decimal by integer scaling, in the customer's ``currency_code``;
  ``segments.date`` is a day in the customer's ``time_zone``;
- **errors** (google.rpc envelope with ``GoogleAdsFailure`` details) are told in plain words:
  an exhausted daily quota stops the sync politely (resumed next run), a short-term one is
  waited out (``retryDelay``), a sunset version names ``google_ads.api_version``.

Docs: https://developers.google.com/google-ads/api/rest/common/search,
https://developers.google.com/google-ads/api/rest/auth,
https://developers.google.com/google-ads/api/docs/best-practices/error-types.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import requests

from adapters.ad_windows import (
    AdAccount,
    AdSource,
    SpendSlice,
    Window,
    WindowPolicy,
    reworded,
)
from adapters.http import (
    AuthError,
    Decision,
    HttpClient,
    HttpError,
    error_text,
    parse_json,
)
from connector import model
from connector.gc_pause import paused_gc
from connector.money import micros_to_decimal, to_decimal

log = logging.getLogger(__name__)

SOURCE = "google_ads"
SERVICE = "Google Ads API"
SCOPE = "https://www.googleapis.com/auth/adwords"
SLICE_DAYS = 30  # one searchStream per 30 days keeps each answer well under 100 MB

CUSTOMER_QUERY = (
    "SELECT customer.id, customer.descriptive_name, customer.currency_code, "
    "customer.time_zone, customer.manager, customer.status FROM customer LIMIT 1"
)
CAMPAIGN_QUERY = (
    "SELECT campaign.id, campaign.name, campaign.status, campaign.advertising_channel_type "
    "FROM campaign"
)
SPEND_QUERY = (
    "SELECT campaign.id, segments.date, metrics.cost_micros, metrics.impressions, "
    "metrics.clicks, metrics.conversions FROM campaign "
    "WHERE segments.date BETWEEN '{start}' AND '{end}'"
)


# ---------------------------------------------------------------------------------------------
# OAuth


class GoogleOAuth:
    """The refresh-token grant (``POST token_url``); implements :class:`adapters.http.Auth`.

    The access token is fetched on first use and again when it is within a minute of its
    ``expires_in`` or when the API calls it expired; a refused refresh token is an
    :class:`AuthError` that says what to do.
    """

    def __init__(
        self,
        http: HttpClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.token_url = token_url
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0

    def headers(self) -> Mapping[str, str]:
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at - 60:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> None:
        with self._lock:
            self._fetch()

    def _fetch(self) -> None:
        try:
            response = self.http.request("POST", self.token_url, data=self._form, idempotent=True)
        except HttpError as exc:
            raise _token_error(exc) from None
        body = parse_json(response) or {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise AuthError(
                "Google OAuth: the token endpoint answered without an access_token",
                service="Google OAuth",
            )
        self._token = str(token)
        self._expires_at = self.clock() + float(body.get("expires_in") or 3599)
        self.refreshes += 1


def _token_error(exc: HttpError) -> HttpError:
    detail = error_text(exc.response) if exc.response is not None else str(exc)
    if "invalid_grant" in detail:
        text = (
            "Google refused the refresh token (invalid_grant: expired or revoked). Create a new "
            "refresh token for the Google Ads scope and put it in the variable named by "
            "google_ads.refresh_token_env"
        )
    elif "invalid_client" in detail or "unauthorized_client" in detail:
        text = (
            "Google refused the OAuth client (invalid_client): check the variables named by "
            "google_ads.client_id_env and google_ads.client_secret_env"
        )
    else:
        return exc
    error = AuthError(f"Google OAuth: {text} ({detail})", service="Google OAuth", status=exc.status)
    return error


# ---------------------------------------------------------------------------------------------
# Errors


def failure_codes(body: Any) -> list[str]:
    """``GoogleAdsFailure`` error codes as ``kind:VALUE`` (``quotaError:RESOURCE_EXHAUSTED``)."""
    codes: list[str] = []
    if isinstance(body, list):
        for item in body:
            codes.extend(failure_codes(item))
        return codes
    if not isinstance(body, dict):
        return codes
    error = body.get("error")
    details = error.get("details", []) if isinstance(error, dict) else []
    failures = [d for d in details if isinstance(d, dict)]
    if "errors" in body:  # a bare GoogleAdsFailure
        failures.append(body)
    for failure in failures:
        for item in failure.get("errors", []) or []:
            for kind, value in (item.get("errorCode") or {}).items():
                codes.append(f"{kind}:{value}")
    return codes


def _body(response: requests.Response) -> Any:
    try:
        return parse_json(response)
    except ValueError:
        return None


_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')


def retry_delay(response: requests.Response) -> float | None:
    """``quotaErrorDetails.retryDelay`` (``"30s"``) from a 429 body, in seconds."""
    found = _RETRY_DELAY.search(response.text or "")
    return float(found.group(1)) if found else None


def classify(response: requests.Response) -> Decision | None:
    """Google's statuses mostly mean what they say; the exceptions are in the body."""
    if response.ok:
        return None
    codes = failure_codes(_body(response))
    if "quotaError:RESOURCE_EXHAUSTED" in codes:
        return Decision.RATE_LIMITED  # the developer token's daily operations are used up
    if any(c.startswith("quotaError:") for c in codes):
        return Decision.RETRY  # short-term: wait retryDelay and try again
    if response.status_code == 401:
        if any(c.endswith(("OAUTH_TOKEN_EXPIRED", "OAUTH_TOKEN_INVALID")) for c in codes):
            return Decision.REFRESH_AUTH
        if codes:
            return Decision.FAIL  # a developer token or account problem: refreshing won't help
    if any(c.startswith("internalError:") for c in codes) or response.status_code in (500, 503):
        return Decision.RETRY
    return None


_PLAIN: tuple[tuple[str, str], ...] = (
    (
        "UNSUPPORTED_VERSION",
        "this Google Ads API version is sunset and no longer served: set google_ads.api_version "
        "to a current version (see developers.google.com/google-ads/api/docs/sunset-dates)",
    ),
    (
        "quotaError:RESOURCE_EXHAUSTED",
        "the developer token's daily operations quota is used up (Basic access allows 15,000 "
        "operations a day); the sync stops here and resumes on the next run. Apply for "
        "Standard access if this happens often",
    ),
    (
        "quotaError:",
        "Google Ads is rate limiting this developer token; the sync stops here and resumes on "
        "the next run",
    ),
    (
        "DEVELOPER_TOKEN_NOT_APPROVED",
        "the developer token is approved for test accounts only: apply for Basic access in the "
        "API Center of the manager account",
    ),
    (
        "DEVELOPER_TOKEN",
        "the developer token is missing or not valid: check the variable named by "
        "google_ads.developer_token_env",
    ),
    (
        "OAUTH_TOKEN",
        "the OAuth access token was refused even after a refresh: check the refresh token and "
        "the OAuth client (google_ads.*_env)",
    ),
    (
        "USER_PERMISSION_DENIED",
        "the Google user behind the refresh token has no access to this customer id; when "
        "access goes through a manager account, set google_ads.login_customer_id to the "
        "manager's id",
    ),
    (
        "CUSTOMER_NOT_ENABLED",
        "this customer account is not enabled (cancelled or suspended): remove it from "
        "google_ads.customer_ids",
    ),
    (
        "CUSTOMER_NOT_FOUND",
        "no such customer id: check google_ads.customer_ids (10 digits, no dashes)",
    ),
    (
        "INVALID_CUSTOMER_ID",
        "no such customer id: check google_ads.customer_ids (10 digits, no dashes)",
    ),
    (
        "REQUESTED_METRICS_FOR_MANAGER",
        "this is a manager (MCC) account, which has no campaigns of its own: list its client "
        "accounts in google_ads.customer_ids and set google_ads.login_customer_id to it",
    ),
    (
        "NOT_ADS_USER",
        "the Google user behind the refresh token has no Google Ads account",
    ),
)


def explain(exc: HttpError, what: str) -> HttpError:
    """``exc`` with a message that says what is wrong and what to do."""
    if exc.response is None:
        return exc
    codes = failure_codes(_body(exc.response))
    joined = " ".join(codes)
    for needle, text in _PLAIN:
        if needle in joined:
            return reworded(exc, f"{SERVICE}: {what}: {text} ({', '.join(codes)})")
    if exc.status == 404:
        return reworded(
            exc,
            f"{SERVICE}: {what}: not found (404); the API version in google_ads.api_version may "
            f"be sunset, or google_ads.base_url is wrong ({exc})",
        )
    return reworded(exc, f"{SERVICE}: {what}: {exc}")


# ---------------------------------------------------------------------------------------------
# Parsing (pure functions, exercised directly by the property tests)


def stream_rows(body: Any) -> Iterator[dict[str, Any]]:
    """The result rows of a searchStream answer (an array of batches).

    An error inside the stream arrives as an array element ``{"error": {...}}``; it is raised
    rather than silently ending the data early.
    """
    batches = body if isinstance(body, list) else [body]
    for batch in batches:
        if not isinstance(batch, dict):
            continue
        if "error" in batch:
            error = batch["error"] if isinstance(batch["error"], dict) else {}
            raise HttpError(
                f"{SERVICE}: the stream broke off: {error.get('status')}: {error.get('message')} "
                f"({', '.join(failure_codes(batch))})",
                service=SERVICE,
                status=error.get("code"),
            )
        yield from batch.get("results", []) or []


def _int(value: Any) -> int:
    """An int64 sent as a JSON string (or, from some proxies, a number); absent means 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def _micros(value: Any) -> Decimal:
    """``costMicros`` as an exact Decimal with six decimals; absent (proto3 zero) means 0."""
    return _ZERO_MICROS if value is None else micros_to_decimal(value)


def _conversions(value: Any) -> Decimal:
    """``metrics.conversions`` is a double: parsed to Decimal by the JSON reader, or an int."""
    if value is None:
        return _ZERO
    if isinstance(value, Decimal):
        return value
    return to_decimal(value)


_ZERO = Decimal(0)
_ZERO_MICROS = Decimal("0E-6")


@paused_gc()  # a slice is tens of thousands of records, none in a reference cycle
def spend_rows(body: Any, account: AdAccount) -> list[model.AdSpendDay]:
    """AdSpendDay rows from a searchStream answer of :data:`SPEND_QUERY`.

    Written for speed (this is the inner loop of a 400-day first sync): each day string is
    parsed once, and the key is built from the ISO date the API sent.
    """
    rows: dict[str, model.AdSpendDay] = {}
    days: dict[str, date] = {}
    account_id, currency = account.id, account.currency
    for result in stream_rows(body):
        metrics = result.get("metrics") or {}
        campaign_id = str(result["campaign"]["id"])
        text = result["segments"]["date"]
        day = days.get(text)
        if day is None:
            day = days[text] = date.fromisoformat(text)
        key = f"{account_id}:{day.isoformat() if len(text) != 10 else text}:{campaign_id}"
        rows[key] = model.AdSpendDay(
            source=SOURCE,
            external_id=key,
            account_id=account_id,
            ad_campaign_id=campaign_id,
            day=day,
            spend=_micros(metrics.get("costMicros")),
            currency=currency,
            impressions=_int(metrics.get("impressions")),
            clicks=_int(metrics.get("clicks")),
            conversions=_conversions(metrics.get("conversions")),
        )
    return list(rows.values())


def campaign_records(body: Any, account: AdAccount) -> list[model.AdCampaign]:
    return [
        model.AdCampaign(
            source=SOURCE,
            external_id=str(r["campaign"]["id"]),
            account_id=account.id,
            name=str(r["campaign"].get("name") or r["campaign"]["id"]),
            status=r["campaign"].get("status"),
            currency=account.currency,
            timezone=account.timezone,
        )
        for r in stream_rows(body)
    ]


# ---------------------------------------------------------------------------------------------
# The source


class GoogleAdsSource(AdSource):
    """Google Ads customers as a source (``campaigns``, ``daily_spend``)."""

    name = SOURCE

    def __init__(
        self,
        *,
        customer_ids: Sequence[str],
        developer_token: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        login_customer_id: str = "",
        base_url: str = "https://googleads.googleapis.com",
        token_url: str = "https://oauth2.googleapis.com/token",
        api_version: str = "v26",
        lookback_days: int = 30,
        history_days: int = 400,
        slice_days: int = SLICE_DAYS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 300.0,
        prefetch: bool = True,
    ) -> None:
        super().__init__(
            [c.replace("-", "") for c in customer_ids],
            WindowPolicy(lookback_days, history_days, slice_days),
            prefetch=prefetch,
        )
        self.api_version = api_version
        self.token_http = HttpClient(
            "Google OAuth", token_url, session=requests.Session(), sleep=sleep, max_attempts=3
        )
        self.auth = GoogleOAuth(self.token_http, token_url, client_id, client_secret, refresh_token)
        headers = {"developer-token": developer_token}
        if login_customer_id:
            headers["login-customer-id"] = login_customer_id.replace("-", "")
        self.http = HttpClient(
            SERVICE,
            base_url,
            auth=self.auth,
            headers=headers,
            classify=classify,
            retry_after=retry_delay,
            session=session,
            sleep=sleep,
            max_wait=max_wait,
        )

    def clients(self) -> Sequence[HttpClient]:
        return (self.http, self.token_http)

    def search_stream(self, customer_id: str, query: str, what: str) -> Any:
        """One searchStream call, parsed with every non-integer number as a Decimal."""
        path = f"/{self.api_version}/customers/{customer_id}/googleAds:searchStream"
        try:
            response = self.http.request("POST", path, json_body={"query": query}, idempotent=True)
        except HttpError as exc:
            raise explain(exc, what) from None
        return parse_json(response)

    def fetch_account(self, account_id: str) -> AdAccount:
        body = self.search_stream(account_id, CUSTOMER_QUERY, f"customer {account_id}")
        rows = list(stream_rows(body))
        if not rows:
            raise HttpError(
                f"{SERVICE}: customer {account_id}: no customer row returned",
                service=SERVICE,
            )
        customer = rows[0].get("customer") or {}
        return AdAccount(
            id=account_id,
            name=str(customer.get("descriptiveName") or account_id),
            currency=str(customer.get("currencyCode") or ""),
            timezone=str(customer.get("timeZone") or "UTC"),
            status=("MANAGER" if customer.get("manager") else customer.get("status")),
        )

    def account_problem(self, account: AdAccount) -> str | None:
        if account.status == "MANAGER":
            return (
                f"customer {account.id} ({account.name}) is a manager (MCC) account without "
                "campaigns of its own: list its client accounts in google_ads.customer_ids and "
                f'set google_ads.login_customer_id = "{account.id}"'
            )
        if account.status not in (None, "ENABLED"):
            return f"customer {account.id} ({account.name}) is {account.status}"
        return None

    def fetch_campaigns(self, account: AdAccount) -> Iterator[list[model.AdCampaign]]:
        body = self.search_stream(account.id, CAMPAIGN_QUERY, f"campaigns of {account.id}")
        yield campaign_records(body, account)

    def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
        query = SPEND_QUERY.format(start=window.start.isoformat(), end=window.end.isoformat())
        body = self.search_stream(account.id, query, f"spend of {account.id} for {window}")
        return SpendSlice(spend_rows(body, account))


def build_source(config: Any, **overrides: Any) -> GoogleAdsSource:
    """The source for ``[google_ads]`` (secrets from the variables its ``*_env`` keys name)."""
    section = config.google_ads
    kwargs: dict[str, Any] = {
        "customer_ids": section.customer_ids,
        "developer_token": config.secret("google_ads", "developer_token"),
        "client_id": config.secret("google_ads", "client_id"),
        "client_secret": config.secret("google_ads", "client_secret"),
        "refresh_token": config.secret("google_ads", "refresh_token"),
        "login_customer_id": section.login_customer_id,
        "base_url": section.base_url,
        "token_url": section.token_url,
        "api_version": section.api_version,
        "lookback_days": section.lookback_days,
        "history_days": section.history_days,
    }
    kwargs.update(overrides)
    return GoogleAdsSource(**kwargs)
