"""Issue 13 (Low): a store URL that is wrong gets one line naming ``connector.database_url``,
only ``init`` and ``sync`` create a store, and a killed sync run is called interrupted."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from connector.cli import run
from connector.config import Config, load_config
from connector.store import Store, schema
from sync.pipeline import run_sync

READ_ONLY_COMMANDS = [
    ["report"],
    ["runs"],
    ["webhooks", "list"],
    ["webhooks", "replay", "--dead"],
    ["expenses", "list"],
    ["expenses", "add", "--campaign", "c", "--amount", "1", "--currency", "USD"],
    ["budget"],
    ["alerts"],
    ["ad-campaigns"],
]


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[connector]\ndatabase_url = "{url}"\n')
    return path


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_commands_that_read_never_create_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "typo" / "crm-roi.db"
    config = _config(tmp_path, f"sqlite:///{missing}")
    assert run(["--config", str(config), *command]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "no store at" in line and "connector.database_url" in line and "crm-roi init" in line
    assert not missing.parent.exists()


def test_doctor_says_there_is_no_store_and_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "crm-roi.db"
    config = _config(tmp_path, f"sqlite:///{missing}")
    assert run(["--config", str(config), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL store: there is no store at" in out and "crm-roi init" in out
    assert not missing.parent.exists()
    # init creates it (and so does sync)
    assert run(["--config", str(config), "init"]) == 0
    assert missing.is_file()


@pytest.mark.parametrize(
    ("make", "url", "expected"),
    [
        (lambda p: (p / "afile").write_text(""), "sqlite:///{p}/afile/x.db", "is a file|no store"),
        (
            lambda p: (p / "notdb").write_text("not a database " * 20),
            "sqlite:///{p}/notdb",
            "file is not a database",
        ),
        (lambda p: None, "sqlite:///{p}", "names the folder"),
        (lambda p: None, "postgresql+psycopg://u:pw@db.example:abc/x", "not a database URL"),
        (lambda p: None, "postgresql+psycopg://u:pw@[::1:5432/x", "not a database URL"),
        (lambda p: None, "postgresql+psycopg://u@127.0.0.1:99999/x", "invalid port"),
    ],
)
def test_a_wrong_store_url_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, url: str, expected: str
) -> None:
    make(tmp_path)
    config = _config(tmp_path, url.format(p=tmp_path))
    for command, expect in zip((["init"], ["report"]), expected.split("|") * 2, strict=False):
        assert run(["--config", str(config), *command]) == 1
        line = _one_line(capsys.readouterr().err)
        assert expect in line and "connector.database_url" in line, line
        assert "sqlalche.me" not in line and "Error:" not in line and "pw" not in line


def test_runs_last_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    assert run(["--config", str(config), "init"]) == 0
    assert run(["--config", str(config), "runs", "--last", "-1"]) == 2
    assert run(["--config", str(config), "runs", "--last", "0"]) == 2


_HOLD_A_RUN = """
import sys, time
from connector.store import Store
from sync.lock import SyncLock
store = Store.open(sys.argv[1])
lock = SyncLock(store, "sync").acquire()
store.start_run("sync")
print("running", flush=True)
time.sleep(120)
"""


def test_a_run_killed_with_sigkill_is_interrupted_and_doctor_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = _config(tmp_path, url)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_RUN, url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "running"
        run(["--config", str(config), "doctor"])
        assert "sync run 1 is running since" in capsys.readouterr().out
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    run(["--config", str(config), "doctor"])
    out = capsys.readouterr().out
    assert "WARN sync run 1" in out and "no process holds the sync lock" in out
    # the next run takes the lock and calls the dead one what it is
    with Store.open(url) as store:
        run_sync(store, _load(config), sources=[], push=False)
    assert run(["--config", str(config), "runs", "--format", "json"]) == 0
    runs = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert runs[1]["status"] == "interrupted" and runs[2]["status"] == "ok"
    assert "killed" in runs[1]["errors"][0]
    assert run(["--config", str(config), "runs"]) == 0
    assert "interrupted" in capsys.readouterr().out
    with Store.open(url) as store, store.begin() as conn:  # doctor reads the last run
        conn.execute(
            insert(schema.sync_runs).values(
                command="sync",
                started_at=datetime.now(UTC),
                status="interrupted",
                counts={},
                errors=["interrupted: host pid 1 stopped without finishing (killed)"],
                api_calls=0,
                host="h",
                pid=1,
            )
        )
    run(["--config", str(config), "doctor"])
    assert "WARN sync run 3" in capsys.readouterr().out


def _load(path: Path) -> Config:
    return load_config(path, {}, resolve_secrets=False)


def test_sql_parameters_never_reach_logs_or_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        values = dict(
            provider="google-ads",
            dedup_key="lead-1",
            body='{"email":"ann@example.com"}',
            headers={},
            status="pending",
            attempts=0,
            received_at=datetime.now(UTC),
            next_attempt_at=datetime.now(UTC),
        )
        with store.begin() as conn:
            conn.execute(insert(schema.webhook_events).values(**values))
        with pytest.raises(Exception) as exc, store.begin() as conn:
            conn.execute(insert(schema.webhook_events).values(**values))  # duplicate key
    assert caplog.records, "the sqlalchemy loggers were on"
    assert "ann@example.com" not in caplog.text and "ann@example.com" not in str(exc.value)
