"""Salesforce rows (parsed JSON) to normalized records (DESIGN section 3).

Pure functions, no calls: what a field means is decided here and nowhere else.

- Money arrives as JSON numbers parsed to Decimal (never float); its currency is the row's
  ``CurrencyIsoCode`` in a multi-currency org, else the org's single currency.
- Datetimes are ``2026-03-01T10:00:00.000+0000`` (UTC); dates are ``YYYY-MM-DD``.
- A lead and the contact it was converted into are one person: the lead keeps
  ``ConvertedContactId`` / ``ConvertedOpportunityId`` and the journey builder joins them.
- A campaign member is a touch of its contact (after conversion) or else its lead, at its
  ``CreatedDate``; ``responded`` is the configured field (``HasResponded`` by default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from adapters.salesforce.client import parse_datetime
from adapters.salesforce.org_meaning import CampaignMeaning, LeadLifecycle
from connector import model
from connector.money import to_decimal

SOURCE = "salesforce"

Row = Mapping[str, Any]

# Campaign.Type picklist values (standard and common custom ones) -> contract channels.
_CHANNEL_BY_TYPE: dict[str, str] = {
    "paidsearch": "paid_search",
    "ppc": "paid_search",
    "sem": "paid_search",
    "searchads": "paid_search",
    "googleads": "paid_search",
    "paidsocial": "paid_social",
    "socialads": "paid_social",
    "socialmedia": "paid_social",
    "linkedinads": "paid_social",
    "metaads": "paid_social",
    "facebookads": "paid_social",
    "display": "display",
    "bannerads": "display",
    "advertisement": "display",
    "video": "video",
    "youtube": "video",
    "email": "email",
    "newsletter": "email",
    "conference": "event",
    "tradeshow": "event",
    "event": "event",
    "seminar": "event",
    "webinar": "webinar",
    "content": "content",
    "contentsyndication": "content",
    "referral": "referral",
    "referralprogram": "referral",
    "partners": "referral",
    "partner": "referral",
    "organic": "organic",
    "seo": "organic",
    "direct": "direct",
    "directmail": "other",
}


def channel_for(campaign_type: str | None) -> str:
    """The contract channel of a ``Campaign.Type`` value (``other`` when unknown)."""
    if not campaign_type:
        return "other"
    key = re.sub(r"[^a-z0-9]", "", campaign_type.lower())
    if key in _CHANNEL_BY_TYPE:
        return _CHANNEL_BY_TYPE[key]
    for channel in model.CHANNELS:  # "Paid Search", "paid_search"
        if key == channel.replace("_", ""):
            return channel
    return "other"


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def date_or_none(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def related(row: Row, relation: str, field: str) -> Any:
    """``row["Owner"]["Name"]``; a null lookup comes back as ``"Owner": null``."""
    nested = row.get(relation)
    return nested.get(field) if isinstance(nested, Mapping) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def campaign(
    row: Row, *, ad_field: str | None, currency: str, meaning: CampaignMeaning | None = None
) -> model.Campaign:
    meaning = meaning or CampaignMeaning()
    return model.Campaign(
        source=SOURCE,
        external_id=row["Id"],
        name=row.get("Name") or row["Id"],
        channel=channel_for(row.get("Type")),
        parent_id=row.get("ParentId"),
        status=row.get("Status"),
        type=row.get("Type"),
        start_date=date_or_none(row.get("StartDate")),
        end_date=date_or_none(row.get("EndDate")),
        budgeted_cost=decimal_or_none(row.get("BudgetedCost")),
        actual_cost=decimal_or_none(row.get("ActualCost")),
        currency=row.get("CurrencyIsoCode") or currency,
        owner_id=row.get("OwnerId"),
        owner_name=related(row, "Owner", "Name"),
        ad_campaign_ref=_text(row.get(ad_field)) if ad_field else None,
        department=meaning.department(row),
        budget_category=meaning.category(row),
        created_at=parse_datetime(row.get("CreatedDate")),
        modified_at=parse_datetime(row.get("SystemModstamp")),
    )


def _converted_at(value: Any) -> datetime | None:
    day = date_or_none(value)
    return datetime.combine(day, time(0), tzinfo=UTC) if day else None


def lead(row: Row, lifecycle: LeadLifecycle | None = None) -> model.Person:
    converted = bool(row.get("IsConverted"))
    stage = (lifecycle or LeadLifecycle()).stage(row)
    return model.Person(
        source=SOURCE,
        external_id=row["Id"],
        kind="lead",
        email=model.normalize_email(row.get("Email")),
        first_name=row.get("FirstName"),
        last_name=row.get("LastName"),
        company=row.get("Company"),
        created_at=parse_datetime(row.get("CreatedDate")),
        lifecycle_stage=stage.stage,
        mql_at=stage.mql_at,
        sql_at=stage.sql_at,
        lead_source=row.get("LeadSource"),
        converted_contact_id=row.get("ConvertedContactId") if converted else None,
        converted_opportunity_id=row.get("ConvertedOpportunityId") if converted else None,
        converted_at=_converted_at(row.get("ConvertedDate")) if converted else None,
        modified_at=parse_datetime(row.get("SystemModstamp")),
    )


def contact(row: Row) -> model.Person:
    return model.Person(
        source=SOURCE,
        external_id=row["Id"],
        kind="contact",
        email=model.normalize_email(row.get("Email")),
        first_name=row.get("FirstName"),
        last_name=row.get("LastName"),
        company=related(row, "Account", "Name"),
        created_at=parse_datetime(row.get("CreatedDate")),
        lead_source=row.get("LeadSource"),
        modified_at=parse_datetime(row.get("SystemModstamp")),
    )


def touchpoint(row: Row, *, responded_field: str) -> model.Touchpoint | None:
    """None for a member with neither a lead nor a contact (nothing to attribute to)."""
    person = row.get("ContactId") or row.get("LeadId")
    occurred = parse_datetime(row.get("CreatedDate"))
    if not person or occurred is None or not row.get("CampaignId"):
        return None
    return model.Touchpoint(
        source=SOURCE,
        external_id=row["Id"],
        person_source=SOURCE,
        person_id=person,
        campaign_source=SOURCE,
        campaign_id=row["CampaignId"],
        occurred_at=occurred,
        kind="campaign_member",
        responded=bool(row.get(responded_field)),
        modified_at=parse_datetime(row.get("SystemModstamp")),
    )


def opportunity(row: Row, *, currency: str) -> model.Opportunity:
    return model.Opportunity(
        source=SOURCE,
        external_id=row["Id"],
        name=row.get("Name"),
        account_id=row.get("AccountId"),
        account_name=related(row, "Account", "Name"),
        amount=decimal_or_none(row.get("Amount")),
        currency=row.get("CurrencyIsoCode") or currency,
        stage=row.get("StageName"),
        is_closed=bool(row.get("IsClosed")),
        is_won=bool(row.get("IsWon")),
        created_at=parse_datetime(row.get("CreatedDate")),
        close_date=date_or_none(row.get("CloseDate")),
        primary_campaign_id=row.get("CampaignId"),
        modified_at=parse_datetime(row.get("SystemModstamp")),
    )


def contact_role(row: Row) -> model.ContactRole | None:
    if not row.get("ContactId") or not row.get("OpportunityId"):
        return None
    return model.ContactRole(
        source=SOURCE,
        external_id=row["Id"],
        opportunity_id=row["OpportunityId"],
        person_id=row["ContactId"],
        role=row.get("Role"),
        is_primary=bool(row.get("IsPrimary")),
        modified_at=parse_datetime(row.get("SystemModstamp")),
    )


UNDATED = date(1900, 1, 1)
"""Start date given to an org's static ``CurrencyType`` rates (no advanced currency
management): Salesforce then converts every amount at the current rate, whatever its date."""


def fx_rate(row: Row, *, corporate: str, undated: bool = False) -> model.FxRate:
    """``1 corporate = ConversionRate units of IsoCode`` from ``StartDate``, kept as given
    (``quote = "per_base"``) so no precision is lost to an inversion here."""
    return model.FxRate(
        source=SOURCE,
        external_id=row["Id"],
        currency=row["IsoCode"],
        base_currency=corporate,
        start_date=UNDATED if undated else date.fromisoformat(row["StartDate"]),
        rate=to_decimal(row["ConversionRate"]),
        quote="per_base",
    )
