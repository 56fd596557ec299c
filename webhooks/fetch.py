"""Reading the leads that a notification only refers to, through the shared HTTP client.

- **Meta**: ``GET /{api_version}/{leadgen_id}?fields=...&access_token=...&appsecret_proof=...``
  (``appsecret_proof`` = hex HMAC-SHA256 of the token under the app secret, as the
  facebook-business SDK sends it), answered ``{"id", "created_time", "campaign_id",
  "field_data": [{"name", "values": [...]}]}``; errors are Meta's ``{"error": {...}}``
  envelope, classified by the Meta adapter's rules.
- **LinkedIn**: ``GET /rest/leadFormResponses/{id}`` for the answers and
  ``GET /rest/leadForms/{formId}`` for what each question asks (``predefinedField``), with
  ``LinkedIn-Version`` and ``X-Restli-Protocol-Version: 2.0.0``; forms are cached for an hour.

Calls are bounded tighter than a sync's (3 attempts, short timeouts): a lead that cannot be
read now is retried by the worker's own backoff, without holding a worker for minutes.
Tokens travel only in the query or the Authorization header and never reach a message.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from adapters import linkedin_ads, meta_ads
from adapters.http import HttpClient, HttpError, StaticAuth, parse_json
from connector.config import Config

META_FIELDS = "created_time,ad_id,form_id,campaign_id,campaign_name,field_data,platform"
FORM_TTL = 3600.0
_TIMEOUT = (5.0, 30.0)


class PlatformLeads:
    """The :class:`webhooks.providers.base.LeadFetcher` for the configured platforms."""

    def __init__(
        self,
        config: Config,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.session = session
        self.sleep = sleep
        self._meta: HttpClient | None = None
        self._meta_auth: dict[str, str] = {}
        self._linkedin: HttpClient | None = None
        self._forms: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _client(self, service: str, base_url: str, **kwargs: Any) -> HttpClient:
        return HttpClient(
            service,
            base_url,
            timeout=_TIMEOUT,
            max_attempts=3,
            max_wait=60.0,
            session=self.session,
            sleep=self.sleep,
            **kwargs,
        )

    # ----- Meta ----------------------------------------------------------------------------

    def _meta_client(self) -> HttpClient:
        if self._meta is None:
            token = self.config.secret("meta_ads", "access_token")
            auth = {"access_token": token}
            if self.config.meta_ads.app_secret_env:
                secret = self.config.secret("meta_ads", "app_secret")
                auth["appsecret_proof"] = hmac.new(
                    secret.encode(), token.encode(), hashlib.sha256
                ).hexdigest()
            self._meta_auth = auth
            self._meta = self._client(
                "Meta Graph API", self.config.meta_ads.base_url, classify=meta_ads.classify
            )
        return self._meta

    def meta_lead(self, leadgen_id: str) -> dict[str, Any]:
        client = self._meta_client()
        path = f"/{self.config.meta_ads.api_version}/{quote(leadgen_id, safe='')}"
        try:
            response = client.request(
                "GET", path, params={"fields": META_FIELDS, **self._meta_auth}
            )
        except HttpError as exc:
            raise meta_ads.explain(exc, f"lead {leadgen_id}") from None
        body = parse_json(response)
        if not isinstance(body, dict):
            raise HttpError(f"Meta Graph API: lead {leadgen_id}: not a JSON object", service="Meta")
        return body

    # ----- LinkedIn ------------------------------------------------------------------------

    def _linkedin_client(self) -> HttpClient:
        if self._linkedin is None:
            section = self.config.linkedin_ads
            token = self.config.secret("linkedin_ads", "access_token")
            self._linkedin = self._client(
                "LinkedIn Lead Sync",
                section.base_url,
                auth=StaticAuth({"Authorization": f"Bearer {token}"}),
                headers={
                    "LinkedIn-Version": section.api_version,
                    "X-Restli-Protocol-Version": "2.0.0",
                },
                classify=linkedin_ads.classify,
            )
        return self._linkedin

    def _linkedin_get(self, path: str, what: str) -> dict[str, Any]:
        try:
            body = self._linkedin_client().get_json(path)
        except HttpError as exc:
            raise linkedin_ads.explain(exc, what) from None
        if not isinstance(body, dict):
            raise HttpError(f"LinkedIn Lead Sync: {what}: not a JSON object", service="LinkedIn")
        return body

    def linkedin_response(self, response_id: str) -> dict[str, Any]:
        return self._linkedin_get(
            f"/rest/leadFormResponses/{quote(response_id, safe='')}",
            f"lead form response {response_id}",
        )

    def linkedin_form(self, form_id: str) -> dict[str, Any]:
        with self._lock:
            cached = self._forms.get(form_id)
        if cached is not None and time.monotonic() - cached[0] < FORM_TTL:
            return cached[1]
        form = self._linkedin_get(
            f"/rest/leadForms/{quote(form_id, safe='')}", f"lead form {form_id}"
        )
        with self._lock:
            self._forms[form_id] = (time.monotonic(), form)
        return form

    def close(self) -> None:
        for client in (self._meta, self._linkedin):
            if client is not None and self.session is None:
                client.close()
