"""Leads from ad-platform lead forms into Salesforce, safely repeatable.

Webhooks are delivered at least once, so every step first looks for what an earlier
delivery may already have made, and only then creates:

1. the person: a **Contact** with that e-mail wins (the person is already known to sales),
   else an open **Lead**, else a converted lead's contact; only when there is none is a Lead
   created, with ``LeadSource`` = ``[webhooks] lead_source``. SOQL matches ``Email``
   case-insensitively; the address is escaped with ``format_soql``, so a quote in an
   e-mail cannot change the query;
2. the membership: an existing ``CampaignMember`` of that person in the mapped campaign is
   reused (and set to a responded status if it was not); else one is created. A concurrent
   delivery that wins the race makes Salesforce answer ``DUPLICATE_VALUE``, which is treated
   as "already there". The responded status is the campaign's own first member status with
   ``HasResponded`` (orgs rename "Responded"), falling back to "Responded".

Existing records are never edited beyond the membership status: the admin's data stays theirs.
"""

from __future__ import annotations

import logging
from typing import Any

from simple_salesforce.format import format_soql

from adapters.base import InboundLead, LeadOutcome
from adapters.http import ClientError
from adapters.salesforce.client import SalesforceClient, error_code
from adapters.salesforce.tasks import check_id
from connector.model import normalize_email

log = logging.getLogger(__name__)

NOT_PROVIDED = "[not provided]"  # LastName and Company are required on a Lead
DEFAULT_RESPONDED = "Responded"


class LeadIntake:
    def __init__(self, client: SalesforceClient, *, lead_source: str) -> None:
        self.client = client
        self.lead_source = lead_source
        self._statuses: dict[str, str] = {}

    def _query(self, soql: str) -> list[dict[str, Any]]:
        # unguarded: a lead is worth its call even past the sync's quota share
        return self.client.query(soql, guarded=False)

    def upsert(self, lead: InboundLead) -> LeadOutcome:
        email = normalize_email(lead.email)
        if not email:
            raise ValueError(
                f"inbound lead {lead.external_ref!r} has no e-mail: it cannot be matched, and "
                "creating it would duplicate it on every redelivery"
            )
        found = self._find(email)
        created = found is None
        kind, person_id = found or ("lead", self._create_lead(lead, email))
        member_id = None
        if lead.campaign_id:
            member_id = self._membership(check_id(lead.campaign_id, "campaign id"), kind, person_id)
        return LeadOutcome(
            person_kind=kind, person_id=person_id, created=created, member_id=member_id
        )

    def _find(self, email: str) -> tuple[str, str] | None:
        contacts = self._query(
            format_soql(
                "SELECT Id FROM Contact WHERE Email = {} ORDER BY CreatedDate ASC, Id ASC LIMIT 1",
                email,
            )
        )
        if contacts:
            return "contact", str(contacts[0]["Id"])
        leads = self._query(
            format_soql(
                "SELECT Id, IsConverted, ConvertedContactId FROM Lead WHERE Email = {} "
                "ORDER BY CreatedDate ASC, Id ASC LIMIT 20",
                email,
            )
        )
        for row in leads:
            if not row.get("IsConverted"):
                return "lead", str(row["Id"])
        for row in leads:
            if row.get("ConvertedContactId"):
                return "contact", str(row["ConvertedContactId"])
        return None

    def _create_lead(self, lead: InboundLead, email: str) -> str:
        body: dict[str, Any] = {
            "LastName": (lead.last_name or "").strip() or NOT_PROVIDED,
            "Company": (lead.company or "").strip() or NOT_PROVIDED,
            "Email": email,
            "LeadSource": lead.lead_source or self.lead_source,
            "Description": f"From an ad lead form (lead {lead.external_ref}).",
        }
        if lead.first_name and lead.first_name.strip():
            body["FirstName"] = lead.first_name.strip()
        if lead.phone and lead.phone.strip():
            body["Phone"] = lead.phone.strip()
        created = self.client.post("sobjects/Lead/", body, guarded=False)
        log.info("Salesforce: created lead %s for lead form %s", created["id"], lead.external_ref)
        return str(created["id"])

    def _member(self, campaign_id: str, field: str, person_id: str) -> dict[str, Any] | None:
        rows = self._query(
            format_soql(
                f"SELECT Id, HasResponded FROM CampaignMember WHERE CampaignId = {{}} "
                f"AND {field} = {{}} LIMIT 1",
                campaign_id,
                person_id,
            )
        )
        return rows[0] if rows else None

    def _membership(self, campaign_id: str, kind: str, person_id: str) -> str:
        field = "ContactId" if kind == "contact" else "LeadId"
        status = self._responded_status(campaign_id)
        existing = self._member(campaign_id, field, person_id)
        if existing is not None:
            member_id = str(existing["Id"])
            if not existing.get("HasResponded"):
                # an update answers 204 No Content
                self.client.patch(
                    f"sobjects/CampaignMember/{check_id(member_id, 'member id')}",
                    {"Status": status},
                    guarded=False,
                )
            return member_id
        try:
            created = self.client.post(
                "sobjects/CampaignMember/",
                {"CampaignId": campaign_id, field: person_id, "Status": status},
                guarded=False,
            )
            return str(created["id"])
        except ClientError as exc:
            if exc.response is None or error_code(exc.response) != "DUPLICATE_VALUE":
                raise
        again = self._member(campaign_id, field, person_id)
        if again is None:
            raise RuntimeError(
                f"Salesforce reported a duplicate member of campaign {campaign_id} but none "
                "was found"
            )
        return str(again["Id"])

    def _responded_status(self, campaign_id: str) -> str:
        if campaign_id not in self._statuses:
            rows = self._query(
                format_soql(
                    "SELECT Label FROM CampaignMemberStatus WHERE CampaignId = {} "
                    "AND HasResponded = true ORDER BY SortOrder ASC LIMIT 1",
                    campaign_id,
                )
            )
            self._statuses[campaign_id] = str(rows[0]["Label"]) if rows else DEFAULT_RESPONDED
        return self._statuses[campaign_id]
