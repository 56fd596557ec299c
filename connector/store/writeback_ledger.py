"""What was written to the CRM, per record: the ``writeback_state`` table.

Write-back diffs against this ledger (only changed values are sent, DESIGN section 7) and
alert tasks use it to be created once. A value is recorded as written only after the CRM
confirmed that record; what was sent but not confirmed stays in ``pending_values`` with the
error and an attempt count, so the next run sends it again and nothing is lost or doubled.

The table is keyed by ``(crm, record_id)`` and holds JSON, so it serves any CRM; values are
kept in their canonical text form (``"50.00"``) so that comparing is exact. It belongs to
the store: CRM adapters call this interface and write no SQL of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.store import Store, schema

_TABLE = schema.writeback_state
_CHUNK = 500


@dataclass
class LedgerRow:
    record_id: str
    object: str
    written: dict[str, Any] = field(default_factory=dict)
    written_at: datetime | None = None
    pending: dict[str, Any] | None = None
    last_error: str | None = None
    attempts: int = 0


class WritebackLedger:
    """Reads and updates ``writeback_state`` rows of one CRM."""

    def __init__(self, store: Store, crm: str) -> None:
        self.store = store
        self.crm = crm

    def load(self, record_ids: Iterable[str]) -> dict[str, LedgerRow]:
        ids = list(dict.fromkeys(record_ids))
        out: dict[str, LedgerRow] = {}
        with self.store.engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    select(_TABLE).where(
                        _TABLE.c.crm == self.crm,
                        _TABLE.c.record_id.in_(ids[start : start + _CHUNK]),
                    )
                )
                for row in rows:
                    out[row.record_id] = LedgerRow(
                        record_id=row.record_id,
                        object=row.object,
                        written=dict(row.written_values or {}),
                        written_at=row.written_at,
                        pending=row.pending_values,
                        last_error=row.last_error,
                        attempts=row.attempts or 0,
                    )
        return out

    def get(self, record_id: str) -> LedgerRow | None:
        return self.load([record_id]).get(record_id)

    def _ensure(self, conn: Connection, record_id: str, sobject: str) -> None:
        insert = postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert
        conn.execute(
            insert(_TABLE)
            .values(crm=self.crm, record_id=record_id, object=sobject, attempts=0)
            .on_conflict_do_nothing(index_elements=["crm", "record_id"])
        )

    def _where(self, record_id: str):
        return (_TABLE.c.crm == self.crm) & (_TABLE.c.record_id == record_id)

    def mark_pending(self, sobject: str, pending: Mapping[str, Mapping[str, Any]]) -> None:
        """Record what is about to be sent (before the call: a crash leaves it visible)."""
        with self.store.begin() as conn:
            for record_id, values in pending.items():
                self._ensure(conn, record_id, sobject)
                conn.execute(
                    update(_TABLE).where(self._where(record_id)).values(pending_values=dict(values))
                )

    def record_written(
        self,
        sobject: str,
        written: Mapping[str, Mapping[str, Any]],
        *,
        at: datetime | None = None,
    ) -> None:
        """The CRM confirmed these values: merge them into ``written_values``."""
        at = at or datetime.now(UTC)
        with self.store.begin() as conn:
            for record_id, values in written.items():
                self._ensure(conn, record_id, sobject)
                before = conn.execute(
                    select(_TABLE.c.written_values).where(self._where(record_id))
                ).scalar()
                merged = {**(before or {}), **dict(values)}
                conn.execute(
                    update(_TABLE)
                    .where(self._where(record_id))
                    .values(
                        written_values=merged,
                        written_at=at,
                        pending_values=None,
                        last_error=None,
                        attempts=0,
                    )
                )

    def record_failed(self, sobject: str, failed: Mapping[str, str]) -> None:
        """Keep the error with the record; its pending values are retried next run."""
        with self.store.begin() as conn:
            for record_id, error in failed.items():
                self._ensure(conn, record_id, sobject)
                conn.execute(
                    update(_TABLE)
                    .where(self._where(record_id))
                    .values(last_error=error[:2000], attempts=_TABLE.c.attempts + 1)
                )
