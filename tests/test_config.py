"""config.toml loading: the contract keys, one-line errors that name the key, and secrets that
never leak (DESIGN section 9)."""

from __future__ import annotations

import pickle
import re
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from connector import config as config_module
from connector.config import (
    Config,
    ConfigError,
    example_config_text,
    find_config_path,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"

SECRET = "s3cr3t-VALUE-that-must-never-leak-7f3a"

# Every variable the example names for its enabled sections (Salesforce, Google Ads, Meta).
EXAMPLE_ENV = {
    "SF_CLIENT_ID": "3MVG9-client-id",
    "SF_CLIENT_SECRET": SECRET,
    "GADS_DEV_TOKEN": "dev-token",
    "GADS_CLIENT_ID": "gads-client",
    "GADS_CLIENT_SECRET": "gads-secret",
    "GADS_REFRESH_TOKEN": "gads-refresh",
    "GADS_WEBHOOK_KEY": "gads-webhook-key",
    "META_TOKEN": "meta-token",
    "META_APP_SECRET": "meta-app-secret",
    "META_VERIFY_TOKEN": "meta-verify",
}

MINIMAL = '[connector]\nreporting_currency = "USD"\n'


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env if env is not None else {})


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    return info.value


def example_with(old: str, new: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, 1)


# -- the example file --------------------------------------------------------------------------


def test_example_loads_with_its_variables_set() -> None:
    cfg = load_config(EXAMPLE, EXAMPLE_ENV)

    # The values of DESIGN section 9's example.
    assert cfg.connector.database_url == "sqlite:///crm-roi.db"
    assert cfg.connector.reporting_currency == "USD"
    assert cfg.connector.tzinfo == ZoneInfo("UTC")
    assert cfg.attribution.model == "w_shaped"
    assert cfg.attribution.lookback_days == 365
    assert cfg.attribution.time_decay_half_life_days == 7
    assert cfg.salesforce.enabled and cfg.salesforce.auth == "client_credentials"
    assert cfg.salesforce.instance_url == "https://acme.my.salesforce.com"
    assert cfg.salesforce.api_version == "62.0"
    assert not cfg.hubspot.enabled and cfg.hubspot.base_url == "https://api.hubapi.com"
    assert cfg.google_ads.enabled and cfg.google_ads.customer_ids == ["1234567890"]
    assert cfg.google_ads.login_customer_id == ""
    assert cfg.google_ads.token_url == "https://oauth2.googleapis.com/token"
    assert cfg.meta_ads.enabled and cfg.meta_ads.ad_account_ids == ["act_1234"]
    assert cfg.meta_ads.api_version == "v26.0"
    assert not cfg.linkedin_ads.enabled and cfg.linkedin_ads.account_ids == ["5123456"]
    assert [(m.ad_source, m.ad_campaign_id, m.crm_campaign_id) for m in cfg.mapping] == [
        ("google_ads", "20583018", "701Hs00000AbCdE")
    ]
    rate = cfg.fx_rates[0]
    assert (rate.currency, rate.start_date, rate.rate) == (
        "EUR",
        date(2026, 1, 1),
        Decimal("1.0850"),
    )
    assert str(rate.rate) == "1.0850"
    budget = cfg.budgets[0]
    assert (budget.scope, budget.period, budget.amount, budget.currency) == (
        "channel:paid_social",
        "2026-Q4",
        Decimal("50000"),
        "USD",
    )
    assert (budget.scope_kind, budget.scope_name) == ("channel", "paid_social")
    assert (budget.start, budget.end) == (date(2026, 10, 1), date(2026, 12, 31))
    assert cfg.alerts.thresholds == [Decimal("0.5"), Decimal("0.8"), Decimal("1.0")]
    assert cfg.alerts.slack_webhook_url_env == "SLACK_WEBHOOK_URL"
    assert cfg.schedule.sync == "*/30 * * * *"
    assert (cfg.webhooks.crm, cfg.webhooks.lead_source) == ("salesforce", "Paid Lead Form")
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 8080)
    assert cfg.server.admin_token_env == "CRM_ROI_ADMIN_TOKEN"
    assert cfg.enabled_sources == ("salesforce", "google_ads", "meta_ads")
    assert cfg.enabled_crms == ("salesforce",)
    assert cfg.enabled_ad_sources == ("google_ads", "meta_ads")
    assert cfg.path == EXAMPLE
    assert cfg.secret("salesforce", "client_secret") == SECRET
    assert cfg.secret("google_ads", "webhook_key_env") == "gads-webhook-key"


@pytest.mark.parametrize("variable", sorted(EXAMPLE_ENV))
def test_example_fails_naming_the_key_of_a_missing_variable(variable: str) -> None:
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != variable}
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env)
    err = info.value
    section = {"SF": "salesforce", "GADS": "google_ads", "META": "meta_ads"}[variable.split("_")[0]]
    assert err.key is not None and err.key.startswith(f"{section}.")
    assert err.key.endswith("_env")
    assert err.path == EXAMPLE
    assert f"environment variable {variable} is not set" in err.message
    assert f"{section}.enabled = false" in err.message
    assert err.others == []


def test_missing_salesforce_secret_message() -> None:
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "SF_CLIENT_SECRET"}
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env)
    assert info.value.key == "salesforce.client_secret_env"
    assert info.value.message == (
        "environment variable SF_CLIENT_SECRET is not set "
        "(export it, or set salesforce.enabled = false)"
    )


def test_all_missing_variables_are_reported_in_others() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, {})
    lines = info.value.all_lines()
    assert len(lines) == len(EXAMPLE_ENV)
    for variable in EXAMPLE_ENV:
        assert sum(variable + " " in line for line in lines) == 1


def test_packaged_example_is_identical_to_the_root_example() -> None:
    packaged = REPO / "connector" / "config.example.toml"
    assert packaged.read_bytes() == EXAMPLE.read_bytes()
    assert example_config_text() == EXAMPLE.read_text(encoding="utf-8")


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(prefix + name)
        inner = field.annotation
        for candidate in (inner, *getattr(inner, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys |= _model_keys(candidate, f"{prefix}{name}.")
    return keys


def _toml_keys(value: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for row in value:
            keys |= _toml_keys(row, prefix)
    elif isinstance(value, dict):
        for name, inner in value.items():
            keys.add(prefix + name)
            keys |= _toml_keys(inner, f"{prefix}{name}.")
    return keys


def test_example_has_every_key_and_a_comment_on_each() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert _toml_keys(data) == _model_keys(Config)
    for line in text.splitlines():
        if re.match(r"\s*[A-Za-z_]+\s*=", line):
            assert "#" in line, line
            comment = line.split("#", 1)[1]
            assert "default" in comment or "required" in comment, line


def test_example_loads_without_secrets_when_not_resolving() -> None:
    cfg = load_config(EXAMPLE, {}, resolve_secrets=False)
    assert cfg.salesforce.enabled
    with pytest.raises(ConfigError) as info:
        cfg.secret("salesforce", "client_secret")
    assert info.value.key == "salesforce.client_secret_env"
    assert "SF_CLIENT_SECRET is not set" in info.value.message


# -- defaults ---------------------------------------------------------------------------------


def test_minimal_file_gets_defaults_and_disabled_systems(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL)
    assert cfg.enabled_sources == ()
    assert cfg.attribution.model == "w_shaped"
    assert cfg.attribution.responded_only is True
    assert cfg.salesforce.login_url == "https://login.salesforce.com"
    assert cfg.salesforce.ad_campaign_id_field == "Ad_Campaign_Id__c"
    assert cfg.salesforce.responded_field == "HasResponded"
    assert cfg.salesforce.quota_stop_share == Decimal("0.5")
    assert cfg.google_ads.api_version == "v26"
    assert (cfg.google_ads.lookback_days, cfg.google_ads.history_days) == (30, 400)
    assert (cfg.meta_ads.lookback_days, cfg.linkedin_ads.lookback_days) == (28, 7)
    assert cfg.linkedin_ads.api_version == "202607"
    assert cfg.budget_categories.targets.as_mapping() == {
        "strategic": Decimal("0.20"),
        "growth": Decimal("0.50"),
        "retention": Decimal("0.30"),
    }
    assert cfg.budget_categories.tolerance == Decimal("0.05")
    assert cfg.alerts.under_pacing == Decimal("0.5")
    assert cfg.alerts.email.smtp_port == 587 and not cfg.alerts.email.enabled
    assert cfg.health.roas_min == 1 and cfg.health.mql_to_sql_min == Decimal("0.30")
    assert cfg.health.sales_cycle_days_max is None and cfg.health.cpl_max is None
    assert cfg.expenses.auto_approve_under == 0 and cfg.expenses.budget_lock
    assert cfg.webhooks.max_body_bytes == 1024 * 1024 and cfg.webhooks.max_attempts == 8
    assert cfg.mapping_rules.pattern is None


def test_connector_table_is_required(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[attribution]\nmodel = "linear"\n')
    assert err.key == "connector"
    assert "[connector]" in err.message


def test_budget_currency_defaults_to_reporting_currency(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[connector]\nreporting_currency = "EUR"\n'
        '[[budgets]]\nscope = "total"\nperiod = 2026\namount = "1000"\n',
    )
    assert cfg.budgets[0].currency == "EUR"
    assert cfg.budgets[0].period == "2026"
    assert (cfg.budgets[0].start, cfg.budgets[0].end) == (date(2026, 1, 1), date(2026, 12, 31))


# -- errors -----------------------------------------------------------------------------------


def test_error_is_one_line_with_file_key_and_message(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + '[google_ads]\ncustomer_ids = ["123-456-7890"]\n')
    assert err.key == "google_ads.customer_ids[0]"
    assert str(err) == (
        f"{tmp_path / 'config.toml'}: google_ads.customer_ids[0]: "
        "expected a 10-digit customer id without dashes, got '123-456-7890'"
    )
    assert "\n" not in str(err)


def test_file_name_is_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, MINIMAL + '[google_ads]\ncustomer_ids = ["123-456-7890"]\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(Path("config.toml"), {})
    assert str(info.value) == (
        "config.toml: google_ads.customer_ids[0]: "
        "expected a 10-digit customer id without dashes, got '123-456-7890'"
    )


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[connector]\nreporting_curency = "USD"\n')
    assert err.key == "connector.reporting_curency"
    assert "did you mean 'reporting_currency'?" in err.message


def test_unknown_section_suggests_the_close_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + "[salesforse]\nenabled = false\n")
    assert err.key == "salesforse"
    assert "did you mean 'salesforce'?" in err.message


def test_unknown_key_in_array_of_tables(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        MINIMAL + '[[budgets]]\nscope = "total"\nperiod = "2026"\namount = "1"\namout = "2"\n',
    )
    assert err.key == "budgets[0].amout"
    assert "did you mean 'amount'?" in err.message


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + "[server]\nzzz = 1\n")
    assert err.key == "server.zzz"
    assert "host" in err.message and "port" in err.message


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('[server]\nport = "8080"\n', "server.port", "expected a whole number, got '8080'"),
        ("[server]\nport = 70000\n", "server.port", "at most 65535"),
        ('[salesforce]\nenabled = "yes"\n', "salesforce.enabled", "expected true or false"),
        ("[attribution]\nlookback_days = -1\n", "attribution.lookback_days", "0 or more"),
        ('[attribution]\nmodel = "wshaped"\n', "attribution.model", "expected one of"),
        (
            '[google_ads]\ncustomer_ids = "1234567890"\n',
            "google_ads.customer_ids",
            "expected an array",
        ),
        (
            "[google_ads]\ncustomer_ids = [1234567890]\n",
            "google_ads.customer_ids[0]",
            "quoted string",
        ),
        ('[meta_ads]\nad_account_ids = ["1234"]\n', "meta_ads.ad_account_ids[0]", "act_"),
        ('[budgets]\nscope = "total"\n', "budgets", "[[budgets]]"),
        ('[hubspot]\nbase_url = "ftp://x"\n', "hubspot.base_url", "http"),
        (
            '[salesforce]\ninstance_url = "https://u:p@x.my.salesforce.com"\n',
            "salesforce.instance_url",
            "credentials",
        ),
        ('[linkedin_ads]\napi_version = "2025-11"\n', "linkedin_ads.api_version", "YYYYMM"),
        ('[schedule]\nsync = "*/30 * * *"\n', "schedule.sync", "5 cron fields"),
        ('[schedule]\nsync = "0 25 * * *"\n', "schedule.sync", "outside 0-23"),
        ('[schedule]\nsync = "0 9 * * mon-fri"\n', None, None),
        (
            '[mapping_rules]\nname_regex = "([a-z]+"\n',
            "mapping_rules.name_regex",
            "not a valid regular expression",
        ),
        (
            '[mapping_rules]\nname_regex = "(?P<name>.*)"\n',
            "mapping_rules.name_regex",
            "(?P<crm>...)",
        ),
        (
            '[[mapping]]\nad_source = "google_ads"\nad_campaign_id = "1"\n',
            "mapping[0].crm_campaign_id",
            "missing",
        ),
        (
            '[[mapping]]\nad_source = "tiktok"\nad_campaign_id = "1"\ncrm_campaign_id = "2"\n',
            "mapping[0].ad_source",
            "expected one of",
        ),
        (
            "[budget_categories]\ntargets = { strategic = 0.3 }\n",
            "budget_categories.targets",
            "must sum to 1",
        ),
        ("[alerts]\nthresholds = [0.8, 0.5]\n", "alerts.thresholds", "ascending"),
        ("[alerts]\nthresholds = [0, 0.5]\n", "alerts.thresholds[0]", "greater than 0"),
        (
            '[alerts.email]\nsmtp_host = "smtp.example.com"\nfrom_addr = "a@example.com"\n',
            "alerts.email.to_addrs",
            "at least one",
        ),
        ('[alerts]\nlanguage = "fr"\n', "alerts.language", "'zh-CN'"),
        ("[health]\ngross_margin = 1.5\n", "health.gross_margin", "between 0 and 1"),
        ('[webhooks]\ncrm = "pipedrive"\n', "webhooks.crm", "expected one of"),
        ('[health]\ncpl_max = "-1"\n', "health.cpl_max", "0 or more"),
        (
            "[budget_categories]\ntargets = { strategic = 0.2, growht = 0.5, retention = 0.3 }\n",
            "budget_categories.targets.growht",
            "did you mean 'growth'?",
        ),
    ],
)
def test_wrong_values_name_their_key(
    tmp_path: Path, body: str, key: str | None, fragment: str | None
) -> None:
    if key is None:
        load_text(tmp_path, MINIMAL + body)
        return
    err = error_of(tmp_path, MINIMAL + body)
    assert err.key == key
    assert fragment in err.message


@pytest.mark.parametrize("currency", ["usd", "US", "DOLLAR", "UDS", "123"])
def test_bad_reporting_currency(tmp_path: Path, currency: str) -> None:
    err = error_of(tmp_path, f'[connector]\nreporting_currency = "{currency}"\n')
    assert err.key == "connector.reporting_currency"
    assert "ISO-4217" in err.message


def test_bad_fx_currency_names_the_row(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        MINIMAL + '[[fx_rates]]\ncurrency = "EURO"\nstart_date = 2026-01-01\nrate = "1.1"\n',
    )
    assert err.key == "fx_rates[0].currency"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Berlinn", "../etc/passwd", ""])
def test_bad_timezone(tmp_path: Path, zone: str) -> None:
    err = error_of(tmp_path, f'[connector]\ntimezone = "{zone}"\n')
    assert err.key == "connector.timezone"
    assert "IANA" in err.message


def test_timezone_is_exposed_as_tzinfo(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, '[connector]\ntimezone = "Asia/Shanghai"\n')
    assert cfg.connector.tzinfo == ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://root@localhost/db", "a mysql:// URL"),
        ("postgresql://u@h/db", "postgresql+psycopg://"),
        ("crm.db", "sqlite:///"),
    ],
)
def test_database_url_schemes(tmp_path: Path, url: str, fragment: str) -> None:
    err = error_of(tmp_path, f'[connector]\ndatabase_url = "{url}"\n')
    assert err.key == "connector.database_url"
    assert fragment in err.message
    assert "hunter2" not in str(err)


def test_database_password_is_accepted_but_never_shown(tmp_path: Path) -> None:
    url = "postgresql+psycopg://crm:hunter2@db.internal:5432/crm_roi"
    cfg = load_text(tmp_path, f'[connector]\ndatabase_url = "{url}"\n')
    assert cfg.connector.database_url == url
    shown = "postgresql+psycopg://crm:***@db.internal:5432/crm_roi"
    assert cfg.connector.database_url_for_display == shown
    for text in (repr(cfg), str(cfg), repr(cfg.connector), str(cfg.connector)):
        assert "hunter2" not in text and shown in text
    err = error_of(tmp_path, f'[connector]\ndatabase_url = "{url}"\ntimezone = "X/Y"\n')
    assert "hunter2" not in str(err)


def test_postgres_url_is_accepted(tmp_path: Path) -> None:
    url = "postgresql+psycopg://crm@db.internal:5432/crm_roi"
    assert (
        load_text(tmp_path, f'[connector]\ndatabase_url = "{url}"\n').connector.database_url == url
    )


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[connector]\nreporting_currency = "USD"\ntimezone = \n')
    assert err.key is None
    assert str(err).startswith(f"{tmp_path / 'config.toml'}: line 3, column ")
    assert "TOML syntax error" in str(err)


def test_toml_error_at_end_of_file(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[connector]\ntimezone = ["UTC",\n')
    assert "line 2" in str(err) and "TOML syntax error" in str(err)


@pytest.mark.parametrize(
    ("body", "key", "quoted"),
    [
        (
            '[[fx_rates]]\ncurrency = "EUR"\nstart_date = "2026-01-01"\nrate = 1.0850\n',
            "fx_rates[0].rate",
            'rate = "1.085"',
        ),
        (
            '[[budgets]]\nscope = "total"\nperiod = "2026"\namount = 50000.0\n',
            "budgets[0].amount",
            'amount = "50000.0"',
        ),
        ("[health]\ncpl_max = 12.5\n", "health.cpl_max", 'cpl_max = "12.5"'),
        (
            "[expenses]\nauto_approve_under = 100.0\n",
            "expenses.auto_approve_under",
            'auto_approve_under = "100.0"',
        ),
    ],
)
def test_float_money_is_rejected_with_quoting_advice(
    tmp_path: Path, body: str, key: str, quoted: str
) -> None:
    err = error_of(tmp_path, MINIMAL + body)
    assert err.key == key
    assert quoted in err.message and "quoted" in err.message


def test_money_strings_and_integers_are_exact(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        MINIMAL
        + '[[budgets]]\nscope = "campaign:701A"\nperiod = "2026-11"\namount = 1200\n'
        + '[[budgets]]\nscope = "department:Field"\nperiod = "2026-11"\namount = "0.10"\n'
        + '[expenses]\nauto_approve_under = "250.00"\nrequire_approver_over = "5000"\n',
    )
    assert cfg.budgets[0].amount == Decimal(1200)
    assert str(cfg.budgets[1].amount) == "0.10"
    assert (cfg.budgets[0].start, cfg.budgets[0].end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert str(cfg.expenses.auto_approve_under) == "250.00"
    assert cfg.expenses.require_approver_over == Decimal(5000)


@pytest.mark.parametrize("value", ['"NaN"', '"Infinity"', '"1,000"', '"-5"', "true"])
def test_bad_money_values(tmp_path: Path, value: str) -> None:
    err = error_of(
        tmp_path, MINIMAL + f'[[budgets]]\nscope = "total"\nperiod = "2026"\namount = {value}\n'
    )
    assert err.key == "budgets[0].amount"


def test_fx_rate_must_be_positive(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        MINIMAL + '[[fx_rates]]\ncurrency = "EUR"\nstart_date = 2026-01-01\nrate = "0"\n',
    )
    assert err.key == "fx_rates[0].rate" and "greater than 0" in err.message


def test_fx_start_date_accepts_toml_date_and_iso_string(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        MINIMAL
        + '[[fx_rates]]\ncurrency = "EUR"\nstart_date = 2026-01-01\nrate = "1.08"\n'
        + '[[fx_rates]]\ncurrency = "GBP"\nstart_date = "2026-02-01"\nrate = "1.27"\n',
    )
    assert [r.start_date for r in cfg.fx_rates] == [date(2026, 1, 1), date(2026, 2, 1)]
    err = error_of(
        tmp_path,
        MINIMAL + '[[fx_rates]]\ncurrency = "EUR"\nstart_date = "01/02/2026"\nrate = "1"\n',
    )
    assert err.key == "fx_rates[0].start_date"


def test_ratios_accept_floats_exactly(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL + "[alerts]\nthresholds = [0.1, 0.7, 1.2]\n")
    assert cfg.alerts.thresholds == [Decimal("0.1"), Decimal("0.7"), Decimal("1.2")]


def test_duplicate_budget(tmp_path: Path) -> None:
    row = '[[budgets]]\nscope = "channel:paid_social"\nperiod = "2026-Q4"\namount = "{}"\n'
    other = '[[budgets]]\nscope = "total"\nperiod = "2026-Q4"\namount = "9"\n'
    err = error_of(tmp_path, MINIMAL + row.format(1) + other + row.format(2))
    assert err.key == "budgets[2]"
    assert "duplicate budget" in err.message and "budgets[0]" in err.message


def test_duplicate_mapping_row(tmp_path: Path) -> None:
    row = '[[mapping]]\nad_source = "meta_ads"\nad_campaign_id = "42"\ncrm_campaign_id = "{}"\n'
    err = error_of(tmp_path, MINIMAL + row.format("701A") + row.format("701B"))
    assert err.key == "mapping[1].ad_campaign_id"


@pytest.mark.parametrize(
    ("scope", "fragment"),
    [
        ("channel:paid_socail", "did you mean 'channel:paid_social'?"),
        ("category:brand", "strategic"),
        ("region:emea", "'total'"),
        ("campaign:", "names no campaign"),
    ],
)
def test_bad_budget_scope(tmp_path: Path, scope: str, fragment: str) -> None:
    err = error_of(
        tmp_path, MINIMAL + f'[[budgets]]\nscope = "{scope}"\nperiod = "2026"\namount = "1"\n'
    )
    assert err.key == "budgets[0].scope"
    assert fragment in err.message


@pytest.mark.parametrize("period", ["2026-13", "2026-Q5", "Q4-2026", "26"])
def test_bad_budget_period(tmp_path: Path, period: str) -> None:
    err = error_of(
        tmp_path, MINIMAL + f'[[budgets]]\nscope = "total"\nperiod = "{period}"\namount = "1"\n'
    )
    assert err.key == "budgets[0].period"


def test_custom_weights_must_sum_to_one(tmp_path: Path) -> None:
    body = '[attribution]\nmodel = "custom"\n[attribution.custom]\nft = "0.5"\nlc = "0.4"\n'
    err = error_of(tmp_path, MINIMAL + body)
    assert err.key == "attribution.custom"
    assert "[attribution.custom]" in err.message and "0.9" in err.message
    cfg = load_text(tmp_path, MINIMAL + body + 'rest = "0.1"\n')
    assert cfg.attribution.custom is not None
    assert sum(cfg.attribution.custom.as_mapping().values()) == 1


def test_custom_model_needs_weights(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + '[attribution]\nmodel = "custom"\n')
    assert err.key == "attribution.custom"


def test_several_errors_first_raised_rest_in_others(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        '[connector]\nreporting_currency = "usd"\ntimezone = "Nowhere/Land"\n[server]\nport = 0\n',
    )
    assert err.key == "connector.reporting_currency"
    assert [o.key for o in err.others] == ["connector.timezone", "server.port"]
    assert all(o.path == err.path for o in err.others)


def test_config_error_survives_pickling() -> None:
    err = ConfigError("bad", path="config.toml", key="a.b", others=[ConfigError("worse")])
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == "config.toml: a.b: bad"
    assert [str(o) for o in copy.others] == ["worse"]


def test_config_is_immutable(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL)
    with pytest.raises(ValueError):
        cfg.connector.reporting_currency = "EUR"  # type: ignore[misc]


# -- secrets ----------------------------------------------------------------------------------

SF_ENABLED = (
    MINIMAL + '[salesforce]\nenabled = true\ninstance_url = "https://acme.my.salesforce.com"\n'
)


def test_secret_values_never_appear_in_repr_str_or_errors(tmp_path: Path) -> None:
    env = {**EXAMPLE_ENV, "SLACK_WEBHOOK_URL": SECRET, "CRM_ROI_ADMIN_TOKEN": SECRET}
    cfg = load_config(EXAMPLE, env)
    assert cfg.secret("alerts", "slack_webhook_url") == SECRET
    assert cfg.secret("server", "admin_token") == SECRET
    for text in (repr(cfg), str(cfg), repr(cfg.salesforce), str(cfg.model_dump())):
        assert SECRET not in text
    # An error about a secret names the variable, never its value.
    cfg2 = load_config(EXAMPLE, {**EXAMPLE_ENV, "SF_CLIENT_SECRET": ""}, resolve_secrets=False)
    with pytest.raises(ConfigError) as info:
        cfg2.secret("salesforce", "client_secret")
    assert "SF_CLIENT_SECRET is empty" in str(info.value)
    # Errors raised while loading (here: another key is wrong) carry no secret either.
    bad = example_with("port = 8080", 'port = "8080"')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad), env)
    for err in [info.value, *info.value.others]:
        assert SECRET not in str(err) and SECRET not in repr(err)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_secret_pasted_into_an_env_key_is_not_echoed(tmp_path: Path) -> None:
    err = error_of(tmp_path, SF_ENABLED + f'client_secret_env = "{SECRET}-="\n')
    assert err.key == "salesforce.client_secret_env"
    assert SECRET not in str(err)
    assert "NAME of an environment variable" in err.message


def test_secret_pasted_as_an_unknown_key_is_not_echoed(tmp_path: Path) -> None:
    err = error_of(tmp_path, SF_ENABLED + f'client_secret = "{SECRET}"\n')
    assert err.key == "salesforce.client_secret"
    assert "did you mean 'client_secret_env'?" in err.message
    assert SECRET not in str(err)


def test_empty_variable_counts_as_missing(tmp_path: Path) -> None:
    err = error_of(tmp_path, SF_ENABLED, {"SF_CLIENT_ID": "id", "SF_CLIENT_SECRET": ""})
    assert err.key == "salesforce.client_secret_env"
    assert "SF_CLIENT_SECRET is empty" in err.message


def test_disabled_sections_do_not_need_their_variables(tmp_path: Path) -> None:
    text = (
        example_with("[salesforce]\nenabled = true", "[salesforce]\nenabled = false")
        .replace("[google_ads]\nenabled = true", "[google_ads]\nenabled = false")
        .replace("[meta_ads]\nenabled = true", "[meta_ads]\nenabled = false")
    )
    cfg = load_config(write(tmp_path, text), {})
    assert cfg.enabled_sources == ()


def test_enabling_a_section_requires_its_variables(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + "[hubspot]\nenabled = true\n")
    assert err.key == "hubspot.access_token_env"
    assert "HUBSPOT_TOKEN is not set" in err.message
    assert "hubspot.enabled = false" in err.message
    cfg = load_text(tmp_path, MINIMAL + "[hubspot]\nenabled = true\n", {"HUBSPOT_TOKEN": "t"})
    assert cfg.secret("hubspot", "access_token") == "t"


def test_resolve_secrets_false_skips_the_check(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[zoho]\nenabled = true\n[fxiaoke]\nenabled = true\n")
    with pytest.raises(ConfigError):
        load_config(path, {})
    cfg = load_config(path, {}, resolve_secrets=False)
    assert cfg.enabled_crms == ("zoho", "fxiaoke")


def test_enabled_section_needs_non_empty_required_env_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + '[hubspot]\nenabled = true\naccess_token_env = ""\n')
    assert err.key == "hubspot.access_token_env"


def test_enabled_ad_platform_needs_accounts(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + "[linkedin_ads]\nenabled = true\n", {"LINKEDIN_TOKEN": "x"})
    assert err.key == "linkedin_ads.account_ids"


def test_optional_env_keys_of_enabled_sections_are_checked_when_named(tmp_path: Path) -> None:
    body = MINIMAL + '[meta_ads]\nenabled = true\nad_account_ids = ["act_1"]\n'
    load_text(tmp_path, body, {"META_TOKEN": "x"})
    err = error_of(tmp_path, body + 'verify_token_env = "META_VERIFY"\n', {"META_TOKEN": "x"})
    assert err.key == "meta_ads.verify_token_env"


@pytest.mark.parametrize(
    ("auth", "extra", "needed"),
    [
        ("client_credentials", "", {"SF_CLIENT_ID", "SF_CLIENT_SECRET"}),
        (
            "password",
            "",
            {"SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_USERNAME", "SF_PASSWORD", "SF_SECURITY_TOKEN"},
        ),
        ("jwt", 'jwt_private_key_file = "sf.pem"\n', {"SF_CLIENT_ID", "SF_USERNAME"}),
        ("session", "", {"SF_SESSION_ID"}),
    ],
)
def test_salesforce_needs_only_the_variables_of_its_auth(
    tmp_path: Path, auth: str, extra: str, needed: set[str]
) -> None:
    (tmp_path / "sf.pem").write_text("not a real key")
    path = write(tmp_path, SF_ENABLED + f'auth = "{auth}"\n' + extra)
    env = {name: "x" for name in needed}
    cfg = load_config(path, env)
    assert cfg.salesforce.auth == auth
    for name in needed:
        with pytest.raises(ConfigError) as info:
            load_config(path, {k: v for k, v in env.items() if k != name})
        assert name in info.value.message
        assert info.value.key is not None and info.value.key.startswith("salesforce.")


def test_salesforce_security_token_may_be_empty_but_must_be_set(tmp_path: Path) -> None:
    path = write(tmp_path, SF_ENABLED + 'auth = "password"\n')
    env = {n: "x" for n in ("SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_USERNAME", "SF_PASSWORD")}
    cfg = load_config(path, {**env, "SF_SECURITY_TOKEN": ""})
    assert cfg.secret("salesforce", "security_token") == ""
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert info.value.key == "salesforce.security_token_env"


def test_salesforce_jwt_key_file_is_relative_to_the_config_and_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, SF_ENABLED + 'auth = "jwt"\njwt_private_key_file = "keys/sf.pem"\n')
    env = {"SF_CLIENT_ID": "x", "SF_USERNAME": "x"}
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert info.value.key == "salesforce.jwt_private_key_file"
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "sf.pem").write_text("key")
    cfg = load_config(path, env)
    assert Path(cfg.salesforce.jwt_private_key_file) == tmp_path / "keys" / "sf.pem"


def test_salesforce_jwt_needs_a_key_file(tmp_path: Path) -> None:
    err = error_of(tmp_path, SF_ENABLED + 'auth = "jwt"\n')
    assert err.key == "salesforce.jwt_private_key_file"


def test_salesforce_client_credentials_needs_instance_url(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + "[salesforce]\nenabled = true\n")
    assert err.key == "salesforce.instance_url"


def test_env_names_must_look_like_env_names(tmp_path: Path) -> None:
    err = error_of(tmp_path, MINIMAL + '[server]\nadmin_token_env = "1BAD-NAME"\n')
    assert err.key == "server.admin_token_env"


def test_secret_of_lazy_sections(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        MINIMAL
        + '[webhooks]\ngeneric_secret_env = "GENERIC_SECRET"\n'
        + '[alerts.email]\nsmtp_host = "smtp.example.com"\nfrom_addr = "roi@example.com"\n'
        + 'to_addrs = ["ops@example.com"]\npassword_env = "SMTP_PASSWORD"\n',
        {"GENERIC_SECRET": "g", "SMTP_PASSWORD": "p"},
    )
    assert cfg.secret("webhooks", "generic_secret") == "g"
    assert cfg.secret("alerts.email", "password") == "p"
    assert cfg.alerts.email.enabled
    with pytest.raises(ConfigError) as info:
        cfg.secret("webhooks", "hubspot_client_secret")
    assert info.value.key == "webhooks.hubspot_client_secret_env"
    assert "is empty" in info.value.message
    with pytest.raises(ConfigError) as info:
        cfg.secret("server", "admin_token")
    assert info.value.key == "server.admin_token_env"
    assert "CRM_ROI_ADMIN_TOKEN is not set" in info.value.message
    with pytest.raises(ConfigError):
        cfg.secret("server", "no_such_thing")


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL + "[hubspot]\nenabled = true\n")
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    with pytest.raises(ConfigError):
        load_config(path)
    monkeypatch.setenv("HUBSPOT_TOKEN", "from-os-environ")
    assert load_config(path).secret("hubspot", "access_token") == "from-os-environ"


def test_parse_config_from_a_mapping() -> None:
    cfg = parse_config({"connector": {"reporting_currency": "JPY"}}, env={})
    assert cfg.connector.reporting_currency == "JPY" and cfg.path is None


_TOML_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.dates(),
    st.sampled_from(["USD", "act_1", "1234567890", "2026-Q4", "total", "https://x.example"]),
)
_TOML_VALUES = st.recursive(_TOML_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def _section_data(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from([*model.model_fields, "unknown_key"])
    return st.dictionaries(keys, _TOML_VALUES, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*Config.model_fields, "nope"]),
        st.one_of(
            _TOML_VALUES,
            *(
                _section_data(f.annotation)
                for f in Config.model_fields.values()
                if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
            ),
        ),
        max_size=5,
    )
)
def test_any_input_gives_a_config_or_a_one_line_config_error(data: dict[str, Any]) -> None:
    try:
        parse_config(data, path=Path("config.toml"), env={})
    except ConfigError as err:
        for line in err.all_lines():
            assert "\n" not in line and line.startswith("config.toml")


# -- finding the file -------------------------------------------------------------------------


def test_find_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = write(tmp_path, MINIMAL, "cli.toml")
    from_env = write(tmp_path, MINIMAL, "env.toml")
    write(tmp_path, MINIMAL, "config.toml")
    env = {"CRM_ROI_CONFIG": str(from_env)}
    assert find_config_path(cli, env) == cli
    assert find_config_path(str(cli), env) == cli
    assert find_config_path(None, env) == from_env
    assert find_config_path(None, {}) == Path("config.toml")
    assert find_config_path(None, {"CRM_ROI_CONFIG": ""}) == Path("config.toml")


def test_find_missing_cli_path_does_not_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, MINIMAL, "config.toml")
    with pytest.raises(ConfigError) as info:
        find_config_path(tmp_path / "nope.toml", {"CRM_ROI_CONFIG": "config.toml"})
    assert "--config" in str(info.value) and "crm-roi init" in str(info.value)
    assert info.value.path == tmp_path / "nope.toml"


def test_find_missing_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        find_config_path(None, {"CRM_ROI_CONFIG": str(tmp_path / "gone.toml")})
    assert "$CRM_ROI_CONFIG" in str(info.value) and "crm-roi init" in str(info.value)


def test_find_missing_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        find_config_path(None, {})
    message = str(info.value)
    assert message.startswith("config.toml: ")
    assert "--config" in message and "$CRM_ROI_CONFIG" in message
    assert "crm-roi init" in message


def test_find_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_path(tmp_path, {})
    assert "directory" in str(info.value)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml", {})
    assert "cannot read" in str(info.value)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[connector]\ntimezone = "\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad, {})
    assert "UTF-8" in str(info.value)


def test_module_has_no_mutable_globals() -> None:
    mutable = [
        name
        for name, value in vars(config_module).items()
        if not name.startswith("__") and isinstance(value, list | dict | set)
    ]
    assert mutable == []


@pytest.mark.parametrize(
    ("amount", "currency", "fragment"),
    [
        ('"12.345"', "USD", "write 12.34"),
        ('"1e400"', "USD", "too large"),
        ('"10000000000000"', "EUR", "below 10,000,000,000,000 EUR"),
        ('"100.5"', "JPY", "write 100"),
    ],
)
def test_budget_amounts_are_bounded_and_in_minor_units(
    tmp_path: Path, amount: str, currency: str, fragment: str
) -> None:
    err = error_of(
        tmp_path,
        MINIMAL
        + f'[[budgets]]\nscope = "total"\nperiod = "2026"\namount = {amount}\n'
        + f'currency = "{currency}"\n',
    )
    assert err.key == "budgets[0].amount" and fragment in err.message, (err.key, err.message)
