"""What an adapter is: sources made of streams, and the CRM's write interface.

Modelled on the Singer SDK and dlt: a **stream** declares the record type it yields, its key
(always ``(source, external_id)`` in the store), its cursor, and reads batches; a **source**
is the set of streams of one outside system plus a cheap credentials check for ``doctor``.
Adding a source is one module that implements these. An adapter never touches the store:
:func:`sync.runner.sync_source` commits each batch together with the cursor the batch says
is safe, so an interrupted sync resumes where its last committed batch ended.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from connector import model


@dataclass
class Batch:
    """Records read from one page or slice, and the cursor to save once they are committed.

    ``cursor`` None means "do not move the cursor" (for example mid-stream of an unsorted
    read); ``deleted`` lists external ids of ``deleted_type`` deleted upstream (Salesforce
    ``IsDeleted`` rows from queryAll, HubSpot ``archived``).
    """

    records: Sequence[model.Record] = ()
    cursor: str | None = None
    deleted: Sequence[str] = ()
    deleted_type: type[model.Record] | None = None
    partition: str = ""
    pages: int = 1


@runtime_checkable
class Stream(Protocol):
    """One kind of object from one system (Salesforce ``Campaign``, Meta ``insights``)."""

    name: str
    record_type: type[model.Record]
    cursor_field: str | None

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        """Yield batches newer than ``cursor`` (everything when ``full``).

        ``now`` is the run's start: cursors must never be saved beyond it, or records changed
        during the run would be skipped next time.
        """
        ...

    def partitions(self) -> Sequence[str]:
        """Independent cursors of the stream (ad accounts); ``[""]`` when there is one."""
        ...


@runtime_checkable
class Source(Protocol):
    """An outside system's streams, in dependency order."""

    name: str

    def streams(self) -> Sequence[Stream]: ...

    def check(self) -> list[tuple[bool, str]]:
        """Cheap calls that prove the credentials and permissions work (``crm-roi doctor``)."""
        ...

    def api_calls(self) -> int:
        """Calls made so far (the run history records them)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CampaignFields:
    """The ROI fields written back onto one CRM campaign (DESIGN section 7).

    Values are already in the field's unit: currency in the reporting currency rounded to
    its minor unit, percents as percents (80.00 = 80 %), None as an empty field. ``actual_cost``
    is None when the connector does not own the campaign's cost (it is then not written).
    """

    campaign_id: str
    attributed_revenue: Decimal | None
    attributed_pipeline: Decimal | None
    roi_percent: Decimal | None
    roas: Decimal | None
    cost_per_lead: Decimal | None
    budget_consumed_percent: Decimal | None
    forecast_cost: Decimal | None
    model: str
    synced_at: datetime
    actual_cost: Decimal | None = None
    owns_cost: bool = False


@dataclass
class WriteResult:
    """Per-record outcome of a write-back: ids written, and errors by id (kept for retry)."""

    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    calls: int = 0


@dataclass(frozen=True)
class AlertTask:
    """An alert to raise as a CRM task on a campaign, for the campaign's owner."""

    alert_key: str
    campaign_id: str
    owner_id: str | None
    subject: str
    description: str
    priority: str = "Normal"


@dataclass(frozen=True)
class InboundLead:
    """A lead from an ad platform's lead form, to create or match in the CRM."""

    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    phone: str | None
    campaign_id: str | None  # the mapped CRM campaign
    lead_source: str
    occurred_at: datetime
    external_ref: str  # the platform's lead id, for idempotency
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadOutcome:
    person_kind: str  # "lead" or "contact"
    person_id: str
    created: bool
    member_id: str | None


class CrmWriter(Protocol):
    """What the connector writes into a CRM (implemented per CRM adapter)."""

    name: str

    def write_campaign_fields(self, updates: Sequence[CampaignFields]) -> WriteResult: ...

    def create_task(self, task: AlertTask) -> str:
        """Create the task; returns its id (kept on the alert so it is created once)."""
        ...

    def complete_task(self, task_id: str, note: str) -> str | None:
        """Mark the task done, adding ``note`` (why) to its description. A task someone
        already closed or deleted is left as it is; the return value then says so."""
        ...

    def upsert_inbound_lead(self, lead: InboundLead) -> LeadOutcome:
        """Find the person by e-mail or create a lead; add the campaign membership; never
        duplicate either on redelivery."""
        ...
