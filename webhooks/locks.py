"""One CRM write per person at a time.

Two events of the same person (the same e-mail on a Meta and a Google form, a double
submit) processed at the same moment would both find no lead in the CRM and both create
one. The CRM writers are idempotent for a redelivery, not for two concurrent first
deliveries, so processing holds a lock per normalized e-mail around the CRM write: a
keyed lock among the threads of one process, plus a PostgreSQL advisory lock among
processes sharing a PostgreSQL store. (A SQLite store lives on one machine, served by one
``crm-roi serve``; a concurrent ``crm-roi webhooks process`` there is the case left open.)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from connector.model import normalize_email
from connector.store import Store


class PersonLocks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def _local(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    @contextmanager
    def hold(self, email: str) -> Iterator[None]:
        key = normalize_email(email) or ""
        with self._local(key):
            if self.store.dialect != "postgresql":
                yield
                return
            number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            with self.store.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": number})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": number})
