"""The normalized model: what every adapter yields and the store keeps.

Each record names the system it came from (``source``) and that system's id for it
(``external_id``); the pair is unique, so pulling the same record twice is an upsert, never a
duplicate. References between records of one CRM use that CRM's ids (an opportunity's
``primary_campaign_id`` is a Salesforce Campaign Id), because records arrive in any order and
a foreign key to a row that has not arrived yet would make incremental pulls order-dependent.
References that may cross systems (a touchpoint from an ad lead form points at a CRM campaign)
carry the other record's source too.

Money is always a :class:`~decimal.Decimal` next to an ISO-4217 ``currency``; times are
timezone-aware UTC ``datetime``; days are ``date``. ``deleted_at`` set means "deleted
upstream": deletions are recorded, never inferred from a record being absent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import ClassVar

CHANNELS: tuple[str, ...] = (
    "paid_search",
    "paid_social",
    "display",
    "video",
    "email",
    "event",
    "webinar",
    "content",
    "referral",
    "organic",
    "direct",
    "other",
)
"""The contract's channels (DESIGN section 3), in report order."""

BUDGET_CATEGORIES: tuple[str, ...] = ("strategic", "growth", "retention")
LIFECYCLE_STAGES: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "customer")
TOUCH_KINDS: tuple[str, ...] = (
    "campaign_member",
    "ad_lead_form",
    "web_form",
    "event_attendance",
    "offline",
)
EXPENSE_STATUSES: tuple[str, ...] = ("requested", "approved", "rejected")


@dataclass(slots=True, kw_only=True)
class Record:
    """Fields every normalized record has."""

    entity: ClassVar[str] = ""

    source: str
    external_id: str
    deleted_at: datetime | None = None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return _field_names(cls)


@dataclass(slots=True, kw_only=True)
class Campaign(Record):
    """A CRM campaign: the unit that budgets, costs and attributed revenue are reported on."""

    entity: ClassVar[str] = "campaign"

    name: str
    channel: str = "other"
    parent_id: str | None = None
    status: str | None = None
    type: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    budgeted_cost: Decimal | None = None
    actual_cost: Decimal | None = None
    currency: str | None = None
    owner_id: str | None = None
    owner_name: str | None = None
    department: str | None = None
    budget_category: str | None = None
    ad_campaign_ref: str | None = None
    """The value of the CRM's ad-id field (Salesforce ``Ad_Campaign_Id__c``), for mapping."""
    created_at: datetime | None = None
    modified_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class AdCampaign(Record):
    """An ad platform's campaign; ``external_id`` is the platform's campaign id."""

    entity: ClassVar[str] = "ad_campaign"

    account_id: str
    name: str
    status: str | None = None
    currency: str | None = None
    timezone: str | None = None
    modified_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class AdSpendDay(Record):
    """One ad campaign's spend on one day of the ad account's time zone.

    ``external_id`` is ``<account>:<YYYY-MM-DD>:<campaign>`` so a re-read of a past day
    replaces the row instead of adding one (ad platforms revise recent days). Day before
    campaign because spend arrives day by day for every campaign: in that order new keys
    append to the end of the unique index instead of landing all over it.
    """

    entity: ClassVar[str] = "ad_spend_day"

    account_id: str
    ad_campaign_id: str
    day: date
    spend: Decimal
    currency: str
    impressions: int = 0
    clicks: int = 0
    conversions: Decimal = Decimal(0)

    @staticmethod
    def key(account_id: str, ad_campaign_id: str, day: date) -> str:
        return f"{account_id}:{day.isoformat()}:{ad_campaign_id}"


@dataclass(slots=True, kw_only=True)
class Expense(Record):
    """A non-ad cost (an event booth, an agency invoice) charged to a CRM campaign."""

    entity: ClassVar[str] = "expense"

    campaign_source: str
    campaign_id: str
    incurred_on: date
    amount: Decimal
    currency: str
    status: str = "requested"
    description: str | None = None
    vendor: str | None = None
    requested_by: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


@dataclass(slots=True, kw_only=True)
class Person(Record):
    """A lead or a contact. A lead converted into a contact is the same person as that contact."""

    entity: ClassVar[str] = "person"

    kind: str  # "lead" or "contact"
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    created_at: datetime | None = None
    lifecycle_stage: str = "lead"
    lead_source: str | None = None
    mql_at: datetime | None = None
    sql_at: datetime | None = None
    converted_contact_id: str | None = None
    converted_opportunity_id: str | None = None
    converted_at: datetime | None = None
    modified_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class Touchpoint(Record):
    """A person's touch with a campaign; ``external_id`` is the source record's id."""

    entity: ClassVar[str] = "touchpoint"

    person_source: str
    person_id: str
    campaign_source: str
    campaign_id: str
    occurred_at: datetime
    kind: str = "campaign_member"
    responded: bool = True
    modified_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class Opportunity(Record):
    """A deal. ``amount`` may be missing upstream; attribution counts it as 0."""

    entity: ClassVar[str] = "opportunity"

    name: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    stage: str | None = None
    is_closed: bool = False
    is_won: bool = False
    created_at: datetime | None = None
    close_date: date | None = None
    primary_campaign_id: str | None = None
    modified_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class ContactRole(Record):
    """Links an opportunity to a person (Salesforce OpportunityContactRole)."""

    entity: ClassVar[str] = "contact_role"

    opportunity_id: str
    person_id: str
    role: str | None = None
    is_primary: bool = False
    modified_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class Budget(Record):
    """A budget for a scope and period; ``external_id`` is ``<scope>|<period>``."""

    entity: ClassVar[str] = "budget"

    scope: str
    period: str
    amount: Decimal
    currency: str

    @staticmethod
    def key(scope: str, period: str) -> str:
        return f"{scope}|{period}"


@dataclass(slots=True, kw_only=True)
class FxRate(Record):
    """A dated exchange rate: from ``start_date`` on, 1 ``currency`` = ``rate`` ``base_currency``.

    Salesforce's ``DatedConversionRate`` quotes the other way round (1 corporate unit =
    ConversionRate units of the currency); its adapter stores ``quote = "per_base"`` and the
    rate as Salesforce gives it, so no precision is lost to an inversion at pull time.
    """

    entity: ClassVar[str] = "fx_rate"

    currency: str
    base_currency: str
    start_date: date
    rate: Decimal
    quote: str = "per_unit"  # "per_unit" or "per_base"


ENTITY_TYPES: tuple[type[Record], ...] = (
    Campaign,
    AdCampaign,
    AdSpendDay,
    Expense,
    Person,
    Touchpoint,
    Opportunity,
    ContactRole,
    Budget,
    FxRate,
)


def normalize_email(email: str | None) -> str | None:
    """Lower-case and strip an e-mail so the same person matches across systems."""
    if email is None:
        return None
    cleaned = email.strip().lower()
    return cleaned or None


@cache
def _field_names(record_type: type[Record]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))
