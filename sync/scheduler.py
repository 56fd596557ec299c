"""The scheduled sync: APScheduler 3.x on the cron of ``[schedule] sync``.

One job, never two instances at once (``max_instances=1``), missed runs coalesced into one
(a laptop waking up runs one sync, not twelve), and the store's sync lock on top, so several
``serve`` processes on one PostgreSQL store never sync together: whoever holds the lock runs,
the others log who holds it and skip.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _day_of_week(field: str) -> str:
    """Standard cron numbers days 0-7 from Sunday; APScheduler 3 numbers them from Monday.
    Translate numbers to names, which both read the same way."""
    return re.sub(r"\d+", lambda m: _DAY_NAMES[int(m.group())], field)


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """A trigger for a standard 5-field cron expression in ``timezone``."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"schedule.sync {expression!r} must have 5 fields (min hour dom mon dow)")
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_day_of_week(dow),
        timezone=ZoneInfo(timezone),
    )


class SyncScheduler:
    """Runs ``job`` on ``trigger`` in a background thread until :meth:`stop`."""

    def __init__(
        self, job: Callable[[], object], trigger: BaseTrigger, *, timezone: str = "UTC"
    ) -> None:
        self._job = job
        self._running = threading.Lock()
        self.scheduler = BackgroundScheduler(timezone=ZoneInfo(timezone))
        self.scheduler.add_job(
            self._run,
            trigger,
            id="sync",
            name="crm-roi sync",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=300,
            replace_existing=True,
        )

    def _run(self) -> None:
        with self._running:
            try:
                self._job()
            except Exception:  # the scheduler must outlive one failed run
                log.exception("scheduled sync failed")

    def start(self) -> None:
        self.scheduler.start()
        job = self.scheduler.get_job("sync")
        log.info("scheduler started; next sync at %s", job.next_run_time if job else "never")

    def stop(self, *, wait: bool = True) -> None:
        """Stop scheduling; with ``wait`` the sync in progress finishes first."""
        self.scheduler.shutdown(wait=wait)

    @property
    def busy(self) -> bool:
        return self._running.locked()
