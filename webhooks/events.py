"""The ``webhook_events`` table: every state change an event goes through, in one place.

States: ``pending`` (stored, waiting or waiting for a retry at ``next_attempt_at``),
``processing`` (claimed by a worker until ``next_attempt_at``, the lease), ``done`` and
``dead`` (dead-lettered with its ``last_error``; ``replay`` makes it pending again).

Claims are safe with any number of workers in any number of processes: a claim is one
``UPDATE ... RETURNING`` statement of at most ``limit`` rows. On PostgreSQL the rows come
from a materialized ``SELECT ... FOR UPDATE SKIP LOCKED`` CTE (PostgreSQL 12 or later), so
concurrent claimers pass over each other's rows instead of waiting; SQLite runs the
statement under its single write lock, so the second claimer sees the first one's claim.
Every claim increments ``attempts``, and that number is the claim's fencing token: a
worker whose lease expired (it hung, or its process died) cannot mark the event done or
failed once another worker has claimed it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, Update, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.store import Store, schema
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


# Rows per multi-row INSERT: 7 values each stays under the 999 bound values SQLite allowed
# before 3.32 (still the system library on some long-term-support Linux releases).
_ROWS_PER_STATEMENT = 128


class Inserter:
    """``INSERT ... ON CONFLICT (provider, dedup_key) DO NOTHING``, telling each item whether
    it was new.

    This is the intake's hot path: every webhook request runs it under the GIL while the
    requests of its batch wait for the commit. So a batch is **one** multi-row statement
    (per 128 rows), not a statement per item. On SQLite it runs on the DBAPI cursor with
    SQLAlchemy's own bind processors for each column (what SQLAlchemy would send, at a
    fraction of the cost): the sqlite3 module lets go of the GIL at every statement step,
    and each time it does, the writer queues behind the server's other threads to get it
    back, with the whole batch waiting. PostgreSQL says which rows were new with
    ``RETURNING``.
    """

    def __init__(self, conn: Connection) -> None:
        dialect = conn.dialect
        self.postgresql = dialect.name == "postgresql"
        self.raw = dialect.name == "sqlite" and dialect.paramstyle == "qmark"
        if not (self.postgresql or self.raw):
            raise ValueError(f"webhook events are stored on sqlite or postgresql, not {dialect}")
        if self.raw:
            stmt = sqlite.insert(T).on_conflict_do_nothing(index_elements=["provider", "dedup_key"])
            compiled = stmt.compile(dialect=dialect, column_keys=list(_INSERTED))
            sql = str(compiled)
            order = compiled.positiontup or []
            assert sorted(order) == sorted(_INSERTED), order
            self.order = [(key, T.c[key].type.bind_processor(dialect)) for key in order]
            # "INSERT INTO t (...) VALUES (?, ...) ON CONFLICT ...": the row repeats
            self._head, _, rest = sql.partition(" VALUES ")
            self._one_row, conflict, tail = rest.partition(" ON CONFLICT")
            self._tail = conflict + tail
            assert self._one_row.startswith("(") and self._tail, sql
            self._many_sql: dict[int, str] = {}

    def insert_many(
        self,
        conn: Connection,
        requests: Sequence[tuple[str, Sequence[Item], Mapping[str, str], datetime]],
    ) -> list[list[bool]]:
        """Insert the items of several requests ``(provider, items, headers, received_at)``
        unless their ``(provider, dedup_key)`` is stored; per request, True where new.

        An item whose key an earlier item of the same call already took is a duplicate, as
        it would be one call later. Runs in the caller's transaction; on an autocommit
        SQLite connection each statement is its own (durable) transaction.
        """
        created = [[False] * len(items) for _, items, _, _ in requests]
        seen: set[tuple[str, str]] = set()
        rows: list[dict[str, Any]] = []
        owners: list[tuple[int, int]] = []
        for r, (provider, items, headers, received_at) in enumerate(requests):
            kept = dict(headers)
            for i, item in enumerate(items):
                key = (provider, item.dedup_key)
                if key not in seen:
                    seen.add(key)
                    rows.append(
                        {
                            "provider": provider,
                            "dedup_key": item.dedup_key,
                            "body": item.body,
                            "headers": kept,
                            "received_at": received_at,
                            "status": "pending",
                            "attempts": 0,
                        }
                    )
                    owners.append((r, i))
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            mine = owners[start : start + len(chunk)]
            if self.postgresql:
                flags = self._insert_postgresql(conn, chunk)
            else:
                flags = self._insert_sqlite(conn, chunk)
            for (r, i), flag in zip(mine, flags, strict=True):
                created[r][i] = flag
        return created

    def _insert_postgresql(self, conn: Connection, rows: list[dict[str, Any]]) -> list[bool]:
        stmt = (
            postgresql.insert(T)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["provider", "dedup_key"])
            .returning(T.c.provider, T.c.dedup_key)
        )
        new = {tuple(row) for row in conn.execute(stmt)}
        return [(row["provider"], row["dedup_key"]) in new for row in rows]

    def _insert_sqlite(self, conn: Connection, rows: list[dict[str, Any]]) -> list[bool]:
        """Per row, whether it was new."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(
                self._insert_sql(len(rows)),
                [proc(row[k]) if proc else row[k] for row in rows for k, proc in self.order],
            )
            inserted = cursor.rowcount
            if inserted == len(rows):  # all new: the usual case, one statement
                return [True] * len(rows)
            if inserted <= 0:
                return [False] * len(rows)
            # Some keys were there already. The rows this statement inserted took consecutive
            # rowids ending at lastrowid: SQLite gives each new row the largest rowid + 1, and
            # the statement holds the write lock throughout.
            last = cursor.lastrowid
            assert last is not None
            cursor.execute(
                "SELECT provider, dedup_key FROM webhook_events WHERE id > ? AND id <= ?",
                (last - inserted, last),
            )
            new = set(cursor.fetchall())
            return [(row["provider"], row["dedup_key"]) in new for row in rows]
        finally:
            cursor.close()

    def _insert_sql(self, rows: int) -> str:
        sql = self._many_sql.get(rows)
        if sql is None:
            sql = f"{self._head} VALUES {', '.join([self._one_row] * rows)}{self._tail}"
            self._many_sql[rows] = sql
        return sql


def insert_items(
    conn: Connection,
    provider: str,
    items: Sequence[Item],
    headers: Mapping[str, str],
    received_at: datetime,
) -> list[bool]:
    """Insert one request's items in the caller's transaction (tests, tools); True where new."""
    return Inserter(conn).insert_many(conn, [(provider, items, headers, received_at)])[0]


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
        rows = conn.execute(
            _claim_statement(store.dialect, candidates)
            .where(_due(now))
            .values(status="processing", attempts=T.c.attempts + 1, next_attempt_at=now + lease)
            .returning(*_COLUMNS)
        ).all()
    return sorted((_event(r) for r in rows), key=lambda e: e.id)


def _claim_statement(dialect: str, candidates: Select[Any]) -> Update:
    """``UPDATE`` of the rows ``candidates`` selects, and of no more.

    On PostgreSQL the candidates are a materialized CTE joined with ``UPDATE ... FROM``:
    as ``id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` the planner may run the
    locking subquery again for each row it scans, each run skipping the rows the last one
    locked, so one claim of ``limit=1`` took every due event. A materialized CTE is
    evaluated exactly once. SQLite evaluates an uncorrelated ``IN`` subquery once, under the
    statement's write lock.
    """
    if dialect != "postgresql":
        return update(T).where(T.c.id.in_(candidates.scalar_subquery()))
    chosen = (
        candidates.with_for_update(skip_locked=True).cte("claimable").prefix_with("MATERIALIZED")
    )
    return update(T).where(T.c.id == chosen.c.id)


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
