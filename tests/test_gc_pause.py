"""The collector pause: overlapping pauses across threads, a program's own gc.disable() kept,
and the bulk paths (JSON pages, each platform's spend rows, store upserts) running paused."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

import adapters.http
from adapters import google_ads, linkedin_ads, meta_ads
from adapters.ad_windows import AdAccount, spend_day
from adapters.http import parse_json
from connector import model
from connector.gc_pause import paused_gc

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


class _Watched(list):
    """A page of rows that notes whether the collector runs while it is read."""

    def __init__(self, rows: list[Any]) -> None:
        super().__init__(rows)
        self.collector_on: list[bool] = []

    def __iter__(self) -> Iterator[Any]:
        self.collector_on.append(gc.isenabled())
        return super().__iter__()


@pytest.mark.parametrize("platform", ["google_ads", "meta_ads", "linkedin_ads"])
def test_each_platforms_rows_are_normalized_paused(platform: str) -> None:
    account = AdAccount("1234567890", "Acme", "EUR", "UTC")
    if platform == "google_ads":
        body = _Watched([{"results": []}])
        google_ads.spend_rows(body, account)
    elif platform == "meta_ads":
        body = _Watched([])
        meta_ads.spend_rows(body, account, ("lead",))
    else:
        body = _Watched([])
        linkedin_ads.spend_rows(body, account)
    assert body.collector_on == [False] and gc.isenabled()


def test_store_upserts_run_paused(store) -> None:
    seen: list[bool] = []

    def records() -> Iterator[model.AdSpendDay]:
        account = AdAccount("A1", "Fake", "EUR", "UTC")
        seen.append(gc.isenabled())
        yield spend_day("fake_ads", account, "c1", date(2026, 11, 20), Decimal("2.50"))

    store.upsert(records(), now=NOW)
    assert seen == [False] and gc.isenabled()
