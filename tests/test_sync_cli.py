"""`crm-roi sync` and `crm-roi runs` from the command line: exit codes and run history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CRM_ROI = Path(sys.executable).parent / "crm-roi"


def cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "CRM_ROI_CONFIG"}
    full.update(env or {})
    return subprocess.run(
        [str(CRM_ROI), *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sync_with_nothing_enabled_says_so_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path}/s.db"\n'
    )
    done = cli(["sync", "--json-logs"], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "nothing to sync" in done.stderr and "enabled = true" in done.stderr
    assert "ok" not in done.stdout
    assert cli(["init"], tmp_path).returncode == 0
    done = cli(["runs", "--format", "json"], tmp_path)
    assert json.loads(done.stdout) == []  # no run was recorded as "ok"
    assert cli(["runs"], tmp_path).returncode == 0


def test_enabled_system_without_adapter_fails_the_run_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path}/s.db"\n[zoho]\nenabled = true\n'
    )
    env = {
        "ZOHO_CLIENT_ID": "id",
        "ZOHO_CLIENT_SECRET": "zoho-secret-xyz",
        "ZOHO_REFRESH_TOKEN": "tok",
    }
    done = cli(["sync", "--no-push"], tmp_path, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "zoho" in done.stderr and "no zoho adapter" in done.stderr
    assert "zoho-secret-xyz" not in done.stdout + done.stderr


def test_sync_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{tmp_path}/s.db"\n'
    )
    done = cli(["sync", "--source", "salesforce"], tmp_path)
    assert done.returncode == 2 and "salesforce.enabled is false" in done.stderr
    done = cli(["sync", "--source", "myspace"], tmp_path)
    assert done.returncode == 2 and "not a known system" in done.stderr


def test_every_enabled_system_builds_through_the_registry(tmp_path: Path) -> None:
    """The sync builds each source the way its adapter declares it (config, or config and
    store) without calling out; a typo'd signature would surface here, not in production."""
    from connector.config import parse_config
    from connector.store import Store
    from sync.pipeline import build_sources, build_writer

    env = {
        "SF_CLIENT_ID": "id",
        "SF_CLIENT_SECRET": "sf-secret",
        "GADS_DEV_TOKEN": "dev",
        "GADS_CLIENT_ID": "cid",
        "GADS_CLIENT_SECRET": "gsecret",
        "GADS_REFRESH_TOKEN": "refresh",
        "META_TOKEN": "EAAB-token",
        "LINKEDIN_TOKEN": "li-token",
    }
    config = parse_config(
        {
            "connector": {"database_url": f"sqlite:///{tmp_path}/s.db"},
            "salesforce": {"enabled": True, "instance_url": "https://acme.my.salesforce.com"},
            "google_ads": {"enabled": True, "customer_ids": ["1234567890"]},
            "meta_ads": {"enabled": True, "ad_account_ids": ["act_1234"]},
            "linkedin_ads": {"enabled": True, "account_ids": ["5123456"]},
        },
        env=env,
    )
    with Store.open(config.connector.database_url) as store:
        built = {name: make() for name, make in build_sources(config, store)}
        assert set(built) == {"salesforce", "google_ads", "meta_ads", "linkedin_ads"}
        for name, source in built.items():
            assert source.name == name and source.streams()
            source.close()
        assert build_writer(config, store) is not None
