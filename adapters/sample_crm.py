"""A local sample CRM (and its ad accounts) in a SQLite file, for the demo and the tests.

It behaves like a small remote system: objects carry a modification stamp, the source reads
them incrementally by that stamp through the same :class:`adapters.base.Stream` interface
real adapters implement, and it takes write-back (ROI fields on campaigns), alert tasks and
inbound leads the way a real CRM would. The demo runs the whole pipeline against it, so the
demo exercises the very code a real sync runs.
"""

from __future__ import annotations

import json
import sqlite3
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from adapters.base import (
    AlertTask,
    Batch,
    CampaignFields,
    InboundLead,
    LeadOutcome,
    WriteResult,
)
from connector import failpoints, model

_TYPES: dict[str, type[model.Record]] = {t.entity: t for t in model.ENTITY_TYPES}
_PAGE = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    type TEXT NOT NULL, id TEXT NOT NULL, modstamp TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (type, id));
CREATE INDEX IF NOT EXISTS objects_modstamp ON objects (type, modstamp);
CREATE TABLE IF NOT EXISTS campaign_roi (
    campaign_id TEXT PRIMARY KEY, fields TEXT NOT NULL, updated_at TEXT NOT NULL,
    writes INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_key TEXT NOT NULL UNIQUE, what_id TEXT,
    owner_id TEXT, subject TEXT NOT NULL, description TEXT NOT NULL, created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'Not Started');
"""


def to_payload(record: model.Record) -> dict[str, Any]:
    """A record as JSON-safe values (Decimal and dates as strings, exactly)."""
    out: dict[str, Any] = {}
    for key, value in asdict(record).items():
        if isinstance(value, Decimal | date | datetime):
            out[key] = str(value) if isinstance(value, Decimal) else value.isoformat()
        else:
            out[key] = value
    return out


@cache
def _parsers(record_type: type[model.Record]) -> tuple[tuple[str, Any], ...]:
    """(field, parser or None) per field: the JSON strings that stand for dates and money."""
    hints = typing.get_type_hints(record_type)
    out = []
    for name in record_type.field_names():
        args = typing.get_args(hints[name]) or (hints[name],)
        if datetime in args:
            parser: Any = datetime.fromisoformat
        elif date in args:
            parser = date.fromisoformat
        elif Decimal in args:
            parser = Decimal
        else:
            parser = None
        out.append((name, parser))
    return tuple(out)


def from_payload(record_type: type[model.Record], payload: dict[str, Any]) -> model.Record:
    values: dict[str, Any] = {}
    for name, parser in _parsers(record_type):
        value = payload.get(name)
        if value is not None and parser is not None:
            value = parser(value)
        values[name] = value
    return record_type(**values)


class SampleCrm:
    """The sample CRM's storage."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(tasks)")}
        if "status" not in columns:  # a sample CRM made by an older version
            self.db.execute(
                "ALTER TABLE tasks ADD COLUMN status TEXT NOT NULL DEFAULT 'Not Started'"
            )

    @classmethod
    def create(cls, path: Path, records: Iterable[model.Record], *, at: datetime) -> SampleCrm:
        Path(path).unlink(missing_ok=True)
        crm = cls(path)
        crm.put(records, at=at)
        return crm

    def put(self, records: Iterable[model.Record], *, at: datetime) -> None:
        """Create or change objects, stamping them like a CRM stamps SystemModstamp."""
        stamp = at.astimezone(UTC).isoformat()
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO objects (type, id, modstamp, payload) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (type, id) DO UPDATE SET modstamp = excluded.modstamp, "
            "payload = excluded.payload",
            (
                (r.entity, f"{r.source}:{r.external_id}", stamp, json.dumps(to_payload(r)))
                for r in records
            ),
        )
        self.db.execute("COMMIT")

    def campaign_fields(self) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT campaign_id, fields FROM campaign_roi").fetchall()
        return {cid: json.loads(fields) for cid, fields in rows}

    def tasks(self) -> list[tuple[str, str, str]]:
        return self.db.execute(
            "SELECT alert_key, what_id, subject FROM tasks ORDER BY id"
        ).fetchall()

    def task_states(self) -> dict[str, tuple[str, str]]:
        """alert key -> (status, description)."""
        rows = self.db.execute("SELECT alert_key, status, description FROM tasks ORDER BY id")
        return {key: (status, description) for key, status, description in rows}

    def close(self) -> None:
        self.db.close()


class SampleStream:
    """One object type of the sample CRM, read by modification stamp (closed lower bound;
    the store's upsert makes the re-read boundary rows harmless)."""

    cursor_field = "modstamp"

    def __init__(
        self, crm: SampleCrm, record_type: type[model.Record], page_size: int = _PAGE
    ) -> None:
        self.crm = crm
        self.record_type = record_type
        self.name = record_type.entity
        self.page_size = page_size

    def partitions(self) -> Sequence[str]:
        return [""]

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        lower = "" if full or cursor is None else cursor
        upper = now.astimezone(UTC).isoformat()
        last_id = ""
        last_stamp = lower
        while True:
            rows = self.crm.db.execute(
                "SELECT id, modstamp, payload FROM objects WHERE type = ? AND modstamp >= ? "
                "AND modstamp <= ? AND (modstamp > ? OR (modstamp = ? AND id > ?)) "
                "ORDER BY modstamp, id LIMIT ?",
                (self.name, lower, upper, last_stamp, last_stamp, last_id, self.page_size),
            ).fetchall()
            if not rows:
                return
            records = [from_payload(self.record_type, json.loads(p)) for _, _, p in rows]
            last_id, last_stamp = rows[-1][0], rows[-1][1]
            # records are sorted by stamp, so everything up to this stamp has been read
            yield Batch(records=records, cursor=last_stamp)


class SampleSource:
    """Every object type of the sample CRM and its ad accounts, in dependency order."""

    name = "demo"

    def __init__(self, crm: SampleCrm, *, page_size: int = _PAGE) -> None:
        self.crm = crm
        self.page_size = page_size

    def streams(self) -> Sequence[SampleStream]:
        order = [
            model.Campaign,
            model.AdCampaign,
            model.AdSpendDay,
            model.Expense,
            model.Person,
            model.Touchpoint,
            model.Opportunity,
            model.ContactRole,
            model.Budget,
            model.FxRate,
        ]
        return [SampleStream(self.crm, t, self.page_size) for t in order]

    def check(self) -> list[tuple[bool, str]]:
        count = self.crm.db.execute("SELECT count(*) FROM objects").fetchone()[0]
        return [(True, f"sample CRM {self.crm.path} holds {count:,} objects")]

    def api_calls(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _field_text(update: CampaignFields) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, Decimal | datetime) else v)
        for k, v in asdict(update).items()
        if k != "campaign_id"
    }


def _without_stamp(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "synced_at"}


class SampleWriter:
    """Write-back into the sample CRM: ROI fields on campaigns, tasks, inbound leads."""

    name = "demo_crm"  # the source name of the records it owns

    def __init__(
        self, crm: SampleCrm, *, fail_ids: Sequence[str] = (), batch_size: int = 200
    ) -> None:
        self.crm = crm
        self.fail_ids = set(fail_ids)  # tests: records the "CRM" rejects
        self.batch_size = batch_size  # like sObject Collections' 200 per call

    def write_campaign_fields(self, updates: Sequence[CampaignFields]) -> WriteResult:
        """Like a real CRM write-back: only campaigns whose figures changed (the timestamp
        alone is no change), 200 a call, each call committed on its own."""
        result = WriteResult()
        current = self.crm.campaign_fields()
        changed = []
        for update in updates:
            fields = _field_text(update)
            known = current.get(update.campaign_id)
            if known is None or _without_stamp(known) != _without_stamp(fields):
                changed.append((update.campaign_id, fields))
        now = datetime.now(UTC).isoformat()
        for start in range(0, len(changed), self.batch_size):
            result.calls += 1
            self.crm.db.execute("BEGIN")
            for campaign_id, fields in changed[start : start + self.batch_size]:
                if campaign_id in self.fail_ids:
                    result.failed[campaign_id] = (
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION: rejected by a validation rule"
                    )
                    continue
                self.crm.db.execute(
                    "INSERT INTO campaign_roi (campaign_id, fields, updated_at) VALUES (?,?,?) "
                    "ON CONFLICT (campaign_id) DO UPDATE SET fields = excluded.fields, "
                    "updated_at = excluded.updated_at, writes = writes + 1",
                    (campaign_id, json.dumps(fields), now),
                )
                result.written.append(campaign_id)
            self.crm.db.execute("COMMIT")
            failpoints.hit("writeback-call-done")
        return result

    def create_task(self, task: AlertTask) -> str:
        existing = self.crm.db.execute(
            "SELECT id FROM tasks WHERE alert_key = ?", (task.alert_key,)
        ).fetchone()
        if existing:
            return f"00T{existing[0]:015d}"
        cursor = self.crm.db.execute(
            "INSERT INTO tasks (alert_key, what_id, owner_id, subject, description, created_at)"
            " VALUES (?,?,?,?,?,?)",
            (
                task.alert_key,
                task.campaign_id,
                task.owner_id,
                task.subject,
                task.description,
                datetime.now(UTC).isoformat(),
            ),
        )
        return f"00T{cursor.lastrowid:015d}"

    def complete_task(self, task_id: str, note: str) -> str | None:
        row = self.crm.db.execute(
            "SELECT status, description FROM tasks WHERE id = ?", (int(task_id[3:]),)
        ).fetchone()
        if row is None:
            return "the task no longer exists in the sample CRM"
        if row[0] == "Completed":
            return "already completed in the sample CRM"
        self.crm.db.execute(
            "UPDATE tasks SET status = 'Completed', description = ? WHERE id = ?",
            (f"{row[1]}\n\n{note}", int(task_id[3:])),
        )
        return None

    def upsert_inbound_lead(self, lead: InboundLead) -> LeadOutcome:
        email = model.normalize_email(lead.email)
        found = None
        for (payload,) in self.crm.db.execute("SELECT payload FROM objects WHERE type = 'person'"):
            data = json.loads(payload)
            if model.normalize_email(data.get("email")) == email:
                found = data
                break
        created = found is None
        at = datetime.now(UTC)
        if found is None:
            person = model.Person(
                source="demo_crm",
                external_id=f"00QW{lead.external_ref}",
                kind="lead",
                email=email,
                first_name=lead.first_name,
                last_name=lead.last_name,
                company=lead.company,
                created_at=lead.occurred_at,
                lead_source=lead.lead_source,
            )
            self.crm.put([person], at=at)
            kind, person_id = "lead", person.external_id
        else:
            kind, person_id = found["kind"], found["external_id"]
        member_id = None
        if lead.campaign_id:
            member_id = f"00vW{lead.external_ref}"
            self.crm.put(
                [
                    model.Touchpoint(
                        source="demo_crm",
                        external_id=member_id,
                        person_source="demo_crm",
                        person_id=person_id,
                        campaign_source="demo_crm",
                        campaign_id=lead.campaign_id,
                        occurred_at=lead.occurred_at,
                        kind="ad_lead_form",
                        responded=True,
                    )
                ],
                at=at,
            )
        return LeadOutcome(
            person_kind=kind, person_id=person_id, created=created, member_id=member_id
        )
