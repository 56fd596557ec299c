"""The store on SQLite and on a real PostgreSQL server: upserts, deletes, cursors, migrations."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text

from connector import model
from connector.store import Store, StoreError, schema

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def person(i: int, **changes: object) -> model.Person:
    values: dict[object, object] = {
        "source": "salesforce",
        "external_id": f"00Q{i:012d}",
        "kind": "lead",
        "email": f"p{i}@example.com",
        "created_at": T0 + timedelta(minutes=i),
        "lifecycle_stage": "lead",
    }
    values.update(changes)
    return model.Person(**values)  # type: ignore[arg-type]


def test_open_creates_schema_matching_the_model(store: Store) -> None:
    assert store.current_revision() == store.head_revision()
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, schema.metadata) == []


def test_upsert_counts_and_rerun_changes_nothing(store: Store) -> None:
    records = [person(i) for i in range(25)]
    first = store.upsert(records, batch_size=7)
    assert (first.total.read, first.total.inserted, first.total.updated) == (25, 25, 0)

    with store.engine.connect() as conn:
        before = conn.execute(text("SELECT external_id, synced_at FROM persons")).all()
    again = store.upsert(records, batch_size=7, now=T0 + timedelta(days=1))
    assert (again.total.inserted, again.total.updated, again.total.unchanged) == (0, 0, 25)
    with store.engine.connect() as conn:
        after = conn.execute(text("SELECT external_id, synced_at FROM persons")).all()
    assert sorted(before) == sorted(after)

    changed = [person(3, lifecycle_stage="mql"), person(30)]
    third = store.upsert([*records, *changed])
    assert (third.total.inserted, third.total.updated) == (1, 1)
    assert store.get(model.Person, "salesforce", "00Q000000000003").lifecycle_stage == "mql"
    assert store.count(model.Person) == 26


def test_last_record_for_a_key_wins_within_one_call(store: Store) -> None:
    report = store.upsert([person(1), person(1, email="new@example.com")])
    assert report.total.inserted == 1
    assert store.get(model.Person, "salesforce", "00Q000000000001").email == "new@example.com"


def test_money_round_trips_exactly_and_refuses_floats(store: Store) -> None:
    opp = model.Opportunity(
        source="salesforce",
        external_id="006A",
        amount=Decimal("1234567890.123456789"),
        currency="EUR",
        close_date=date(2026, 6, 30),
    )
    store.upsert([opp])
    got = store.get(model.Opportunity, "salesforce", "006A")
    assert got.amount == Decimal("1234567890.123456789")
    assert isinstance(got.amount, Decimal)
    # 10.50 and 10.5 are the same amount: no spurious update
    store.upsert(
        [model.Campaign(source="s", external_id="c", name="C", budgeted_cost=Decimal("10.50"))]
    )
    again = store.upsert(
        [model.Campaign(source="s", external_id="c", name="C", budgeted_cost=Decimal("10.5"))]
    )
    assert again.total.updated == 0
    with pytest.raises(Exception, match="float"):
        store.upsert([model.Campaign(source="s", external_id="f", name="F", budgeted_cost=0.1)])  # type: ignore[arg-type]
    assert store.get(model.Campaign, "s", "f") is None


def test_times_are_stored_in_utc_and_naive_times_refused(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    store.upsert([person(1, created_at=datetime(2026, 3, 1, 18, 0, tzinfo=tokyo))])
    got = store.get(model.Person, "salesforce", "00Q000000000001")
    assert got.created_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert got.created_at.tzinfo is UTC
    with pytest.raises(Exception, match="naive"):
        store.upsert([person(2, created_at=datetime(2026, 3, 1))])


def test_soft_delete_and_reappearance(store: Store) -> None:
    store.upsert([person(i) for i in range(3)])
    assert store.mark_deleted(model.Person, "salesforce", ["00Q000000000001"], at=T0) == 1
    assert store.mark_deleted(model.Person, "salesforce", ["00Q000000000001"], at=T0) == 0
    assert store.count(model.Person) == 2
    assert store.count(model.Person, include_deleted=True) == 3
    deleted = store.get(model.Person, "salesforce", "00Q000000000001")
    assert deleted.deleted_at == T0
    # upstream sends it again (undeleted from the recycle bin): it is live again
    store.upsert([person(1)])
    assert store.count(model.Person) == 3


def test_sources_do_not_collide(store: Store) -> None:
    store.upsert([person(1), person(1, source="hubspot")])
    assert store.count(model.Person) == 2
    assert store.count(model.Person, source="hubspot") == 1


def test_cursors_and_run_history(store: Store) -> None:
    assert store.get_cursor("salesforce", "Lead") is None
    store.set_cursor("salesforce", "Lead", "2026-03-01T00:00:00Z")
    store.set_cursor("salesforce", "Lead", "2026-03-02T00:00:00Z")
    store.set_cursor("meta_ads", "insights", "2026-03-01", partition="act_1")
    assert store.get_cursor("salesforce", "Lead") == "2026-03-02T00:00:00Z"
    assert store.get_cursor("meta_ads", "insights", "act_1") == "2026-03-01"
    run = store.start_run("sync")
    store.finish_run(run, "ok", {"salesforce.Lead": {"read": 3}}, [], api_calls=4)
    with store.engine.connect() as conn:
        row = conn.execute(select(schema.sync_runs)).one()
    assert row.status == "ok" and row.counts == {"salesforce.Lead": {"read": 3}}
    assert row.api_calls == 4 and row.finished_at >= row.started_at


def test_cursor_commits_with_records_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError), store.begin() as conn:
        store.upsert([person(1)], connection=conn)
        store.set_cursor("salesforce", "Lead", "2026-03-02", connection=conn)
        raise RuntimeError("killed between upsert and commit")
    assert store.count(model.Person) == 0
    assert store.get_cursor("salesforce", "Lead") is None


def test_upgrade_from_first_revision_keeps_data(store_url: str) -> None:
    old = Store(store_url)
    old.upgrade("0001")
    assert old.current_revision() == "0001"
    with old.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO persons (source, external_id, kind, email, lifecycle_stage, "
                "synced_at) VALUES ('salesforce', '00Q1', 'lead', 'a@example.com', 'mql', "
                "'2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sync_runs (command, started_at, status, counts, errors) "
                "VALUES ('sync', '2026-01-01 00:00:00', 'ok', '{}', '[]')"
            )
        )
    old.close()
    with Store.open(store_url) as new:
        assert new.current_revision() == new.head_revision()
        got = new.get(model.Person, "salesforce", "00Q1")
        assert got is not None and got.email == "a@example.com" and got.lifecycle_stage == "mql"
        with new.engine.connect() as conn:
            run = conn.execute(select(schema.sync_runs)).one()
        assert run.command == "sync" and run.api_calls == 0
        with new.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, schema.metadata) == []


def test_upgrade_rekeys_ad_spend_day_major_and_a_reread_replaces(store_url: str) -> None:
    old = Store(store_url)
    old.upgrade("0003")
    with old.engine.begin() as conn:
        for campaign, day, spend in (("111", "2026-11-20", "5.5"), ("222", "2026-11-21", "7")):
            conn.execute(
                text(
                    "INSERT INTO ad_spend_days (source, external_id, account_id, ad_campaign_id, "
                    "day, spend, currency, impressions, clicks, conversions, synced_at) VALUES "
                    "('google_ads', :key, '1234567890', :campaign, :day, :spend, 'USD', 10, 1, "
                    "'0', '2026-11-22 00:00:00.000000')"
                ),
                {
                    "key": f"1234567890:{campaign}:{day}",
                    "campaign": campaign,
                    "day": date.fromisoformat(day),
                    "spend": spend,
                },
            )
    old.close()
    with Store.open(store_url) as new:
        keys = {r.external_id: r for r in new.iter_records(model.AdSpendDay)}
        assert sorted(keys) == ["1234567890:2026-11-20:111", "1234567890:2026-11-21:222"]
        assert keys["1234567890:2026-11-20:111"].spend == Decimal("5.5")
        # the next sync's re-read of the same day replaces the migrated row
        again = model.AdSpendDay(
            source="google_ads",
            external_id=model.AdSpendDay.key("1234567890", "111", date(2026, 11, 20)),
            account_id="1234567890",
            ad_campaign_id="111",
            day=date(2026, 11, 20),
            spend=Decimal("6"),
            currency="USD",
            impressions=10,
            clicks=1,
        )
        report = new.upsert([again])
        assert (report.total.inserted, report.total.updated) == (0, 1)
        assert new.count(model.AdSpendDay) == 2
        with new.engine.begin() as conn:  # and back: the old key format and index return
            command.downgrade(new._alembic_config(conn), "0003")
        with new.engine.connect() as conn:
            old_keys = conn.execute(text("SELECT external_id FROM ad_spend_days")).scalars()
            assert sorted(old_keys) == ["1234567890:111:2026-11-20", "1234567890:222:2026-11-21"]


def test_bad_urls_are_explained() -> None:
    with pytest.raises(StoreError, match="database_url"):
        Store("mysql://u@h/db")
    with pytest.raises(StoreError, match="database_url"):
        Store("not a url")


@pytest.mark.postgres
def test_unreachable_postgres_names_the_url_without_password(tmp_path) -> None:
    url = f"postgresql+psycopg://crm:hunter2secret@/nowhere?host={tmp_path}"
    with pytest.raises(StoreError) as info:
        Store.open(url)
    assert "hunter2secret" not in str(info.value)
    assert "database_url" in str(info.value)


_emails = st.one_of(st.none(), st.emails())
_person_values = st.tuples(
    _emails,
    st.sampled_from(model.LIFECYCLE_STAGES),
    st.integers(0, 10**6),
    st.booleans(),
)
_batches = st.dictionaries(st.integers(0, 40), _person_values, max_size=60).map(
    lambda by_id: [
        person(
            i,
            email=email,
            lifecycle_stage=stage,
            created_at=T0 + timedelta(minutes=minutes),
            deleted_at=T0 if deleted else None,
        )
        for i, (email, stage, minutes, deleted) in by_id.items()
    ]
)


@pytest.fixture(scope="module")
def scratch_store(tmp_path_factory: pytest.TempPathFactory):
    with Store.open(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}") as opened:
        yield opened


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=_batches, batch_size=st.integers(1, 20), previous=_batches)
def test_property_rerunning_an_upsert_changes_nothing(
    scratch_store: Store, batch, batch_size, previous
) -> None:
    """Whatever the store held before, applying a batch twice equals applying it once, and
    the store then holds exactly the batch's values for its keys."""
    store = scratch_store
    with store.begin() as conn:
        conn.execute(schema.table_for(model.Person).delete())
    store.upsert(previous)
    first = store.upsert(batch, batch_size=batch_size)
    keys = {(p.source, p.external_id) for p in batch}
    old = {(p.source, p.external_id): p for p in previous}
    assert first.total.inserted == len(keys - old.keys())
    assert first.total.updated == sum(
        1 for p in batch if (p.source, p.external_id) in old and old[(p.source, p.external_id)] != p
    )
    snapshot = sorted(map(repr, store.iter_records(model.Person, include_deleted=True)))
    again = store.upsert(batch, batch_size=batch_size)
    assert again.total.inserted == 0 and again.total.updated == 0
    assert sorted(map(repr, store.iter_records(model.Person, include_deleted=True))) == snapshot
    stored = {
        (p.source, p.external_id): p for p in store.iter_records(model.Person, include_deleted=True)
    }
    for p in batch:
        assert stored[(p.source, p.external_id)] == p


def test_upgrade_forgets_google_keys_of_stored_lead_events(store_url: str) -> None:
    old = Store(store_url)
    old.upgrade("0005")
    lead = {"lead_id": "L1", "google_key": "the-shared-key", "user_column_data": []}
    with old.engine.begin() as conn:
        for provider, body in (
            ("google-ads", json.dumps(lead)),
            ("google-ads", "{not json google_key"),
            ("generic", json.dumps({"email": "a@b.c", "google_key": "theirs"})),
        ):
            conn.execute(
                insert(schema.webhook_events).values(
                    provider=provider,
                    dedup_key=body[:20],
                    body=body,
                    headers={},
                    received_at=datetime(2026, 12, 1, tzinfo=UTC),
                    status="done",
                    attempts=1,
                )
            )
    old.close()
    with Store.open(store_url) as new, new.engine.connect() as conn:
        bodies = conn.execute(
            select(schema.webhook_events.c.body).order_by(schema.webhook_events.c.id)
        ).scalars()
        google, unreadable, generic = list(bodies)
    assert json.loads(google) == {"lead_id": "L1", "user_column_data": []}
    assert unreadable == "{not json google_key"  # left as it was, not lost
    assert "theirs" in generic  # another provider's field is its own business
