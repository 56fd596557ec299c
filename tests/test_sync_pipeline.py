"""The sync pipeline on the sample CRM: order of stages, idempotence, failures, crash safety."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.base import Batch
from adapters.sample_crm import SampleCrm, SampleSource, SampleWriter
from connector import model
from connector.alerts import log as alert_log
from connector.config import parse_config
from connector.demo import build_world
from connector.store import Store, schema
from sync.pipeline import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, run_sync

AS_OF = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_records() -> list[model.Record]:
    return build_world(seed=3, as_of=AS_OF, scale=0.08).records


@pytest.fixture
def crm(tmp_path: Path, world_records: list[model.Record]) -> Iterator[SampleCrm]:
    made = SampleCrm.create(tmp_path / "crm.db", world_records, at=NOW - timedelta(hours=1))
    yield made
    made.close()


def config_for(url: str):
    return parse_config({"connector": {"database_url": url}}, env={})


def snapshot(store: Store) -> dict[str, list[str]]:
    """Every live and deleted record plus the cursors: the state two runs must agree on."""
    state = {
        t.entity: sorted(map(repr, store.iter_records(t, include_deleted=True)))
        for t in model.ENTITY_TYPES
    }
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                schema.sync_cursors.c.source,
                schema.sync_cursors.c.stream,
                schema.sync_cursors.c.value,
            )
        ).all()
    state["cursors"] = sorted(map(repr, rows))
    return state


def test_sync_pulls_everything_and_a_rerun_changes_nothing(
    store: Store, crm: SampleCrm, world_records
) -> None:
    config = config_for(store.url)
    source = [("demo", lambda: SampleSource(crm, page_size=500))]
    first = run_sync(store, config, sources=source, push=False, now=NOW)
    assert first.exit_code == EXIT_OK, first.errors()
    assert store.count(model.Person) == sum(isinstance(r, model.Person) for r in world_records)
    assert sum(s.inserted for s in first.streams) == len(world_records)
    before = snapshot(store)

    again = run_sync(store, config, sources=source, push=False, now=NOW + timedelta(minutes=30))
    assert again.exit_code == EXIT_OK
    assert sum(s.inserted + s.updated for s in again.streams) == 0
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k != "cursors"} == {
        k: v for k, v in before.items() if k != "cursors"
    }

    # one campaign renamed upstream: exactly one update on the next run
    campaign = next(r for r in world_records if isinstance(r, model.Campaign))
    renamed = model.Campaign(
        **{**campaign.__dict__}
        if hasattr(campaign, "__dict__")
        else {f: getattr(campaign, f) for f in model.Campaign.field_names()}
    )
    renamed.name = campaign.name + " (renamed)"
    crm.put([renamed], at=NOW + timedelta(minutes=40))
    third = run_sync(store, config, sources=source, push=False, now=NOW + timedelta(hours=1))
    assert sum(s.updated for s in third.streams) == 1
    assert store.get(model.Campaign, campaign.source, campaign.external_id).name.endswith(
        "(renamed)"
    )
    with store.engine.connect() as conn:
        runs = conn.execute(select(schema.sync_runs).order_by(schema.sync_runs.c.id)).all()
    assert [r.status for r in runs] == ["ok", "ok", "ok"]
    assert runs[0].counts["demo.person"]["inserted"] > 0


class BrokenStream:
    name = "opportunity"
    record_type = model.Opportunity
    cursor_field = None

    def partitions(self) -> Sequence[str]:
        return [""]

    def read(self, cursor, *, full, now, partition="") -> Iterator[Batch]:
        raise RuntimeError("INVALID_FIELD: No such column 'Amount__x' on entity 'Opportunity'")
        yield  # pragma: no cover


class BrokenSource(SampleSource):
    name = "broken"

    def streams(self):
        return [BrokenStream()]


def test_a_failing_source_is_recorded_and_the_others_land(store: Store, crm: SampleCrm) -> None:
    config = config_for(store.url)

    def cannot_log_in():
        raise RuntimeError("INVALID_LOGIN: Invalid username, password, security token")

    report = run_sync(
        store,
        config,
        push=False,
        now=NOW,
        sources=[
            ("salesforce", cannot_log_in),
            ("broken", lambda: BrokenSource(crm)),
            ("demo", lambda: SampleSource(crm)),
        ],
    )
    assert report.exit_code == EXIT_PARTIAL
    assert store.count(model.Campaign) > 0
    errors = report.errors()
    assert any("INVALID_LOGIN" in e for e in errors)
    assert any(e.startswith("broken.opportunity: INVALID_FIELD") for e in errors)
    with store.engine.connect() as conn:
        run = conn.execute(select(schema.sync_runs)).one()
    assert run.status == "partial" and len(run.errors) == 2


def test_compute_failure_means_no_push(store: Store, crm: SampleCrm) -> None:
    pushed: list[str] = []

    def bad_compute(ctx) -> None:
        raise ValueError("no dated rate for EUR on 2025-11-24")

    report = run_sync(
        store,
        config_for(store.url),
        now=NOW,
        sources=[("demo", lambda: SampleSource(crm))],
        compute_steps=[bad_compute],
        push_steps=[lambda ctx: pushed.append("x")],
    )
    assert report.exit_code == EXIT_FAILED
    assert pushed == []
    assert "no dated rate" in report.compute_error


def _driver(url: str, crm_path: Path, failpoint: str | None, *, push: bool = False) -> int:
    env = {k: v for k, v in os.environ.items() if k != "CRM_ROI_FAILPOINT"}
    env["WRITER_BATCH"] = "10"
    if failpoint:
        env["CRM_ROI_FAILPOINT"] = failpoint
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.sync_driver",
            url,
            str(crm_path),
            NOW.isoformat(),
            *([] if push else ["--no-push"]),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode


@pytest.mark.parametrize("failpoint", ["before-cursor:3", "batch-committed:5", "after-pull"])
def test_killed_sync_then_rerun_equals_a_clean_run(
    store_url: str, tmp_path: Path, world_records, failpoint: str, request: pytest.FixtureRequest
) -> None:
    crm_path = tmp_path / "crm.db"
    SampleCrm.create(crm_path, world_records, at=NOW - timedelta(hours=1)).close()
    assert _driver(store_url, crm_path, failpoint) == -9  # SIGKILL, as a power cut
    assert _driver(store_url, crm_path, None) == 0
    if store_url.startswith("postgresql"):
        server = request.getfixturevalue("postgres_server")
        clean_url = server.create_database(f"clean_{abs(hash((failpoint, str(tmp_path))))}")
    else:
        clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    assert _driver(clean_url, crm_path, None) == 0
    with Store.open(store_url) as crashed, Store.open(clean_url) as clean:
        assert snapshot(crashed) == snapshot(clean)


def test_demo_sample_writer_round_trip(crm: SampleCrm) -> None:
    writer = SampleWriter(crm)
    assert writer.create_task(
        __import__("adapters.base", fromlist=["AlertTask"]).AlertTask(
            alert_key="k1", campaign_id="701", owner_id="005", subject="s", description="d"
        )
    ) == writer.create_task(
        __import__("adapters.base", fromlist=["AlertTask"]).AlertTask(
            alert_key="k1", campaign_id="701", owner_id="005", subject="s", description="d"
        )
    )
    assert len(crm.tasks()) == 1
    writer = SampleWriter(crm)
    assert writer.complete_task("00T000000000000001", "Resolved: over") is None
    assert crm.task_states()["k1"] == ("Completed", "d\n\nResolved: over")
    assert "already completed" in (writer.complete_task("00T000000000000001", "x") or "")
    assert "no longer exists" in (writer.complete_task("00T000000000000099", "x") or "")


def test_a_sample_crm_from_an_older_version_gains_task_status(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, alert_key TEXT NOT NULL "
        "UNIQUE, what_id TEXT, owner_id TEXT, subject TEXT NOT NULL, description TEXT NOT NULL,"
        " created_at TEXT NOT NULL);"
        "INSERT INTO tasks VALUES (1, 'k', '701', NULL, 's', 'd', '2026-01-01');"
    )
    old.commit()
    old.close()
    crm = SampleCrm(tmp_path / "old.db")
    try:
        assert crm.task_states() == {"k": ("Not Started", "d")}
    finally:
        crm.close()


def test_alerts_that_resolve_complete_their_crm_tasks_once(
    store: Store, crm: SampleCrm, world_records: list[model.Record]
) -> None:
    config = config_for(store.url)

    def sync(at: datetime) -> None:
        report = run_sync(
            store,
            config,
            now=at,
            sources=[("demo", lambda: SampleSource(crm))],
            writer=SampleWriter(crm),
        )
        assert report.exit_code == EXIT_OK

    sync(NOW)
    tasks = crm.task_states()
    assert tasks and {status for status, _ in tasks.values()} == {"Not Started"}
    # the budgets grow a hundredfold: every threshold crossed so far clears
    budgets = [r for r in world_records if isinstance(r, model.Budget)]
    crm.put([replace(b, amount=b.amount * 100) for b in budgets], at=NOW + timedelta(minutes=5))
    sync(NOW + timedelta(hours=1))
    alerts = {a.firing_key: a for a in alert_log.list_alerts(store)}
    after = crm.task_states()
    completed = {key for key, (status, _) in after.items() if status == "Completed"}
    resolved_with_task = {key for key in tasks if alerts[key].state == "resolved"}
    assert completed and completed == resolved_with_task
    for key in completed:
        assert after[key][1].startswith(tasks[key][1] + "\n\nResolved: ")
        assert after[key][1].endswith("The condition cleared (2026-11-23 07:00 UTC).")
    sync(NOW + timedelta(hours=2))
    assert crm.task_states() == after, "announced once: nothing changes on the next run"


@pytest.mark.parametrize("failpoint", ["writeback-call-done:2", "alert-sent:1"])
def test_killed_during_push_then_rerun_writes_nothing_twice(
    tmp_path: Path, world_records, failpoint: str
) -> None:
    crashed_crm, clean_crm = tmp_path / "crashed-crm.db", tmp_path / "clean-crm.db"
    for path in (crashed_crm, clean_crm):
        SampleCrm.create(path, world_records, at=NOW - timedelta(hours=1)).close()
    crashed_url = f"sqlite:///{tmp_path / 'crashed.db'}"
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    assert _driver(crashed_url, crashed_crm, failpoint, push=True) == -9
    assert _driver(crashed_url, crashed_crm, None, push=True) == 0
    assert _driver(clean_url, clean_crm, None, push=True) == 0

    crashed, clean = SampleCrm(crashed_crm), SampleCrm(clean_crm)
    try:
        assert crashed.campaign_fields() == clean.campaign_fields()
        assert len(clean.campaign_fields()) > 10  # several write-back calls of 10
        assert crashed.tasks() == clean.tasks() and clean.tasks()  # alerts raised tasks
        writes = crashed.db.execute("SELECT max(writes) FROM campaign_roi").fetchone()[0]
        assert writes == 1  # no campaign written twice
    finally:
        crashed.close()
        clean.close()
    with Store.open(crashed_url) as a, Store.open(clean_url) as b:
        assert snapshot(a) == snapshot(b)
        with a.engine.connect() as ca, b.engine.connect() as cb:
            alerts_a = ca.execute(
                select(
                    schema.alerts.c.dedup_key, schema.alerts.c.state, schema.alerts.c.crm_task_id
                )
            ).all()
            alerts_b = cb.execute(
                select(
                    schema.alerts.c.dedup_key, schema.alerts.c.state, schema.alerts.c.crm_task_id
                )
            ).all()
        assert sorted(alerts_a) == sorted(alerts_b)
