"""Date windows and the two streams every ad platform has (campaigns, daily spend).

Ad platforms revise the past: Meta restates insights for 28 days, Google Ads adds late
conversions and invalid-click corrections for up to 30, LinkedIn settles within about a week.
So a daily-spend sync never just reads "days after the cursor": every run re-reads a
**lookback window** ending today, and the store upserts each (account, campaign, day) by its
key, so a re-read replaces a day and never adds one. A day that disappeared upstream (a
restatement to nothing) is reported as deleted, never left standing.

Days are the **ad account's** days: "today" is computed in the account's time zone from the
run's start, so an account in Los Angeles is still on the 22nd while UTC is on the 23rd.
The cursor is the last *complete* day read (yesterday in that zone at the latest), never a
day after the run's start, and never moves backwards while a lookback is re-read.

A first sync (or ``--full``) reads ``history_days`` in slices, oldest first; each slice is
committed with its cursor, so an interrupted first sync resumes where it stopped.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.base import Batch
from adapters.http import HttpClient, HttpError
from connector import model
from connector.money import to_decimal

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Windows


@dataclass(frozen=True)
class WindowPolicy:
    """How a platform's daily data is (re-)read.

    ``lookback_days`` days up to the cursor are re-read on every sync; ``history_days``
    complete days (plus today) are read by a first or full sync; no request spans more than
    ``slice_days``; ``retention_days`` is how far back the platform keeps data at all (Meta:
    37 months), so a larger history is clamped instead of failing.
    """

    lookback_days: int
    history_days: int
    slice_days: int = 30
    retention_days: int | None = None

    def __post_init__(self) -> None:
        if self.lookback_days < 0 or self.history_days < 1 or self.slice_days < 1:
            raise ValueError(f"invalid window policy {self}")


@dataclass(frozen=True)
class Window:
    """An inclusive range of account days read in one go."""

    start: date
    end: date

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def __len__(self) -> int:
        return (self.end - self.start).days + 1

    def halves(self) -> tuple[Window, Window]:
        """Two windows covering this one (for "too much data" answers); needs 2+ days."""
        middle = self.start + timedelta(days=(len(self) - 1) // 2)
        return Window(self.start, middle), Window(middle + timedelta(days=1), self.end)

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True)
class WindowPlan:
    """The slices one sync reads for one account, and the cursors they make safe."""

    slices: tuple[Window, ...]
    today: date
    previous: date | None  # the cursor before this run (None on a first or full sync)

    @property
    def last_complete(self) -> date:
        return self.today - timedelta(days=1)

    def cursor_after(self, window: Window) -> str:
        """The cursor to save once ``window`` is committed: the last complete day read, never
        beyond yesterday (account time) and never behind the cursor this run started from."""
        value = min(window.end, self.last_complete)
        if self.previous is not None:
            value = max(value, self.previous)
        return value.isoformat()


def account_today(now: datetime, tz: ZoneInfo) -> date:
    """The account's current day at the run's start (``now`` must be timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(tz).date()


def plan_windows(
    cursor: str | None,
    *,
    full: bool,
    now: datetime,
    tz: ZoneInfo,
    policy: WindowPolicy,
    slice_days: int | None = None,
) -> WindowPlan:
    """Slices to read, oldest first: from the lookback start (or the history start) to today."""
    today = account_today(now, tz)
    last_complete = today - timedelta(days=1)
    previous: date | None = None
    if full or cursor is None:
        start = today - timedelta(days=policy.history_days)
    else:
        try:
            previous = date.fromisoformat(cursor)
        except ValueError:
            log.warning("unreadable cursor %r; reading the full history", cursor)
            previous = None
            start = today - timedelta(days=policy.history_days)
        else:
            # A cursor after yesterday (the account moved time zone, a clock was wrong) is
            # capped: the cursor is never later than the last complete day.
            previous = min(previous, last_complete)
            start = previous + timedelta(days=1 - policy.lookback_days)
    if policy.retention_days is not None:
        oldest = today - timedelta(days=policy.retention_days)
        if start < oldest:
            log.warning(
                "asked for days from %s, but the platform keeps only %d days; starting at %s",
                start,
                policy.retention_days,
                oldest,
            )
            start = oldest
    step = max(1, slice_days or policy.slice_days)
    slices: list[Window] = []
    cursor_day = start
    while cursor_day <= today:
        end = min(cursor_day + timedelta(days=step - 1), today)
        slices.append(Window(cursor_day, end))
        cursor_day = end + timedelta(days=1)
    return WindowPlan(tuple(slices), today, previous)


def zone(name: str | None, *, fallback: str = "UTC") -> ZoneInfo:
    """An IANA zone from an API (``America/New_York``), UTC when missing or unknown."""
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r; using %s", name, fallback)
        return ZoneInfo(fallback)


# ---------------------------------------------------------------------------------------------
# Errors in plain words


def reworded(exc: HttpError, text: str) -> HttpError:
    """The same error (same class, status, retry hint) with a plainer message."""
    clone = type(exc).__new__(type(exc), text)
    clone.__dict__.update(exc.__dict__)
    clone.args = (text,)
    return clone


# ---------------------------------------------------------------------------------------------
# The platform interface and the two streams


@dataclass(frozen=True)
class AdAccount:
    """What the daily rows need from an ad account: its currency and time zone."""

    id: str
    name: str
    currency: str
    timezone: str
    status: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)


@dataclass
class SpendSlice:
    """The rows of one window of one account, and how many requests they took."""

    rows: list[model.AdSpendDay]
    pages: int = 1


@dataclass
class _State:
    """Per-run memory shared by a source's streams (accounts, campaigns seen)."""

    accounts: dict[str, AdAccount] = field(default_factory=dict)
    campaigns: dict[str, set[str]] = field(default_factory=dict)


class AdSource(ABC):
    """An ad platform as a :class:`adapters.base.Source`: ``campaigns`` then ``daily_spend``,
    one partition (and cursor) per ad account.

    A platform module implements the four abstract calls; windows, cursors, deletions and
    prefetching live here once.
    """

    name: str = ""
    policy: WindowPolicy

    def __init__(self, account_ids: Sequence[str], policy: WindowPolicy, *, prefetch: bool = True):
        self.account_ids = list(account_ids)
        self.policy = policy
        self.prefetch = prefetch
        self.state = _State()
        self._streams = (CampaignStream(self), DailySpendStream(self))

    # -- what a platform implements ------------------------------------------------------

    @abstractmethod
    def fetch_account(self, account_id: str) -> AdAccount:
        """One cheap call: the account's name, currency, time zone (and status)."""

    @abstractmethod
    def fetch_campaigns(self, account: AdAccount) -> Iterator[list[model.AdCampaign]]:
        """Every campaign of the account (paused and removed ones too: they have history)."""

    @abstractmethod
    def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
        """Daily rows per campaign for every day of ``window`` that has any activity."""

    @abstractmethod
    def clients(self) -> Sequence[HttpClient]:
        """The HTTP clients, for the call count and for closing."""

    def slice_days(self, account: AdAccount) -> int:
        """Days per request for this account (LinkedIn shrinks it for big accounts)."""
        return self.policy.slice_days

    def describe_account(self, account: AdAccount) -> str:
        return f"{account.name} ({account.id}): {account.currency}, {account.timezone}"

    # -- Source ----------------------------------------------------------------------------

    def account(self, account_id: str) -> AdAccount:
        cached = self.state.accounts.get(account_id)
        if cached is None:
            cached = self.state.accounts[account_id] = self.fetch_account(account_id)
        return cached

    def streams(self) -> Sequence[CampaignStream | DailySpendStream]:
        return self._streams

    def check(self) -> list[tuple[bool, str]]:
        """One cheap call per account; a failure is named, never raised (``doctor``)."""
        results: list[tuple[bool, str]] = []
        for account_id in self.account_ids:
            try:
                account = self.fetch_account(account_id)
            except HttpError as exc:
                results.append((False, f"{self.name}: {exc}"))
                continue
            problem = self.account_problem(account)
            if problem:
                results.append((False, f"{self.name}: {problem}"))
            else:
                results.append((True, f"{self.name}: {self.describe_account(account)}"))
        return results

    def account_problem(self, account: AdAccount) -> str | None:
        """Why a reachable account cannot be synced (disabled, a manager account), if so."""
        return None

    def api_calls(self) -> int:
        return sum(client.stats.calls for client in self.clients())

    def close(self) -> None:
        for client in self.clients():
            client.close()


class CampaignStream:
    """Every campaign of every account, with name and status (read whole on each run: the
    lists are small and names change without a usable modification cursor)."""

    name = "campaigns"
    record_type = model.AdCampaign
    cursor_field: str | None = None

    def __init__(self, source: AdSource) -> None:
        self.source = source

    def partitions(self) -> Sequence[str]:
        return self.source.account_ids

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        account = self.source.account(partition)
        seen = self.source.state.campaigns.setdefault(partition, set())
        for page in self.source.fetch_campaigns(account):
            seen.update(c.external_id for c in page)
            yield Batch(records=page, cursor=None, partition=partition)


class DailySpendStream:
    """Daily spend per campaign; key ``<account>:<day>:<campaign>``, cursor = last complete
    account day read."""

    name = "daily_spend"
    record_type = model.AdSpendDay
    cursor_field: str | None = "day"

    def __init__(self, source: AdSource) -> None:
        self.source = source

    def partitions(self) -> Sequence[str]:
        return self.source.account_ids

    def read(
        self, cursor: str | None, *, full: bool, now: datetime, partition: str = ""
    ) -> Iterator[Batch]:
        source = self.source
        account = source.account(partition)
        plan = plan_windows(
            cursor,
            full=full,
            now=now,
            tz=account.tz,
            policy=source.policy,
            slice_days=source.slice_days(account),
        )
        # Only a re-read can find rows that vanished; on a first sync nothing is stored yet.
        report_deletions = full or cursor is not None
        log.info(
            "%s %s: reading %s..%s in %d slice(s)",
            source.name,
            partition,
            plan.slices[0].start if plan.slices else "-",
            plan.today,
            len(plan.slices),
        )
        for window, got in _prefetched(source, account, plan.slices):
            deleted: list[str] = []
            if report_deletions:
                deleted = vanished_days(
                    got.rows, window, account.id, source.state.campaigns.get(partition, ())
                )
            yield Batch(
                records=got.rows,
                cursor=plan.cursor_after(window),
                deleted=deleted,
                deleted_type=model.AdSpendDay,
                partition=partition,
                pages=got.pages,
            )


def _prefetched(
    source: AdSource, account: AdAccount, windows: Sequence[Window]
) -> Iterator[tuple[Window, SpendSlice]]:
    """Each window's rows, fetching the next window while the caller stores this one.

    Storing a slice and fetching the next are independent (network and JSON parsing on one
    side, the database on the other), so overlapping them hides most of the store's time.
    Only one request is ever in flight, so the HTTP session is never shared between threads.
    """
    if not source.prefetch or len(windows) < 2:
        for window in windows:
            yield window, source.fetch_spend(account, window)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{source.name}-fetch") as pool:
        pending: Future[SpendSlice] = pool.submit(source.fetch_spend, account, windows[0])
        for index, window in enumerate(windows):
            got = pending.result()
            if index + 1 < len(windows):
                pending = pool.submit(source.fetch_spend, account, windows[index + 1])
            try:
                yield window, got
            except GeneratorExit:
                pending.cancel()
                raise


def vanished_days(
    rows: Iterable[model.AdSpendDay],
    window: Window,
    account_id: str,
    known_campaigns: Iterable[str],
) -> list[str]:
    """Keys of (campaign, day) in ``window`` that the platform no longer reports.

    Platforms omit days without activity, so a day restated to nothing simply stops
    appearing; its stored row must then be marked deleted, or yesterday's spend would
    stay in the totals forever. Campaigns considered are those listed by the campaign stream
    plus those present in this window (only rows already stored are affected).
    """
    present = {(r.ad_campaign_id, r.day) for r in rows}
    campaigns = set(known_campaigns) | {c for c, _ in present}
    days = window.days()
    return [
        model.AdSpendDay.key(account_id, campaign, day)
        for campaign in sorted(campaigns)
        for day in days
        if (campaign, day) not in present
    ]


def spend_day(
    source: str,
    account: AdAccount,
    campaign_id: str,
    day: date,
    spend: Decimal | int | str,
    *,
    impressions: int = 0,
    clicks: int = 0,
    conversions: Decimal | int | str = 0,
    currency: str | None = None,
) -> model.AdSpendDay:
    """One normalized row; ``spend`` and ``conversions`` must already be exact (Decimal/int)."""
    return model.AdSpendDay(
        source=source,
        external_id=model.AdSpendDay.key(account.id, campaign_id, day),
        account_id=account.id,
        ad_campaign_id=campaign_id,
        day=day,
        spend=to_decimal(spend),
        currency=currency or account.currency,
        impressions=impressions,
        clicks=clicks,
        conversions=to_decimal(conversions),
    )
