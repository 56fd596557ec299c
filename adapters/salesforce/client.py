"""Salesforce REST calls through the shared :class:`adapters.http.HttpClient`.

Logging in is :mod:`adapters.salesforce.auth`'s; every data call goes through the shared HTTP
behaviour, so timeouts, retries with backoff, ``Retry-After`` and safe
error messages work exactly as for every other adapter. What is Salesforce-specific lives here:

- error bodies are JSON **arrays** (``[{"errorCode", "message"}]``); ``REQUEST_LIMIT_EXCEEDED``
  (403) means the org's rolling 24 h quota is gone, so it ends the run (:class:`RateLimited`)
  instead of being retried;
- ``Sforce-Limit-Info: api-usage=used/limit`` is read on every response and the client refuses
  to start another call once ``quota_stop_share`` of the daily limit is used
  (:class:`QuotaReached`), so a connector never eats the quota other integrations need;
- query results page by ``nextRecordsUrl``; ``queryAll`` also returns deleted rows;
- request bodies are encoded with :func:`dumps`, which writes Decimals as JSON numbers exactly
  (``requests``' own ``json=`` would refuse them, and a float would round them).
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import requests

from adapters.http import Decision, HttpClient, RateLimited, parse_json
from adapters.salesforce.auth import SalesforceAuth

log = logging.getLogger(__name__)

SERVICE = "Salesforce"
_USAGE = re.compile(r"(?:^|[^-])api-usage=(\d+)/(\d+)")
_RETRY_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})


def error_code(response: requests.Response) -> str | None:
    """The ``errorCode`` of Salesforce's JSON error array (None for any other body)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        code = body[0].get("errorCode")
        return str(code) if code else None
    return None


def classify(response: requests.Response) -> Decision | None:
    """Salesforce's quirks on top of the shared rules (None = the shared rules decide)."""
    if response.ok:
        return None
    code = error_code(response)
    if code == "REQUEST_LIMIT_EXCEEDED":
        # a rolling 24 h quota (or too many concurrent long requests): sleeping is pointless
        return Decision.RATE_LIMITED
    if code in _RETRY_CODES:
        return Decision.RETRY
    return None


@dataclass(frozen=True)
class ApiUsage:
    """The org's API calls in the last 24 h, from ``Sforce-Limit-Info``."""

    used: int
    limit: int

    @property
    def share(self) -> Decimal:
        return Decimal(self.used) / Decimal(self.limit) if self.limit else Decimal(0)

    @classmethod
    def parse(cls, header: str | None) -> ApiUsage | None:
        if not header:
            return None
        match = _USAGE.search(header)
        return cls(int(match[1]), int(match[2])) if match else None


class QuotaReached(RateLimited):
    """The run used its configured share of the org's daily API quota; resume next run."""


class _JsonEncodeError(TypeError):
    pass


def dumps(value: Any) -> str:
    """JSON text with Decimals as exact numbers and dates/datetimes as Salesforce literals."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _JsonEncodeError(f"cannot send a non-finite number ({value}) to Salesforce")
        return format(value, "f")
    if isinstance(value, datetime):
        return json.dumps(soql_datetime(value))
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        raise _JsonEncodeError("floats are not sent to Salesforce; use Decimal")
    return json.dumps(value)


def soql_datetime(value: datetime) -> str:
    """``2026-03-01T10:00:00.000Z``: the form Salesforce itself returns, milliseconds kept."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: Salesforce times must be timezone-aware")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(text: str | None) -> datetime | None:
    """Salesforce datetimes (``2026-03-01T10:00:00.000+0000``) as aware UTC datetimes."""
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


class SalesforceClient:
    """One logged-in org: REST paths, limits and the quota guard.

    ``guarded`` calls (pulls and write-back, the bulk of a run) stop at ``quota_stop_share``;
    unguarded ones (an inbound lead, an alert task) still go out, because they are few and
    losing them costs more than the calls. ``REQUEST_LIMIT_EXCEEDED`` stops both.
    """

    def __init__(
        self,
        auth: SalesforceAuth,
        *,
        api_version: str = "62.0",
        timeout: float = 60.0,
        quota_stop_share: Decimal = Decimal("0.5"),
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
        max_attempts: int = 6,
    ) -> None:
        self.auth = auth
        self.api_version = api_version
        self.quota_stop_share = quota_stop_share
        self.usage: ApiUsage | None = None
        self._describes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.http = HttpClient(
            SERVICE,
            auth.instance_url or "https://login.salesforce.com",
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=(min(10.0, timeout), timeout),
            max_attempts=max_attempts,
            classify=classify,
            on_response=[self._read_limits],
            session=session,
            sleep=sleep,
            rng=rng,
        )

    # ----- limits ------------------------------------------------------------------------

    def _read_limits(self, response: requests.Response) -> None:
        usage = ApiUsage.parse(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            with self._lock:
                self.usage = usage

    def check_quota(self) -> None:
        """Raise :class:`QuotaReached` when the last known usage is at or over the share."""
        usage = self.usage
        if usage is None or usage.limit <= 0 or usage.share < self.quota_stop_share:
            return
        percent = (self.quota_stop_share * 100).normalize()
        raise QuotaReached(
            f"{SERVICE}: stopped politely at {percent:f} % of the org's daily API quota "
            f"({usage.used:,} of {usage.limit:,} calls used in the last 24 h; "
            "salesforce.quota_stop_share); the next run resumes from the saved cursors",
            service=SERVICE,
        )

    # ----- paths and calls ---------------------------------------------------------------

    def data_path(self, path: str) -> str:
        """``services/data/vXX.X/<path>`` joined to the instance URL of the current login."""
        base = self.auth.ensure_instance_url().rstrip("/")
        return f"{base}/services/data/v{self.api_version}/{path.lstrip('/')}"

    def absolute(self, path: str) -> str:
        """A server-relative path (``nextRecordsUrl``) on the current instance."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.auth.ensure_instance_url().rstrip('/')}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        guarded: bool = True,
        idempotent: bool | None = None,
    ) -> requests.Response:
        if guarded:
            self.check_quota()
        data = None
        headers: dict[str, str] = {}
        if body is not None:
            data = dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        return self.http.request(
            method, url, params=params, data=data, headers=headers, idempotent=idempotent
        )

    def get(self, path: str, *, params: Mapping[str, Any] | None = None, guarded: bool = True):
        return parse_json(self.request("GET", self.data_path(path), params=params, guarded=guarded))

    def get_url(self, url: str, *, guarded: bool = False) -> Any:
        """GET a server-relative path outside ``services/data`` (``services/oauth2/userinfo``)."""
        return parse_json(self.request("GET", self.absolute(url), guarded=guarded))

    def post(self, path: str, body: Any, *, guarded: bool = True) -> Any:
        return parse_json(self.request("POST", self.data_path(path), body=body, guarded=guarded))

    def patch(self, path: str, body: Any, *, guarded: bool = True) -> Any:
        """PATCH; a single-record update answers 204 with no body (returned as None)."""
        response = self.request("PATCH", self.data_path(path), body=body, guarded=guarded)
        return None if response.status_code == 204 else parse_json(response)

    # ----- queries -----------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, include_deleted: bool = False, guarded: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Each page of a SOQL result (up to 2,000 rows), following ``nextRecordsUrl``.

        ``include_deleted`` uses ``queryAll``, which also returns rows in the Recycle Bin and
        rows merged away (``IsDeleted`` true), so deletions reach the store.
        """
        resource = "queryAll/" if include_deleted else "query/"
        page = self.get(resource, params={"q": soql}, guarded=guarded)
        while True:
            yield page
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = parse_json(self.request("GET", self.absolute(next_url), guarded=guarded))

    def query(
        self, soql: str, *, include_deleted: bool = False, guarded: bool = True
    ) -> list[dict[str, Any]]:
        return [
            row
            for page in self.query_pages(soql, include_deleted=include_deleted, guarded=guarded)
            for row in page.get("records", [])
        ]

    # ----- metadata ----------------------------------------------------------------------

    def describe(
        self, sobject: str, *, refresh: bool = False, guarded: bool = True
    ) -> dict[str, Any]:
        """``sobjects/<name>/describe``, cached for the client's life (one run)."""
        if refresh or sobject not in self._describes:
            self._describes[sobject] = self.get(f"sobjects/{sobject}/describe", guarded=guarded)
        return self._describes[sobject]

    def field_map(
        self, sobject: str, *, refresh: bool = False, guarded: bool = True
    ) -> dict[str, dict[str, Any]]:
        """Fields of ``sobject`` visible to the API user (field-level security applies)."""
        described = self.describe(sobject, refresh=refresh, guarded=guarded)
        return {f["name"]: f for f in described.get("fields", [])}

    def describe_global(self) -> dict[str, dict[str, Any]]:
        """Every sObject the API user can see, by name, with its createable/updateable flags."""
        body = self.get("sobjects/", guarded=False)
        return {o["name"]: o for o in body.get("sobjects", [])}

    def limits(self) -> dict[str, Any]:
        return self.get("limits/", guarded=False)

    def close(self) -> None:
        self.http.close()
