"""The store's tables, derived from the normalized model so the two cannot drift.

Each entity table has an integer surrogate key (SQLite's rowid, cheap to join and to hold in
numpy arrays), the unique ``(source, external_id)`` pair that makes every pull an upsert, the
model's fields, and ``synced_at``: when this row last changed in the store (not upstream).
The operational tables (cursors, run history, alerts, webhook events, write-back state) are
written out by hand below because they have no normalized-record counterpart.
"""

from __future__ import annotations

import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from connector import model
from connector.store.dbtypes import Money, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TABLE_NAMES: dict[type[model.Record], str] = {
    model.Campaign: "campaigns",
    model.AdCampaign: "ad_campaigns",
    model.AdSpendDay: "ad_spend_days",
    model.Expense: "expenses",
    model.Person: "persons",
    model.Touchpoint: "touchpoints",
    model.Opportunity: "opportunities",
    model.ContactRole: "contact_roles",
    model.Budget: "budgets",
    model.FxRate: "fx_rates",
}

# Lookups the engine and adapters make besides (source, external_id).
_EXTRA_INDEXES: dict[str, list[tuple[str, ...]]] = {
    "touchpoints": [("person_source", "person_id"), ("campaign_source", "campaign_id")],
    "persons": [("email",), ("source", "converted_contact_id")],
    "contact_roles": [("source", "opportunity_id")],
    "expenses": [("campaign_source", "campaign_id")],
    "campaigns": [("ad_campaign_ref",)],
}

_TEXT_FIELDS = {"description", "decision_reason"}


def _column_type(name: str, annotation: Any) -> tuple[Any, bool]:
    """Map a dataclass annotation to (SQL type, nullable)."""
    nullable = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
    if annotation is str:
        return (Text() if name in _TEXT_FIELDS else String(255)), nullable
    if annotation is datetime:
        return UTCDateTime(), nullable
    if annotation is date:
        return Date(), nullable
    if annotation is Decimal:
        return Money(), nullable
    if annotation is bool:
        return Boolean(), nullable
    if annotation is int:
        return BigInteger(), nullable
    raise TypeError(f"no column type for {name}: {annotation!r}")


def _entity_table(record_type: type[model.Record], name: str) -> Table:
    hints = typing.get_type_hints(record_type)
    columns: list[Any] = [Column("id", Integer, primary_key=True, autoincrement=True)]
    for field_name in record_type.field_names():
        sql_type, nullable = _column_type(field_name, hints[field_name])
        columns.append(Column(field_name, sql_type, nullable=nullable))
    columns.append(Column("synced_at", UTCDateTime(), nullable=False))
    table = Table(name, metadata, *columns, UniqueConstraint("source", "external_id"))
    for cols in _EXTRA_INDEXES.get(name, []):
        Index(None, *(table.c[c] for c in cols), _table=table)
    return table


ENTITY_TABLES: dict[type[model.Record], Table] = {
    record_type: _entity_table(record_type, name) for record_type, name in TABLE_NAMES.items()
}

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("partition", String(255), primary_key=True, default=""),
    Column("value", String(255), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("command", String(64), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("status", String(16), nullable=False),  # running, ok, partial, failed
    Column("counts", JSON(), nullable=False, default=dict),
    Column("errors", JSON(), nullable=False, default=list),
    Column("api_calls", Integer, nullable=False, default=0),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(255), nullable=False, unique=True),
    Column("rule", String(64), nullable=False),
    Column("scope", String(255), nullable=False),
    Column("period", String(16), nullable=False),
    Column("threshold", Money(), nullable=True),
    Column("severity", String(16), nullable=False),
    Column("message", Text(), nullable=False),
    Column("state", String(16), nullable=False),  # open, resolved, passed
    Column("value", Money(), nullable=True),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("delivered_to", JSON(), nullable=False, default=dict),
    Column("crm_task_id", String(64), nullable=True),
    Column("history", JSON(), nullable=False, default=list),
    # What a delivery needs without recomputing: figures, the campaign and owner a CRM task
    # goes to (connector.alerts.log).
    Column("details", JSON(), nullable=False, default=dict),
    # Per channel: attempts and the last error of deliveries still to retry.
    Column("delivery_errors", JSON(), nullable=False, default=dict),
    # How often the condition was crossed: a re-crossing after a resolution is a new firing.
    Column("firings", Integer, nullable=False, default=1),
    Index(None, "state"),
)

expense_decisions = Table(
    "expense_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("expense_source", String(255), nullable=False),
    Column("expense_id", String(255), nullable=False),
    # requested, approved, rejected, refused (a rule said no), changed (re-imported values)
    Column("action", String(16), nullable=False),
    Column("actor", String(255), nullable=True),
    Column("decided_at", UTCDateTime(), nullable=False),
    Column("reason", Text(), nullable=True),
    Column("override", Boolean(), nullable=False, default=False),
    Column("rule", String(64), nullable=True),
    Column("amount", Money(), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("details", JSON(), nullable=False, default=dict),
    Index(None, "expense_source", "expense_id"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("body", Text(), nullable=False),
    Column("headers", JSON(), nullable=False, default=dict),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # pending, processing, done, dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("processed_at", UTCDateTime(), nullable=True),
    UniqueConstraint("provider", "dedup_key"),
    Index(None, "status", "next_attempt_at"),
)

writeback_state = Table(
    "writeback_state",
    metadata,
    Column("crm", String(32), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("object", String(64), nullable=False),
    Column("written_values", JSON(), nullable=True),
    Column("written_at", UTCDateTime(), nullable=True),
    Column("pending_values", JSON(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
)


def table_for(record_type: type[model.Record]) -> Table:
    return ENTITY_TABLES[record_type]
