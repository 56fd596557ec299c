"""The Salesforce source: its streams in dependency order, and a cheap check for doctor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.base import Stream
from adapters.http import HttpError
from adapters.salesforce import records
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.org import Org, OrgProfile
from adapters.salesforce.org_meaning import CampaignMeaning, LeadLifecycle
from adapters.salesforce.streams import FxRateStream, KnownIds, OwnerStream, SoqlStream
from connector import model

CAMPAIGN_FIELDS = (
    "Name",
    "ParentId",
    "Status",
    "Type",
    "StartDate",
    "EndDate",
    "BudgetedCost",
    "ActualCost",
    "CurrencyIsoCode",
    "OwnerId",
    "Owner.Name",
    "CreatedDate",
)
LEAD_FIELDS = (
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "LeadSource",
    "Status",
    "CreatedDate",
    "IsConverted",
    "ConvertedContactId",
    "ConvertedOpportunityId",
    "ConvertedDate",
    "MasterRecordId",
)
CONTACT_FIELDS = (
    "Email",
    "FirstName",
    "LastName",
    "AccountId",
    "Account.Name",
    "LeadSource",
    "CreatedDate",
    "MasterRecordId",
)
MEMBER_FIELDS = ("CampaignId", "LeadId", "ContactId", "Status", "CreatedDate")
OPPORTUNITY_FIELDS = (
    "Name",
    "AccountId",
    "Account.Name",
    "Amount",
    "CurrencyIsoCode",
    "StageName",
    "IsClosed",
    "IsWon",
    "CreatedDate",
    "CloseDate",
    "CampaignId",
)
ROLE_FIELDS = ("OpportunityId", "ContactId", "Role", "IsPrimary")


@dataclass(frozen=True)
class SourceSettings:
    ad_campaign_id_field: str = "Ad_Campaign_Id__c"
    responded_field: str = "HasResponded"
    meaning: CampaignMeaning = field(default_factory=CampaignMeaning)
    lifecycle: LeadLifecycle = field(default_factory=LeadLifecycle)


KnownIdsFor = Callable[[type[model.Record], str | None], set[str]]
"""Ids the store holds for a record type (and touchpoint kind), for full reconciliation."""


class SalesforceSource:
    """Implements :class:`adapters.base.Source` for one org."""

    name = records.SOURCE

    def __init__(
        self,
        client: SalesforceClient,
        org: Org,
        settings: SourceSettings,
        *,
        known_ids: KnownIdsFor | None = None,
    ) -> None:
        self.client = client
        self.org = org
        self.settings = settings
        self._known = known_ids
        self._streams: list[Stream] | None = None

    def _known_for(
        self, record_type: type[model.Record], kind: str | None = None
    ) -> KnownIds | None:
        known = self._known
        if known is None:
            return None
        return lambda: known(record_type, kind)

    def streams(self) -> Sequence[Stream]:
        if self._streams is None:
            self._streams = self._build()
        return self._streams

    def _build(self) -> list[Stream]:
        s = self.settings
        ad_field = s.ad_campaign_id_field or None
        responded = s.responded_field or "HasResponded"
        meaning, lifecycle = s.meaning, s.lifecycle

        def stream(
            name: str,
            record_type: type[model.Record],
            fields: Sequence[str],
            convert: Callable[[dict[str, Any], OrgProfile], model.Record | None],
            known: KnownIds | None = None,
        ) -> SoqlStream:
            return SoqlStream(
                name=name,
                sobject=name,
                record_type=record_type,
                fields=fields,
                convert=convert,
                client=self.client,
                org=self.org,
                known_ids=known,
            )

        campaigns = stream(
            "Campaign",
            model.Campaign,
            (*CAMPAIGN_FIELDS, *([ad_field] if ad_field else []), *meaning.fields),
            lambda row, p: records.campaign(
                row, ad_field=ad_field, currency=p.currency, meaning=meaning
            ),
            self._known_for(model.Campaign),
        )
        return [
            campaigns,
            OwnerStream(client=self.client, campaigns=campaigns),
            stream(
                "Lead",
                model.Person,
                (*LEAD_FIELDS, *lifecycle.fields),
                lambda row, p: records.lead(row, lifecycle),
                self._known_for(model.Person, "lead"),
            ),
            stream(
                "Contact",
                model.Person,
                CONTACT_FIELDS,
                lambda row, p: records.contact(row),
                self._known_for(model.Person, "contact"),
            ),
            stream(
                "CampaignMember",
                model.Touchpoint,
                (*MEMBER_FIELDS, responded),
                lambda row, p: records.touchpoint(row, responded_field=responded),
                self._known_for(model.Touchpoint, "campaign_member"),
            ),
            stream(
                "Opportunity",
                model.Opportunity,
                OPPORTUNITY_FIELDS,
                lambda row, p: records.opportunity(row, currency=p.currency),
                self._known_for(model.Opportunity),
            ),
            stream(
                "OpportunityContactRole",
                model.ContactRole,
                ROLE_FIELDS,
                lambda row, p: records.contact_role(row),
                self._known_for(model.ContactRole),
            ),
            FxRateStream(client=self.client, org=self.org, known_ids=self._known_for(model.FxRate)),
        ]

    def check(self) -> list[tuple[bool, str]]:
        """Log in and read the org's limits: proves credentials, network and API access."""
        try:
            limits = self.client.limits()
        except HttpError as exc:
            return [(False, f"salesforce: {exc}")]
        daily = limits.get("DailyApiRequests") or {}
        left, most = daily.get("Remaining"), daily.get("Max")
        quota = f"; {left:,} of {most:,} API calls left today" if left is not None else ""
        return [(True, f"salesforce: logged in to {self.client.auth.instance_url}{quota}")]

    def api_calls(self) -> int:
        return self.client.http.stats.calls + self.client.auth.logins

    def close(self) -> None:
        self.client.close()
