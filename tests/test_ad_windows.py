"""Date windows and the shared ad streams: lookback re-reads, first-sync slices, account days,
cursors that never pass the run's start, and re-reads that replace instead of adding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ad_windows import (
    AdAccount,
    AdSource,
    SpendSlice,
    Window,
    WindowPolicy,
    plan_windows,
    spend_day,
    vanished_days,
)
from adapters.http import HttpClient
from connector import model
from sync.runner import sync_source

UTC_ZONE = ZoneInfo("UTC")
LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_first_sync_reads_the_history_in_slices_oldest_first() -> None:
    plan = plan_windows(
        None, full=False, now=NOW, tz=UTC_ZONE, policy=WindowPolicy(28, 400, slice_days=31)
    )
    assert plan.slices[0].start == date(2026, 11, 23) - timedelta(days=400)
    assert plan.slices[-1].end == date(2026, 11, 23)  # today, partial, is read too
    assert all(len(s) <= 31 for s in plan.slices)
    assert sum(len(s) for s in plan.slices) == 401
    for before, after in zip(plan.slices, plan.slices[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)
    # the cursor follows the slices but stops at the last complete day
    assert plan.cursor_after(plan.slices[0]) == plan.slices[0].end.isoformat()
    assert plan.cursor_after(plan.slices[-1]) == "2026-11-22"


def test_incremental_sync_rereads_the_lookback_window() -> None:
    policy = WindowPolicy(lookback_days=28, history_days=400, slice_days=31)
    plan = plan_windows("2026-11-22", full=False, now=NOW, tz=UTC_ZONE, policy=policy)
    assert plan.slices == (Window(date(2026, 10, 26), date(2026, 11, 23)),)
    # a re-read never moves the cursor backwards, even slice by slice
    small = plan_windows(
        "2026-11-22", full=False, now=NOW, tz=UTC_ZONE, policy=policy, slice_days=7
    )
    assert [small.cursor_after(s) for s in small.slices] == ["2026-11-22"] * len(small.slices)


def test_google_30_and_linkedin_7_day_lookbacks() -> None:
    google = plan_windows(
        "2026-11-22", full=False, now=NOW, tz=UTC_ZONE, policy=WindowPolicy(30, 400)
    )
    linkedin = plan_windows(
        "2026-11-22", full=False, now=NOW, tz=UTC_ZONE, policy=WindowPolicy(7, 400)
    )
    assert google.slices[0].start == date(2026, 10, 24)
    assert linkedin.slices[0].start == date(2026, 11, 16)


def test_days_are_the_accounts_days_and_the_cursor_is_capped_at_the_run_start() -> None:
    early_utc = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # still the 22nd in Los Angeles
    plan = plan_windows("2026-11-20", full=False, now=early_utc, tz=LA, policy=WindowPolicy(0, 400))
    assert plan.today == date(2026, 11, 22)
    assert plan.slices == (Window(date(2026, 11, 21), date(2026, 11, 22)),)
    assert plan.cursor_after(plan.slices[-1]) == "2026-11-21"  # the 22nd is not complete yet
    # a cursor beyond yesterday (a time zone change upstream) is capped, never trusted
    ahead = plan_windows(
        "2026-11-25", full=False, now=early_utc, tz=LA, policy=WindowPolicy(3, 400)
    )
    assert ahead.previous == date(2026, 11, 21)
    assert ahead.cursor_after(ahead.slices[-1]) == "2026-11-21"


def test_full_sync_ignores_the_cursor_and_retention_clamps_the_history() -> None:
    plan = plan_windows(
        "2026-11-22",
        full=True,
        now=NOW,
        tz=UTC_ZONE,
        policy=WindowPolicy(28, 2000, slice_days=31, retention_days=37 * 30),
    )
    assert plan.slices[0].start == date(2026, 11, 23) - timedelta(days=37 * 30)
    assert plan.previous is None


@settings(max_examples=300, deadline=None)
@given(
    cursor_offset=st.one_of(st.none(), st.integers(min_value=-5, max_value=900)),
    lookback=st.integers(min_value=0, max_value=60),
    history=st.integers(min_value=1, max_value=800),
    slice_days=st.integers(min_value=1, max_value=90),
    hour=st.integers(min_value=0, max_value=23),
    zone_name=st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati"]),
)
def test_plans_cover_contiguous_days_and_cursors_never_pass_yesterday(
    cursor_offset: int | None,
    lookback: int,
    history: int,
    slice_days: int,
    hour: int,
    zone_name: str,
) -> None:
    tz = ZoneInfo(zone_name)
    now = datetime(2026, 3, 29, hour, 30, tzinfo=UTC)  # a DST change in Europe/US spring
    today = now.astimezone(tz).date()
    cursor = None if cursor_offset is None else (today - timedelta(days=cursor_offset)).isoformat()
    plan = plan_windows(
        cursor, full=False, now=now, tz=tz, policy=WindowPolicy(lookback, history, slice_days)
    )
    assert plan.slices and plan.slices[-1].end == today
    cursors = [plan.cursor_after(s) for s in plan.slices]
    assert cursors == sorted(cursors)
    assert all(c <= (today - timedelta(days=1)).isoformat() for c in cursors)
    for before, after in zip(plan.slices, plan.slices[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)
    assert all(1 <= len(s) <= slice_days for s in plan.slices)
    if cursor is not None:
        previous = min(date.fromisoformat(cursor), today - timedelta(days=1))
        assert plan.slices[0].start == previous + timedelta(days=1 - lookback)
        assert all(c >= previous.isoformat() for c in cursors)


def test_window_halves_cover_it() -> None:
    first, second = Window(date(2026, 1, 1), date(2026, 1, 31)).halves()
    assert (first.start, first.end, second.start, second.end) == (
        date(2026, 1, 1),
        date(2026, 1, 16),
        date(2026, 1, 17),
        date(2026, 1, 31),
    )


def test_vanished_days_are_known_campaign_days_without_a_row() -> None:
    account = AdAccount("A1", "acct", "USD", "UTC")
    window = Window(date(2026, 11, 20), date(2026, 11, 21))
    rows = [spend_day("fake", account, "c1", date(2026, 11, 20), Decimal("1"))]
    assert vanished_days(rows, window, "A1", {"c2"}) == [
        "A1:2026-11-21:c1",
        "A1:2026-11-20:c2",
        "A1:2026-11-21:c2",
    ]


# ---------------------------------------------------------------------------------------------
# The shared streams end to end, against an in-memory "platform" and the real store


class FakePlatform(AdSource):
    """An ad platform whose upstream is a dict: (campaign, day) -> spend."""

    name = "fake_ads"

    def __init__(self, upstream: dict[tuple[str, date], Decimal], tz: str = "UTC") -> None:
        super().__init__(["A1"], WindowPolicy(lookback_days=3, history_days=10, slice_days=4))
        self.upstream = upstream
        self.tz = tz
        self.windows: list[Window] = []
        self.http = HttpClient("fake", "http://127.0.0.1:9")

    def fetch_account(self, account_id: str) -> AdAccount:
        return AdAccount(account_id, "Fake", "EUR", self.tz)

    def fetch_campaigns(self, account: AdAccount) -> Iterator[list[model.AdCampaign]]:
        names = sorted({c for c, _ in self.upstream})
        yield [
            model.AdCampaign(source=self.name, external_id=c, account_id=account.id, name=c)
            for c in names
        ]

    def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
        self.windows.append(window)
        return SpendSlice(
            [
                spend_day(self.name, account, c, d, amount)
                for (c, d), amount in sorted(self.upstream.items())
                if window.start <= d <= window.end
            ]
        )

    def clients(self) -> Sequence[HttpClient]:
        return (self.http,)


def _total(store) -> Decimal:
    return sum((r.spend for r in store.iter_records(model.AdSpendDay)), Decimal(0))


def test_rereading_an_overlapping_window_replaces_days_and_never_adds(store) -> None:
    today = NOW.date()
    upstream = {
        (campaign, today - timedelta(days=i)): Decimal(f"{i}.{i}1")
        for campaign in ("c1", "c2")
        for i in range(0, 12)
    }
    first = FakePlatform(dict(upstream))
    result = sync_source(store, first, now=NOW)
    assert not result.failed
    # history_days=10 complete days plus today, 4-day slices, oldest first
    assert first.windows[0].start == today - timedelta(days=10)
    assert store.get_cursor("fake_ads", "daily_spend", "A1") == "2026-11-22"
    stored = store.count(model.AdSpendDay)
    total = _total(store)
    assert stored == 2 * 11

    # nothing changed upstream: the re-read of the lookback changes no total and adds no row
    again = FakePlatform(dict(upstream))
    sync_source(store, again, now=NOW + timedelta(hours=1))
    assert again.windows == [Window(today - timedelta(days=3), today)]
    assert store.count(model.AdSpendDay) == stored
    assert _total(store) == total

    # yesterday was restated, the day before restated to nothing: replaced and deleted
    changed = dict(upstream)
    changed[("c1", today - timedelta(days=1))] = Decimal("100.00")
    del changed[("c2", today - timedelta(days=2))]
    sync_source(store, FakePlatform(changed), now=NOW + timedelta(hours=2))
    assert store.count(model.AdSpendDay) == stored - 1
    expected = (
        total
        - upstream[("c1", today - timedelta(days=1))]
        + Decimal("100.00")
        - upstream[("c2", today - timedelta(days=2))]
    )
    assert _total(store) == expected
    key = model.AdSpendDay.key("A1", "c1", today - timedelta(days=1))
    assert store.get(model.AdSpendDay, "fake_ads", key).spend == Decimal("100.00")

    # and a day that comes back is live again
    sync_source(store, FakePlatform(dict(upstream)), now=NOW + timedelta(hours=3))
    assert store.count(model.AdSpendDay) == stored
    assert _total(store) == total


def test_an_interrupted_first_sync_resumes_after_its_last_committed_slice(store) -> None:
    today = NOW.date()
    upstream = {("c1", today - timedelta(days=i)): Decimal("1.00") for i in range(11)}

    class Failing(FakePlatform):
        def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
            if len(self.windows) == 2:
                raise RuntimeError("network gone")
            return super().fetch_spend(account, window)

    failing = Failing(upstream)
    failing.prefetch = False
    result = sync_source(store, failing, now=NOW)
    assert result.failed and "network gone" in result.failed[0].error
    cursor = store.get_cursor("fake_ads", "daily_spend", "A1")
    assert cursor == failing.windows[1].end.isoformat()
    resumed = FakePlatform(upstream)
    sync_source(store, resumed, now=NOW)
    assert resumed.windows[0].start == date.fromisoformat(cursor) + timedelta(days=1 - 3)
    assert store.count(model.AdSpendDay) == 11


@pytest.mark.parametrize("prefetch", [True, False])
def test_prefetching_reads_the_same_windows(prefetch: bool) -> None:
    platform = FakePlatform({("c1", NOW.date()): Decimal(1)})
    platform.prefetch = prefetch
    stream = platform.streams()[1]
    batches = list(stream.read(None, full=False, now=NOW, partition="A1"))
    assert [b.cursor for b in batches] == [
        platform.windows[i].end.isoformat() for i in range(2)
    ] + ["2026-11-22"]
    assert sum(len(b.records) for b in batches) == 1
