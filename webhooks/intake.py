"""Durable intake: a verified event is on disk before its 200 leaves.

The requests commit together (a group commit), with no writer thread between them and the
store. A request that finds nobody writing becomes the **leader**: it takes every event
queued so far (its own first), inserts them in **one** transaction, commits once and
releases each follower it wrote. Requests arriving meanwhile queue up as **followers** and
block; when the leader is done, it hands the lead to the oldest queued follower, which
writes the next batch in the same way. Under light load every request is its own leader
and nobody waits for another thread; under heavy load one commit serves everyone who
arrived during the previous one. (A writer thread did the same before, but handing every
request to it and back cost two thread switches under the GIL, which on a 2-core machine
cost more than the insert.)

On SQLite the intake's connection runs with ``synchronous=FULL``, so that commit is fsynced
(the store's default, NORMAL, survives a crash of the process but not of the machine: a 200
must survive both); one fsync then covers the whole batch, which is what keeps an fsync per
200 affordable. PostgreSQL commits durably by itself and gets the same batching.

A request whose items are already stored (a redelivery) changes nothing and is answered
200 all the same. When the store cannot take an event in time the request gets
:class:`IntakeUnavailable` (answered 503, so the platform delivers again later): a 200 is
never given for an event that is not committed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from connector.store import STORE_BUSY_TIMEOUT_MS, Store
from webhooks import events
from webhooks.providers.base import Item

log = logging.getLogger(__name__)


class IntakeUnavailable(RuntimeError):
    """The event could not be stored now; the message is safe to answer."""


@dataclass(frozen=True)
class Stored:
    created: int
    duplicates: int


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Job:
    provider: str
    items: Sequence[Item]
    headers: Mapping[str, str]
    received_at: datetime
    # Released when the job is committed (or failed), or when its thread is handed the lead.
    # A bare lock is the cheapest thing a thread can block on: an Event is a Condition, a
    # lock and Python code on both sides, paid on every request under the GIL.
    wake: threading.Lock = field(default_factory=_held_lock)
    created: list[bool] | None = None
    failed: bool = False
    lead: bool = False  # this job's thread now holds the write lock and must write
    abandoned: bool = False  # its thread gave up waiting (answered 503); never to lead

    @property
    def finished(self) -> bool:
        return self.failed or self.created is not None


class Intake:
    """The group commit of verified events (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        durable: bool = True,
        max_batch: int = 512,
        wait: float = 10.0,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.on_stored = on_stored  # e.g. wake the webhook workers
        self.durable = durable
        self.max_batch = max_batch
        self.wait = wait
        self._pending: deque[_Job] = deque()
        # Held by the leader for as long as it leads; passed, still held, to the next one.
        self._writing = threading.Lock()
        # Makes "queue my job, then try to lead" and "pass the lead on, or let go" atomic
        # with respect to each other, so that no job is ever queued with nobody to write it.
        self._handoff = threading.Lock()
        self._conn: Connection | None = None
        self._inserter: events.Inserter | None = None
        self._autocommit = store.dialect == "sqlite"
        self._started = False
        self._closed = False
        # how many commits served the requests, and how many events they stored (tests, logs)
        self.commits = 0
        self.stored = 0

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> Intake:
        self._started = True
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Store what is queued, then let go of the connection."""
        if self._closed:
            return
        self._closed = True
        if not self._writing.acquire(timeout=timeout):
            log.warning("the webhook intake was still writing after %.0f s; closing", timeout)
            return
        try:
            self._drain(None)
            self._disconnect()
        finally:
            self._pass_lead()  # a request that slipped in before the close is not stranded
        log.info(
            "webhook intake stopped: %d event(s) stored in %d commit(s)", self.stored, self.commits
        )

    # ----- the request side ----------------------------------------------------------------

    def store_items(
        self,
        provider: str,
        items: Sequence[Item],
        headers: Mapping[str, str],
        received_at: datetime | None = None,
    ) -> Stored:
        """Store ``items`` durably; returns how many were new. Raises IntakeUnavailable."""
        if not items:
            return Stored(0, 0)
        if self._closed or not self._started:
            raise IntakeUnavailable("the server is shutting down; deliver again")
        job = _Job(provider, items, headers, received_at or datetime.now(UTC))
        with self._handoff:
            self._pending.append(job)
            leading = self._writing.acquire(blocking=False)
        if not leading:
            if not job.wake.acquire(timeout=self.wait) and not self._give_up(job):
                raise IntakeUnavailable(
                    "the store did not confirm the write in time; deliver again"
                )
            leading = job.lead
        if leading:
            try:
                self._drain(job)
            finally:
                self._pass_lead()
        if job.failed or job.created is None:
            raise IntakeUnavailable("the store is not available; deliver again")
        created = sum(job.created)
        return Stored(created, len(job.created) - created)

    def _give_up(self, job: _Job) -> bool:
        """After the wait ran out: False when the job is abandoned, True when it was
        finished or handed the lead just now (its wake lock was released meanwhile)."""
        with self._handoff:
            if job.wake.acquire(blocking=False):
                return True
            job.abandoned = True
            return False

    def _drain(self, job: _Job | None) -> None:
        """Write queued jobs, a batch at a time, until ``job`` is written (or, with None,
        until the queue is empty). The caller holds the write lock."""
        while self._pending and (job is None or not job.finished):
            batch = []
            while self._pending and len(batch) < self.max_batch:
                batch.append(self._pending.popleft())
            self._write(batch)

    def _pass_lead(self) -> None:
        """Hand the write lock to the oldest queued job's thread, or let go of it."""
        with self._handoff:
            for waiting in self._pending:
                if not waiting.abandoned:
                    waiting.lead = True
                    waiting.wake.release()
                    return
            # Only abandoned jobs (or none): they stay queued and the next leader writes
            # them before its own (or close() does). Writing them here, under the hand-off
            # lock, would hold every new request outside the queue for as long as a stalled
            # store takes: unbounded, where each request's wait must stay bounded.
            self._writing.release()

    # ----- the writer ----------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._disconnect()
            conn = self.store.engine.connect()
            self._bound_waits(conn)
            if self.store.dialect == "sqlite" and self.durable:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
            if self._autocommit:
                # Each multi-row INSERT is its own transaction: no BEGIN and COMMIT around
                # it, two fewer statements (and GIL hand-offs) per batch.
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    def _bound_waits(self, conn: Connection) -> None:
        """A locked store makes the INSERT wait: at most ``wait``, so that the request is
        answered 503 in time rather than 200 whenever the lock goes."""
        millis = max(1, int(self.wait * 1000))
        if self.store.dialect == "sqlite":
            conn.exec_driver_sql(f"PRAGMA busy_timeout={millis}")
        else:
            conn.exec_driver_sql(f"SET lock_timeout = {millis}")
            conn.exec_driver_sql(f"SET statement_timeout = {millis}")

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.store.dialect == "sqlite" and not conn.invalidated:
                # the pooled connection goes back with the store's own setting
                conn.rollback()
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                conn.exec_driver_sql(f"PRAGMA busy_timeout={STORE_BUSY_TIMEOUT_MS}")
                conn.commit()
            elif not conn.invalidated:
                conn.rollback()
                conn.exec_driver_sql("RESET lock_timeout")
                conn.exec_driver_sql("RESET statement_timeout")
                conn.commit()
            conn.close()
        except Exception:  # a broken connection is dropped either way
            log.debug("closing the intake connection failed", exc_info=True)

    def _write(self, batch: list[_Job]) -> None:
        try:
            self._commit(batch)
        except (OperationalError, sqlite3.OperationalError) as exc:
            # locked or timed out (the store is busy or gone; on SQLite the DBAPI's own
            # error, the inserter runs on its cursor): one by one would wait as long again
            # per job; every sender gets 503 and delivers again
            log.error(
                "cannot store %d webhook request(s): the store did not answer in %.0f s (%s)",
                len(batch),
                self.wait,
                " ".join(str(getattr(exc, "orig", exc)).split())[:200],
            )
            self._disconnect()
            for job in batch:
                job.failed = True
        except Exception:
            log.warning("storing %d webhook request(s) together failed; one by one", len(batch))
            self._disconnect()
            for job in batch:
                try:
                    self._commit([job])
                except Exception as exc:
                    # the sender gets a 503 and delivers again; nothing is half-stored
                    log.error(
                        "cannot store a %s webhook event: %s", job.provider, type(exc).__name__
                    )
                    self._disconnect()
                    job.failed = True
        finally:
            for job in batch:
                if not job.lead:  # a leader's thread is awake already
                    job.wake.release()

    def _commit(self, batch: list[_Job]) -> None:
        conn = self._connection()
        if self._inserter is None:
            self._inserter = events.Inserter(conn)
        requests = [(job.provider, job.items, job.headers, job.received_at) for job in batch]
        if self._autocommit:
            results = self._inserter.insert_many(conn, requests)
        else:
            with conn.begin():
                results = self._inserter.insert_many(conn, requests)
        self.commits += 1
        self.stored += sum(map(sum, results))
        for job, created in zip(batch, results, strict=True):
            job.created = created
        if self.on_stored is not None and any(any(c) for c in results):
            self.on_stored()
