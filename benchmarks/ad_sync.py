"""Ad spend sync throughput: 1,000 campaigns x 400 days through the real Google Ads adapter.

Run from the repository root:

    python -m benchmarks.ad_sync                        # SQLite in a temporary directory
    python -m benchmarks.ad_sync --campaigns 200 --days 60
    python -m benchmarks.ad_sync --postgres-url postgresql+psycopg://user@host/db

A local fake Google Ads API (``http.server`` on 127.0.0.1, one thread per connection) serves
the OAuth token endpoint and ``googleAds:searchStream`` with payloads shaped like the real
ones (int64 as strings, proto3 field names). Every answer is rendered before any timing, so
the server costs the same in both measurements. The script times:

1. **fetch + parse**: the adapter's own HTTP client fetching every slice of the first sync
   and parsing it (JSON with Decimals), nothing else;
2. **sync**: ``sync.runner.sync_source`` of a fresh store: the same calls, plus normalizing
   to ``AdSpendDay`` records and upserting them with their cursors, slice by slice;
3. **re-sync**: the next run's lookback re-read (30 days), which must change no row;
4. **floors** (skip with ``--no-floor``), what the store alone costs for the same rows, with
   nothing fetched, parsed or normalized inside the timing: ``Store.upsert`` of the
   ready-made ``AdSpendDay`` records, slice by slice, and SQLite's own ``executemany`` of
   ready-made parameter tuples in the same key-sorted batches (the least any sync through
   this schema can spend writing).

It prints records/s and the ratio sync / (fetch + parse); the target is 1.5 or less. The
floors' ratios show how much of that the store takes by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

from adapters.ad_windows import plan_windows
from adapters.google_ads import SPEND_QUERY, GoogleAdsSource, spend_rows
from connector import model
from connector.store import Store, bulk, schema
from sync.runner import sync_source

CUSTOMER = "1234567890"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TZ = "America/New_York"


class FakeGoogleAds:
    """Pre-rendered answers for one customer: campaigns x days of daily metrics."""

    def __init__(self, campaigns: int, days: int) -> None:
        self.campaigns = [str(20_000_000_000 + i) for i in range(campaigns)]
        self.today = NOW.astimezone(ZoneInfo(TZ)).date()
        self.first_day = self.today - timedelta(days=days)
        self.rendered: dict[str, bytes] = {}
        self.customer = json.dumps(
            [
                {
                    "results": [
                        {
                            "customer": {
                                "resourceName": f"customers/{CUSTOMER}",
                                "id": CUSTOMER,
                                "descriptiveName": "Benchmark",
                                "currencyCode": "USD",
                                "timeZone": TZ,
                                "status": "ENABLED",
                            }
                        }
                    ],
                    "fieldMask": "customer.id",
                    "requestId": "bench",
                }
            ]
        ).encode()
        self.campaign_list = json.dumps(
            [
                {
                    "results": [
                        {
                            "campaign": {
                                "resourceName": f"customers/{CUSTOMER}/campaigns/{c}",
                                "id": c,
                                "name": f"Campaign {c}",
                                "status": "ENABLED",
                            }
                        }
                        for c in self.campaigns
                    ],
                    "fieldMask": "campaign.id,campaign.name,campaign.status",
                    "requestId": "bench",
                }
            ]
        ).encode()

    def render(self, query: str) -> bytes:
        cached = self.rendered.get(query)
        if cached is not None:
            return cached
        start, end = (date.fromisoformat(d) for d in query.split("'")[1::2])
        results = []
        day = max(start, self.first_day)
        while day <= min(end, self.today - timedelta(days=1)):
            text = day.isoformat()
            ordinal = day.toordinal()
            for campaign in self.campaigns:
                # the same (campaign, day) always has the same metrics, so a re-read of an
                # overlapping window finds nothing changed, as with a settled real account
                h = (int(campaign) * 2_654_435_761 + ordinal * 40_503) % 4_294_967_291
                results.append(
                    {
                        "campaign": {
                            "resourceName": f"customers/{CUSTOMER}/campaigns/{campaign}",
                            "id": campaign,
                        },
                        "metrics": {
                            "clicks": str(1 + h % 400),
                            "conversions": f"{h % 3000 / 100}",
                            "costMicros": str(10_000 + h % 900_000_000),
                            "impressions": str(100 + h % 90_000),
                        },
                        "segments": {"date": text},
                    }
                )
            day += timedelta(days=1)
        # searchStream sends batches of up to 10,000 rows
        batches = [
            {
                "results": results[i : i + 10_000],
                "fieldMask": "campaign.id,segments.date,"
                "metrics.costMicros,metrics.impressions,metrics.clicks,metrics.conversions",
                "requestId": "bench",
            }
            for i in range(0, max(len(results), 1), 10_000)
        ]
        body = (
            json.dumps(batches)
            .replace('"conversions": "', '"conversions": ')
            .replace('", "costMicros"', ', "costMicros"')
        )  # conversions is a JSON number (a double) on the wire
        self.rendered[query] = body.encode()
        return self.rendered[query]

    def answer(self, path: str, body: bytes) -> bytes:
        if path.endswith("/token"):
            return b'{"access_token": "ya29.bench", "expires_in": 3599, "token_type": "Bearer"}'
        query = json.loads(body)["query"]
        if "FROM customer" in query:
            return self.customer
        if "segments.date" not in query:
            return self.campaign_list
        return self.render(query)


def serve(fake: FakeGoogleAds) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = fake.answer(self.path, self.rfile.read(length))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def make_source(url: str, days: int) -> GoogleAdsSource:
    return GoogleAdsSource(
        customer_ids=[CUSTOMER],
        developer_token="bench",
        client_id="bench",
        client_secret="bench",
        refresh_token="bench",
        base_url=url,
        token_url=f"{url}/token",
        api_version="v26",
        lookback_days=30,
        history_days=days,
    )


def fetch_and_parse(url: str, days: int, queries: list[str]) -> tuple[float, int]:
    source = make_source(url, days)
    started = time.perf_counter()
    rows = 0
    for query in queries:
        body = source.search_stream(CUSTOMER, query, "bench")
        rows += sum(len(batch.get("results", [])) for batch in body)
    seconds = time.perf_counter() - started
    source.close()
    return seconds, rows


def floors(url: str, days: int, queries: list[str], store_url: str) -> tuple[float, float]:
    """(seconds of Store.upsert, seconds of bare executemany) for the sync's rows, building
    the rows untimed. On SQLite each goes into a fresh store; on PostgreSQL the upsert goes
    into the benchmark's database, emptied first (and the bare floor is not measured)."""
    source = make_source(url, days)
    account = source.account(CUSTOMER)
    upsert_seconds = raw_seconds = 0.0
    plan = bulk.plan_for(model.AdSpendDay, "sqlite")
    synced = plan.synced_value(NOW)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = store_url.startswith("sqlite")
        upsert_url = f"sqlite:///{Path(tmp) / 'upsert.db'}" if sqlite else store_url
        with (
            Store.open(upsert_url) as store,
            Store.open(f"sqlite:///{Path(tmp) / 'raw.db'}") as raw,
        ):
            with store.begin() as conn:
                conn.execute(schema.table_for(model.AdSpendDay).delete())
            for query in queries:  # each slice fetched and parsed once, untimed
                records = spend_rows(source.search_stream(CUSTOMER, query, "floor"), account)
                started = time.perf_counter()
                store.upsert(records, now=NOW)
                upsert_seconds += time.perf_counter() - started
                if not sqlite:
                    continue
                rows = [plan.row(r, synced) for r in records]
                batches = [
                    sorted(rows[i : i + 5000], key=lambda r: r[1])
                    for i in range(0, len(rows), 5000)
                ]
                with raw.engine.connect() as conn:
                    dbapi = conn.connection.dbapi_connection
                    assert dbapi is not None
                    started = time.perf_counter()
                    cursor = dbapi.cursor()
                    for batch in batches:
                        cursor.executemany(plan.statement, batch)
                    dbapi.commit()
                    raw_seconds += time.perf_counter() - started
    source.close()
    return upsert_seconds, raw_seconds


def run(store_url: str, campaigns: int, days: int, *, floor: bool = True) -> float:
    fake = FakeGoogleAds(campaigns, days)
    server = serve(fake)
    url = f"http://127.0.0.1:{server.server_port}"
    from adapters.ad_windows import zone

    plan = plan_windows(
        None, full=False, now=NOW, tz=zone(TZ), policy=make_source(url, days).policy
    )
    queries = [
        SPEND_QUERY.format(start=w.start.isoformat(), end=w.end.isoformat()) for w in plan.slices
    ]
    print(f"rendering {len(queries)} searchStream answers ...", flush=True)
    for query in queries:
        fake.render(query)
    megabytes = sum(len(fake.rendered[q]) for q in queries) / 1e6
    fetch_and_parse(url, days, queries[:2])  # warm up connections and code paths

    fetch_seconds, rows = fetch_and_parse(url, days, queries)
    print(
        f"fetch + parse  {rows:>9,} rows ({megabytes:,.0f} MB) in {fetch_seconds:6.2f} s = "
        f"{rows / fetch_seconds:>9,.0f} rows/s"
    )
    with Store.open(store_url) as store:
        source = make_source(url, days)
        started = time.perf_counter()
        result = sync_source(store, source, now=NOW)
        sync_seconds = time.perf_counter() - started
        if result.failed:
            raise SystemExit(f"sync failed: {result.failed[0].error}")
        stored = store.count(model.AdSpendDay)
        print(
            f"sync           {stored:>9,} rows into {store.describe()} in {sync_seconds:6.2f} s = "
            f"{stored / sync_seconds:>9,.0f} records/s ({source.api_calls()} API calls)"
        )
        started = time.perf_counter()
        again = sync_source(store, make_source(url, days), now=NOW + timedelta(hours=1))
        resync_seconds = time.perf_counter() - started
        spend = next(s for s in again.streams if s.stream == "daily_spend")
        print(
            f"re-sync        {spend.read:>9,} rows (30-day lookback) in {resync_seconds:6.2f} s; "
            f"rows inserted or changed: {spend.inserted + spend.updated}"
        )
    if floor:
        upsert_seconds, raw_seconds = floors(url, days, queries, store_url)
        print(
            f"floor: Store.upsert of the ready records {upsert_seconds:6.2f} s "
            f"= {upsert_seconds / fetch_seconds:.2f} x fetch + parse"
        )
        if raw_seconds:
            print(
                f"floor: bare executemany of ready tuples {raw_seconds:6.2f} s "
                f"= {raw_seconds / fetch_seconds:.2f} x fetch + parse"
            )
    server.shutdown()
    ratio = sync_seconds / fetch_seconds
    print(f"ratio sync / (fetch + parse) = {ratio:.2f} (target <= 1.5)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--postgres-url", default=None, help="use this PostgreSQL database")
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the store-only floors"
    )
    args = parser.parse_args(argv)
    print(f"campaigns={args.campaigns:,} days={args.days} python={sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.campaigns, args.days, floor=args.floor)
        if args.backend in ("postgresql", "both"):
            server = None
            url = args.postgres_url
            if url is None:  # a throwaway server from the machine's binaries, as the tests do
                from tests import pg_server

                try:
                    server = pg_server.start_server()
                except LookupError as exc:
                    print(f"postgresql skipped: {exc}")
                    return 0
                url = server.create_database("ad_bench")
            try:
                run(url, args.campaigns, args.days, floor=args.floor)
            finally:
                if server is not None:
                    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
