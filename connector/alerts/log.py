"""Alerts over time: fired once per crossing, resolved when clear, delivered once per channel.

The ``alerts`` table holds one row per dedup key (rule + scope + period + threshold), so at
most one alert per key can be open, whatever the sequence of runs. Each run's
:class:`~connector.alerts.rules.Evaluation` s move the rows through their states:

- met, no row (or a resolved one): a **crossing**. It fires (``open``) unless something of
  the same budget ranks higher and is open or fires in the same run; then it is recorded as
  ``passed`` (never delivered). A re-crossing after a resolution is a new firing, delivered
  afresh (``firings`` counts them; the old deliveries stay in the history).
- met, row open or passed: nothing new (the current value is kept up to date).
- not met (or no longer evaluated: budget removed, period past its grace days), row open or
  passed: ``resolved``.

Deliveries are recorded per channel in ``delivered_to`` as soon as each succeeds, in its own
transaction, so a crash between two deliveries never repeats the first; a failure is kept in
``delivery_errors`` and retried on the next run. Every transition is appended to ``history``.

A resolution is announced, once, on every channel that received the alert (and only there:
nobody is told that something they never heard of is over). It is recorded as
``resolved_at`` inside that channel's ``delivered_to`` entry, and its failures under
``<channel>:resolved`` in ``delivery_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from connector.alerts.rules import Evaluation
from connector.store import Store, schema

OPEN = "open"
PASSED = "passed"
RESOLVED = "resolved"
_ACTIVE = (OPEN, PASSED)
_CHUNK = 500


@dataclass
class AlertRecord:
    """One row of the ``alerts`` table."""

    id: int
    dedup_key: str
    rule: str
    scope: str
    period: str
    threshold: Decimal | None
    severity: str
    message: str
    state: str
    value: Decimal | None
    opened_at: datetime
    resolved_at: datetime | None
    delivered_to: dict[str, Any]
    crm_task_id: str | None
    history: list[dict[str, Any]]
    details: dict[str, Any]
    delivery_errors: dict[str, Any]
    firings: int

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def body(self) -> str:
        return self.message.partition("\n")[2]

    @property
    def resolution_note(self) -> str | None:
        """Why the alert resolved ("condition cleared", "no longer evaluated"), if it did."""
        for event in reversed(self.history):
            if event.get("event") == "resolved":
                return str(event.get("note") or "") or None
        return None

    @property
    def firing_key(self) -> str:
        """The dedup key of this firing: what a CRM task is created once for."""
        return self.dedup_key if self.firings <= 1 else f"{self.dedup_key}#{self.firings}"

    @classmethod
    def from_row(cls, row: Row[Any]) -> AlertRecord:
        values = row._mapping
        return cls(**{name: values[name] for name in _FIELDS})


_FIELDS = tuple(AlertRecord.__dataclass_fields__)


@dataclass
class RecordOutcome:
    """What one run did to the alerts (dedup keys)."""

    fired: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _event(now: datetime, event: str, **extra: Any) -> dict[str, Any]:
    return {"at": now.isoformat(), "event": event, **{k: v for k, v in extra.items() if v}}


def _load(conn: Connection, rules: Sequence[str], met_keys: Sequence[str]) -> dict[str, Row[Any]]:
    t = schema.alerts
    rows: dict[str, Row[Any]] = {}
    for row in conn.execute(select(t).where(t.c.state.in_(_ACTIVE), t.c.rule.in_(list(rules)))):
        rows[row.dedup_key] = row
    wanted = [k for k in met_keys if k not in rows]
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for row in conn.execute(select(t).where(t.c.dedup_key.in_(chunk))):
            rows[row.dedup_key] = row
    return rows


def record(
    store: Store,
    evaluations: Iterable[Evaluation],
    rules: Sequence[str],
    *,
    now: datetime,
) -> RecordOutcome:
    """Apply one run's evaluations (of ``rules``) to the alerts table, in one transaction."""
    evaluations = list(evaluations)
    evaluated = {e.dedup_key: e for e in evaluations}
    met = {key: e for key, e in evaluated.items() if e.met}
    outcome = RecordOutcome()
    with store.begin() as conn:
        rows = _load(conn, rules, list(met))
        crossing = [e for key, e in met.items() if key not in rows or rows[key].state == RESOLVED]
        best = _best_ranks(met, rows, {e.dedup_key for e in crossing})
        inserts, reopens = _crossings(crossing, rows, best, outcome, now)
        refreshed = [
            {"_id": rows[key].id, "_value": e.value, "_details": dict(e.details)}
            for key, e in met.items()
            if key in rows and rows[key].state in _ACTIVE and e.value != rows[key].value
        ]
        resolutions = _resolutions(rows, met, evaluated, outcome, now)
        _write(conn, inserts, [reopens, refreshed, resolutions])
    return outcome


def _best_ranks(
    met: Mapping[str, Evaluation], rows: Mapping[str, Any], crossing_keys: set[str]
) -> dict[str, tuple[Any, ...]]:
    """The highest rank per group among what is open already and what crosses now."""
    best: dict[str, tuple[Any, ...]] = {}
    for key, e in met.items():
        if e.group is None or (key not in crossing_keys and rows[key].state != OPEN):
            continue
        if e.group not in best or e.rank > best[e.group]:
            best[e.group] = e.rank
    return best


def _crossings(
    crossing: Sequence[Evaluation],
    rows: Mapping[str, Any],
    best: Mapping[str, tuple[Any, ...]],
    outcome: RecordOutcome,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """New alerts to insert and resolved ones to reopen; the highest of a group fires, the
    ones it passed are recorded as passed."""
    inserts: list[dict[str, Any]] = []
    reopens: list[dict[str, Any]] = []
    for e in crossing:
        fires = e.group is None or e.rank >= best[e.group]
        (outcome.fired if fires else outcome.passed).append(e.dedup_key)
        values = _fresh_values(e, OPEN if fires else PASSED, now)
        row = rows.get(e.dedup_key)
        if row is None:
            event = _event(now, "opened" if fires else "passed", value=_text(e.value))
            inserts.append({"dedup_key": e.dedup_key, "history": [event], "firings": 1, **values})
        else:
            event = _event(
                now,
                "reopened" if fires else "passed",
                value=_text(e.value),
                previous_deliveries=row.delivered_to or None,
            )
            values.update(history=[*row.history, event], firings=row.firings + 1)
            reopens.append({"_id": row.id, **{f"_{k}": v for k, v in values.items()}})
    return inserts, reopens


def _fresh_values(e: Evaluation, state: str, now: datetime) -> dict[str, Any]:
    return {
        "rule": e.rule,
        "scope": e.scope,
        "period": e.period,
        "threshold": e.threshold,
        "severity": e.severity,
        "message": e.message,
        "state": state,
        "value": e.value,
        "opened_at": now,
        "resolved_at": None,
        "details": dict(e.details),
        "delivered_to": {},
        "delivery_errors": {},
        "crm_task_id": None,
    }


def _resolutions(
    rows: Mapping[str, Any],
    met: Mapping[str, Evaluation],
    evaluated: Mapping[str, Evaluation],
    outcome: RecordOutcome,
    now: datetime,
) -> list[dict[str, Any]]:
    """Active alerts whose condition cleared, or that were not evaluated any more."""
    resolutions: list[dict[str, Any]] = []
    for key, row in rows.items():
        if row.state not in _ACTIVE or key in met:
            continue
        why = "condition cleared" if key in evaluated else "no longer evaluated"
        value = evaluated[key].value if key in evaluated else row.value
        outcome.resolved.append(key)
        event = _event(now, "resolved", note=why, value=_text(value))
        resolutions.append(
            {
                "_id": row.id,
                "_state": RESOLVED,
                "_resolved_at": now,
                "_value": value,
                "_history": [*row.history, event],
            }
        )
    return resolutions


def _write(
    conn: Connection, inserts: list[dict[str, Any]], updates: list[list[dict[str, Any]]]
) -> None:
    """executemany per kind of change: one statement whatever the number of alerts."""
    t = schema.alerts
    if inserts:
        conn.execute(t.insert(), inserts)
    for batch in updates:
        if batch:
            columns = [k[1:] for k in batch[0] if k != "_id"]
            stmt = (
                update(t)
                .where(t.c.id == bindparam("_id"))
                .values({c: bindparam(f"_{c}") for c in columns})
            )
            conn.execute(stmt, batch)


def list_alerts(store: Store, *, open_only: bool = False) -> list[AlertRecord]:
    """Alerts, newest first (``open_only``: only those still open)."""
    t = schema.alerts
    stmt = select(t).order_by(t.c.opened_at.desc(), t.c.id.desc())
    if open_only:
        stmt = stmt.where(t.c.state == OPEN)
    with store.engine.connect() as conn:
        return [AlertRecord.from_row(row) for row in conn.execute(stmt)]


def undelivered(store: Store, channel: str) -> list[AlertRecord]:
    """Open alerts not yet delivered to ``channel``, oldest first (resolved ones are not
    worth a message any more)."""
    t = schema.alerts
    stmt = select(t).where(t.c.state == OPEN).order_by(t.c.opened_at, t.c.id)
    with store.engine.connect() as conn:
        return [
            AlertRecord.from_row(row)
            for row in conn.execute(stmt)
            if channel not in (row.delivered_to or {})
        ]


def unannounced_resolutions(store: Store, channel: str) -> list[AlertRecord]:
    """Resolved alerts that ``channel`` received while open and has not been told are over,
    oldest resolution first."""
    t = schema.alerts
    stmt = select(t).where(t.c.state == RESOLVED).order_by(t.c.resolved_at, t.c.id)
    with store.engine.connect() as conn:
        return [
            AlertRecord.from_row(row)
            for row in conn.execute(stmt)
            if channel in (row.delivered_to or {})
            and "resolved_at" not in row.delivered_to[channel]
            and "skipped" not in row.delivered_to[channel]
        ]


def resolution_channel(channel: str) -> str:
    """The ``delivery_errors`` key of a channel's resolution notices."""
    return f"{channel}:resolved"


def mark_resolution_delivered(
    store: Store, alert: AlertRecord, channel: str, *, now: datetime, note: str | None = None
) -> bool:
    """Record that ``channel`` was told ``alert`` resolved. Returns False, recording nothing,
    when the alert fired again meanwhile: that new firing's deliveries start afresh."""
    t = schema.alerts
    with store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == alert.id)).one()
        if row.state != RESOLVED or row.firings != alert.firings:
            return False
        delivered = dict(row.delivered_to or {})
        delivered[channel] = {**delivered.get(channel, {}), "resolved_at": now.isoformat()}
        errors = dict(row.delivery_errors or {})
        errors.pop(resolution_channel(channel), None)
        event = _event(now, "resolution_delivered", channel=channel, note=note)
        conn.execute(
            update(t)
            .where(t.c.id == alert.id)
            .values(delivered_to=delivered, delivery_errors=errors, history=[*row.history, event])
        )
    return True


def mark_delivered(
    store: Store,
    alert_id: int,
    channel: str,
    *,
    now: datetime,
    ref: str | None = None,
    note: str | None = None,
) -> None:
    """Record a delivery (in its own transaction, right after it succeeded)."""
    t = schema.alerts
    with store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == alert_id)).one()
        delivered = dict(row.delivered_to or {})
        delivered[channel] = {"at": now.isoformat(), **({"ref": ref} if ref else {})}
        errors = {k: v for k, v in (row.delivery_errors or {}).items() if k != channel}
        values: dict[str, Any] = {
            "delivered_to": delivered,
            "delivery_errors": errors,
            "history": [
                *row.history,
                _event(now, "delivered", channel=channel, ref=ref, note=note),
            ],
        }
        if channel == "crm" and ref:
            values["crm_task_id"] = ref
        conn.execute(update(t).where(t.c.id == alert_id).values(**values))


def mark_skipped(store: Store, alert_id: int, channel: str, note: str, *, now: datetime) -> None:
    """Record that ``channel`` cannot carry this alert (so it is not offered it again), kept
    apart from deliveries: ``delivered_to[channel]`` says ``skipped``."""
    t = schema.alerts
    with store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == alert_id)).one()
        delivered = dict(row.delivered_to or {})
        delivered[channel] = {"at": now.isoformat(), "skipped": note}
        conn.execute(
            update(t)
            .where(t.c.id == alert_id)
            .values(
                delivered_to=delivered,
                history=[*row.history, _event(now, "skipped", channel=channel, note=note)],
            )
        )


def reached(alert: AlertRecord) -> list[str]:
    """The channels that really delivered ``alert`` (not those that skipped it)."""
    return sorted(c for c, d in alert.delivered_to.items() if "skipped" not in (d or {}))


def mark_failed(store: Store, alert_id: int, channel: str, error: str, *, now: datetime) -> int:
    """Record a failed delivery (retried next run); returns the attempts so far. The history
    gets the first failure only, so a channel down for a week does not bloat it."""
    t = schema.alerts
    with store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == alert_id)).one()
        errors = dict(row.delivery_errors or {})
        attempts = int(errors.get(channel, {}).get("attempts", 0)) + 1
        errors[channel] = {"attempts": attempts, "error": error, "at": now.isoformat()}
        values: dict[str, Any] = {"delivery_errors": errors}
        if attempts == 1:
            values["history"] = [
                *row.history,
                _event(now, "delivery_failed", channel=channel, error=error),
            ]
        conn.execute(update(t).where(t.c.id == alert_id).values(**values))
    return attempts
