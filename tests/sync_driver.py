"""Runs one sync of a sample CRM into a store, as a separate process (the crash tests kill it).

python -m tests.sync_driver STORE_URL SAMPLE_CRM_PATH AS_OF [--no-push]
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from adapters.sample_crm import SampleCrm, SampleSource, SampleWriter
from connector.config import parse_config
from connector.store import Store
from sync.pipeline import run_sync


def main(argv: list[str]) -> int:
    url, crm_path, as_of = argv[:3]
    push = "--no-push" not in argv
    config = parse_config({"connector": {"database_url": url}}, env={})
    crm = SampleCrm(Path(crm_path))
    with Store.open(url) as store:
        report = run_sync(
            store,
            config,
            push=push,
            now=datetime.fromisoformat(as_of),
            sources=[("demo", lambda: SampleSource(crm, page_size=700))],
            writer=SampleWriter(crm, batch_size=int(os.environ.get("WRITER_BATCH", "200"))),
        )
    crm.close()
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
