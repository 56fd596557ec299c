"""The Salesforce :class:`adapters.base.CrmWriter`: ROI fields, alert tasks, inbound leads."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.base import AlertTask, CampaignFields, InboundLead, LeadOutcome, WriteResult
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.leads import LeadIntake
from adapters.salesforce.records import SOURCE
from adapters.salesforce.tasks import TaskBatch, TaskCreator
from adapters.salesforce.writeback import CampaignWriteBack
from connector.store.writeback_ledger import WritebackLedger


class SalesforceWriter:
    """One org's write side; each job lives in its own module."""

    name = SOURCE

    def __init__(self, client: SalesforceClient, ledger: WritebackLedger, *, lead_source: str):
        self.client = client
        self.campaigns = CampaignWriteBack(client, ledger)
        self.tasks = TaskCreator(client, ledger)
        self.leads = LeadIntake(client, lead_source=lead_source)

    def write_campaign_fields(self, updates: Sequence[CampaignFields]) -> WriteResult:
        return self.campaigns.write(updates)

    def create_task(self, task: AlertTask) -> str:
        return self.tasks.create(task)

    def create_tasks(self, tasks: Sequence[AlertTask]) -> TaskBatch:
        """Many alerts' tasks, 200 per call; each alert's outcome by its key."""
        return self.tasks.create_many(tasks)

    def complete_task(self, task_id: str, note: str) -> str | None:
        return self.tasks.complete(task_id, note)

    def upsert_inbound_lead(self, lead: InboundLead) -> LeadOutcome:
        return self.leads.upsert(lead)

    def api_calls(self) -> int:
        return self.client.http.stats.calls + self.client.auth.logins

    def close(self) -> None:
        self.client.close()
