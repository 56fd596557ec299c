"""What every provider module works with: the inbound request, the stored items, and what
processing one stored item means.

A provider module knows one platform's wire format in both directions: at intake it checks
the request's proof and cuts the body into items, each with the platform's own id as its
dedup key; at processing time it turns one stored item back into a lead (fetching the
answers where the platform only sends a reference).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

from webhooks.verify import Rejected

MAX_KEY = 255  # webhook_events.dedup_key is VARCHAR(255)
MAX_ID = 100


@dataclass(frozen=True)
class InboundRequest:
    """The parts of an HTTP request a provider may look at (no Flask types past the app)."""

    method: str
    body: bytes
    headers: Mapping[str, str]
    now: float  # Unix time at arrival
    uri_of: Callable[[], str] = lambda: ""  # built on demand: only HubSpot signs the URI

    @cached_property
    def uri(self) -> str:
        """The full URL the platform called (scheme, host, path, query)."""
        return self.uri_of()

    @cached_property
    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(400, f"the body is not UTF-8 (bad byte at offset {exc.start})") from None

    @cached_property
    def json(self) -> Any:
        """The body as JSON; a :class:`Rejected` 400 saying what is wrong otherwise."""
        return parse_json(self.text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    if not text.strip():
        raise Rejected(400, "the body is empty; expected JSON")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise Rejected(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        # int digits over Python's limit, NaN/Infinity, absurd nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise Rejected(400, f"malformed JSON: {reason}") from None


def dumps(value: Any) -> str:
    """Compact JSON, ASCII only: how one item of a batched body is stored."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Item:
    """One event to store: its dedup key and its body (the raw body when the request held
    one event, else that event re-serialised)."""

    dedup_key: str
    body: str


def dedup_key(*parts: str) -> str:
    key = ":".join(parts)
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def ident(value: Any, where: str, *, required: bool = True) -> str | None:
    """A platform id as a string: ids arrive as JSON numbers or strings, depending on the
    platform and on the day (Meta sends both), so they are compared as strings."""
    if isinstance(value, bool) or value is None or value == "":
        if required:
            raise Rejected(400, f"{where} is missing")
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float) and value.is_integer() and math.isfinite(value):
        text = str(int(value))
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise Rejected(400, f"{where} must be a string or a whole number")
    if not text or len(text) > MAX_ID or not text.isprintable():
        raise Rejected(400, f"{where} must be 1 to {MAX_ID} printable characters")
    return text


def expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(400, f"{where} must be a JSON object")
    return value


def expect_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Rejected(400, f"{where} must be a JSON array")
    return value


# ----- processing ---------------------------------------------------------------------------


class PermanentError(Exception):
    """Processing this event can never succeed as it is (no e-mail, a payload we cannot read):
    it is dead-lettered at once instead of being retried for hours. The message is safe."""


@dataclass(frozen=True)
class LeadData:
    """A lead as read from one platform, before campaign mapping."""

    ref: str  # the platform's lead id
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    phone: str | None = None
    ad_source: str | None = None  # google_ads, meta_ads, linkedin_ads (mapping, section 6)
    ad_campaign_id: str | None = None
    ad_campaign_name: str | None = None
    crm_campaign_id: str | None = None  # when the sender names the CRM campaign itself
    occurred_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """Nothing to create (a test lead, a CRM change notice); ``reason`` is kept as a note."""

    reason: str


Action = LeadData | Skip


MakeClient = Callable[..., Any]
"""``make_client(service, base_url, **HttpClient options)``: an HTTP client with the bounds of
a lead read (see :class:`webhooks.fetch.PlatformLeads`)."""


class LeadFetcher(Protocol):
    """Gives each provider its reader (``provider.reader(config, make_client)``), once."""

    def of(self, provider: Any) -> Any: ...


@dataclass(frozen=True)
class ProcessContext:
    fetcher: LeadFetcher
    process_test_leads: bool = False


@dataclass(frozen=True)
class Handshake:
    """The answer to a platform's subscription check (a GET on the endpoint)."""

    body: str
    mimetype: str


class Provider(Protocol):
    """One platform's whole wire format. A platform that checks an endpoint before it
    subscribes it (Meta, LinkedIn) also has ``handshake_secret`` (config section, key) and
    ``handshake(query, secret) -> Handshake``, raising :class:`Rejected`; the others answer a
    GET with 405. A platform whose notifications only refer to the lead (Meta, LinkedIn) has
    ``reader(config, make_client)``: what reads it, through :meth:`LeadFetcher.of`."""

    name: str  # the URL segment and the store's provider column
    secret: tuple[str, str]  # (config section, key) of the signing secret
    headers: tuple[str, ...]  # its headers kept with each event (to re-check and trace it)

    def verify(self, request: InboundRequest, secret: str) -> None: ...

    def items(self, request: InboundRequest) -> list[Item]: ...

    def interpret(self, dedup: str, body: str, context: ProcessContext) -> Action: ...


def text_or_none(value: Any, limit: int = 255) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    cleaned = " ".join(value.split())
    return cleaned[:limit] or None


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """'Ann B. Smith' -> ('Ann B.', 'Smith'): CRMs want a last name; a single word is one."""
    if not full:
        return None, None
    first, _, last = full.rpartition(" ")
    return (first or None), (last or None)


def from_epoch(value: Any, *, millis: bool = False) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if millis else value
    if not millis and seconds > 10**11:  # some Meta payloads carry milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def from_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # Meta's +0000
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
