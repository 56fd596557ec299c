"""ROI fields onto Campaign records through sObject Collections (DESIGN section 7).

- **Only what changed.** Each campaign's values are compared with what Salesforce last
  confirmed (the ``writeback_state`` ledger); unchanged campaigns are not sent, and of a
  changed one only its changed fields plus ``ROI_Synced_At__c``. The timestamp alone never
  counts as a change, or every run would rewrite every campaign (and bump every
  ``SystemModstamp``, making the next pull re-read them all). A run with nothing changed
  makes no call at all.
- **200 a call.** ``PATCH /composite/sobjects`` takes up to 200 records; ``allOrNone`` is
  false so one invalid record (a validation rule, a locked row) does not roll back the other
  199. The answer is HTTP 200 with one result per record, in request order.
- **Confirmed, then recorded.** A value goes into the ledger only after Salesforce reported
  its record a success; failures keep their error and attempt count and are sent again next
  run. A crash between the call and the ledger update just means the same values are sent
  again, which is harmless (an update is idempotent).
- **Fields that cannot be written** (missing, or not editable by the API user) are left out
  of the call and reported per record, naming ``crm-roi setup-fields``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from adapters.base import CampaignFields, WriteResult
from adapters.http import HttpError, RateLimited, parse_json
from adapters.salesforce import fields as f
from adapters.salesforce.client import SalesforceClient, soql_datetime
from connector.store.writeback_ledger import WritebackLedger

log = logging.getLogger(__name__)

BATCH = 200
SOBJECT = f.SOBJECT
_MISSING = object()


def field_values(update: CampaignFields) -> dict[str, Any]:
    """The Salesforce fields of one campaign's figures (``ActualCost`` only when owned)."""
    values: dict[str, Any] = {
        f.ATTRIBUTED_REVENUE: update.attributed_revenue,
        f.ATTRIBUTED_PIPELINE: update.attributed_pipeline,
        f.ROI: update.roi_percent,
        f.ROAS: update.roas,
        f.COST_PER_LEAD: update.cost_per_lead,
        f.BUDGET_CONSUMED: update.budget_consumed_percent,
        f.FORECAST_COST: update.forecast_cost,
        f.MODEL: update.model,
        f.SYNCED_AT: update.synced_at,
    }
    if update.owns_cost:
        values[f.ACTUAL_COST] = update.actual_cost
    return values


def canonical(value: Any) -> str | None:
    """The text a value is compared and stored as (``Decimal("50.00")`` -> ``"50.00"``)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return soql_datetime(value)
    return str(value)


def errors_text(errors: Sequence[dict[str, Any]]) -> str:
    parts = []
    for error in errors or [{}]:
        text = f"{error.get('statusCode', 'UNKNOWN')}: {error.get('message', 'no message')}"
        if error.get("fields"):
            text += f" (fields: {', '.join(error['fields'])})"
        parts.append(text)
    return "; ".join(parts)


class CampaignWriteBack:
    """Writes :class:`CampaignFields` to Salesforce campaigns, diffed against the ledger."""

    def __init__(self, client: SalesforceClient, ledger: WritebackLedger) -> None:
        self.client = client
        self.ledger = ledger
        self._writable: set[str] | None = None

    def _writable_fields(self) -> set[str]:
        if self._writable is None:
            visible = self.client.field_map(SOBJECT)
            self._writable = {name for name, info in visible.items() if info.get("updateable")}
        return self._writable

    def changes(self, updates: Sequence[CampaignFields]) -> dict[str, dict[str, Any]]:
        """Per campaign, the fields whose value differs from the last confirmed write."""
        desired = {u.campaign_id: field_values(u) for u in updates}
        ledger = self.ledger.load(desired)
        out: dict[str, dict[str, Any]] = {}
        for record_id, values in desired.items():
            row = ledger.get(record_id)
            written = row.written if row else {}
            diff = {
                name: value
                for name, value in values.items()
                if name != f.SYNCED_AT and written.get(name, _MISSING) != canonical(value)
            }
            if diff:
                diff[f.SYNCED_AT] = values[f.SYNCED_AT]
                out[record_id] = diff
        return out

    def write(self, updates: Sequence[CampaignFields]) -> WriteResult:
        result = WriteResult()
        changes = self.changes(updates)
        if not changes:
            log.info("Salesforce write-back: nothing changed, no call made")
            return result
        try:
            writable = self._writable_fields()
        except HttpError as exc:
            failed = {rid: f"not written: {exc}" for rid in changes}
            self.ledger.record_failed(SOBJECT, failed)
            result.failed.update(failed)
            return result
        blocked: dict[str, list[str]] = {}
        for record_id, diff in list(changes.items()):
            missing = sorted(name for name in diff if name not in writable)
            if missing:
                blocked[record_id] = missing
                for name in missing:
                    del diff[name]
            if set(diff) <= {f.SYNCED_AT}:
                del changes[record_id]
        if blocked:
            names = sorted({n for missing in blocked.values() for n in missing})
            log.warning(
                "Salesforce write-back: Campaign fields %s are missing or not editable by the "
                "API user; run `crm-roi setup-fields`",
                ", ".join(names),
            )
        self._send(changes, result)
        if blocked:
            failed = {
                rid: f"not written: Campaign.{', Campaign.'.join(missing)} missing or not "
                "editable by the API user (run `crm-roi setup-fields`)"
                for rid, missing in blocked.items()
            }
            for rid, message in failed.items():
                result.failed[rid] = (
                    f"{result.failed[rid]}; {message}" if rid in result.failed else message
                )
            result.written = [rid for rid in result.written if rid not in blocked]
            self.ledger.record_failed(SOBJECT, failed)
        log.info(
            "Salesforce write-back: %d campaigns written, %d failed, in %d calls",
            len(result.written),
            len(result.failed),
            result.calls,
        )
        return result

    def _send(self, changes: dict[str, dict[str, Any]], result: WriteResult) -> None:
        if not changes:
            return
        self.ledger.mark_pending(
            SOBJECT,
            {rid: {k: canonical(v) for k, v in diff.items()} for rid, diff in changes.items()},
        )
        items = list(changes.items())
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            body = {
                "allOrNone": False,
                "records": [
                    {"attributes": {"type": SOBJECT}, "id": rid, **diff} for rid, diff in chunk
                ],
            }
            try:
                response = self.client.request(
                    "PATCH", self.client.data_path("composite/sobjects"), body=body
                )
                result.calls += 1
                results = parse_json(response)
            except RateLimited as exc:
                # the quota is gone: the rest waits for the next run
                rest = {rid: f"not written: {exc}" for rid, _ in items[start:]}
                self.ledger.record_failed(SOBJECT, rest)
                result.failed.update(rest)
                return
            except HttpError as exc:
                result.calls += 1
                failed = {rid: f"not written: {exc}" for rid, _ in chunk}
                self.ledger.record_failed(SOBJECT, failed)
                result.failed.update(failed)
                continue
            self._record(chunk, results if isinstance(results, list) else [], result)

    def _record(
        self,
        chunk: list[tuple[str, dict[str, Any]]],
        results: list[dict[str, Any]],
        result: WriteResult,
    ) -> None:
        written: dict[str, dict[str, str | None]] = {}
        failed: dict[str, str] = {}
        for index, (record_id, diff) in enumerate(chunk):
            outcome = results[index] if index < len(results) else None
            if outcome is None:
                failed[record_id] = "no result returned for this record"
            elif outcome.get("success"):
                written[record_id] = {k: canonical(v) for k, v in diff.items()}
            else:
                failed[record_id] = errors_text(outcome.get("errors") or [])
        self.ledger.record_written(SOBJECT, written)
        self.ledger.record_failed(SOBJECT, failed)
        result.written.extend(written)
        result.failed.update(failed)
        for record_id, error in failed.items():
            log.warning("Salesforce write-back: Campaign %s failed: %s", record_id, error)
