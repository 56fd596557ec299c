"""``crm-roi setup-fields`` and the Salesforce checks of ``crm-roi doctor``."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.salesforce import fields as sf
from adapters.salesforce.cli import doctor_checks
from connector.cli import run
from tests.test_salesforce_fake import INSTANCE, SECRET, fake_orgs, sf_config


@pytest.fixture
def fake() -> Iterator:
    with fake_orgs() as make:
        yield make


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SF_CLIENT_ID", "3MVG9-client-id")
    monkeypatch.setenv("SF_CLIENT_SECRET", SECRET)
    path = tmp_path / "config.toml"
    path.write_text(
        "[connector]\n"
        f'database_url = "sqlite:///{tmp_path / "store.db"}"\n'
        'reporting_currency = "USD"\n\n'
        "[salesforce]\n"
        "enabled = true\n"
        f'instance_url = "{INSTANCE}"\n'
        'auth = "client_credentials"\n'
        'api_version = "62.0"\n',
        encoding="utf-8",
    )
    return path


def created_fields(org) -> dict[str, dict]:
    return {
        r.body["FullName"]: r.body["Metadata"]
        for r in org.calls("POST", r"tooling/sobjects/CustomField/$")
    }


def test_setup_fields_creates_the_fields_and_grants_access(fake, config_file, capsys) -> None:
    org = fake(roi_fields=False)
    assert run(["--config", str(config_file), "setup-fields"]) == 0
    made = created_fields(org)
    assert set(made) == {
        f"Campaign.{name}"
        for name in (
            sf.ATTRIBUTED_REVENUE,
            sf.ATTRIBUTED_PIPELINE,
            sf.ROI,
            sf.ROAS,
            sf.COST_PER_LEAD,
            sf.BUDGET_CONSUMED,
            sf.FORECAST_COST,
            sf.MODEL,
            sf.SYNCED_AT,
        )
    }
    assert made["Campaign.ROI__c"]["type"] == "Number" and made["Campaign.ROI__c"]["scale"] == 2
    assert made["Campaign.ROI_ROAS__c"]["scale"] == 4
    assert made["Campaign.ROI_Budget_Consumed__c"]["type"] == "Percent"
    assert made["Campaign.ROI_Attributed_Revenue__c"]["type"] == "Currency"
    assert made["Campaign.ROI_Attributed_Revenue__c"]["scale"] == 2
    assert made["Campaign.ROI_Model__c"] == {**made["Campaign.ROI_Model__c"], "length": 40}
    assert made["Campaign.ROI_Synced_At__c"]["type"] == "DateTime"
    (permission_set,) = org.objects["PermissionSet"].values()
    assert permission_set["Name"] == "CRM_ROI_Connector"
    grants = list(org.objects["FieldPermissions"].values())
    assert len(grants) == 9
    assert all(g["PermissionsRead"] and g["PermissionsEdit"] for g in grants)
    assert all(g["ParentId"] == permission_set["Id"] for g in grants)
    (assignment,) = org.objects["PermissionSetAssignment"].values()
    assert assignment["AssigneeId"] == org.user_id
    out = capsys.readouterr().out
    assert "created Campaign.ROI__c" in out and "Campaign fields ready." in out
    # idempotent: a second run finds everything in place and changes nothing
    org.requests.clear()
    assert run(["--config", str(config_file), "setup-fields"]) == 0
    assert not [r for r in org.requests if r.method != "GET"]


def test_without_the_right_to_customize_it_prints_what_an_admin_must_create(
    fake, config_file, capsys
) -> None:
    fake(roi_fields=False, can_customize=False)
    assert run(["--config", str(config_file), "setup-fields"]) == 1
    captured = capsys.readouterr()
    assert "An admin must create these Campaign fields" in captured.out
    assert "'ROI': API name ROI__c, type Number, length 16, decimal places 2" in captured.out
    assert "API name ROI_ROAS__c, type Number, length 14, decimal places 4" in captured.out
    assert "API name ROI_Model__c, type Text, length 40" in captured.out
    assert "API name ROI_Budget_Consumed__c, type Percent" in captured.out
    assert captured.err.startswith("crm-roi: error:")


def test_check_only_changes_nothing(fake, config_file, capsys) -> None:
    org = fake(roi_fields=False)
    assert run(["--config", str(config_file), "setup-fields", "--check"]) == 1
    assert not [r for r in org.requests if r.method != "GET"]
    assert "ROI__c" in capsys.readouterr().out


def test_currency_fields_take_the_reporting_currencys_decimals() -> None:
    specs = {s.name: s for s in sf.field_specs("JPY", "Ad_Campaign_Id__c")}
    assert specs[sf.ATTRIBUTED_REVENUE].scale == 0 and specs[sf.COST_PER_LEAD].scale == 0
    assert specs[sf.ROI].scale == 2
    assert specs["Ad_Campaign_Id__c"].type == "Text"


def test_doctor_reports_missing_fields_permissions_and_the_quota(fake) -> None:
    org = fake(usage_used=12_000, usage_limit=15_000)
    del org.fields["Campaign"][sf.ROAS]
    org.fields["Campaign"][sf.ROI]["updateable"] = False
    org.fields["Campaign"][sf.MODEL]["type"] = "double"
    checks = doctor_checks(sf_config())
    failures = [text for ok, text in checks if not ok]
    assert any("missing" in t and sf.ROAS in t and "setup-fields" in t for t in failures)
    assert any("cannot edit Campaign.ROI__c" in t for t in failures)
    assert any("ROI_Model__c is double, expected string" in t for t in failures)
    quota = next(text for _, text in checks if "API quota" in text)
    assert "2,999 of 15,000 calls left today" in quota and "stop at 50 %" in quota
    assert (False, quota) in checks  # 80 % used is past the 50 % stop


def test_doctor_all_good(fake) -> None:
    fake()
    checks = doctor_checks(sf_config(quota_stop_share=Decimal("0.9")))
    assert all(ok for ok, _ in checks), checks
    assert any("logged in to https://acme.my.salesforce.com" in t for _, t in checks)


def test_doctor_says_when_it_cannot_log_in(fake) -> None:
    org = fake()
    org.login_error = {"error": "invalid_grant", "error_description": "authentication failure"}
    checks = doctor_checks(sf_config())
    assert checks and not checks[0][0] and "invalid_grant" in checks[0][1]
    assert SECRET not in checks[0][1]
