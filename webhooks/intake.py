"""Durable intake: a verified event is on disk before its 200 leaves.

Each request hands its items to one writer thread and waits. The writer takes everything
queued, inserts it in **one** transaction and commits once, then wakes every waiting
request: a group commit. On SQLite the writer's connection runs with
``synchronous=FULL``, so that commit is fsynced (the store's default, NORMAL, survives a
crash of the process but not of the machine: a 200 must survive both); one fsync then
covers all the requests that arrived while the previous one ran, which is what keeps a
fsync per 200 affordable. PostgreSQL commits durably by itself and gets the same batching.

A request whose items are already stored (a redelivery) changes nothing and is answered
200 all the same. When the store cannot take an event in time the request gets
:class:`IntakeUnavailable` (answered 503, so the platform delivers again later): a 200 is
never given for an event that is not committed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from connector.store import Store
from webhooks import events
from webhooks.providers.base import Item

log = logging.getLogger(__name__)


class IntakeUnavailable(RuntimeError):
    """The event could not be stored now; the message is safe to answer."""


@dataclass(frozen=True)
class Stored:
    created: int
    duplicates: int


@dataclass
class _Job:
    provider: str
    items: Sequence[Item]
    headers: Mapping[str, str]
    received_at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    created: list[bool] | None = None
    failed: bool = False


_STOP = object()


class Intake:
    """The group-committing writer of verified events (see the module docstring)."""

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
        self._queue: queue.Queue[object] = queue.Queue()
        self._conn: Connection | None = None
        self._inserter: events.Inserter | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.commits = 0  # for tests and the benchmark: how many commits served the requests

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> Intake:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhook-intake", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Store what is queued, then stop."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self._disconnect()

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
        if self._closed.is_set() or self._thread is None:
            raise IntakeUnavailable("the server is shutting down; deliver again")
        job = _Job(provider, items, headers, received_at or datetime.now(UTC))
        self._queue.put(job)
        if not job.done.wait(self.wait):
            raise IntakeUnavailable("the store did not confirm the write in time; deliver again")
        if job.failed or job.created is None:
            raise IntakeUnavailable("the store is not available; deliver again")
        created = sum(job.created)
        return Stored(created, len(job.created) - created)

    # ----- the writer ----------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._disconnect()
            conn = self.store.engine.connect()
            if self.store.dialect == "sqlite" and self.durable:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
            self._conn = conn
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.store.dialect == "sqlite" and not conn.invalidated:
                # the pooled connection goes back with the store's own setting
                conn.rollback()
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                conn.commit()
            conn.close()
        except Exception:  # a broken connection is dropped either way
            log.debug("closing the intake connection failed", exc_info=True)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
            self._write([job for job in batch if isinstance(job, _Job)])

    def _write(self, batch: list[_Job]) -> None:
        try:
            self._commit(batch)
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
                job.done.set()

    def _commit(self, batch: list[_Job]) -> None:
        conn = self._connection()
        results: list[list[bool]] = []
        if self._inserter is None:
            self._inserter = events.Inserter(conn)
        with conn.begin():
            for job in batch:
                results.append(
                    self._inserter.insert(
                        conn, job.provider, job.items, job.headers, job.received_at
                    )
                )
        self.commits += 1
        for job, created in zip(batch, results, strict=True):
            job.created = created
        if self.on_stored is not None and any(any(c) for c in results):
            self.on_stored()
