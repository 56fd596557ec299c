"""The collector pause: overlapping pauses across threads, a program's own gc.disable() kept,
and the bulk paths (JSON pages, ad slices, store upserts) actually running paused."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests

import adapters.http
from adapters.ad_windows import AdAccount, SpendSlice, Window, spend_day
from adapters.http import parse_json
from connector import model
from connector.gc_pause import paused_gc
from tests.test_ad_windows import FakePlatform

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_resumed_after_even_on_error_and_when_nested() -> None:
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), paused_gc():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_a_program_that_turned_the_collector_off_keeps_it_off() -> None:
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_in_two_threads_resume_when_the_last_ends() -> None:
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with paused_gc():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with paused_gc():
        thread.start()
        assert entered.wait(5)
    assert not gc.isenabled()  # the other thread's pause is still on
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_json_pages_are_parsed_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def decimal(text: str) -> Decimal:
        seen.append(gc.isenabled())
        return Decimal(text)

    monkeypatch.setattr(adapters.http, "Decimal", decimal)
    response = requests.Response()
    response._content = b'{"spend": 1.25}'
    assert parse_json(response) == {"spend": Decimal("1.25")}
    assert seen == [False] and gc.isenabled()


def test_ad_slices_are_normalized_and_upserted_paused(store) -> None:
    seen: dict[str, list[bool]] = {"fetch": [], "upsert": []}

    class Watched(FakePlatform):
        def fetch_spend(self, account: AdAccount, window: Window) -> SpendSlice:
            seen["fetch"].append(gc.isenabled())
            return super().fetch_spend(account, window)

    platform = Watched({("c1", date(2026, 11, 20)): Decimal("2.50")})
    assert list(platform.streams()[1].read(None, full=False, now=NOW, partition="A1"))

    def records() -> Iterator[model.AdSpendDay]:
        account = AdAccount("A1", "Fake", "EUR", "UTC")
        seen["upsert"].append(gc.isenabled())
        yield spend_day("fake_ads", account, "c1", date(2026, 11, 20), Decimal("2.50"))

    store.upsert(records(), now=NOW)
    assert seen["fetch"] and not any(seen["fetch"])
    assert seen["upsert"] == [False] and gc.isenabled()
