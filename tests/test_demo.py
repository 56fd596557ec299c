"""What the demo shows a new user: the most severe alerts first, commands that work as
printed (venv active or not), and a world in which every attribution model shows what it
does."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from connector import demo as demo_world
from sync.demo_cli import invocation

CRM_ROI = Path(sys.executable).parent / "crm-roi"
AS_OF = "2026-11-23"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo as a user runs it: the venv's program by its path, the venv not active."""
    directory = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [str(CRM_ROI), "demo", "--dir", str(directory), "--as-of", AS_OF],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    return directory, done.stdout


def _json(directory: Path, *args: str) -> object:
    done = subprocess.run(
        [str(CRM_ROI), "--config", str(directory / "config.toml"), *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_most_severe_open_alerts_come_first_with_the_count_of_the_rest(
    demo_run: tuple[Path, str],
) -> None:
    directory, out = demo_run
    listing = _json(directory, "alerts", "--open")
    assert isinstance(listing, dict)
    alerts = listing["alerts"]
    severities = Counter(a["severity"] for a in alerts)
    assert severities["critical"] >= 1  # the world has some: they must not be hidden
    shown = re.search(r"Open alerts, most severe first \((\d+) of (\d+)\)", out)
    assert shown is not None, out
    n_shown, n_open = int(shown.group(1)), int(shown.group(2))
    assert n_open == len(alerts) and n_shown < n_open
    table = out[shown.end() : out.index("… and")]
    printed = re.findall(r"│ open\s+│ (\w+)\s+│", table)
    rank = {"critical": 0, "warning": 1, "info": 2}
    assert len(printed) == n_shown and printed == sorted(printed, key=rank.__getitem__)
    assert printed.count("critical") == min(severities["critical"], n_shown)
    rest = Counter(a["severity"] for a in alerts) - Counter(printed)
    words = ", ".join(f"{rest[s]} {s}" for s in ("critical", "warning", "info") if rest[s])
    assert f"… and {n_open - n_shown} more open ({words})" in out


def test_every_printed_command_works_without_the_venv_active(
    demo_run: tuple[Path, str], tmp_path: Path
) -> None:
    _, out = demo_run
    commands = [
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith(str(CRM_ROI)) and " --config " in line
    ]
    assert len(commands) >= 6, out  # the budget hints and the "Explore it" list
    assert not re.search(r"^\s+crm-roi ", out, re.MULTILINE)  # none needs crm-roi on PATH
    for command in commands:
        done = subprocess.run(
            shlex.split(command),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,  # another directory
            env={**os.environ, "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, (command, done.stderr)


def test_invocation_is_the_bare_name_only_when_path_finds_this_program(tmp_path: Path) -> None:
    program = tmp_path / "bin" / "crm-roi"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert invocation(str(program), path=str(program.parent)) == "crm-roi"
    other = tmp_path / "other"
    other.mkdir()
    (other / "crm-roi").write_text("#!/bin/sh\n")
    (other / "crm-roi").chmod(0o755)
    assert invocation(str(program), path=str(other)) == str(program)
    assert invocation(str(program), path="") == str(program)
    spaced = tmp_path / "my venv" / "crm-roi"
    spaced.parent.mkdir()
    spaced.write_text("#!/bin/sh\n")
    assert invocation(str(spaced), path="") == shlex.quote(str(spaced))


def test_lead_creation_is_not_the_first_touch_for_many_deals(
    demo_run: tuple[Path, str],
) -> None:
    directory, _ = demo_run
    comparison = _json(directory, "report", "--compare-models")
    assert isinstance(comparison, dict)
    rows = comparison["rows"]
    differ = [r for r in rows if r["lead_creation"] != r["first_touch"]]
    assert len(differ) >= len(rows) // 2, rows


def test_some_people_touch_several_campaigns_before_their_lead_is_created() -> None:
    from datetime import date

    from connector import model

    world = demo_world.build_world(seed=7, as_of=date(2026, 11, 23))
    created = {
        p.external_id: p.created_at
        for p in world.records
        if isinstance(p, model.Person) and p.kind == "lead"
    }
    before = Counter(
        t.person_id
        for t in world.records
        if isinstance(t, model.Touchpoint)
        and t.person_id in created
        and t.occurred_at <= created[t.person_id]
    )
    several = sum(1 for n in before.values() if n >= 2)
    assert 0.2 * len(created) < several < 0.8 * len(created)
