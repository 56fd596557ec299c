"""The command line: exit codes, one-line errors, the demo and the report contract."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.cli import main, run
from connector.config import load_config

CRM_ROI = Path(sys.executable).parent / "crm-roi"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo")
    assert run(["demo", "--dir", str(directory), "--as-of", "2026-11-23"]) == 0
    return directory


def test_demo_prints_reports_and_leaves_a_usable_store(demo_dir: Path, capsys) -> None:
    assert (demo_dir / "demo.db").exists()
    assert (demo_dir / "config.toml").exists()


def test_demo_output(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CRM_ROI), "demo", "--dir", str(tmp_path), "--as-of", "2026-11-23"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ROI by channel" in done.stdout
    assert "paid_social" in done.stdout and "2026-Q4" in done.stdout
    assert "unmapped spend" in done.stdout
    assert "Attributed revenue by model" in done.stdout


def test_report_json_contract(demo_dir: Path, capsys) -> None:
    config = str(demo_dir / "config.toml")
    capsys.readouterr()
    assert (
        run(
            [
                "--config",
                config,
                "report",
                "--format",
                "json",
                "--by",
                "channel",
                "--as-of",
                "2026-11-23T06:00:00+00:00",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["currency"] == "USD"
    assert payload["model"] == "w_shaped"
    assert payload["period"] == "lifetime"
    assert payload["as_of"].startswith("2026-11-23T06:00")
    keys = {
        "key",
        "name",
        "cost",
        "leads",
        "opportunities",
        "won",
        "attributed_pipeline",
        "attributed_revenue",
        "roi",
        "roas",
        "cpl",
        "budget",
        "budget_consumed",
    }
    money = re.compile(r"^-?\d+\.\d{2}$")
    assert payload["rows"]
    for row in payload["rows"]:
        assert keys <= set(row)
        for field in ("cost", "attributed_pipeline", "attributed_revenue"):
            assert money.match(row[field]), (field, row[field])
        for field in ("roi", "roas", "budget_consumed"):
            assert row[field] is None or isinstance(row[field], int | float)
        assert isinstance(row["leads"], int)
    search = next(r for r in payload["rows"] if r["key"] == "paid_search")
    from decimal import Decimal

    cost, revenue = Decimal(search["cost"]), Decimal(search["attributed_revenue"])
    assert search["roi"] == pytest.approx(float((revenue - cost) / cost), abs=1e-6)


def test_report_period_model_and_csv(demo_dir: Path, capsys) -> None:
    config = str(demo_dir / "config.toml")
    capsys.readouterr()
    assert (
        run(
            [
                "--config",
                config,
                "report",
                "--format",
                "json",
                "--period",
                "2026-Q4",
                "--model",
                "markov",
                "--as-of",
                "2026-11-23T06:00:00+00:00",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["period"] == "2026-Q4" and payload["model"] == "markov"
    assert any(r["budget"] is not None for r in payload["rows"])
    assert run(["--config", config, "report", "--format", "csv", "--by", "category"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("key,name,cost,leads,opportunities,won,")
    assert {line.split(",")[0] for line in lines[1:]} <= {"strategic", "growth", "retention"}
    assert run(["--config", config, "report", "--compare-models", "--format", "json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert "markov" in compared["models"] and "w_shaped" in compared["models"]


def _cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "GADS_", "META_"))}
    full_env.pop("CRM_ROI_CONFIG", None)
    full_env.update(env or {})
    return subprocess.run(
        [str(CRM_ROI), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_config_errors_exit_2_with_one_line_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[connector]\nreporting_curency = "USD"\n')
    done = _cli(["report"], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "config.toml" in lines[0] and "reporting_curency" in lines[0]

    config.write_text('[connector]\n[attribution]\nlookback_days = "a year"\n')
    done = _cli(["report"], tmp_path)
    assert done.returncode == 2
    assert "attribution.lookback_days" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_secret_variable_exits_2_naming_key_and_variable(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path}/s.db"\n'
        '[hubspot]\nenabled = true\naccess_token_env = "HUBSPOT_TOKEN_FOR_TEST"\n'
    )
    done = _cli(["doctor"], tmp_path)
    assert done.returncode == 2
    assert "hubspot.access_token_env" in done.stdout
    assert "HUBSPOT_TOKEN_FOR_TEST" in done.stdout
    done = _cli(["doctor"], tmp_path, {"HUBSPOT_TOKEN_FOR_TEST": "pat-na1-secret-value"})
    assert done.returncode == 1 and "crm-roi init" in done.stdout  # no store yet
    assert _cli(["init"], tmp_path).returncode == 0
    done = _cli(["doctor"], tmp_path, {"HUBSPOT_TOKEN_FOR_TEST": "pat-na1-secret-value"})
    # the secret is set, but this version has no HubSpot adapter: doctor says so
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL hubspot is enabled" in done.stdout and "no hubspot adapter yet" in done.stdout
    assert "pat-na1-secret-value" not in done.stdout + done.stderr


def test_init_writes_config_and_store_then_keeps_it(tmp_path: Path) -> None:
    done = _cli(["init"], tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "config.toml").read_text()
    assert "[salesforce]" in text
    assert (tmp_path / "crm-roi.db").exists()
    # a first config pulls nothing and invents no budget, mapping or rate; every key stays
    # documented (the example rows are there, commented out)
    config = load_config(tmp_path / "config.toml", {}, resolve_secrets=True)
    assert config.enabled_sources == ()
    assert (config.budgets, config.mapping, config.fx_rates) == ([], [], [])
    assert "# [[budgets]]" in text and '# scope = "channel:paid_social"' in text
    done = _cli(["doctor"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    (tmp_path / "config.toml").write_text(text + "\n# mine\n")
    done = _cli(["init"], tmp_path)
    assert done.returncode == 0 and "keeping it" in done.stdout
    assert (tmp_path / "config.toml").read_text().endswith("# mine\n")


def test_missing_config_and_usage_errors(tmp_path: Path) -> None:
    done = _cli(["report"], tmp_path)
    assert done.returncode == 2 and "crm-roi init" in done.stderr
    (tmp_path / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path}/s.db"\n'
    )
    done = _cli(["report", "--period", "Q4-2026"], tmp_path)
    assert done.returncode == 2 and "2026-Q4" in done.stderr
    done = _cli(["report", "--by", "planet"], tmp_path)
    assert done.returncode == 2


def test_unreachable_store_is_a_failure_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[connector]\ndatabase_url = "postgresql+psycopg://crm@/none?host=/nonexistent"\n'
    )
    done = _cli(["report"], tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "database_url" in done.stderr


@pytest.mark.parametrize("command", ["init", "doctor", "report", "demo"])
def test_every_command_explains_itself_with_an_example(command: str) -> None:
    cmd = main.commands[command]
    assert cmd.help and "Example" in cmd.help
    assert cmd.get_short_help_str()


def test_config_is_accepted_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_ROI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config.toml: only --config can find it
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'[connector]\ndatabase_url = "sqlite:///{tmp_path / "s.db"}"\n')
    assert run(["init", "--config", str(config)]) == 0
    assert run(["runs", "--config", str(config), "--last", "3"]) == 0
    assert run(["webhooks", "list", f"--config={config}"]) == 0
    assert run(["--config", str(config), "report", "--config", str(config)]) == 0
    capsys.readouterr()
    assert run(["--config", str(config), "report", "--config", "other.toml"]) == 2
    assert "--config is given twice" in capsys.readouterr().err


def test_custom_model_without_weights_and_an_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[connector]\ndatabase_url = "sqlite:///{tmp_path / "s.db"}"\n')
    assert run(["--config", str(config), "init"]) == 0
    capsys.readouterr()
    assert run(["--config", str(config), "report", "--model", "custom"]) == 2
    err = capsys.readouterr().err
    assert "[attribution.custom]" in err and "ValueError" not in err
    assert run(["--config", str(config), "report", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "holds no campaigns yet" in err and "crm-roi sync" in err
    assert json.loads(out)["rows"] == []  # stdout stays what --format promises


def test_doctor_prints_config_names_in_brackets(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path}/s.db"\n'
        '[webhooks]\ngeneric_secret_env = "GENERIC_FOR_TEST"\n'
    )
    assert _cli(["init"], tmp_path).returncode == 0
    done = _cli(["doctor"], tmp_path, {"GENERIC_FOR_TEST": "s"})
    assert done.returncode == 1
    assert "enable [salesforce] or name an enabled CRM" in done.stdout, done.stdout
