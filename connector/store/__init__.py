"""The normalized store: SQLite by default, PostgreSQL when a team outgrows it.

Everything an adapter yields goes through :meth:`Store.upsert`, keyed by
``(source, external_id)``. An upsert only rewrites a row whose values differ, so re-running a
sync changes nothing and ``synced_at`` tells when a row really last changed. The schema is
owned by Alembic migrations; :meth:`Store.open` creates or upgrades it, so no command ever
runs against a half-made store. Only the commands that fill a store create one
(``create=True``); the others refuse a SQLite file that is not there, so a mistyped
``database_url`` is an error rather than an empty report from a new, empty store.

The package holds what touches the database: the tables (:mod:`.schema`) and their column
types (:mod:`.dbtypes`), the bulk paths (:mod:`.bulk`), the loader of the core's inputs
(:mod:`.dataset`) and the CRM-neutral write-back ledger (:mod:`.writeback_ledger`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError

from connector import model
from connector.gc_pause import paused_gc
from connector.store import bulk, schema

log = logging.getLogger(__name__)

R = TypeVar("R", bound=model.Record)


# How long a SQLite statement waits for another writer before "database is locked".
STORE_BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to do."""


@dataclass(slots=True)
class UpsertCounts:
    """What an upsert did, per entity: ``read`` records seen, of which how many were new,
    changed, or already identical in the store."""

    read: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.read - self.inserted - self.updated

    def __iadd__(self, other: UpsertCounts) -> UpsertCounts:
        self.read += other.read
        self.inserted += other.inserted
        self.updated += other.updated
        return self


@dataclass(slots=True)
class UpsertReport:
    """Counts per entity name (``campaign``, ``person``...)."""

    by_entity: dict[str, UpsertCounts] = field(default_factory=dict)

    def counts(self, entity: str) -> UpsertCounts:
        return self.by_entity.setdefault(entity, UpsertCounts())

    @property
    def total(self) -> UpsertCounts:
        total = UpsertCounts()
        for counts in self.by_entity.values():
            total += counts
        return total


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the dashboard and webhook worker read while a sync writes; NORMAL sync is
    # durable across application crashes (WAL) and several times faster than FULL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={STORE_BUSY_TIMEOUT_MS}")
    # Bulk upserts touch several B-tree indexes of million-row tables; the default 2 MiB
    # page cache thrashes on them. 64 MiB keeps the hot index pages in memory.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class Store:
    """A connection pool to the store plus the operations the connector needs."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            # ValueError: a port that is not a number ("host:abc", an unclosed "[::1")
            raise StoreError(
                f"connector.database_url {_describe_url(url)} is not a database URL "
                f"({' '.join(str(exc).split())}); use "
                "sqlite:///path/to/crm-roi.db or postgresql+psycopg://user@host/db"
            ) from exc
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(
                f"connector.database_url uses {self.dialect!r}; the store runs on sqlite or "
                "postgresql (postgresql+psycopg://...)"
            )
        self.path = (
            Path(parsed.database).expanduser()
            if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:")
            else None
        )
        # Parameters are lead data and secrets: never in SQLAlchemy's log lines or messages.
        self.engine: Engine = create_engine(url, echo=echo, future=True, hide_parameters=True)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    # ----- lifecycle -------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, create: bool = True) -> Store:
        """Open the store at ``url``, upgrading its schema first. A SQLite file that does not
        exist is created (with its folder) only when ``create`` says so."""
        store = cls(url)
        if store.path is not None:
            store._prepare_file(create)
        if upgrade:
            store.upgrade()
        return store

    @classmethod
    @contextmanager
    def if_ready(cls, url: str) -> Iterator[Store | None]:
        """For ``doctor``'s checks: the store at ``url`` when it exists and is at the newest
        schema, else None (the core check says why). Never creates a store."""
        try:
            store = cls(url)
        except Exception:  # an unusable URL: the core check reports it
            yield None
            return
        try:
            try:
                ready = store.exists() and store.current_revision() == store.head_revision()
            except Exception:  # unreadable: the core check reports it
                ready = False
            yield store if ready else None
        finally:
            store.close()

    def exists(self) -> bool:
        """Whether there is a store to open (a PostgreSQL database always counts: the server
        says otherwise when connected)."""
        return self.path is None or self.path.is_file()

    def _prepare_file(self, create: bool) -> None:
        assert self.path is not None
        if self.path.is_dir():
            raise StoreError(
                f"connector.database_url names the folder {self.path}; give a file in it, "
                f"e.g. sqlite:///{self.path / 'crm-roi.db'}"
            )
        if self.path.exists():
            return
        if not create:
            raise StoreError(
                f"there is no store at {self.path} (connector.database_url); "
                "`crm-roi init` or `crm-roi sync` creates it, or fix the path"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"cannot create the store {self.path} (connector.database_url): a part of "
                "its folder path is a file, not a folder"
            ) from None
        except PermissionError:
            raise StoreError(
                f"cannot create the folder {self.path.parent} for the store "
                "(connector.database_url): permission denied"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _alembic_config(self, connection: Connection) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("connector") / "migrations"))
        cfg.attributes["connection"] = connection
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (default: the newest); a no-op when it is there."""
        try:
            with self.engine.begin() as conn:
                command.upgrade(self._alembic_config(conn), revision)
        except DatabaseError as exc:
            raise StoreError(
                f"cannot open the store at {_describe_url(self.url)}: "
                f"{' '.join(str(exc.orig).split())}. {self._check_hint()}"
            ) from None

    def _check_hint(self) -> str:
        if self.dialect == "sqlite":
            return "Check that connector.database_url names a store the connector created."
        return "Check connector.database_url and that the database server is running."

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    # ----- upserts ---------------------------------------------------------------------

    def upsert(
        self,
        records: Iterable[model.Record],
        *,
        batch_size: int = 5000,
        now: datetime | None = None,
        connection: Connection | None = None,
    ) -> UpsertReport:
        """Insert new records and update changed ones, keyed by ``(source, external_id)``.

        Records may be of mixed types and arrive as a stream; they are written in batches of
        ``batch_size``, all in one transaction (or in ``connection``'s, when given), so a
        failure leaves the store as it was. A record identical to the stored row is not
        written at all. Within one call the last record for a key wins.
        """
        now = now or datetime.now(UTC)
        report = UpsertReport()
        # one parameter tuple per record, none in a reference cycle: see connector.gc_pause
        with paused_gc():
            if connection is not None:
                self._upsert_into(connection, records, batch_size, now, report)
            else:
                with self.engine.begin() as conn:
                    self._upsert_into(conn, records, batch_size, now, report)
        return report

    def _upsert_into(
        self,
        conn: Connection,
        records: Iterable[model.Record],
        batch_size: int,
        now: datetime,
        report: UpsertReport,
    ) -> None:
        buffers: dict[type[model.Record], dict[tuple[str, str], tuple[Any, ...]]] = {}
        max_ids: dict[type[model.Record], int] = {}
        affected: dict[type[model.Record], int] = {}
        plans: dict[type[model.Record], bulk.BulkPlan] = {}
        synced: dict[type[model.Record], Any] = {}

        def flush(record_type: type[model.Record]) -> None:
            buffer = buffers.get(record_type, {})
            # In key order, B-tree inserts into the unique index land next to each other
            # instead of all over it (records of most sources arrive in no key order):
            # several times faster on large stores.
            rows = [buffer[key] for key in sorted(buffer)]
            if not rows:
                return
            plan = plans[record_type]
            if self.dialect == "postgresql":
                inserted, updated = bulk.write_postgres(conn, plan, rows)
                counts = report.counts(record_type.entity)
                counts.inserted += inserted
                counts.updated += updated
                return
            if record_type not in max_ids:
                # SQLite gives new rows rowids above the current maximum and keeps the rowid
                # on update, so rows above the old maximum are exactly the inserted ones.
                max_ids[record_type] = conn.execute(select(func.max(plan.table.c.id))).scalar() or 0
                affected[record_type] = 0
            affected[record_type] += bulk.write_sqlite(conn, plan, rows)

        reads: dict[type[model.Record], int] = {}
        for record in records:
            record_type = type(record)
            plan = plans.get(record_type)
            if plan is None:
                if record_type not in schema.ENTITY_TABLES:
                    raise TypeError(f"not a normalized record: {record_type.__name__}")
                plan = plans[record_type] = bulk.plan_for(record_type, self.dialect)
                synced[record_type] = plan.synced_value(now)
                buffers[record_type] = {}
                reads[record_type] = 0
            buffer = buffers[record_type]
            # One key once per statement: PostgreSQL refuses "ON CONFLICT DO UPDATE command
            # cannot affect row a second time", and the last version is the one to keep.
            try:
                buffer[(record.source, record.external_id)] = plan.row(record, synced[record_type])
            except (TypeError, ValueError) as exc:
                raise type(exc)(
                    f"{record_type.entity} {record.source}:{record.external_id}: {exc}"
                ) from None
            reads[record_type] += 1
            if len(buffer) >= batch_size:
                flush(record_type)
                buffers[record_type] = {}
        for record_type, count in reads.items():
            report.counts(record_type.entity).read += count
        for record_type in list(buffers):
            flush(record_type)

        for record_type, max_before in max_ids.items():
            table = plans[record_type].table
            inserted = conn.execute(
                select(func.count()).select_from(table).where(table.c.id > max_before)
            ).scalar_one()
            counts = report.counts(record_type.entity)
            counts.inserted = inserted
            counts.updated = affected[record_type] - inserted

    def mark_deleted(
        self,
        record_type: type[model.Record],
        source: str,
        external_ids: Sequence[str],
        *,
        at: datetime | None = None,
        connection: Connection | None = None,
    ) -> int:
        """Record that these rows were deleted upstream; returns how many were newly marked."""
        at = at or datetime.now(UTC)
        table = schema.table_for(record_type)
        total = 0

        def run(conn: Connection) -> int:
            n = 0
            for start in range(0, len(external_ids), 500):
                chunk = list(external_ids[start : start + 500])
                result = conn.execute(
                    update(table)
                    .where(table.c.source == source)
                    .where(table.c.external_id.in_(chunk))
                    .where(table.c.deleted_at.is_(None))
                    .values(deleted_at=at, synced_at=at)
                )
                n += result.rowcount
            return n

        if connection is not None:
            total = run(connection)
        else:
            with self.engine.begin() as conn:
                total = run(conn)
        return total

    # ----- reads -----------------------------------------------------------------------

    def iter_records(
        self,
        record_type: type[R],
        *,
        source: str | None = None,
        include_deleted: bool = False,
    ) -> Iterator[R]:
        """Stream records of one type back as model objects."""
        table = schema.table_for(record_type)
        names = record_type.field_names()
        stmt = select(*(table.c[n] for n in names)).order_by(table.c.id)
        if source is not None:
            stmt = stmt.where(table.c.source == source)
        if not include_deleted:
            stmt = stmt.where(table.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=10_000).execute(stmt)
            for row in result:
                yield record_type(**dict(zip(names, row, strict=True)))

    def get(self, record_type: type[R], source: str, external_id: str) -> R | None:
        table = schema.table_for(record_type)
        names = record_type.field_names()
        stmt = select(*(table.c[n] for n in names)).where(
            table.c.source == source, table.c.external_id == external_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else record_type(**dict(zip(names, row, strict=True)))

    def count(
        self,
        record_type: type[model.Record],
        *,
        source: str | None = None,
        include_deleted: bool = False,
    ) -> int:
        table = schema.table_for(record_type)
        stmt = select(func.count()).select_from(table)
        if source is not None:
            stmt = stmt.where(table.c.source == source)
        if not include_deleted:
            stmt = stmt.where(table.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar_one()

    # ----- sync cursors ----------------------------------------------------------------

    def get_cursor(self, source: str, stream: str, partition: str = "") -> str | None:
        t = schema.sync_cursors
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.c.value).where(
                    t.c.source == source, t.c.stream == stream, t.c.partition == partition
                )
            ).scalar()

    def set_cursor(
        self,
        source: str,
        stream: str,
        value: str | None,
        partition: str = "",
        *,
        connection: Connection | None = None,
    ) -> None:
        """Save a stream's cursor; pass the connection that committed its records so both
        land in one transaction (a crash can then never advance a cursor past lost rows)."""
        t = schema.sync_cursors
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        now = datetime.now(UTC)
        stmt = insert(t).values(
            source=source, stream=stream, partition=partition, value=value, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["source", "stream", "partition"],
            set_={"value": value, "updated_at": now},
        )
        if connection is not None:
            connection.execute(stmt)
        else:
            with self.engine.begin() as conn:
                conn.execute(stmt)

    # ----- run history -----------------------------------------------------------------

    def start_run(self, command_name: str) -> int:
        """Record a new run. The caller holds the store's sync lock, so a run still marked
        ``running`` is one whose process died (kill -9, power loss): it becomes
        ``interrupted``, with a line saying so."""
        t = schema.sync_runs
        with self.engine.begin() as conn:
            orphans = conn.execute(
                select(t.c.id, t.c.host, t.c.pid).where(t.c.status == "running")
            ).all()
            for orphan in orphans:
                conn.execute(
                    update(t)
                    .where(t.c.id == orphan.id)
                    .values(
                        status="interrupted",
                        errors=[
                            f"interrupted: {orphan.host} pid {orphan.pid} stopped without "
                            "finishing (killed, or the machine went down); what it wrote "
                            "stands, the next run goes on from the saved cursors"
                        ],
                    )
                )
                log.warning("run %s was interrupted (its process died); marked so", orphan.id)
            result = conn.execute(
                t.insert().values(
                    command=command_name,
                    started_at=datetime.now(UTC),
                    status="running",
                    counts={},
                    errors=[],
                    api_calls=0,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )
            return int(result.inserted_primary_key[0])

    def finish_run(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any],
        errors: list[str],
        api_calls: int = 0,
    ) -> None:
        t = schema.sync_runs
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == run_id)
                .values(
                    finished_at=datetime.now(UTC),
                    status=status,
                    counts=counts,
                    errors=errors,
                    api_calls=api_calls,
                )
            )

    def describe(self) -> str:
        return _describe_url(self.url)
