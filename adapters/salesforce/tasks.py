"""Alerts as Salesforce Tasks on the campaign, for its owner, created once per alert.

``WhatId`` is the campaign (Tasks hang people off ``WhoId`` and records off ``WhatId``);
``OwnerId`` is the campaign's owner, read from the campaign when the alert does not name one.
An owner who has been deactivated cannot get a task (``INACTIVE_OWNER_OR_USER``): the task is
then created without ``OwnerId`` (it goes to the API user) and says whose it should have
been, rather than the alert being lost.

Created once: the alert keeps the returned id, and this module also records it in the
write-back ledger under the alert's key before and after the call. A create is not repeated
blindly (a POST that timed out may have worked): when the ledger shows an attempt without an
id, the task created since then on that campaign with that subject is looked up and adopted.

Completed when the alert resolves: the task is read first, and one that a person already
closed (``IsClosed``) or deleted is left alone. Otherwise its ``Status`` becomes the org's
closed status (``Completed`` unless the org renamed it: the closed values come from
``TaskStatus``) and the resolution is appended to its ``Description``. Doing it twice, after a
crash, finds the task closed and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from simple_salesforce.format import format_soql

from adapters.base import AlertTask
from adapters.http import ClientError
from adapters.salesforce.client import SalesforceClient, error_code, parse_datetime, soql_datetime
from adapters.salesforce.state import WritebackLedger

log = logging.getLogger(__name__)

SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_OWNER_GONE = frozenset({"INACTIVE_OWNER_OR_USER", "INVALID_CROSS_REFERENCE_KEY"})
_GONE = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})
_CLOSED_STATUS = "Completed"  # the standard picklist's closed value


def ledger_key(alert_key: str) -> str:
    """A fixed-length ledger id for an alert key of any length."""
    return "task:" + hashlib.sha256(alert_key.encode("utf-8")).hexdigest()[:40]


def check_id(value: str, what: str) -> str:
    """Salesforce ids go into URL paths: refuse anything that is not one."""
    if not _ID.fullmatch(value or ""):
        raise ValueError(f"{what} {value!r} is not a Salesforce id")
    return value


class TaskCreator:
    def __init__(
        self,
        client: SalesforceClient,
        ledger: WritebackLedger,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.clock = clock
        self._closed_status: str | None = None

    def create(self, task: AlertTask) -> str:
        campaign_id = check_id(task.campaign_id, "campaign id")
        key = ledger_key(task.alert_key)
        subject = task.subject[:SUBJECT_MAX]
        row = self.ledger.get(key)
        if row is not None and row.written.get("task_id"):
            return str(row.written["task_id"])
        if row is not None and row.pending:
            found = self._created_since(campaign_id, subject, row.pending.get("started_at"))
            if found:
                log.info("Salesforce: adopting task %s created by an interrupted attempt", found)
                self._done(key, found, task.alert_key)
                return found
        owner = task.owner_id or self._campaign_owner(campaign_id)
        now = self.clock()
        body = {
            "Subject": subject,
            "Description": task.description[:DESCRIPTION_MAX],
            "WhatId": campaign_id,
            "Priority": task.priority,
            "Status": "Not Started",
            "ActivityDate": now.date().isoformat(),
        }
        if owner:
            body["OwnerId"] = owner
        self.ledger.mark_pending(
            "Task",
            {key: {"alert_key": task.alert_key, "started_at": soql_datetime(now)}},
        )
        try:
            created = self._post(body)
        except ClientError as exc:
            code = error_code(exc.response) if exc.response is not None else None
            if not owner or code not in _OWNER_GONE:
                self.ledger.record_failed("Task", {key: str(exc)})
                raise
            log.warning(
                "Salesforce: campaign owner %s cannot take tasks (%s); the task goes to the "
                "API user",
                owner,
                code,
            )
            body.pop("OwnerId")
            body["Description"] = (
                f"(For the campaign owner {owner}, who cannot be assigned tasks.)\n"
                + str(body["Description"])
            )[:DESCRIPTION_MAX]
            created = self._post(body)
        self._done(key, created, task.alert_key)
        return created

    def complete(self, task_id: str, note: str) -> str | None:
        """Close the task with ``note`` appended; returns why nothing was changed, if so."""
        task_id = check_id(task_id, "task id")
        try:
            task = self.client.get(
                f"sobjects/Task/{task_id}",
                params={"fields": "IsClosed,Status,Description"},
                guarded=False,
            )
        except ClientError as exc:
            code = error_code(exc.response) if exc.response is not None else None
            if code in _GONE:  # not any 404: a proxy's or a wrong path's 404 is an error
                return f"task {task_id} no longer exists in Salesforce"
            raise
        if task.get("IsClosed"):
            return f"task {task_id} was already closed in Salesforce ({task.get('Status')})"
        description = str(task.get("Description") or "")
        if description:  # the note must fit whole: the end of a long description gives way
            note = f"{description[: DESCRIPTION_MAX - len(note) - 2]}\n\n{note}"
        body = {"Status": self.closed_status(), "Description": note[:DESCRIPTION_MAX]}
        self.client.patch(f"sobjects/Task/{task_id}", body, guarded=False)
        return None

    def closed_status(self) -> str:
        """The status value that closes a task in this org (read once per run)."""
        if self._closed_status is None:
            rows = self.client.query(
                "SELECT ApiName FROM TaskStatus WHERE IsClosed = true ORDER BY SortOrder",
                guarded=False,
            )
            names = [str(r["ApiName"]) for r in rows if r.get("ApiName")]
            self._closed_status = (
                _CLOSED_STATUS if _CLOSED_STATUS in names or not names else names[0]
            )
        return self._closed_status

    def _post(self, body: dict[str, object]) -> str:
        # unguarded: an alert is worth its call even past the sync's quota share
        return str(self.client.post("sobjects/Task/", body, guarded=False)["id"])

    def _done(self, key: str, task_id: str, alert_key: str) -> None:
        self.ledger.record_written("Task", {key: {"task_id": task_id, "alert_key": alert_key}})

    def _campaign_owner(self, campaign_id: str) -> str | None:
        body = self.client.get(
            f"sobjects/Campaign/{campaign_id}", params={"fields": "OwnerId"}, guarded=False
        )
        return body.get("OwnerId") if isinstance(body, dict) else None

    def _created_since(self, campaign_id: str, subject: str, started: object) -> str | None:
        since = parse_datetime(str(started)) if started else None
        if since is None:
            return None
        rows = self.client.query(
            format_soql(
                "SELECT Id FROM Task WHERE WhatId = {} AND Subject = {} AND CreatedDate >= {} "
                "ORDER BY CreatedDate ASC LIMIT 1",
                campaign_id,
                subject,
                since - timedelta(minutes=5),  # clocks differ
            ),
            guarded=False,
        )
        return str(rows[0]["Id"]) if rows else None
