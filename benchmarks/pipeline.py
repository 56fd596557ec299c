"""The demo world at 10x size through the whole sync pipeline: time per stage.

    python -m benchmarks.pipeline [--scale 10] [--backend sqlite|postgresql]

Builds the demo world (``--scale`` times the people and opportunities of ``crm-roi demo``)
into a local sample CRM, then runs ``sync`` end to end on a fresh store — pull (every stream
through the batch runner), compute (journeys, attribution, ROI), push (write-back into the
sample CRM) — and prints the seconds of each stage, records/s of the pull and peak MiB. A
second sync shows the incremental cost when nothing changed.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from adapters.sample_crm import SampleCrm, SampleSource, SampleWriter
from connector.config import parse_config
from connector.demo import build_world
from connector.store import Store
from sync.pipeline import run_sync


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)
    as_of = date(2026, 11, 23)
    now = datetime.combine(as_of, dtime(6), tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        world = build_world(seed=7, as_of=as_of, scale=args.scale)
        print(
            f"build world: {time.perf_counter() - started:6.2f} s, "
            f"{len(world.records):,} records (scale {args.scale:g})"
        )
        started = time.perf_counter()
        crm = SampleCrm.create(Path(tmp) / "crm.db", world.records, at=now - timedelta(hours=1))
        print(f"load sample CRM: {time.perf_counter() - started:6.2f} s")
        server = None
        if args.backend == "postgresql":
            from tests import pg_server

            server = pg_server.start_server()
            url = server.create_database("bench_pipeline")
        else:
            url = f"sqlite:///{Path(tmp) / 'store.db'}"
        config = parse_config({"connector": {"database_url": url}}, env={})
        try:
            with Store.open(url) as store:
                for label, when in (("first sync", now), ("re-sync", now + timedelta(minutes=30))):
                    started = time.perf_counter()
                    report = run_sync(
                        store,
                        config,
                        now=when,
                        sources=[("demo", lambda: SampleSource(crm))],
                        writer=SampleWriter(crm),
                    )
                    total = time.perf_counter() - started
                    read = sum(s.read for s in report.streams)
                    stages = ", ".join(f"{k} {v:6.2f} s" for k, v in report.stage_seconds.items())
                    pull = report.stage_seconds.get("pull", 0) or 1e-9
                    print(
                        f"{label:10}: {total:6.2f} s total ({stages}); pulled {read:,} "
                        f"records = {read / pull:,.0f} records/s; wrote back "
                        f"{report.written} campaigns; status {report.status}; "
                        f"peak {peak_mib():,.0f} MiB"
                    )
        finally:
            crm.close()
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
