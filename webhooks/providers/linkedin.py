"""LinkedIn Lead Sync: ``/webhooks/linkedin``.

Wire format (shared/reference/api-wire-formats.md 3.1-3.2; LinkedIn's "Webhook validation"
and "Lead Sync" docs): a GET with ``challengeCode`` is answered with the HMAC-SHA256 of the
code under the app's client secret; each POST carries ``X-LI-Signature`` = hex HMAC-SHA256 of
``"hmacsha256=" + raw body``. A ``LEAD_ACTION`` notification names the form response by URN
and carries no answers: they are read from ``/rest/leadFormResponses/{id}``, with the labels
of the questions from ``/rest/leadForms/{formId}``. ``leadAction`` is ``CREATED`` or
``DELETED`` (a member withdrew the lead: noted, the CRM's lead is left to the admin); the
dedup key is the response URN plus the action.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from adapters import linkedin_ads
from adapters.http import HttpError, StaticAuth
from connector.config import Config
from webhooks.providers.base import (
    Action,
    Handshake,
    InboundRequest,
    Item,
    LeadData,
    MakeClient,
    PermanentError,
    ProcessContext,
    Skip,
    dedup_key,
    expect_object,
    from_epoch,
    parse_json,
    text_or_none,
)
from webhooks.verify import Rejected, hmac_sha256, require, same

# LinkedIn's challenge codes are UUIDs (its "Webhook validation" doc and every delivery seen).
_LINKEDIN_CHALLENGE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def linkedin_challenge_response(secret: str, challenge_code: str) -> str:
    """``challengeResponse`` = hex HMAC-SHA256 of the challenge code with the client secret.

    The endpoint signs what anyone sends it, under the same key as ``X-LI-Signature``, so it
    signs only a UUID: a POST's signed message starts ``hmacsha256=``, which no UUID does,
    and the answer can never be a valid signature of a body.
    """
    if not _LINKEDIN_CHALLENGE.fullmatch(challenge_code):
        raise Rejected(400, "challengeCode must be a UUID, as LinkedIn sends it")
    return hmac_sha256(secret, challenge_code.encode("ascii")).hex()


def linkedin_signature(secret: str, body: bytes) -> str:
    """``X-LI-Signature``: hex HMAC-SHA256 of ``"hmacsha256=" + raw body``."""
    return hmac_sha256(secret, b"hmacsha256=" + body).hex()


def check_linkedin(secret: str, body: bytes, header: str | None) -> None:
    given = require(header, "X-LI-Signature")
    # the header holds the bare hex digest; tolerate a "hmacsha256=" prefix
    given = given.removeprefix("hmacsha256=").lower()
    if not same(linkedin_signature(secret, body), given):
        raise Rejected(403, "X-LI-Signature does not match the body")


AD_SOURCE = "linkedin_ads"
_URN_ID = re.compile(r"^urn:li:[A-Za-z]+:(.+)$")
_FORM_ID = re.compile(r"urn:li:leadGenForm:([^,)]+)")
_EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def urn_id(urn: Any) -> str | None:
    """``urn:li:sponsoredCampaign:789`` -> ``789``."""
    if not isinstance(urn, str):
        return None
    match = _URN_ID.match(urn.strip())
    return match.group(1) if match else None


def form_id(urn: Any) -> str | None:
    """``urn:li:versionedLeadGenForm:(urn:li:leadGenForm:1,1)`` -> ``1``."""
    match = _FORM_ID.search(urn) if isinstance(urn, str) else None
    return match.group(1) if match else None


def _notification(data: Any) -> tuple[str, str] | None:
    """(response URN, action) of a lead notification; None for other notification types."""
    body = expect_object(data, "the body")
    kind = body.get("type")
    if kind not in (None, "LEAD_ACTION"):
        return None
    urn = body.get("leadGenFormResponse")
    if not isinstance(urn, str) or urn_id(urn) is None or len(urn) > 200:
        raise Rejected(400, "leadGenFormResponse must be a urn:li:leadGenFormResponse:<id> URN")
    action = body.get("leadAction", "CREATED")
    if action not in ("CREATED", "DELETED"):
        raise Rejected(400, "leadAction must be CREATED or DELETED")
    return urn, action


class Linkedin:
    name = "linkedin"
    headers = ("X-LI-Signature",)
    secret = ("linkedin_ads", "webhook_secret")
    handshake_secret = secret  # the challenge is signed with the client secret too

    def handshake(self, query: Mapping[str, str], secret: str | None) -> Handshake:
        """LinkedIn's validation: the challenge code signed with the client secret."""
        if secret is None:
            raise Rejected(404, "the linkedin webhook is off: set linkedin_ads.webhook_secret_env")
        code = query.get("challengeCode", "")
        answer = linkedin_challenge_response(secret, code)
        return Handshake(
            json.dumps({"challengeCode": code, "challengeResponse": answer}), "application/json"
        )

    def verify(self, request: InboundRequest, secret: str) -> None:
        check_linkedin(secret, request.body, request.headers.get("X-LI-Signature"))

    def items(self, request: InboundRequest) -> list[Item]:
        found = _notification(request.json)
        if found is None:
            return []
        return [Item(dedup_key(*found), request.text)]

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Action:
        try:
            found = _notification(parse_json(body))
        except Exception as exc:
            raise PermanentError(f"stored LinkedIn notification is unreadable: {exc}") from None
        if found is None:
            return Skip("not a lead notification")
        urn, action = found
        response_id = urn_id(urn)
        assert response_id is not None
        if action == "DELETED":
            # The CRM is the system of record: deleting its lead is the admin's policy call.
            return Skip(f"LinkedIn reports lead {response_id} deleted by the member")
        reader = context.fetcher.of(self)
        response = reader.response(response_id)
        if response.get("testLead") is True and not context.process_test_leads:
            return Skip("test lead (testLead) from LinkedIn")
        form = form_id(
            response.get("versionedLeadGenFormUrn") or parse_json(body).get("leadGenForm")
        )
        questions = reader.form(form) if form else {}
        return lead_data(response_id, response, questions)

    def reader(self, config: Config, make_client: MakeClient) -> LinkedinLeads:
        return LinkedinLeads(config, make_client)


FORM_TTL = 3600.0


class LinkedinLeads:
    """``GET /rest/leadFormResponses/{id}`` for the answers and ``GET /rest/leadForms/{formId}``
    for what each question asks (``predefinedField``), with ``LinkedIn-Version`` and
    ``X-Restli-Protocol-Version: 2.0.0``; forms are cached for an hour."""

    def __init__(self, config: Config, make_client: MakeClient) -> None:
        section = config.linkedin_ads
        token = config.secret("linkedin_ads", "access_token")
        self.client = make_client(
            "LinkedIn Lead Sync",
            section.base_url,
            auth=StaticAuth({"Authorization": f"Bearer {token}"}),
            headers={"LinkedIn-Version": section.api_version, "X-Restli-Protocol-Version": "2.0.0"},
            classify=linkedin_ads.classify,
        )
        self._forms: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _get(self, path: str, what: str) -> dict[str, Any]:
        try:
            body = self.client.get_json(path)
        except HttpError as exc:
            raise linkedin_ads.explain(exc, what) from None
        if not isinstance(body, dict):
            raise HttpError(f"LinkedIn Lead Sync: {what}: not a JSON object", service="LinkedIn")
        return body

    def response(self, response_id: str) -> dict[str, Any]:
        return self._get(
            f"/rest/leadFormResponses/{quote(response_id, safe='')}",
            f"lead form response {response_id}",
        )

    def form(self, form_id: str) -> dict[str, Any]:
        with self._lock:
            cached = self._forms.get(form_id)
        if cached is not None and time.monotonic() - cached[0] < FORM_TTL:
            return cached[1]
        form = self._get(f"/rest/leadForms/{quote(form_id, safe='')}", f"lead form {form_id}")
        with self._lock:
            self._forms[form_id] = (time.monotonic(), form)
        return form


def _fields(form: dict[str, Any]) -> dict[str, str]:
    """questionId -> predefinedField (EMAIL, FIRST_NAME, ...) of a lead form."""
    content = form.get("content") if isinstance(form.get("content"), dict) else form
    out: dict[str, str] = {}
    questions = content.get("questions") if isinstance(content, dict) else None
    for question in questions if isinstance(questions, list) else []:
        if isinstance(question, dict) and isinstance(question.get("predefinedField"), str):
            out[str(question.get("questionId"))] = question["predefinedField"]
    return out


def _answer_text(answer: dict[str, Any]) -> str | None:
    details = answer.get("answerDetails")
    if not isinstance(details, dict):
        return None
    text = details.get("textQuestionAnswer")
    if isinstance(text, dict):
        return text_or_none(text.get("answer"), 1000)
    choice = details.get("multipleChoiceAnswer")
    if isinstance(choice, dict) and isinstance(choice.get("options"), list):
        return text_or_none(", ".join(str(o) for o in choice["options"]), 1000)
    return None


def lead_data(response_id: str, response: dict[str, Any], form: dict[str, Any]) -> LeadData:
    fields = _fields(form)
    by_field: dict[str, str] = {}
    extra: dict[str, str] = {}
    form_response = response.get("formResponse")
    answers = form_response.get("answers") if isinstance(form_response, dict) else None
    for answer in answers if isinstance(answers, list) else []:
        if not isinstance(answer, dict):
            continue
        value = _answer_text(answer)
        if value is None:
            continue
        field = fields.get(str(answer.get("questionId")))
        if field:
            by_field.setdefault(field, value)
        else:
            extra[f"answer:{answer.get('questionId')}"] = value
    email = by_field.get("EMAIL") or by_field.get("WORK_EMAIL")
    if email is None:  # a form we could not label: an answer that is an address is the e-mail
        email = next((v for v in extra.values() if _EMAIL_LIKE.match(v)), None)
    if email is None and not answers:
        raise PermanentError(f"LinkedIn lead form response {response_id} has no answers")
    metadata = response.get("leadMetadata")
    sponsored = metadata.get("sponsoredLeadMetadata") if isinstance(metadata, dict) else None
    campaign = urn_id(sponsored.get("campaign")) if isinstance(sponsored, dict) else None
    for key in ("JOB_TITLE", "COUNTRY", "CITY"):
        if by_field.get(key):
            extra[key.lower()] = by_field[key]
    form = form_id(response.get("versionedLeadGenFormUrn"))
    if form:
        extra["form_id"] = form
    return LeadData(
        ref=response_id,
        email=email,
        first_name=by_field.get("FIRST_NAME"),
        last_name=by_field.get("LAST_NAME"),
        company=by_field.get("COMPANY_NAME"),
        phone=by_field.get("PHONE_NUMBER") or by_field.get("WORK_PHONE_NUMBER"),
        ad_source=AD_SOURCE,
        ad_campaign_id=campaign,
        occurred_at=from_epoch(response.get("submittedAt"), millis=True),
        extra=extra,
    )
