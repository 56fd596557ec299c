"""Meta (Facebook/Instagram) Marketing API: daily spend per campaign from ad account insights.

- **reads**: ``GET /{version}/act_<id>/insights`` with ``level=campaign``, ``time_increment=1``
  (one row per campaign and day, ``date_start == date_stop``) and a JSON ``time_range``;
  cursor paging with ``after=paging.cursors.after`` while ``paging.next`` is present (the last
  page still carries cursors, so ``next`` is the only end signal);
- **long ranges** go through the asynchronous report job: ``POST .../insights`` returns a
  ``report_run_id``, polled until ``async_status`` is ``Job Completed``, then read from
  ``/{report_run_id}/insights`` with the same paging. A failed job, or a synchronous call
  answered "reduce the amount of data" (code 100, subcode 1487534), is retried as two halves;
- **money**: every metric is a string; ``spend`` is a decimal string in the ad account's
  currency, parsed straight to Decimal; conversions are the ``actions`` of the configured
  types (``lead`` by default), whose values are strings too;
- **days** are the ad account's days (``timezone_name``);
- **throttling**: errors come back as HTTP 400 with ``error.code`` 4, 17, 32, 613 or
  80000-80014 (retried with backoff, waiting ``estimated_time_to_regain_access`` when the
  usage headers give it); ``X-Business-Use-Case-Usage``, ``X-Ad-Account-Usage`` and
  ``X-App-Usage`` are read on every answer, errors included, and the adapter pauses *before*
  the next call once any of them reaches 95 %;
- **secrets**: the token is the ``access_token`` query parameter (plus ``appsecret_proof``
  when an app secret is configured); no message, log line or exception shows either.

Docs: https://developers.facebook.com/docs/marketing-api/reference/ad-account/insights,
https://developers.facebook.com/docs/marketing-api/insights/best-practices/,
https://developers.facebook.com/docs/marketing-api/overview/rate-limiting,
https://developers.facebook.com/docs/graph-api/guides/error-handling.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
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
    spend_day,
)
from adapters.http import (
    AuthError,
    ClientError,
    Decision,
    HttpClient,
    HttpError,
    RateLimited,
    parse_json,
)
from connector import model
from connector.gc_pause import paused_gc
from connector.money import to_decimal

log = logging.getLogger(__name__)

SOURCE = "meta_ads"
SERVICE = "Meta Marketing API"
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
TOKEN_CODES = frozenset({102, 190})
TOO_MUCH_DATA = (100, 1487534)
DEPRECATED_VERSION = 2635
SLICE_DAYS = 31
ASYNC_OVER_DAYS = 7  # longer windows go through a report job, as Meta recommends
RETENTION_DAYS = 37 * 30  # insights are kept 37 months
INSIGHT_FIELDS = (
    "campaign_id",
    "campaign_name",
    "account_currency",
    "spend",
    "impressions",
    "clicks",
    "actions",
    "date_start",
    "date_stop",
)
CAMPAIGN_STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED", "DELETED", "IN_PROCESS", "WITH_ISSUES")
ACCOUNT_STATUS = {
    1: "ACTIVE",
    2: "DISABLED",
    3: "UNSETTLED",
    7: "PENDING_RISK_REVIEW",
    8: "PENDING_SETTLEMENT",
    9: "IN_GRACE_PERIOD",
    100: "PENDING_CLOSURE",
    101: "CLOSED",
    201: "ANY_ACTIVE",
    202: "ANY_CLOSED",
}


# ---------------------------------------------------------------------------------------------
# Errors and throttling


def error_of(response: requests.Response) -> dict[str, Any]:
    """The ``{"error": {...}}`` envelope's content, or ``{}``."""
    try:
        body = parse_json(response)
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _code(error: dict[str, Any]) -> tuple[int | None, int | None]:
    def as_int(value: Any) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    return as_int(error.get("code")), as_int(error.get("error_subcode"))


def classify(response: requests.Response) -> Decision | None:
    """Meta answers most errors with HTTP 400: branch on ``error.code``, not on the status."""
    if response.ok:
        return None
    error = error_of(response)
    code, subcode = _code(error)
    if code is None:
        return None
    if code in THROTTLE_CODES:
        return Decision.RETRY
    if code in TOKEN_CODES:
        return Decision.REFRESH_AUTH  # no refresh for Meta tokens: raised as AuthError
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        return Decision.RETRY
    if (code, subcode) == TOO_MUCH_DATA:
        return Decision.FAIL  # the caller splits the range or goes async
    return None


def _usage_json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


class UsageThrottle:
    """Reads Meta's usage headers and decides how long to wait.

    ``X-Business-Use-Case-Usage``: per business id, a list of ``{type, call_count,
    total_cputime, total_time, estimated_time_to_regain_access}`` (percent, minutes);
    ``X-Ad-Account-Usage``: ``{acc_id_util_pct, reset_time_duration}`` (seconds);
    ``X-App-Usage``: ``{call_count, total_time, total_cputime}`` (percent). Headers are read
    on error answers too: a blocked account says when it comes back only there.
    """

    def __init__(self, threshold: float = 95.0) -> None:
        self.threshold = threshold
        self.percent = 0.0
        self.regain_seconds = 0.0

    def observe(self, response: requests.Response) -> None:
        percents: list[float] = []
        regain = 0.0
        buc = _usage_json(response.headers.get("X-Business-Use-Case-Usage"))
        if isinstance(buc, dict):
            for entries in buc.values():
                for entry in entries if isinstance(entries, list) else []:
                    if not isinstance(entry, dict):
                        continue
                    percents += [
                        float(entry.get(k) or 0)
                        for k in ("call_count", "total_cputime", "total_time")
                    ]
                    regain = max(
                        regain, 60.0 * float(entry.get("estimated_time_to_regain_access") or 0)
                    )
        account = _usage_json(response.headers.get("X-Ad-Account-Usage"))
        if isinstance(account, dict):
            percents.append(float(account.get("acc_id_util_pct") or 0))
            regain = max(regain, float(account.get("reset_time_duration") or 0))
        app = _usage_json(response.headers.get("X-App-Usage"))
        if isinstance(app, dict):
            percents += [
                float(app.get(k) or 0) for k in ("call_count", "total_cputime", "total_time")
            ]
        # Every answer replaces what the previous one said: the usage is a current level.
        self.percent = max(percents, default=0.0)
        self.regain_seconds = regain

    def retry_after(self, response: requests.Response) -> float | None:
        """The wait the headers of an error answer ask for (None: back off exponentially)."""
        self.observe(response)
        return self.regain_seconds or None

    def pause_needed(self) -> float:
        """Seconds to wait before the next call (0 when usage is below the threshold)."""
        if self.percent < self.threshold and not self.regain_seconds:
            return 0.0
        return self.regain_seconds or 60.0

    def reset(self) -> None:
        self.percent = 0.0
        self.regain_seconds = 0.0


def explain(exc: HttpError, what: str) -> HttpError:
    """``exc`` in plain words; throttling that outlasted the retries becomes RateLimited."""
    if exc.response is None:
        return reworded(exc, f"{SERVICE}: {what}: {exc}")
    error = error_of(exc.response)
    code, subcode = _code(error)
    message = str(error.get("message") or "")
    detail = f"(code {code}" + (f", subcode {subcode}" if subcode else "") + f": {message})"
    if code in TOKEN_CODES:
        why = {463: "has expired", 460: "was invalidated by a password change", 467: "is invalid"}
        text = (
            f"the access token {why.get(subcode or 0, 'was refused')}: create a new system-user "
            "token with ads_read and put it in the variable named by meta_ads.access_token_env"
        )
        return AuthError(f"{SERVICE}: {what}: {text} {detail}", service=SERVICE, status=exc.status)
    if code in THROTTLE_CODES:
        return RateLimited(
            f"{SERVICE}: {what}: Meta is throttling this app or ad account {detail}; the sync "
            "stops here and resumes on the next run",
            service=SERVICE,
            status=exc.status,
            retry_after=getattr(exc, "retry_after", None),
        )
    if code == DEPRECATED_VERSION:
        text = (
            "this Marketing API version is no longer served: set meta_ads.api_version to a "
            "current version (developers.facebook.com/docs/marketing-api/marketing-api-changelog)"
        )
    elif code == 100 and subcode == 33:
        text = (
            "the ad account does not exist or this token cannot see it: check "
            "meta_ads.ad_account_ids (act_ followed by digits) and that the system user is "
            "assigned to the account"
        )
    elif code == 10 or (code is not None and 200 <= code <= 299):
        text = "the token lacks a permission (ads_read) on this ad account"
    else:
        return reworded(exc, f"{SERVICE}: {what}: {exc}")
    return reworded(exc, f"{SERVICE}: {what}: {text} {detail}")


class _JobFailed(HttpError):
    """An async report job ended in ``Job Failed`` or ``Job Skipped``."""


# ---------------------------------------------------------------------------------------------
# Parsing (pure, exercised directly by the property tests)


def conversions_of(actions: Any, action_types: Sequence[str]) -> Decimal:
    """The sum of the ``actions`` values of the configured types (values are strings)."""
    total = to_decimal(0)
    for action in actions or []:
        if isinstance(action, dict) and action.get("action_type") in action_types:
            total += to_decimal(action.get("value", "0"))
    return total


@paused_gc()  # a slice is tens of thousands of records, none in a reference cycle
def spend_rows(
    data: Sequence[dict[str, Any]], account: AdAccount, action_types: Sequence[str]
) -> list[model.AdSpendDay]:
    """AdSpendDay rows from insights rows at ``level=campaign``, ``time_increment=1``."""
    rows: list[model.AdSpendDay] = []
    for item in data:
        start, stop = item.get("date_start"), item.get("date_stop")
        if start != stop:
            raise ValueError(
                f"{SERVICE}: an insights row covers {start}..{stop}, not one day "
                "(time_increment=1 was not honoured)"
            )
        rows.append(
            spend_day(
                SOURCE,
                account,
                str(item["campaign_id"]),
                date.fromisoformat(str(start)),
                to_decimal(item.get("spend") or "0"),
                impressions=int(item.get("impressions") or 0),
                clicks=int(item.get("clicks") or 0),
                conversions=conversions_of(item.get("actions"), action_types),
                currency=item.get("account_currency") or None,
            )
        )
    return rows


def campaign_records(data: Sequence[dict[str, Any]], account: AdAccount) -> list[model.AdCampaign]:
    return [
        model.AdCampaign(
            source=SOURCE,
            external_id=str(item["id"]),
            account_id=account.id,
            name=str(item.get("name") or item["id"]),
            status=item.get("effective_status") or item.get("status"),
            currency=account.currency,
            timezone=account.timezone,
        )
        for item in data
    ]


# ---------------------------------------------------------------------------------------------
# The source


class MetaAdsSource(AdSource):
    """Meta ad accounts as a source (``campaigns``, ``daily_spend``)."""

    name = SOURCE

    def __init__(
        self,
        *,
        ad_account_ids: Sequence[str],
        access_token: str,
        app_secret: str = "",
        api_version: str = "v26.0",
        base_url: str = "https://graph.facebook.com",
        lookback_days: int = 28,
        history_days: int = 400,
        conversion_action_types: Sequence[str] = ("lead",),
        slice_days: int = SLICE_DAYS,
        async_over_days: int = ASYNC_OVER_DAYS,
        page_size: int = 500,
        poll_seconds: float = 2.0,
        job_timeout: float = 3600.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 300.0,
        prefetch: bool = True,
    ) -> None:
        super().__init__(
            list(ad_account_ids),
            WindowPolicy(lookback_days, history_days, slice_days, RETENTION_DAYS),
            prefetch=prefetch,
        )
        self.version = api_version
        self.action_types = tuple(conversion_action_types)
        self.async_over_days = async_over_days
        self.page_size = page_size
        self.poll_seconds = poll_seconds
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.max_wait = max_wait
        self._auth = {"access_token": access_token}
        if app_secret:
            # appsecret_proof = HMAC-SHA256(key=app secret, message=access token), hex
            self._auth["appsecret_proof"] = hmac.new(
                app_secret.encode(), access_token.encode(), hashlib.sha256
            ).hexdigest()
        self.throttle = UsageThrottle()
        self.http = HttpClient(
            SERVICE,
            base_url,
            classify=classify,
            on_response=[self.throttle.observe],
            retry_after=self.throttle.retry_after,
            session=session,
            sleep=sleep,
            max_wait=max_wait,
        )

    def clients(self) -> Sequence[HttpClient]:
        return (self.http,)

    # -- calls ------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Any:
        """One call with the token in the query, after any pause the usage headers ask for."""
        pause = self.throttle.pause_needed()
        if pause:
            if pause > self.max_wait:
                raise RateLimited(
                    f"{SERVICE}: {what}: usage is at {self.throttle.percent:.0f} % and access "
                    f"returns in {pause / 60:.0f} min; the sync stops here and resumes on the "
                    "next run",
                    service=SERVICE,
                    retry_after=pause,
                )
            log.warning(
                "%s: usage at %.0f %%, pausing %.0f s", SERVICE, self.throttle.percent, pause
            )
            self.sleep(pause)
            self.throttle.reset()
        query = {**(params or {}), **self._auth}
        try:
            response = self.http.request(
                method,
                f"/{self.version}/{path.lstrip('/')}",
                params=query,
                data=data,
                idempotent=True,
            )
        except HttpError as exc:
            raise explain(exc, what) from None
        except requests.RequestException as exc:  # never let a URL with the token out
            raise HttpError(f"{SERVICE}: {what}: {type(exc).__name__}", service=SERVICE) from None
        return parse_json(response)

    def _pages(
        self, path: str, what: str, params: dict[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """Cursor paging: follow ``paging.cursors.after`` while ``paging.next`` is present."""
        params = dict(params)
        while True:
            body = self._call("GET", path, what, params=params) or {}
            yield list(body.get("data") or [])
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return
            params["after"] = after

    # -- AdSource ---------------------------------------------------------------------------

    def fetch_account(self, account_id: str) -> AdAccount:
        body = self._call(
            "GET",
            account_id,
            f"ad account {account_id}",
            params={"fields": "name,currency,timezone_name,account_status"},
        )
        status = body.get("account_status")
        return AdAccount(
            id=account_id,
            name=str(body.get("name") or account_id),
            currency=str(body.get("currency") or ""),
            timezone=str(body.get("timezone_name") or "UTC"),
            status=ACCOUNT_STATUS.get(int(status), str(status)) if status is not None else None,
        )

    def account_problem(self, account: AdAccount) -> str | None:
        if account.status in ("DISABLED", "UNSETTLED", "CLOSED", "PENDING_CLOSURE"):
            return (
                f"ad account {account.id} ({account.name}) is {account.status}: it shows no new "
                "spend until it is reactivated in Business Manager"
            )
        return None

    def fetch_campaigns(self, account: AdAccount) -> Iterator[list[model.AdCampaign]]:
        params = {
            "fields": "id,name,status,effective_status,updated_time",
            "effective_status": json.dumps(list(CAMPAIGN_STATUSES)),
            "limit": self.page_size,
        }
        for page in self._pages(f"{account.id}/campaigns", f"campaigns of {account.id}", params):
            yield campaign_records(page, account)

    def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
        use_async = len(window) > self.async_over_days
        try:
            data, pages = self._async(account, window) if use_async else self._sync(account, window)
        except _JobFailed:
            if len(window) < 2:
                raise
            log.warning("%s: report job for %s failed; retrying as two halves", SERVICE, window)
            return self._halves(account, window)
        except ClientError as exc:
            code = _code(error_of(exc.response)) if exc.response is not None else (None, None)
            if code != TOO_MUCH_DATA or len(window) < 2:
                raise
            log.warning("%s: too much data for %s; retrying as two halves", SERVICE, window)
            return self._halves(account, window)
        return SpendSlice(spend_rows(data, account, self.action_types), pages)

    def _halves(self, account: AdAccount, window: Window) -> SpendSlice:
        first, second = (self.fetch_spend(account, half) for half in window.halves())
        return SpendSlice(first.rows + second.rows, first.pages + second.pages)

    def _insight_params(self, window: Window) -> dict[str, Any]:
        return {
            "level": "campaign",
            "time_increment": 1,
            "time_range": json.dumps(
                {"since": window.start.isoformat(), "until": window.end.isoformat()},
                separators=(",", ":"),
            ),
        }

    def _sync(self, account: AdAccount, window: Window) -> tuple[list[dict[str, Any]], int]:
        params = {
            **self._insight_params(window),
            "fields": ",".join(INSIGHT_FIELDS),
            "limit": self.page_size,
        }
        data: list[dict[str, Any]] = []
        pages = 0
        for page in self._pages(
            f"{account.id}/insights", f"insights of {account.id} {window}", params
        ):
            data += page
            pages += 1
        return data, pages

    def _async(self, account: AdAccount, window: Window) -> tuple[list[dict[str, Any]], int]:
        what = f"report job for {account.id} {window}"
        form = {**self._insight_params(window), "fields": json.dumps(list(INSIGHT_FIELDS))}
        started = self._call("POST", f"{account.id}/insights", what, data=form)
        run_id = str(started.get("report_run_id") or "")
        if not run_id:
            raise HttpError(f"{SERVICE}: {what}: no report_run_id in the answer", service=SERVICE)
        waited, delay = 0.0, self.poll_seconds
        while True:
            status = self._call(
                "GET", run_id, what, params={"fields": "async_status,async_percent_completion"}
            )
            state = status.get("async_status")
            if state == "Job Completed":
                break
            if state in ("Job Failed", "Job Skipped"):
                raise _JobFailed(
                    f"{SERVICE}: {what}: {state} "
                    f"({status.get('error_code', '')} {status.get('error_message', '')})".rstrip(),
                    service=SERVICE,
                )
            if waited >= self.job_timeout:
                raise HttpError(
                    f"{SERVICE}: {what}: not finished after {waited:.0f} s "
                    f"({state}, {status.get('async_percent_completion', 0)} %)",
                    service=SERVICE,
                )
            self.sleep(delay)
            waited += delay
            delay = min(delay * 2, 30.0)
        data: list[dict[str, Any]] = []
        pages = 0
        for page in self._pages(f"{run_id}/insights", what, {"limit": self.page_size}):
            data += page
            pages += 1
        return data, pages


def build_source(config: Any, **overrides: Any) -> MetaAdsSource:
    """The source for ``[meta_ads]`` (secrets from the variables its ``*_env`` keys name)."""
    section = config.meta_ads
    app_secret = config.secret("meta_ads", "app_secret") if section.app_secret_env else ""
    kwargs: dict[str, Any] = {
        "ad_account_ids": section.ad_account_ids,
        "access_token": config.secret("meta_ads", "access_token"),
        "app_secret": app_secret,
        "api_version": section.api_version,
        "base_url": section.base_url,
        "lookback_days": section.lookback_days,
        "history_days": section.history_days,
        "conversion_action_types": getattr(section, "conversion_action_types", ("lead",)),
    }
    kwargs.update(overrides)
    return MetaAdsSource(**kwargs)
