"""LinkedIn Marketing API: daily spend per campaign from ``adAnalytics``.

- **versioned REST**: every call carries ``LinkedIn-Version: YYYYMM`` (each version lives
  about a year) and ``X-Restli-Protocol-Version: 2.0.0``;
- **Rest.li query syntax**: ``dateRange=(start:(year:2026,month:3,day:1),end:(...))`` and
  ``accounts=List(urn%3Ali%3AsponsoredAccount%3A123)``: the structural ``(),:`` stay as
  they are while the URN inside ``List(...)`` is percent-encoded. A generic query encoder
  would escape the parentheses too and the API would refuse the call, so the query string
  is built here by hand and sent as is;
- **reads**: ``q=analytics``, ``pivot=CAMPAIGN``, ``timeGranularity=DAILY`` and an explicit
  ``fields`` list (at most 20); the endpoint has **no pagination** and silently truncates an
  answer at 15,000 elements, so windows are sized from the campaign count and a full answer
  is re-read as two halves;
- **money**: ``costInLocalCurrency`` is a decimal string (often with 5+ decimals) in the ad
  account's currency, parsed straight to Decimal; conversions are
  ``externalWebsiteConversions + oneClickLeads`` (website conversions and lead-form leads);
- **days**: analytics days are UTC days (LinkedIn ad accounts have no reporting time zone);
- **campaign names** come from ``/adAccounts/{id}/adCampaigns?q=search`` (all statuses),
  paged with ``pageToken`` / ``metadata.nextPageToken``.

Docs: https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/ads-reporting,
https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads/account-structure/create-and-manage-campaigns,
https://learn.microsoft.com/en-us/linkedin/marketing/versioning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

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
from adapters.http import Decision, HttpClient, HttpError, StaticAuth, parse_json
from connector import model
from connector.gc_pause import paused_gc
from connector.money import to_decimal

log = logging.getLogger(__name__)

SOURCE = "linkedin_ads"
SERVICE = "LinkedIn Marketing API"
MAX_ELEMENTS = 15_000  # adAnalytics answers are cut here, without a word
SLICE_DAYS = 30
TIMEZONE = "UTC"
METRICS = (
    "costInLocalCurrency",
    "impressions",
    "clicks",
    "externalWebsiteConversions",
    "oneClickLeads",
)
CONVERSION_METRICS = ("externalWebsiteConversions", "oneClickLeads")
CAMPAIGN_STATUSES = (
    "ACTIVE",
    "PAUSED",
    "ARCHIVED",
    "COMPLETED",
    "CANCELED",
    "DRAFT",
    "PENDING_DELETION",
    "REMOVED",
)


# ---------------------------------------------------------------------------------------------
# Rest.li encoding


def account_urn(account_id: str) -> str:
    return f"urn:li:sponsoredAccount:{account_id}"


def restli_date(day: date) -> str:
    return f"(year:{day.year},month:{day.month},day:{day.day})"


def analytics_query(account_id: str, window: Window) -> str:
    """The adAnalytics query string, Rest.li 2.0 encoded (see the module docstring)."""
    parts = [
        "q=analytics",
        "pivot=CAMPAIGN",
        "timeGranularity=DAILY",
        f"dateRange=(start:{restli_date(window.start)},end:{restli_date(window.end)})",
        f"accounts=List({quote(account_urn(account_id), safe='')})",
        "fields=" + ",".join(("dateRange", "pivotValues", *METRICS)),
    ]
    return "&".join(parts)


def campaigns_query(page_token: str | None, page_size: int = 1000) -> str:
    statuses = ",".join(CAMPAIGN_STATUSES)
    parts = ["q=search", f"search=(status:(values:List({statuses})))", f"pageSize={page_size}"]
    if page_token:
        parts.append(f"pageToken={quote(page_token, safe='')}")
    return "&".join(parts)


# ---------------------------------------------------------------------------------------------
# Errors


def _error(response: requests.Response) -> dict[str, Any]:
    try:
        body = parse_json(response)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify(response: requests.Response) -> Decision | None:
    """401 is an expired or revoked token that no refresh in this connector can cure."""
    if response.status_code == 401:
        return Decision.FAIL
    return None


def explain(exc: HttpError, what: str) -> HttpError:
    body = _error(exc.response) if exc.response is not None else {}
    code = str(body.get("code") or body.get("serviceErrorCode") or "")
    if exc.status == 426 or code in ("NONEXISTENT_VERSION", "VERSION_MISSING"):
        text = (
            "this LinkedIn-Version is not served (versions are sunset after about a year): set "
            "linkedin_ads.api_version to a current YYYYMM version"
        )
    elif exc.status == 401:
        text = (
            "the access token has expired or was revoked (member tokens last 60 days): "
            "re-authorize the app and put the new token in the variable named by "
            "linkedin_ads.access_token_env"
        )
    elif exc.status == 403:
        text = (
            "the token's member cannot read this ad account's reporting: it needs a role on the "
            "account and the r_ads and r_ads_reporting scopes"
        )
    elif exc.status == 404:
        text = "no such ad account: check linkedin_ads.account_ids (numeric ids)"
    elif exc.status == 429:
        text = "LinkedIn is rate limiting this app (daily limits reset at midnight UTC)"
    else:
        return reworded(exc, f"{SERVICE}: {what}: {exc}")
    return reworded(exc, f"{SERVICE}: {what}: {text} ({exc.status} {code})".rstrip())


# ---------------------------------------------------------------------------------------------
# Parsing (pure)


def _day(value: dict[str, Any]) -> date:
    return date(int(value["year"]), int(value["month"]), int(value["day"]))


def urn_id(urn: str) -> str:
    """``urn:li:sponsoredCampaign:145282384`` -> ``145282384``."""
    return urn.rsplit(":", 1)[-1]


@paused_gc()  # a slice is tens of thousands of records, none in a reference cycle
def spend_rows(elements: Sequence[dict[str, Any]], account: AdAccount) -> list[model.AdSpendDay]:
    rows: dict[str, model.AdSpendDay] = {}
    for element in elements:
        span = element.get("dateRange") or {}
        start = _day(span["start"])
        end = _day(span.get("end") or span["start"])
        if start != end:
            raise ValueError(f"{SERVICE}: an analytics element covers {start}..{end}, not a day")
        pivots = element.get("pivotValues") or []
        if not pivots:
            continue
        conversions = sum(int(element.get(m) or 0) for m in CONVERSION_METRICS)
        row = spend_day(
            SOURCE,
            account,
            urn_id(str(pivots[0])),
            start,
            to_decimal(element.get("costInLocalCurrency") or "0"),
            impressions=int(element.get("impressions") or 0),
            clicks=int(element.get("clicks") or 0),
            conversions=conversions,
        )
        rows[row.external_id] = row
    return list(rows.values())


def campaign_records(
    elements: Sequence[dict[str, Any]], account: AdAccount
) -> list[model.AdCampaign]:
    records = []
    for element in elements:
        modified = ((element.get("changeAuditStamps") or {}).get("lastModified") or {}).get("time")
        records.append(
            model.AdCampaign(
                source=SOURCE,
                external_id=str(element["id"]),
                account_id=account.id,
                name=str(element.get("name") or element["id"]),
                status=element.get("status"),
                currency=account.currency,
                timezone=account.timezone,
                modified_at=(
                    datetime.fromtimestamp(int(modified) / 1000, UTC) if modified else None
                ),
            )
        )
    return records


# ---------------------------------------------------------------------------------------------
# The source


class LinkedinAdsSource(AdSource):
    """LinkedIn ad accounts as a source (``campaigns``, ``daily_spend``)."""

    name = SOURCE

    def __init__(
        self,
        *,
        account_ids: Sequence[str],
        access_token: str,
        api_version: str = "202511",
        base_url: str = "https://api.linkedin.com",
        lookback_days: int = 7,
        history_days: int = 400,
        slice_days: int = SLICE_DAYS,
        max_elements: int = MAX_ELEMENTS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 300.0,
        prefetch: bool = True,
    ) -> None:
        super().__init__(
            list(account_ids),
            WindowPolicy(lookback_days, history_days, slice_days),
            prefetch=prefetch,
        )
        self.max_elements = max_elements
        self.http = HttpClient(
            SERVICE,
            base_url,
            auth=StaticAuth({"Authorization": f"Bearer {access_token}"}),
            headers={"LinkedIn-Version": api_version, "X-Restli-Protocol-Version": "2.0.0"},
            classify=classify,
            session=session,
            sleep=sleep,
            max_wait=max_wait,
        )

    def clients(self) -> Sequence[HttpClient]:
        return (self.http,)

    def _get(self, path_and_query: str, what: str) -> Any:
        try:
            return self.http.get_json(path_and_query)
        except HttpError as exc:
            raise explain(exc, what) from None

    def fetch_account(self, account_id: str) -> AdAccount:
        body = self._get(f"/rest/adAccounts/{account_id}", f"ad account {account_id}")
        return AdAccount(
            id=account_id,
            name=str(body.get("name") or account_id),
            currency=str(body.get("currency") or ""),
            timezone=TIMEZONE,
            status=body.get("status"),
        )

    def account_problem(self, account: AdAccount) -> str | None:
        if account.status in ("CANCELED", "PENDING_DELETION", "REMOVED"):
            return f"ad account {account.id} ({account.name}) is {account.status}"
        return None

    def fetch_campaigns(self, account: AdAccount) -> Iterator[list[model.AdCampaign]]:
        token: str | None = None
        while True:
            body = self._get(
                f"/rest/adAccounts/{account.id}/adCampaigns?{campaigns_query(token)}",
                f"campaigns of {account.id}",
            )
            yield campaign_records(body.get("elements") or [], account)
            token = (body.get("metadata") or {}).get("nextPageToken")
            if not token:
                return

    def slice_days(self, account: AdAccount) -> int:
        """Few enough days that campaigns x days stays under the 15,000-element cap."""
        campaigns = len(self.state.campaigns.get(account.id, ()))
        if not campaigns:
            return self.policy.slice_days
        return max(1, min(self.policy.slice_days, (self.max_elements * 9 // 10) // campaigns))

    def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
        body = self._get(
            f"/rest/adAnalytics?{analytics_query(account.id, window)}",
            f"analytics of {account.id} for {window}",
        )
        elements = body.get("elements") or []
        if len(elements) >= self.max_elements:
            if len(window) < 2:
                raise HttpError(
                    f"{SERVICE}: analytics of {account.id} for {window}: {len(elements)} "
                    "elements for one day, the most LinkedIn returns; some campaigns may be "
                    "missing",
                    service=SERVICE,
                )
            log.warning(
                "%s: %s hit the %d-element cap; re-reading as two halves",
                SERVICE,
                window,
                len(elements),
            )
            first, second = (self.fetch_spend(account, half) for half in window.halves())
            return SpendSlice(first.rows + second.rows, first.pages + second.pages)
        return SpendSlice(spend_rows(elements, account))


def build_source(config: Any, **overrides: Any) -> LinkedinAdsSource:
    """The source for ``[linkedin_ads]`` (the token from the variable its ``*_env`` key names)."""
    section = config.linkedin_ads
    kwargs: dict[str, Any] = {
        "account_ids": section.account_ids,
        "access_token": config.secret("linkedin_ads", "access_token"),
        "api_version": section.api_version,
        "base_url": section.base_url,
        "lookback_days": section.lookback_days,
        "history_days": section.history_days,
    }
    kwargs.update(overrides)
    return LinkedinAdsSource(**kwargs)
