"""Alerts as Salesforce Tasks on the campaign, for its owner, created once per alert.

``WhatId`` is the campaign (Tasks hang people off ``WhoId`` and records off ``WhatId``);
``OwnerId`` is the campaign's owner, read from the campaign when the alert does not name one.
An owner who has been deactivated cannot get a task (``INACTIVE_OWNER_OR_USER``): the task is
then created without ``OwnerId`` (it goes to the API user) and says whose it should have
been, rather than the alert being lost.

Created in sObject Collections batches: ``POST composite/sobjects`` with up to 200 Tasks and
``allOrNone: false``, so one refused record does not roll back the others; the answer has one
result per record, in request order (a failed one has no ``id``). A refused record is that
alert's failure only: it is reported and tried again next run. A lone record (one alert, or
the one left over) goes by the plain ``POST sobjects/Task/``: the same single call.

Created once: the write-back ledger records an attempt for every alert of a batch (under the
alert's key, with the time) before the call, and each returned id after it. A create is not
repeated blindly (a POST that timed out, or a run killed before the ids were recorded, may
have worked): alerts whose ledger shows an attempt without an id are first looked up, one
query per batch, and the task created since then on that campaign with that subject is
adopted.

Completed when the alert resolves, one task at a time: the task is read first, and one that a
person already closed (``IsClosed``) or deleted is left alone. Otherwise its ``Status`` becomes
the org's closed status (``Completed`` unless the org renamed it: the closed values come from
``TaskStatus``) and the resolution is appended to its ``Description``. Doing it twice, after a
crash, finds the task closed and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simple_salesforce.format import format_soql

from adapters.base import AlertTask
from adapters.http import AuthError, ClientError, HttpError, RateLimited, TransportError
from adapters.salesforce.client import (
    SERVICE,
    SalesforceClient,
    error_code,
    parse_datetime,
    soql_datetime,
)
from adapters.salesforce.writeback import BATCH, errors_text
from connector.store.writeback_ledger import LedgerRow, WritebackLedger

log = logging.getLogger(__name__)

SOBJECT = "Task"
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_OWNER_GONE = frozenset({"INACTIVE_OWNER_OR_USER", "INVALID_CROSS_REFERENCE_KEY"})
_GONE = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})
_CLOSED_STATUS = "Completed"  # the standard picklist's closed value
_CLOCK_SKEW = timedelta(minutes=5)  # our clock and Salesforce's CreatedDate differ
# the whole channel is unusable (quota gone, unreachable, credentials refused): every alert
# not yet done waits for the next run instead of spending calls that would fail the same way
_CHANNEL_DOWN = (RateLimited, TransportError, AuthError)


def ledger_key(alert_key: str) -> str:
    """A fixed-length ledger id for an alert key of any length."""
    return "task:" + hashlib.sha256(alert_key.encode("utf-8")).hexdigest()[:40]


def check_id(value: str, what: str) -> str:
    """Salesforce ids go into URL paths: refuse anything that is not one."""
    if not _ID.fullmatch(value or ""):
        raise ValueError(f"{what} {value!r} is not a Salesforce id")
    return value


@dataclass
class TaskBatch:
    """What became of each alert of :meth:`TaskCreator.create_many`, by alert key."""

    created: dict[str, str] = field(default_factory=dict)  # the task id, new or recorded
    failed: dict[str, Exception] = field(default_factory=dict)  # tried again next run

    def task_id(self, alert_key: str) -> str:
        """The alert's task id; its own error is raised if it has none."""
        if alert_key in self.failed:
            raise self.failed[alert_key]
        return self.created[alert_key]


@dataclass
class _Item:
    """One alert on its way to a task."""

    task: AlertTask
    key: str  # the ledger's
    campaign_id: str
    subject: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def alert_key(self) -> str:
        return self.task.alert_key


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
        """The alert's task id (created, or the one recorded); raises the alert's error."""
        return self.create_many([task]).task_id(task.alert_key)

    def create_many(self, tasks: Sequence[AlertTask]) -> TaskBatch:
        """A task for each alert, at most one ever, created up to 200 per call."""
        result = TaskBatch()
        items = self._items(tasks, result)
        rows = self.ledger.load(items)
        todo: list[_Item] = []
        for key, item in items.items():
            recorded = rows[key].written.get("task_id") if key in rows else None
            if recorded:
                result.created[item.alert_key] = str(recorded)
            else:
                todo.append(item)
        try:
            unsure = [i for i in todo if _pending(rows, i.key)]
            taken = set(result.created.values())
            for start in range(0, len(unsure), BATCH):
                self._adopt(unsure[start : start + BATCH], rows, taken, result)
            fresh = [i for i in todo if not _settled(i, result)]
            for start in range(0, len(fresh), BATCH):
                self._create_batch(fresh[start : start + BATCH], result)
        except _CHANNEL_DOWN as exc:
            for item in todo:
                if not _settled(item, result):
                    result.failed[item.alert_key] = exc
        log.info(
            "Salesforce: alert tasks: %d in place, %d failed (tried again next run)",
            len(result.created),
            len(result.failed),
        )
        return result

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

    def _items(self, tasks: Iterable[AlertTask], result: TaskBatch) -> dict[str, _Item]:
        """The alerts by ledger key, once each; a malformed campaign id fails only its alert."""
        items: dict[str, _Item] = {}
        for task in tasks:
            key = ledger_key(task.alert_key)
            if key in items or task.alert_key in result.failed:
                continue
            try:
                campaign_id = check_id(task.campaign_id, "campaign id")
            except ValueError as exc:
                result.failed[task.alert_key] = exc
                continue
            items[key] = _Item(task, key, campaign_id, task.subject[:SUBJECT_MAX])
        return items

    def _adopt(
        self,
        items: Sequence[_Item],
        rows: Mapping[str, LedgerRow],
        taken: set[str],
        result: TaskBatch,
    ) -> None:
        """Adopt the tasks that interrupted attempts created, with one query for the batch.

        The query names the campaigns only and subjects are compared here: 200 subjects in
        the query string could pass the 16,384-byte limit on a REST request's URI and headers.
        """
        since = {i.key: _since(rows[i.key]) for i in items}
        wanted = [i for i in items if since[i.key] is not None]
        if not wanted:
            return
        soql = format_soql(
            "SELECT Id, WhatId, Subject, CreatedDate FROM Task WHERE WhatId IN {} "
            "AND CreatedDate >= {} ORDER BY CreatedDate ASC, Id ASC",
            sorted({i.campaign_id for i in wanted}),
            min(s for s in since.values() if s is not None),
        )
        try:
            found = self.client.query(soql, guarded=False)
        except _CHANNEL_DOWN:
            raise
        except HttpError as exc:  # unknown whether they exist: never created blindly
            result.failed.update({i.alert_key: exc for i in wanted})
            return
        adopted: dict[str, dict[str, str]] = {}
        for item in wanted:
            task_id = _first_match(found, item, since[item.key], taken)
            if task_id is None:
                continue
            log.info("Salesforce: adopting task %s created by an interrupted attempt", task_id)
            taken.add(task_id)
            adopted[item.key] = {"task_id": task_id, "alert_key": item.alert_key}
            result.created[item.alert_key] = task_id
        if adopted:
            self.ledger.record_written(SOBJECT, adopted)

    def _create_batch(self, items: Sequence[_Item], result: TaskBatch) -> None:
        """One collection call for up to 200 alerts (and one more for deactivated owners)."""
        owners = self._owners(items, result)
        items = [i for i in items if i.alert_key not in result.failed]
        if not items:
            return
        now = self.clock()
        for item in items:
            item.body = _body(item, owners[item.key], now)
        # before the call: a crash after Salesforce acted leaves an attempt to look up
        started = soql_datetime(now)
        self.ledger.mark_pending(
            SOBJECT, {i.key: {"alert_key": i.alert_key, "started_at": started} for i in items}
        )
        orphans = self._send(items, result)
        if orphans:
            _to_api_user(orphans)
            self._send(orphans, result)

    def _owners(self, items: Sequence[_Item], result: TaskBatch) -> dict[str, str | None]:
        """Each alert's owner: its own, or its campaign's (read once per campaign)."""
        campaigns: dict[str, str | HttpError | None] = {}
        owners: dict[str, str | None] = {}
        for item in items:
            if item.task.owner_id:
                owners[item.key] = item.task.owner_id
                continue
            if item.campaign_id not in campaigns:
                try:
                    campaigns[item.campaign_id] = self._campaign_owner(item.campaign_id)
                except _CHANNEL_DOWN:
                    raise
                except HttpError as exc:
                    campaigns[item.campaign_id] = exc
            owner = campaigns[item.campaign_id]
            if isinstance(owner, HttpError):
                result.failed[item.alert_key] = owner
            else:
                owners[item.key] = owner
        return owners

    def _send(self, items: Sequence[_Item], result: TaskBatch) -> list[_Item]:
        """POST the batch and record its outcome; returns the records whose owner is gone."""
        try:
            answers = self._post(items)
        except HttpError as exc:
            self.ledger.record_failed(SOBJECT, {i.key: str(exc) for i in items})
            result.failed.update({i.alert_key: exc for i in items})
            if isinstance(exc, _CHANNEL_DOWN):
                raise
            return []
        answers = answers if isinstance(answers, list) else []
        created: dict[str, dict[str, str]] = {}
        failed: dict[str, ClientError] = {}
        orphans: list[_Item] = []
        for index, item in enumerate(items):
            answer = answers[index] if index < len(answers) else None
            if isinstance(answer, dict) and answer.get("success") and answer.get("id"):
                created[item.key] = {"task_id": str(answer["id"]), "alert_key": item.alert_key}
                result.created[item.alert_key] = str(answer["id"])
            elif "OwnerId" in item.body and _first_code(answer) in _OWNER_GONE:
                orphans.append(item)
            else:
                failed[item.key] = _refused(item, answer)
                result.failed[item.alert_key] = failed[item.key]
        if created:  # the ids first: they are what a crash here would lose
            self.ledger.record_written(SOBJECT, created)
        if failed:
            self.ledger.record_failed(SOBJECT, {key: str(exc) for key, exc in failed.items()})
        for exc in failed.values():
            log.warning("%s", exc)
        return orphans

    def _post(self, items: Sequence[_Item]) -> Any:
        """The records' save results, in order (one record: a plain create, the same one call,
        so a lone alert keeps the wire it always had)."""
        # unguarded: an alert is worth its call even past the sync's quota share
        if len(items) == 1:
            return [self._post_one(items[0].body)]
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": SOBJECT}, **i.body} for i in items],
        }
        return self.client.post("composite/sobjects", body, guarded=False)

    def _post_one(self, body: dict[str, Any]) -> Any:
        try:
            return self.client.post(f"sobjects/{SOBJECT}/", body, guarded=False)
        except ClientError as exc:
            code = error_code(exc.response) if exc.response is not None else None
            if "OwnerId" not in body or code not in _OWNER_GONE:
                raise
            # shaped like a refused collection record, so the owner fallback is shared
            return {"success": False, "errors": [{"statusCode": code, "message": str(exc)}]}

    def _campaign_owner(self, campaign_id: str) -> str | None:
        body = self.client.get(
            f"sobjects/Campaign/{campaign_id}", params={"fields": "OwnerId"}, guarded=False
        )
        return body.get("OwnerId") if isinstance(body, dict) else None


def _pending(rows: Mapping[str, LedgerRow], key: str) -> bool:
    """The ledger shows an attempt whose outcome was never recorded."""
    row = rows.get(key)
    return row is not None and bool(row.pending)


def _settled(item: _Item, result: TaskBatch) -> bool:
    return item.alert_key in result.created or item.alert_key in result.failed


def _since(row: LedgerRow) -> datetime | None:
    """From when a task made by the row's last attempt can be dated (None: not knowable)."""
    started = (row.pending or {}).get("started_at")
    since = parse_datetime(str(started)) if started else None
    return since - _CLOCK_SKEW if since is not None else None


def _first_match(
    found: Sequence[dict[str, Any]], item: _Item, since: datetime | None, taken: set[str]
) -> str | None:
    """The earliest task on the item's campaign with its subject since its attempt.

    SOQL compares text case-insensitively and 15- and 18-character ids alike; so does this.
    A task already given to another alert is not adopted twice.
    """
    subject = item.subject.casefold()
    for row in found:
        task_id = str(row.get("Id") or "")
        created = parse_datetime(row.get("CreatedDate"))
        if (
            task_id
            and task_id not in taken
            and str(row.get("WhatId") or "")[:15] == item.campaign_id[:15]
            and str(row.get("Subject") or "").casefold() == subject
            and created is not None
            and since is not None
            and created >= since
        ):
            return task_id
    return None


def _body(item: _Item, owner: str | None, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Subject": item.subject,
        "Description": item.task.description[:DESCRIPTION_MAX],
        "WhatId": item.campaign_id,
        "Priority": item.task.priority,
        "Status": "Not Started",
        "ActivityDate": now.date().isoformat(),
    }
    if owner:
        body["OwnerId"] = owner
    return body


def _to_api_user(items: Sequence[_Item]) -> None:
    """Tasks for owners who cannot take them go to the API user, saying whose they were."""
    for item in items:
        owner = item.body.pop("OwnerId")
        log.warning(
            "Salesforce: campaign owner %s cannot take tasks; the task goes to the API user",
            owner,
        )
        item.body["Description"] = (
            f"(For the campaign owner {owner}, who cannot be assigned tasks.)\n"
            + str(item.body["Description"])
        )[:DESCRIPTION_MAX]


def _first_code(answer: object) -> str | None:
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("statusCode")
        return str(code) if code else None
    return None


def _refused(item: _Item, answer: object) -> ClientError:
    """A record Salesforce refused (or left unanswered) as that alert's own error."""
    if isinstance(answer, dict):
        reason = errors_text(answer.get("errors") or [])
    else:
        reason = "no result returned for this record"
    return ClientError(
        f"{SERVICE}: the task for alert {item.alert_key!r} on campaign {item.campaign_id} "
        f"was not created: {reason}",
        service=SERVICE,
        code=_first_code(answer),
    )
