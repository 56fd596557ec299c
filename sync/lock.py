"""One sync at a time per store, across processes and machines.

SQLite: an exclusive ``flock`` on ``<database>.sync.lock`` next to the database file (the
lock dies with the process, so a killed sync never leaves a stale lock), holding a line that
says who has it. PostgreSQL: a session-level advisory lock on a dedicated connection whose
``application_name`` names the holder, so every ``serve`` process on one store can ask and
only the holder syncs; it too is released when the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from connector.store import Store

log = logging.getLogger(__name__)


class LockHeld(RuntimeError):
    """Another sync holds the store's lock; the message names it."""


def holder_description(command: str) -> str:
    return (
        f"{command} on {socket.gethostname()} pid {os.getpid()} since "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )


def _advisory_key(url: str) -> int:
    # a stable 63-bit key per database, so unrelated stores on one server never collide
    digest = hashlib.sha256(f"crm-roi-sync:{url}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class SyncLock:
    """``with SyncLock(store, "sync"):`` — raises :class:`LockHeld` when taken (or waits up to
    ``wait`` seconds; ``wait=None`` waits forever)."""

    def __init__(
        self, store: Store, command: str = "sync", *, wait: float | None = 0.0, poll: float = 0.5
    ) -> None:
        self.store = store
        self.command = command
        self.wait = wait
        self.poll = poll
        self._file: Any = None
        self._conn: Any = None

    # ----- SQLite ----------------------------------------------------------------------

    def _lock_path(self) -> Path:
        database = make_url(self.store.url).database or "crm-roi.db"
        if database in ("", ":memory:"):
            return Path(f"/tmp/crm-roi-memory-{os.getpid()}.sync.lock")
        return Path(f"{Path(database).expanduser()}.sync.lock")

    def _acquire_file(self) -> None:
        path = self._lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    handle.close()
                    raise LockHeld(
                        f"another sync is running on this store: {holder} "
                        "(wait for it, or use --wait)"
                    ) from None
                time.sleep(self.poll)
        handle.seek(0)
        handle.truncate()
        handle.write(holder_description(self.command) + "\n")
        handle.flush()
        self._file = handle

    # ----- PostgreSQL -------------------------------------------------------------------

    def _acquire_advisory(self) -> None:
        key = _advisory_key(self.store.url)
        conn = self.store.engine.connect()
        try:
            name = f"crm-roi {self.command} {socket.gethostname()}:{os.getpid()}"[:63]
            conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": name})
            conn.commit()
            deadline = None if self.wait is None else time.monotonic() + self.wait
            while True:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                conn.commit()
                if got:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    holder = conn.execute(
                        text(
                            "SELECT a.application_name, a.client_addr, a.backend_start "
                            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                            "WHERE l.locktype = 'advisory' AND l.granted AND "
                            "((l.classid::bigint << 32) | l.objid::bigint) = :k"
                        ),
                        {"k": key},
                    ).first()
                    conn.commit()
                    who = "another process"
                    if holder is not None:
                        who = f"{holder[0] or 'a client'}"
                        if holder[1] is not None:
                            who += f" from {holder[1]}"
                        who += f" since {holder[2]:%Y-%m-%d %H:%M:%S %Z}"
                    raise LockHeld(
                        f"another sync is running on this store: {who} (wait for it, or use --wait)"
                    )
                time.sleep(self.poll)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # ----- context manager --------------------------------------------------------------

    def acquire(self) -> SyncLock:
        if self.store.dialect == "postgresql":
            self._acquire_advisory()
        else:
            self._acquire_file()
        log.debug("sync lock taken by %s", holder_description(self.command))
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SyncLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
