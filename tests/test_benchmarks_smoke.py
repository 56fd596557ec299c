"""The benchmark scripts still run end to end (tiny sizes; no figures are asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_ad_sync_benchmark_runs_and_prints_its_ratio_and_floors() -> None:
    out = _run("benchmarks.ad_sync", "--campaigns", "20", "--days", "60")
    assert "ratio sync / (fetch + parse)" in out
    assert "floor: Store.upsert" in out and "floor: bare executemany" in out
    assert "rows inserted or changed: 0" in out


def test_webhooks_benchmark_runs_and_every_200_is_stored() -> None:
    out = _run("benchmarks.webhooks", "--requests", "90", "--concurrency", "4", "--threads", "4")
    assert "ratio serve/bare" in out
    stored, answered = map(int, re.search(r"(\d+) of (\d+) answered 200", out).groups())  # type: ignore[union-attr]
    assert stored == answered == 90
