"""Pull one source's streams into the store, batch by batch, cursor with the records.

Each batch's records, its upstream deletions and the cursor it makes safe are committed in
one transaction, so killing the process at any point loses at most the batch in flight and
never advances a cursor past records that did not land. A stream that fails is recorded and
the next stream goes on; the failure is reported in the counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.base import Source, Stream
from adapters.http import RateLimited
from connector import failpoints
from connector.store import Store, UpsertCounts

log = logging.getLogger(__name__)

ProgressHook = Callable[[str, int, int], None]  # (stream, records so far, pages so far)


class SyncInterrupted(RuntimeError):
    """A stop was requested (SIGTERM); raised only between committed batches."""


@dataclass
class StreamResult:
    source: str
    stream: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    pages: int = 0
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.source}.{self.stream}"

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            # a pull fails per read, not per record: 1 when the stream stopped on an error
            # (the records of its committed pages landed; the rest is read again next run)
            "failed": 0 if self.error is None else 1,
            "pages": self.pages,
            "error": self.error,
        }


@dataclass
class SourceResult:
    source: str
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def failed(self) -> list[StreamResult]:
        return [s for s in self.streams if s.error is not None]


def sync_stream(
    store: Store,
    source_name: str,
    stream: Stream,
    *,
    full: bool = False,
    now: datetime | None = None,
    progress: ProgressHook | None = None,
    stop: threading.Event | None = None,
    result: StreamResult | None = None,
) -> StreamResult:
    """Read a stream into the store; raises whatever the stream raises (after committing
    every batch before the failure, whose counts are in ``result`` when one is passed)."""
    now = now or datetime.now(UTC)
    result = result if result is not None else StreamResult(source_name, stream.name)
    for partition in stream.partitions() or [""]:
        cursor = None if full else store.get_cursor(source_name, stream.name, partition)
        for batch in stream.read(cursor, full=full, now=now, partition=partition):
            with store.begin() as conn:
                counts = UpsertCounts()
                if batch.records:
                    counts = store.upsert(batch.records, connection=conn, now=now).total
                if batch.deleted:
                    deleted_type = batch.deleted_type or stream.record_type
                    result.deleted += store.mark_deleted(
                        deleted_type, source_name, list(batch.deleted), at=now, connection=conn
                    )
                failpoints.hit("before-cursor")
                if batch.cursor is not None:
                    store.set_cursor(
                        source_name,
                        stream.name,
                        batch.cursor,
                        batch.partition or partition,
                        connection=conn,
                    )
            failpoints.hit("batch-committed")
            result.read += counts.read
            result.inserted += counts.inserted
            result.updated += counts.updated
            result.pages += batch.pages
            if progress is not None:
                progress(result.key, result.read, result.pages)
            if stop is not None and stop.is_set():
                raise SyncInterrupted(f"{result.key}: stopped after a committed batch")
    log.info(
        "%s: read %d, inserted %d, updated %d, deleted %d in %d pages",
        result.key,
        result.read,
        result.inserted,
        result.updated,
        result.deleted,
        result.pages,
    )
    return result


def sync_source(
    store: Store,
    source: Source,
    *,
    full: bool = False,
    now: datetime | None = None,
    progress: ProgressHook | None = None,
    stop: threading.Event | None = None,
) -> SourceResult:
    """Sync every stream of ``source`` in order; a failing stream does not stop the others
    (its error is in the result)."""
    now = now or datetime.now(UTC)
    outcome = SourceResult(source.name)
    for stream in source.streams():
        # the result object outlives a failure, so batches committed before it still count
        result = StreamResult(source.name, stream.name)
        outcome.streams.append(result)
        try:
            sync_stream(
                store,
                source.name,
                stream,
                full=full,
                now=now,
                progress=progress,
                stop=stop,
                result=result,
            )
        except SyncInterrupted:
            raise
        except RateLimited as exc:
            # a quota is gone: every further call would fail too; stop politely, the
            # committed cursors make the next run resume here
            log.error("%s.%s stopped: %s", source.name, stream.name, exc)
            result.error = str(exc)
            break
        except Exception as exc:  # one stream's failure must not lose the others' records
            log.error("%s.%s failed: %s", source.name, stream.name, exc)
            result.error = str(exc)
    return outcome
