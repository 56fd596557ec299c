"""The Salesforce streams: incremental SOQL by ``SystemModstamp``, deletions from ``queryAll``.

Every incremental stream reads ``WHERE SystemModstamp >= cursor ORDER BY SystemModstamp, Id``
through ``queryAll``:

- the lower bound is **closed** (``>=``): rows sharing the cursor's timestamp are read again
  rather than lost (an open bound skips rows stamped in the same millisecond as the last one
  read); re-read rows are deduplicated by ``Id`` within the run and are no-op upserts across
  runs;
- rows come sorted by the cursor, so each page's batch carries the newest stamp it holds as
  its cursor, **capped at the run's start** (a clock running ahead must not make the next run
  skip rows); the runner saves it only after the page's records are committed, so an
  interrupted run resumes at the last committed page;
- ``queryAll`` returns rows in the Recycle Bin and rows merged away (``IsDeleted`` true), and
  those become deletions in the store, never a silent gap.

Hard deletes never reach the Recycle Bin (a removed ``CampaignMember``), the Recycle Bin is
emptied after 15 days, and a rate deleted by an admin just disappears: so on ``--full`` every
stream compares the ids it read with the ids the store holds and deletes the rest (at no extra
call), and ``DatedConversionRate``, read in full every run, does so on every run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from simple_salesforce.format import format_soql

from adapters.base import Batch
from adapters.http import ClientError
from adapters.salesforce import records
from adapters.salesforce.client import (
    SalesforceClient,
    error_code,
    parse_datetime,
    soql_datetime,
)
from adapters.salesforce.org import Org, OrgProfile
from connector import model

log = logging.getLogger(__name__)

CURSOR = "SystemModstamp"
IN_CHUNK = 100  # ids per IN (...) list: keeps the query URL far below Salesforce's limit

Convert = Callable[[dict[str, Any], OrgProfile], model.Record | None]
KnownIds = Callable[[], set[str]]


def cursor_value(newest: datetime | None, now: datetime) -> str | None:
    """The cursor to save after a batch: its newest stamp, never later than the run start."""
    if newest is None:
        return None
    return soql_datetime(min(newest, now))


class SoqlStream:
    """One sObject read incrementally (see the module docstring)."""

    cursor_field: str | None = CURSOR

    def __init__(
        self,
        *,
        name: str,
        sobject: str,
        record_type: type[model.Record],
        fields: Sequence[str],
        convert: Convert,
        client: SalesforceClient,
        org: Org,
        quiet: Sequence[str] = ("CurrencyIsoCode",),
        known_ids: KnownIds | None = None,
    ) -> None:
        self.name = name
        self.sobject = sobject
        self.record_type = record_type
        self.fields = ["Id", CURSOR, "IsDeleted", *[f for f in fields if f not in (CURSOR,)]]
        self.convert = convert
        self.client = client
        self.org = org
        self.quiet = quiet
        self.known_ids = known_ids

    def partitions(self) -> Sequence[str]:
        return [""]

    def select_list(self) -> list[str]:
        return self.org.select(self.sobject, self.fields, quiet=(*self.quiet, "IsDeleted"))

    def soql(self, cursor: str | None) -> str:
        query = f"SELECT {', '.join(self.select_list())} FROM {self.sobject}"
        if cursor:
            since = parse_datetime(cursor)
            query += format_soql(f" WHERE {CURSOR} >= {{}}", since)
        return query + f" ORDER BY {CURSOR} ASC, Id ASC"

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        profile = self.org.profile()
        soql = self.soql(None if full else cursor)
        deletable = "IsDeleted" in self.select_list()
        seen: set[str] = set()
        live: set[str] = set()
        for page in self.client.query_pages(soql, include_deleted=deletable):
            found: list[model.Record] = []
            deleted: list[str] = []
            newest: datetime | None = None
            for row in page.get("records", []):
                rid = row["Id"]
                if rid in seen:
                    continue  # the same row twice in one read: keep the first
                seen.add(rid)
                stamp = parse_datetime(row.get(CURSOR))
                if stamp is not None and (newest is None or stamp > newest):
                    newest = stamp
                if row.get("IsDeleted"):
                    deleted.append(rid)
                    continue
                record = self.convert(row, profile)
                if record is None:
                    deleted.append(rid)  # no longer a usable record (a member without person)
                    continue
                live.add(rid)
                found.append(record)
            yield Batch(
                records=found,
                cursor=cursor_value(newest, now),
                deleted=deleted,
                deleted_type=self.record_type,
            )
        if full and self.known_ids is not None:
            gone = sorted(self.known_ids() - live)
            if gone:
                log.info("Salesforce %s: %d rows deleted upstream for good", self.name, len(gone))
                yield Batch(deleted=gone, deleted_type=self.record_type)

    def fetch_where(self, field: str, values: Sequence[str]) -> list[model.Record]:
        """Live rows whose ``field`` is in ``values`` (escaped), in chunks."""
        profile = self.org.profile()
        select = ", ".join(f for f in self.select_list() if f != "IsDeleted")
        out: list[model.Record] = []
        for start in range(0, len(values), IN_CHUNK):
            chunk = list(values[start : start + IN_CHUNK])
            soql = format_soql(f"SELECT {select} FROM {self.sobject} WHERE {field} IN {{}}", chunk)
            for row in self.client.query(soql):
                record = self.convert(row, profile)
                if record is not None:
                    out.append(record)
        return out


class OwnerStream:
    """Users changed since the cursor, and the campaigns they own read again.

    A campaign carries its owner's name (``Owner.Name``), but renaming a user does not touch
    the campaign's ``SystemModstamp``, so the campaign stream alone would keep the old name.
    On a first or full run the campaign stream reads every campaign anyway: only the cursor is
    set then.
    """

    name = "User"
    record_type: type[model.Record] = model.Campaign
    cursor_field: str | None = CURSOR

    def __init__(self, *, client: SalesforceClient, campaigns: SoqlStream) -> None:
        self.client = client
        self.campaigns = campaigns

    def partitions(self) -> Sequence[str]:
        return [""]

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        first = full or not cursor
        soql = f"SELECT Id, {CURSOR} FROM User"
        if not first:
            soql += format_soql(f" WHERE {CURSOR} >= {{}}", parse_datetime(cursor))
        soql += f" ORDER BY {CURSOR} ASC, Id ASC"
        for page in self.client.query_pages(soql):
            rows = page.get("records", [])
            stamps = [s for s in (parse_datetime(r.get(CURSOR)) for r in rows) if s is not None]
            owned: list[model.Record] = []
            if not first and rows:
                owned = self.campaigns.fetch_where("OwnerId", [r["Id"] for r in rows])
            yield Batch(records=owned, cursor=cursor_value(max(stamps, default=None), now))


class FxRateStream:
    """The org's dated exchange rates, read in full every run (a few hundred rows at most).

    ``DatedConversionRate`` exists only in multi-currency orgs with advanced currency
    management; without it Salesforce converts at the static ``CurrencyType`` rates, so those
    are stored from :data:`records.UNDATED` on, which is what Salesforce itself does.
    """

    name = "DatedConversionRate"
    record_type: type[model.Record] = model.FxRate
    cursor_field: str | None = None

    def __init__(
        self, *, client: SalesforceClient, org: Org, known_ids: KnownIds | None = None
    ) -> None:
        self.client = client
        self.org = org
        self.known_ids = known_ids

    def partitions(self) -> Sequence[str]:
        return [""]

    def _rows(self) -> tuple[list[dict[str, Any]], bool]:
        try:
            return (
                self.client.query(
                    "SELECT Id, IsoCode, ConversionRate, StartDate FROM DatedConversionRate "
                    "ORDER BY IsoCode ASC, StartDate ASC"
                ),
                False,
            )
        except ClientError as exc:
            if exc.response is None or error_code(exc.response) != "INVALID_TYPE":
                raise
        log.info("Salesforce: no dated exchange rates (advanced currency management is off)")
        return (
            self.client.query(
                "SELECT Id, IsoCode, ConversionRate FROM CurrencyType WHERE IsActive = true"
            ),
            True,
        )

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        profile = self.org.profile()
        if not profile.multi_currency:
            return
        rows, undated = self._rows()
        rates = [records.fx_rate(r, corporate=profile.currency, undated=undated) for r in rows]
        yield Batch(records=rates)
        if self.known_ids is not None:
            gone = sorted(self.known_ids() - {r.external_id for r in rates})
            if gone:
                yield Batch(deleted=gone, deleted_type=model.FxRate)
