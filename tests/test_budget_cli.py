"""``crm-roi budget``, ``expenses`` and ``alerts`` on the command line: formats, exit codes,
one-line errors, imports that apply all or nothing, and the demo's budget part."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import responses

from connector import model
from connector.alerts.cli import alerts
from connector.alerts.cli import doctor_checks as alert_checks
from connector.budgets.cli import budget, doctor_checks
from connector.cli import main, run
from connector.config import load_config
from connector.expenses.cli import expenses
from connector.store import Store
from sync.alerts.cli import alerts_run
from sync.alerts.cli import doctor_checks as channel_checks
from tests.budget_world import ad_campaign, campaign, days, spend
from tests.budget_world import budget as budget_record

AS_OF = "2026-10-11T06:00:00+00:00"
HOOK_URL = "https://alerts.example.com/hook"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    path = tmp_path / "config.toml"
    path.write_text(
        "[connector]\n"
        f'database_url = "sqlite:///{db}"\n'
        "[[budgets]]\n"
        'scope = "channel:paid_social"\nperiod = "2026-Q4"\namount = "1000"\n'
        "[alerts]\n"
        f'webhook_url = "{HOOK_URL}"\n'
        "health = false\n"
        "[expenses]\n"
        'auto_approve_under = "100"\n',
        encoding="utf-8",
    )
    with Store.open(f"sqlite:///{db}") as store:
        store.upsert(
            [
                campaign("C1", ad_campaign_ref="AD1", start_date=date(2026, 10, 1)),
                ad_campaign("AD1"),
                *spend("AD1", days(date(2026, 10, 1), date(2026, 10, 10)), "90"),
                budget_record("channel:display", "2026-Q3", "10"),
            ]
        )
    return path


def cli(config_path: Path, *args: str) -> int:
    return run(["--config", str(config_path), *args])


def test_budget_table_json_and_csv(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "budget", "--as-of", AS_OF) == 0
    out = capsys.readouterr().out
    assert "channel:paid_social" in out and "█" in out and "2026-10-12" in out
    assert "channel:display" not in out  # a Q3 budget is not running on Oct 11
    assert cli(config_path, "budget", "--as-of", AS_OF, "--format", "json") == 0
    payload = json.loads(capsys.readouterr().out)
    (row,) = payload["rows"]
    assert payload["period"] == "current" and payload["currency"] == "USD"
    assert row["budget"] == "1000.00" and row["cost"] == "900.00"
    assert row["budget_consumed"] == 0.9 and row["status"] == "at_risk"
    assert row["forecast_cost"] == "8280.00"  # 900 + 90 x 82
    assert row["exhausted_on"] == "2026-10-12"
    assert cli(config_path, "budget", "--period", "2026-q3", "--format", "csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scope,name,period,start,end,budget,cost,budget_consumed")
    assert lines[1].startswith("channel:display,channel:display,2026-Q3,")
    assert cli(config_path, "budget", "--campaigns", "--as-of", AS_OF, "--format", "json") == 0


def test_bad_period_is_a_usage_error(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "budget", "--period", "Q4") == 2
    assert "2026-Q4" in capsys.readouterr().err


def test_budget_import_all_or_nothing(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "scope,period,amount\nchannel:video,2026-Q4,5000\nchanel:email,2026-Q4,100\n",
        encoding="utf-8",
    )
    assert cli(config_path, "budget", "import", str(bad)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "line 3, column scope" in err and "nothing of the file was applied" in err
    with Store.open(
        load_config(config_path, {}, resolve_secrets=False).connector.database_url
    ) as s:
        assert [b.scope for b in s.iter_records(model.Budget)] == ["channel:display"]
    good = tmp_path / "good.csv"
    good.write_text(
        "Scope,Period,Amount,Currency\n"
        "channel:video,2026-Q4,5000,usd\n"
        "channel:paid_social,2026-Q4,1,USD\n"
        "channel:email,2026,300,USD\n",
        encoding="utf-8",
    )
    assert cli(config_path, "budget", "import", str(good)) == 0
    captured = capsys.readouterr()
    assert "3 added, 0 replaced, 0 changed, 0 unchanged." in captured.out
    assert "  added     channel:video 2026-Q4: 5,000.00 USD" in captured.out
    assert "channel:paid_social 2026-Q4 is also set in config [[budgets]]" in captured.err
    good.write_text("\n".join(good.read_text().splitlines()[:3]) + "\n", encoding="utf-8")
    assert cli(config_path, "budget", "import", str(good), "--replace") == 0
    assert "0 added, 0 replaced, 0 changed, 2 unchanged, 1 removed" in capsys.readouterr().out


def test_budget_import_says_which_budget_it_replaces_and_wins_over_it(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = load_config(config_path, {}, resolve_secrets=False).connector.database_url
    crm_total = model.Budget(
        source="demo_crm",
        external_id=model.Budget.key("total", "2026"),
        scope="total",
        period="2026",
        amount=Decimal("1500000"),
        currency="USD",
    )
    with Store.open(url) as store:
        store.upsert([crm_total])
    sheet = tmp_path / "b.csv"
    sheet.write_text("scope,period,amount\ntotal,2026,1600000\n", encoding="utf-8")
    assert cli(config_path, "budget", "import", str(sheet)) == 0
    out = capsys.readouterr().out
    assert "0 added, 1 replaced, 0 changed, 0 unchanged." in out
    assert "replaced  total 2026: 1,600,000.00 USD (demo_crm's 1,500,000.00 USD)" in out
    sheet.write_text("scope,period,amount\ntotal,2026,1700000\n", encoding="utf-8")
    assert cli(config_path, "budget", "import", str(sheet)) == 0
    assert "changed   total 2026: 1,700,000.00 USD (was 1,600,000.00 USD)" in (
        capsys.readouterr().out
    )
    assert cli(config_path, "budget", "--period", "2026", "--format", "json") == 0
    totals = [b for b in json.loads(capsys.readouterr().out)["rows"] if b["scope"] == "total"]
    assert [t["budget"] for t in totals] == ["1700000.00"]  # the import wins, every time


def test_expenses_commands(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--campaign", "C1", "--date", "2026-10-09", "--requested-by", "alice"]
    assert cli(config_path, "expenses", "add", "--amount", "50", "--id", "E1", *common) == 0
    assert "approved" in capsys.readouterr().out
    assert cli(config_path, "expenses", "add", "--amount", "400", "--id", "E2", *common) == 0
    assert "-> requested" in capsys.readouterr().out
    # 950 spent of 1000: 400 more is over budget
    assert cli(config_path, "expenses", "approve", "E2", "--by", "bob") == 1
    err = capsys.readouterr().err
    assert err.startswith("crm-roi: error: expense manual:E2 not approved (budget_lock)")
    assert (
        cli(
            config_path,
            "expenses",
            "approve",
            "E2",
            "--by",
            "bob",
            "--override",
            "--reason",
            "ok'd",
        )
        == 0
    )
    assert "budget lock overridden" in capsys.readouterr().out
    assert cli(config_path, "expenses", "reject", "E1", "--by", "bob", "--reason", "dup") == 0
    capsys.readouterr()
    assert cli(config_path, "expenses", "list", "--format", "json") == 0
    listed = {e["id"]: e["status"] for e in json.loads(capsys.readouterr().out)["expenses"]}
    assert listed == {"manual:E1": "rejected", "manual:E2": "approved"}
    assert cli(config_path, "expenses", "show", "E2") == 0
    shown = capsys.readouterr().out
    assert "refused by bob [budget_lock]" in shown and "approved OVERRIDE by bob" in shown
    assert cli(config_path, "expenses", "approve", "NOPE", "--by", "bob") == 1
    assert "no expense 'NOPE'" in capsys.readouterr().err
    assert cli(config_path, "expenses", "add", "--amount", "1,200", *common) == 2

    sheet = tmp_path / "finance.csv"
    sheet.write_text("id,campaign_id,date,amount\nF1,C1,2026-10-02,20\nF2,C1,2026-13-01,5\n")
    assert cli(config_path, "expenses", "import", str(sheet)) == 1
    assert "line 3, column date" in capsys.readouterr().err
    sheet.write_text("id,campaign_id,date,amount\nF1,C1,2026-10-02,20\n")
    assert cli(config_path, "expenses", "import", str(sheet), "--source", "netsuite") == 0
    assert "1 added" in capsys.readouterr().out


def test_money_credits_and_the_requester_on_the_command_line(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--campaign", "C1", "--date", "2026-10-09", "--requested-by", "alice"]
    # money is printed as money, whatever was typed
    assert cli(config_path, "expenses", "add", "--amount", "1054.7", "--id", "M1", *common) == 0
    assert "1,054.70 USD -> requested" in capsys.readouterr().out
    assert cli(config_path, "expenses", "add", "--amount", "1E+3", "--id", "M2", *common) == 0
    assert "1,000.00 USD" in capsys.readouterr().out
    assert cli(config_path, "expenses", "list") == 0
    listed = capsys.readouterr().out
    assert "1,054.70 USD" in listed and "1E+3" not in listed
    assert cli(config_path, "expenses", "show", "M1") == 0
    assert "manual:M1: 1,054.70 USD on 2026-10-09" in capsys.readouterr().out
    # amounts the currency cannot hold, and negative amounts, are usage errors
    for bad in ("12.345", "1e400", "-1000000", "NaN"):
        assert cli(config_path, "expenses", "add", "--amount", bad, *common) == 2, bad
        assert "--amount" in capsys.readouterr().err
    # the requester does not approve their own expense
    assert cli(config_path, "expenses", "approve", "M1", "--by", "alice") == 1
    assert "may not approve it too" in capsys.readouterr().err
    # a credit: explicit, waits for an approver with a reason
    credit = ["--amount", "300", "--credit", "--description", "Refund", "--id", "CR1", *common]
    assert cli(config_path, "expenses", "add", *credit) == 0
    assert "-300.00 USD -> requested (a credit always waits for an approver)" in (
        capsys.readouterr().out
    )
    assert cli(config_path, "expenses", "approve", "CR1", "--by", "bob") == 1
    assert "give the --reason" in capsys.readouterr().err
    assert cli(config_path, "expenses", "approve", "CR1", "--by", "bob", "--reason", "INV-7") == 0
    sheet = tmp_path / "credits.csv"
    sheet.write_text(
        "id,campaign_id,date,amount,kind,description\nR1,C1,2026-10-02,-20,,\n"
        "R2,C1,2026-10-02,20,credit,Refund\n"
    )
    assert cli(config_path, "expenses", "import", str(sheet)) == 1
    assert "line 2, column amount" in capsys.readouterr().err
    sheet.write_text("id,campaign_id,date,amount,kind,description\nR2,C1,2026-10-02,20,credit,R\n")
    assert cli(config_path, "expenses", "import", str(sheet)) == 0
    capsys.readouterr()
    assert cli(config_path, "expenses", "list", "--format", "json") == 0
    amounts = {e["id"]: e["amount"] for e in json.loads(capsys.readouterr().out)["expenses"]}
    assert amounts["csv:R2"] == "-20.00" and amounts["manual:CR1"] == "-300.00"


@responses.activate
def test_alerts_run_delivers_and_lists(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    responses.add(responses.POST, HOOK_URL, status=500)
    responses.add(responses.POST, HOOK_URL, status=500)
    responses.add(responses.POST, HOOK_URL, status=500)
    responses.add(responses.POST, HOOK_URL, status=500)
    assert cli(config_path, "alerts", "run", "--as-of", AS_OF) == 3  # delivery failed
    out = capsys.readouterr().out
    assert "1 fired" in out and "webhook: 0 delivered, 1 failed" in out
    responses.replace(responses.POST, HOOK_URL, status=200)
    assert cli(config_path, "alerts", "run", "--as-of", AS_OF) == 0
    assert "webhook: 1 delivered" in capsys.readouterr().out
    assert cli(config_path, "alerts", "--open", "--format", "json") == 0
    (alert,) = json.loads(capsys.readouterr().out)["alerts"]
    assert alert["rule"] == "forecast_over_budget" and alert["state"] == "open"
    assert list(alert["delivered_to"]) == ["webhook"] and alert["delivery_errors"] == {}
    # the budget grows: the alert resolves, and the webhook that got it hears so, once
    config_path.write_text(
        config_path.read_text().replace('amount = "1000"', 'amount = "1000000"'), "utf-8"
    )
    assert cli(config_path, "alerts", "run", "--as-of", AS_OF) == 0
    # (far under budget now, under-pacing fires: one new alert, one resolution)
    assert "webhook: 1 delivered, 1 resolution announced" in capsys.readouterr().out
    events = [json.loads(c.request.body)["event"] for c in responses.calls[-2:]]
    assert sorted(events) == ["alert.opened", "alert.resolved"]
    assert cli(config_path, "alerts", "run", "--as-of", AS_OF) == 0
    assert "resolution" not in capsys.readouterr().out
    assert cli(config_path, "alerts") == 0
    assert "forecast to overspend" in capsys.readouterr().out


def test_every_command_explains_itself_with_an_example() -> None:
    groups = [budget, expenses, alerts]
    commands = [*groups, *(c for g in groups for c in g.commands.values())]  # type: ignore[attr-defined]
    if alerts_run not in commands:  # attached when the CLI loads sync.alerts.cli
        commands.append(alerts_run)
    for command in commands:
        help_text = command.help or ""
        assert help_text.split("\n", 1)[0].endswith("."), command.name
        assert "Example" in help_text, command.name
    assert {"budget", "expenses", "alerts"} <= set(main.commands)


def test_doctor_checks(config_path: Path) -> None:
    config = load_config(config_path, {}, resolve_secrets=False)
    checks = [*channel_checks(config), *alert_checks(config), *doctor_checks(config)]
    assert (True, "alert channels: webhook") in checks
    assert all(ok for ok, _ in checks)


def test_demo_shows_the_quarter_budgets_and_the_alerts_they_raise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["-q", "demo", "--dir", str(tmp_path), "--as-of", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert "Budgets · 2026-Q4" in out
    assert "Channel paid_social is forecast to overspend its 2026-Q4 budget" in out
    assert "At this rate the budget runs out on" in out
