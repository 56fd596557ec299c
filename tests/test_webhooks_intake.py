"""The intake's group commit: leaders and followers, exact "new or duplicate" answers, and
no request left waiting with nobody to write its event."""

from __future__ import annotations

import random
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connector.store import Store, schema
from webhooks import events
from webhooks.intake import Intake, IntakeUnavailable, Stored
from webhooks.providers.base import Item

T = schema.webhook_events


def _stored_keys(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(T.c.provider, T.c.dedup_key))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_requests_store_each_key_once_and_say_so(store: Store, seed: int) -> None:
    """Many threads, overlapping keys, batches of several items: every key is stored once,
    and exactly one request is told it was new."""
    rng = random.Random(seed)
    plans = [
        [Item(f"k{rng.randrange(60)}", f'{{"n": {n}}}') for _ in range(rng.randint(1, 3))]
        for n in range(120)
    ]
    intake = Intake(store).start()
    answers: dict[int, Stored] = {}
    lock = threading.Lock()

    def send(n: int) -> None:
        stored = intake.store_items("generic", plans[n], {"Content-Type": "application/json"})
        with lock:
            answers[n] = stored

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    intake.close()

    distinct = {item.dedup_key for plan in plans for item in plan}
    assert len(answers) == len(plans)
    assert sum(a.created for a in answers.values()) == len(distinct)
    assert sum(a.created + a.duplicates for a in answers.values()) == sum(map(len, plans))
    assert sorted(_stored_keys(store)) == sorted(("generic", k) for k in distinct)
    assert intake.commits < len(plans)  # requests shared commits
    assert intake.stored == len(distinct)


def test_insert_many_tells_new_from_stored_across_chunks(tmp_path: Any) -> None:
    """More rows than one statement takes, keys already stored among them, and a key twice
    in one call: the flags are exact (SQLite's rowid range path)."""
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        at = datetime(2026, 11, 23, tzinfo=UTC)
        with store.engine.connect() as conn:
            inserter = events.Inserter(conn)
            with conn.begin():
                inserter.insert_many(
                    conn, [("meta", [Item(f"{i}", "{}") for i in range(0, 700, 7)], {}, at)]
                )
            requests = [
                ("meta", [Item(f"{i}", "{}") for i in range(r * 100, r * 100 + 100)], {}, at)
                for r in range(7)
            ] + [("meta", [Item("5", "{}"), Item("701", "{}")], {}, at)]
            with conn.begin():
                flags = inserter.insert_many(conn, requests)
        for r in range(7):
            assert flags[r] == [i % 7 != 0 for i in range(r * 100, r * 100 + 100)]
        assert flags[7] == [False, True]  # "5" was taken by request 0 of the same call
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(T)).scalar() == 701


def test_a_follower_that_gives_up_strands_nobody(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a slow commit runs, a follower's wait runs out: it gets IntakeUnavailable (the
    platform delivers again), its event is still written, and the next requests go on."""
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        intake = Intake(store, wait=0.2).start()
        real = events.Inserter.insert_many
        slow = threading.Event()
        entered = threading.Event()

        def insert_many(self: events.Inserter, conn: Any, requests: Any) -> Any:
            if slow.is_set():
                entered.set()
                time.sleep(0.6)
            return real(self, conn, requests)

        monkeypatch.setattr(events.Inserter, "insert_many", insert_many)
        slow.set()
        outcome: dict[str, Any] = {}

        def leader() -> None:
            outcome["leader"] = intake.store_items("generic", [Item("a", "{}")], {})

        t = threading.Thread(target=leader)
        t.start()
        assert entered.wait(5)
        slow.clear()
        with pytest.raises(IntakeUnavailable, match="deliver again"):
            intake.store_items("generic", [Item("b", "{}")], {})  # follower: gives up
        t.join()
        assert outcome["leader"] == Stored(1, 0)
        # the next request leads, and writes the abandoned "b" along with its own
        assert intake.store_items("generic", [Item("c", "{}")], {}) == Stored(1, 0)
        assert sorted(k for _, k in _stored_keys(store)) == ["a", "b", "c"]
        # the redelivery of "b" is a duplicate, answered 200 by the app
        assert intake.store_items("generic", [Item("b", "{}")], {}) == Stored(0, 1)
        intake.close()


def test_a_failed_commit_fails_its_requests_only(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        intake = Intake(store).start()
        real = events.Inserter.insert_many
        broken = [True]

        def insert_many(self: events.Inserter, conn: Any, requests: Any) -> Any:
            if broken[0]:
                raise OSError("disk I/O error")
            return real(self, conn, requests)

        monkeypatch.setattr(events.Inserter, "insert_many", insert_many)
        with pytest.raises(IntakeUnavailable, match="not available"):
            intake.store_items("generic", [Item("a", "{}")], {})
        broken[0] = False
        assert intake.store_items("generic", [Item("a", "{}")], {}) == Stored(1, 0)
        intake.close()


def test_requests_after_close_are_refused_and_queued_ones_are_written(tmp_path: Any) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        intake = Intake(store).start()
        assert intake.store_items("generic", [Item("a", "{}")], {}) == Stored(1, 0)
        intake.close()
        with pytest.raises(IntakeUnavailable, match="shutting down"):
            intake.store_items("generic", [Item("b", "{}")], {})
        assert [k for _, k in _stored_keys(store)] == ["a"]


def test_the_intake_connection_goes_back_to_the_pool_as_it_came(tmp_path: Any) -> None:
    """The intake runs its connection fsynced and in autocommit; the store's other users get
    the store's own settings back."""
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        intake = Intake(store).start()
        intake.store_items("generic", [Item("a", "{}")], {})
        intake.close()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.connection.dbapi_connection.isolation_level is not None  # type: ignore[union-attr]


_keys = st.sampled_from([f"k{i}" for i in range(12)])
_request = st.tuples(st.sampled_from(["meta", "generic"]), st.lists(_keys, min_size=1, max_size=4))


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(_request, min_size=1, max_size=6), min_size=1, max_size=6))
def test_insert_many_flags_match_a_model_of_the_store(batches: Any) -> None:
    """Whatever mix of new keys, stored keys and repeats a batch holds, an item is "new"
    exactly when its key was neither stored nor taken earlier in the batch, and re-running
    every batch stores nothing more."""
    at = datetime(2026, 11, 23, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{tmp}/s.db") as store:
        stored: set[tuple[str, str]] = set()
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # as the intake runs
            inserter = events.Inserter(conn)
            for batch in batches:
                requests = [(p, [Item(k, "{}") for k in keys], {}, at) for p, keys in batch]
                flags = inserter.insert_many(conn, requests)
                expected = []
                for provider, keys in batch:
                    row = []
                    for key in keys:
                        row.append((provider, key) not in stored)
                        stored.add((provider, key))
                    expected.append(row)
                assert flags == expected
            for batch in batches:
                requests = [(p, [Item(k, "{}") for k in keys], {}, at) for p, keys in batch]
                assert not any(map(any, inserter.insert_many(conn, requests)))
        assert sorted(_stored_keys(store)) == sorted(stored)
