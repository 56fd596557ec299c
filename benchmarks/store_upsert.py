"""Upsert throughput of the store: 200,000 persons and 1,000,000 touchpoints.

Run from the repository root:

    python -m benchmarks.store_upsert                 # SQLite and PostgreSQL
    python -m benchmarks.store_upsert --backend sqlite --persons 20000 --touchpoints 100000

PostgreSQL: pass --postgres-url, or let the script start a throwaway server from the
machine's binaries (as the test suite does). Prints records/s for the first load and for a
re-run of the same records (which must change no row), and the process's peak memory.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector import model
from connector.store import Store

T0 = datetime(2025, 11, 1, tzinfo=UTC)


def persons(n: int) -> Iterator[model.Person]:
    rng = random.Random(7)
    stages = model.LIFECYCLE_STAGES
    for i in range(n):
        yield model.Person(
            source="salesforce",
            external_id=f"00Q{i:015d}",
            kind="lead",
            email=f"person{i}@example.com",
            first_name="Ada",
            last_name=f"L{i}",
            company=f"Company {i % 5000}",
            created_at=T0 + timedelta(seconds=rng.randrange(365 * 86400)),
            lifecycle_stage=stages[rng.randrange(len(stages))],
        )


def touchpoints(n: int, n_persons: int) -> Iterator[model.Touchpoint]:
    rng = random.Random(11)
    for i in range(n):
        yield model.Touchpoint(
            source="salesforce",
            external_id=f"00v{i:015d}",
            person_source="salesforce",
            person_id=f"00Q{rng.randrange(n_persons):015d}",
            campaign_source="salesforce",
            campaign_id=f"701{rng.randrange(500):015d}",
            occurred_at=T0 + timedelta(seconds=rng.randrange(365 * 86400)),
            kind="campaign_member",
            responded=rng.random() < 0.8,
        )


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(url: str, label: str, n_persons: int, n_touch: int) -> None:
    store = Store.open(url)
    total = n_persons + n_touch
    for attempt in ("first load", "re-run"):
        started = time.perf_counter()
        p = store.upsert(persons(n_persons))
        t = store.upsert(touchpoints(n_touch, n_persons))
        seconds = time.perf_counter() - started
        changed = p.total.inserted + p.total.updated + t.total.inserted + t.total.updated
        print(
            f"{label:10} {attempt:10} {total:>9,} records in {seconds:7.2f} s = "
            f"{total / seconds:>9,.0f} records/s; rows inserted or changed: {changed:,}; "
            f"peak {peak_mib():,.0f} MiB",
            flush=True,
        )
    print(
        f"{label:10} store holds {store.count(model.Person):,} persons and "
        f"{store.count(model.Touchpoint):,} touchpoints"
    )
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args(argv)
    print(
        f"persons={args.persons:,} touchpoints={args.touchpoints:,} python={sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args.persons, args.touchpoints)
        if args.backend in ("postgresql", "both"):
            server = None
            url = args.postgres_url
            if url is None:
                from tests import pg_server

                try:
                    server = pg_server.start_server()
                except LookupError as exc:
                    print(f"postgresql skipped: {exc}")
                    return 0
                url = server.create_database("bench")
            try:
                run(url, "postgresql", args.persons, args.touchpoints)
            finally:
                if server is not None:
                    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
