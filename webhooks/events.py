"""The ``webhook_events`` table: every state change an event goes through, in one place.

States: ``pending`` (stored, waiting or waiting for a retry at ``next_attempt_at``),
``processing`` (claimed by a worker until ``next_attempt_at``, the lease), ``done`` and
``dead`` (dead-lettered with its ``last_error``; ``replay`` makes it pending again).

Claims are safe with any number of workers in any number of processes: a claim is one
``UPDATE ... WHERE id IN (SELECT ... ) RETURNING`` statement. PostgreSQL's subquery takes
``FOR UPDATE SKIP LOCKED``, so concurrent claimers pass over each other's rows instead of
waiting; SQLite runs the statement under its single write lock, so the second claimer sees
the first one's claim. Every claim increments ``attempts``, and that number is the claim's
fencing token: a worker whose lease expired (it hung, or its process died) cannot mark the
event done or failed once another worker has claimed it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector import schema
from connector.store import Store
from webhooks.providers.base import Item

log = logging.getLogger(__name__)

T = schema.webhook_events
STATES = ("pending", "processing", "done", "dead")
MAX_ERROR = 2000


@dataclass(frozen=True)
class Event:
    id: int
    provider: str
    dedup_key: str
    body: str
    headers: dict[str, Any]
    received_at: datetime
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    processed_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """The event without its body (lead data stays out of listings)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "dedup_key": self.dedup_key,
            "status": self.status,
            "attempts": self.attempts,
            "received_at": self.received_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "processed_at": self.processed_at.isoformat() if self.processed_at else None,
            "last_error": self.last_error,
        }


_COLUMNS = (
    T.c.id,
    T.c.provider,
    T.c.dedup_key,
    T.c.body,
    T.c.headers,
    T.c.received_at,
    T.c.status,
    T.c.attempts,
    T.c.next_attempt_at,
    T.c.last_error,
    T.c.processed_at,
)


def _event(row: Any) -> Event:
    return Event(*row)


_INSERTED = ("provider", "dedup_key", "body", "headers", "received_at", "status", "attempts")


class Inserter:
    """``INSERT ... ON CONFLICT (provider, dedup_key) DO NOTHING``, one row at a time so each
    item learns whether it is new.

    This is the intake's hot path (every webhook request runs it, under the GIL, on the one
    writer thread). On SQLite the statement is compiled once and run on the DBAPI cursor with
    SQLAlchemy's own bind processors for each column, which is what SQLAlchemy would send,
    at a fifth of the cost per row; PostgreSQL goes through SQLAlchemy as usual.
    """

    def __init__(self, conn: Connection) -> None:
        dialect = conn.dialect
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        self.stmt = insert(T).on_conflict_do_nothing(index_elements=["provider", "dedup_key"])
        self.raw = dialect.name == "sqlite" and dialect.paramstyle == "qmark"
        if self.raw:
            compiled = self.stmt.compile(dialect=dialect, column_keys=list(_INSERTED))
            self.sql = str(compiled)
            order = compiled.positiontup or []
            assert sorted(order) == sorted(_INSERTED), order
            self.order = [(key, T.c[key].type.bind_processor(dialect)) for key in order]

    def insert(
        self,
        conn: Connection,
        provider: str,
        items: Sequence[Item],
        headers: Mapping[str, str],
        received_at: datetime,
    ) -> list[bool]:
        """Insert each item unless its ``(provider, dedup_key)`` is there; True where new."""
        created = []
        for item in items:
            row = {
                "provider": provider,
                "dedup_key": item.dedup_key,
                "body": item.body,
                "headers": dict(headers),
                "received_at": received_at,
                "status": "pending",
                "attempts": 0,
            }
            if self.raw:
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    values = [proc(row[k]) if proc else row[k] for k, proc in self.order]
                    cursor.execute(self.sql, values)
                    created.append(cursor.rowcount == 1)
                finally:
                    cursor.close()
            else:
                created.append(conn.execute(self.stmt, row).rowcount == 1)
        return created


def insert_items(
    conn: Connection,
    provider: str,
    items: Sequence[Item],
    headers: Mapping[str, str],
    received_at: datetime,
) -> list[bool]:
    """One-off :meth:`Inserter.insert` (tests, tools)."""
    return Inserter(conn).insert(conn, provider, items, headers, received_at)


def _due(now: datetime) -> Any:
    return or_(
        and_(
            T.c.status == "pending", or_(T.c.next_attempt_at.is_(None), T.c.next_attempt_at <= now)
        ),
        and_(T.c.status == "processing", T.c.next_attempt_at <= now),  # an expired lease
    )


def claim(
    store: Store,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    max_attempts: int,
    providers: Iterable[str] | None = None,
) -> list[Event]:
    """Claim up to ``limit`` due events, oldest first, for ``lease``."""
    with store.begin() as conn:
        # A claim that expired on its last allowed attempt: the worker died processing it
        # (perhaps because of it). Dead-letter it rather than crash the next worker too.
        conn.execute(
            update(T)
            .where(T.c.status == "processing", T.c.next_attempt_at <= now)
            .where(T.c.attempts >= max_attempts)
            .values(
                status="dead",
                next_attempt_at=None,
                last_error=func.coalesce(T.c.last_error + "; ", "")
                + "the worker processing it stopped before finishing (lease expired)",
            )
        )
        candidates = select(T.c.id).where(_due(now)).order_by(T.c.id).limit(limit)
        if providers is not None:
            candidates = candidates.where(T.c.provider.in_(list(providers)))
        if store.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        rows = conn.execute(
            update(T)
            .where(T.c.id.in_(candidates.scalar_subquery()))
            .where(_due(now))
            .values(status="processing", attempts=T.c.attempts + 1, next_attempt_at=now + lease)
            .returning(*_COLUMNS)
        ).all()
    return sorted((_event(r) for r in rows), key=lambda e: e.id)


def _fenced(event: Event) -> Any:
    return and_(T.c.id == event.id, T.c.status == "processing", T.c.attempts == event.attempts)


def mark_done(conn: Connection, event: Event, *, now: datetime, note: str | None) -> bool:
    """Done, in the caller's transaction (with the touchpoint); False if the claim was lost."""
    result = conn.execute(
        update(T)
        .where(_fenced(event))
        .values(status="done", processed_at=now, next_attempt_at=None, last_error=note)
    )
    return result.rowcount == 1


def mark_failed(store: Store, event: Event, error: str, *, retry_at: datetime | None) -> str | None:
    """Back to pending until ``retry_at``, or dead when ``retry_at`` is None; returns the new
    state, or None when the claim was lost to another worker."""
    state = "dead" if retry_at is None else "pending"
    with store.begin() as conn:
        result = conn.execute(
            update(T)
            .where(_fenced(event))
            .values(status=state, next_attempt_at=retry_at, last_error=error[:MAX_ERROR])
        )
    return state if result.rowcount == 1 else None


def release(store: Store, events: Iterable[Event]) -> None:
    """Hand back claims not started (shutdown): pending again, the attempt not counted."""
    with store.begin() as conn:
        for event in events:
            conn.execute(
                update(T)
                .where(_fenced(event))
                .values(status="pending", attempts=T.c.attempts - 1, next_attempt_at=None)
            )


def counts(store: Store) -> dict[str, int]:
    """Events per state (every state present, 0 when none)."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(T.c.status, func.count()).group_by(T.c.status)).all()
    out = dict.fromkeys(STATES, 0)
    out.update({status: int(n) for status, n in rows})
    return out


def oldest_pending(store: Store) -> datetime | None:
    with store.engine.connect() as conn:
        return conn.execute(
            select(func.min(T.c.received_at)).where(T.c.status.in_(("pending", "processing")))
        ).scalar()


def list_events(
    store: Store, *, status: str | None = None, limit: int = 100, ids: Sequence[int] = ()
) -> list[Event]:
    stmt = select(*_COLUMNS).order_by(T.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(T.c.status == status)
    if ids:
        stmt = stmt.where(T.c.id.in_(list(ids)))
    with store.engine.connect() as conn:
        return [_event(r) for r in conn.execute(stmt)]


def get(store: Store, event_id: int) -> Event | None:
    found = list_events(store, ids=[event_id], limit=1)
    return found[0] if found else None


def replay(store: Store, *, ids: Sequence[int] = (), dead: bool = False) -> list[int]:
    """Make events pending again with a fresh count of attempts: the dead letters
    (``dead``) and/or the given ids (dead or done; a claimed event is left to its worker).
    Returns the ids made pending."""
    if not ids and not dead:
        return []
    conditions = []
    if dead:
        conditions.append(T.c.status == "dead")
    if ids:
        conditions.append(and_(T.c.id.in_(list(ids)), T.c.status.in_(("dead", "done", "pending"))))
    with store.begin() as conn:
        rows = conn.execute(
            update(T)
            .where(or_(*conditions))
            .values(status="pending", attempts=0, next_attempt_at=None)
            .returning(T.c.id)
        ).all()
    replayed = sorted(int(r[0]) for r in rows)
    log.info("replaying %d webhook event(s): %s", len(replayed), replayed[:20])
    return replayed
