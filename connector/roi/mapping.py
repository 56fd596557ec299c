"""Which CRM campaign an ad platform's campaign belongs to (DESIGN section 6).

Three rules, first match wins: an explicit ``[[mapping]]`` row; the CRM campaign's ad-id
field (Salesforce ``Ad_Campaign_Id__c``) holding the ad campaign's id (several ids may be
listed, separated by commas, semicolons or spaces, since one CRM campaign often runs on
several ad campaigns); a naming rule whose named group ``crm`` is compared with CRM campaign
names. Spend that matches nothing is reported as unmapped, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connector import model

_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class ExplicitMapping:
    ad_source: str
    ad_campaign_id: str
    crm_campaign_id: str


@dataclass(frozen=True)
class MappedTo:
    crm_source: str
    crm_campaign_id: str
    rule: str  # "explicit", "ad_id_field" or "name_regex"


class CampaignMapper:
    """Resolves ``(ad_source, ad_campaign_id)`` to a CRM campaign."""

    def __init__(
        self,
        crm_campaigns: Iterable[model.Campaign],
        explicit: Sequence[ExplicitMapping] = (),
        name_regex: str | None = None,
    ) -> None:
        campaigns = [c for c in crm_campaigns if c.deleted_at is None]
        by_id = {c.external_id: c for c in campaigns}
        self._explicit: dict[tuple[str, str], MappedTo] = {}
        for row in explicit:
            crm = by_id.get(row.crm_campaign_id)
            source = crm.source if crm else (campaigns[0].source if campaigns else "crm")
            self._explicit[(row.ad_source, row.ad_campaign_id)] = MappedTo(
                source, row.crm_campaign_id, "explicit"
            )
        self._by_ad_id: dict[str, MappedTo] = {}
        for campaign in sorted(campaigns, key=lambda c: c.external_id):
            for ad_id in _SEPARATORS.split(campaign.ad_campaign_ref or ""):
                if ad_id and ad_id not in self._by_ad_id:
                    self._by_ad_id[ad_id] = MappedTo(
                        campaign.source, campaign.external_id, "ad_id_field"
                    )
        self._regex = re.compile(name_regex) if name_regex else None
        self._by_name: dict[str, MappedTo] = {}
        for campaign in sorted(campaigns, key=lambda c: c.external_id):
            key = campaign.name.strip().casefold()
            self._by_name.setdefault(
                key, MappedTo(campaign.source, campaign.external_id, "name_regex")
            )

    def resolve(
        self, ad_source: str, ad_campaign_id: str, ad_name: str | None = None
    ) -> MappedTo | None:
        found = self._explicit.get((ad_source, ad_campaign_id)) or self._by_ad_id.get(
            ad_campaign_id
        )
        if found is None and self._regex is not None and ad_name:
            match = self._regex.search(ad_name)
            if match and match.groupdict().get("crm"):
                found = self._by_name.get(match.group("crm").strip().casefold())
        return found
