"""One sync at a time per store (SQLite file lock, PostgreSQL advisory lock) and the scheduler."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from connector.store import Store
from sync.lock import LockHeld, SyncLock
from sync.scheduler import SyncScheduler, cron_trigger
from tests.fake_meta import fake_meta

CRM_ROI = Path(sys.executable).parent / "crm-roi"


def _config(tmp_path: Path, url: str, meta: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[connector]\ndatabase_url = "{url}"\n' + meta)
    return path


def _sync(config: Path, *extra: str, wait: bool = True) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRM_ROI_CONFIG"} | {"META_TOKEN": "t"}
    return subprocess.Popen(
        [str(CRM_ROI), "--config", str(config), "sync", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_second_sync_is_refused_naming_the_holder_then_waits(
    store_url: str, tmp_path: Path
) -> None:
    with fake_meta() as meta, Store.open(store_url) as store:
        config = _config(tmp_path, store_url, meta)
        lock = SyncLock(store, "sync").acquire()
        try:
            refused = _sync(config)
            out, err = refused.communicate(timeout=120)
            assert refused.returncode == 1, out + err
            assert len(err.strip().splitlines()) == 1
            assert "another sync is running" in err and str(os.getpid()) in err
            waiting = _sync(config, "--wait")
            time.sleep(1.5)
            assert waiting.poll() is None  # still waiting for the lock
        finally:
            lock.release()
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, out + err
        # and in-process, a second lock on the same store is refused while one is held
        with SyncLock(store, "sync"), pytest.raises(LockHeld):
            SyncLock(store, "other", wait=0).acquire()
        with SyncLock(store, "again"):  # released: can be taken again
            pass


def test_cron_day_of_week_is_standard_cron() -> None:
    trigger = cron_trigger("30 9 * * 1-5", "Europe/Berlin")
    fields = {f.name: str(f) for f in trigger.fields}
    assert fields["day_of_week"] == "mon-fri"
    assert cron_trigger("0 0 * * 0", "UTC").fields[4].name == "day_of_week"
    assert str(cron_trigger("0 0 * * 0", "UTC").fields[4]) == "sun"
    assert str(cron_trigger("0 0 * * 7", "UTC").fields[4]) == "sun"
    with pytest.raises(ValueError, match="5 fields"):
        cron_trigger("* * *", "UTC")


def test_scheduler_runs_repeatedly_without_overlap() -> None:
    spans: list[tuple[float, float]] = []
    active = threading.Semaphore(1)
    overlapped = threading.Event()

    def job() -> None:
        if not active.acquire(blocking=False):
            overlapped.set()
            return
        start = time.monotonic()
        time.sleep(1.3)  # longer than the 1 s trigger: the next one must not start
        spans.append((start, time.monotonic()))
        active.release()

    scheduler = SyncScheduler(job, CronTrigger(second="*"))
    scheduler.start()
    deadline = time.monotonic() + 20
    while len(spans) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    scheduler.stop(wait=True)
    assert len(spans) >= 2
    assert not overlapped.is_set()
    ordered = sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered))
