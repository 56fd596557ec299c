"""``crm-roi setup-fields`` and the Salesforce part of ``crm-roi doctor``.

Registered by :func:`connector.cli.command_modules`. ``connector.cli`` imports this module
while it is itself being imported, so nothing from it is imported at module level here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import click

from adapters.http import HttpError
from adapters.salesforce import build_client
from adapters.salesforce.fields import (
    DEFAULT_PERMISSION_SET,
    SOBJECT,
    FieldReport,
    FieldSetup,
    admin_instructions,
    check_fields,
    field_specs,
)
from adapters.salesforce.org_meaning import CampaignMeaning, LeadLifecycle
from connector.config import Config, ConfigError

log = logging.getLogger(__name__)

# What the connector does with each object, for doctor's permission check.
_OBJECT_NEEDS: tuple[tuple[str, str, str], ...] = (
    ("Campaign", "updateable", "write the ROI fields"),
    ("CampaignMember", "createable", "add webhook leads to campaigns"),
    ("Lead", "createable", "create webhook leads"),
    ("Task", "createable", "raise alerts as tasks"),
    ("Opportunity", "queryable", "read opportunities"),
    ("OpportunityContactRole", "queryable", "read contact roles"),
)


def _specs(config: Config):
    s = config.salesforce
    return field_specs(
        config.connector.reporting_currency,
        s.ad_campaign_id_field,
        department_field=s.department_field,
        category_field=s.category_field,
    )


def meaning_checks(config: Config, lead_fields: Mapping[str, Any]) -> list[tuple[bool, str]]:
    """Which department/category and lifecycle mappings are in force, and whether the Lead
    fields they name exist (the Campaign ones are checked with the connector's fields)."""
    s = config.salesforce
    meaning, lifecycle = CampaignMeaning.from_settings(s), LeadLifecycle.from_settings(s)
    out: list[tuple[bool, str]] = []
    if meaning.fields or meaning.rules:
        out.append((True, f"salesforce: campaigns: {meaning.describe()}"))
    else:
        out.append(
            (
                True,
                "warning: salesforce: no department or budget category is read, so department "
                "and category budgets stay empty: set salesforce.department_field / "
                "category_field (e.g. Department__c, Budget_Category__c) or campaign_rules",
            )
        )
    for name in lifecycle.fields:
        if name not in lead_fields:
            out.append((False, f"salesforce: Lead.{name} is missing or hidden from the API user"))
    prefix = "" if lifecycle.configured else "warning: "
    out.append((True, f"{prefix}salesforce: lead lifecycle: {lifecycle.describe()}"))
    return out


def _findings(report: FieldReport) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    if report.missing:
        out.append(
            (
                False,
                "salesforce: Campaign fields missing (or hidden from the API user): "
                + ", ".join(s.name for s in report.missing)
                + "; run `crm-roi setup-fields`",
            )
        )
    if report.read_only:
        out.append(
            (
                False,
                "salesforce: the API user cannot edit Campaign."
                + ", Campaign.".join(report.read_only)
                + " (field-level security); run `crm-roi setup-fields` or grant edit access",
            )
        )
    out.extend((False, f"salesforce: Campaign.{problem}") for problem in report.wrong_type)
    return out


def doctor_checks(config: Config) -> list[tuple[bool, str]]:
    """Login, the ROI fields, the API user's object permissions and the quota left."""
    if not config.salesforce.enabled:
        return []
    checks: list[tuple[bool, str]] = []
    client = None
    try:
        client = build_client(config)
        limits = client.limits()
        checks.append((True, f"salesforce: logged in to {client.auth.instance_url}"))
        specs = _specs(config)
        report = check_fields(client.field_map(SOBJECT, guarded=False), specs)
        checks.extend(_findings(report))
        if report.ok:
            checks.append(
                (True, f"salesforce: the {len(specs)} connector fields on Campaign are in place")
            )
        checks.extend(meaning_checks(config, client.field_map("Lead", guarded=False)))
        objects = client.describe_global()
        for name, flag, why in _OBJECT_NEEDS:
            if not (objects.get(name) or {}).get(flag):
                checks.append(
                    (False, f"salesforce: the API user lacks {flag} on {name} (needed to {why})")
                )
        daily = limits.get("DailyApiRequests") or {}
        most, left = daily.get("Max"), daily.get("Remaining")
        if most:
            used_share = Decimal(most - left) / Decimal(most)
            stop = config.salesforce.quota_stop_share
            checks.append(
                (
                    used_share < stop,
                    f"salesforce: API quota: {left:,} of {most:,} calls left today "
                    f"(syncs stop at {float(stop) * 100:.0f} % used)",
                )
            )
    except (HttpError, ConfigError) as exc:
        checks.append((False, f"salesforce: {exc}"))
    finally:
        if client is not None:
            client.close()
    return checks


def register(cli: click.Group) -> None:
    @cli.command("setup-fields")
    @click.option("--check", "check_only", is_flag=True, help="only report; change nothing")
    @click.option(
        "--permission-set",
        default=DEFAULT_PERMISSION_SET,
        show_default=True,
        help="permission set that grants the API user access to the fields",
    )
    @click.pass_obj
    def setup_fields(app: Any, check_only: bool, permission_set: str) -> None:
        """Create the ROI fields on Salesforce campaigns, or print what an admin must create.

        Checks the fields with describe; creates the missing ones (Tooling API) where the API
        user may customize the org, and grants read/edit access on a permission set assigned
        to that user. Otherwise lists the exact fields for an admin. Exit 1 if anything is
        left to do.

        \b
        Example:
          crm-roi setup-fields --check
          crm-roi setup-fields
        """
        from connector.cli import Failure, Usage

        config = app.config()
        if not config.salesforce.enabled:
            raise Usage("salesforce.enabled is false in the config: nothing to set up")
        specs = _specs(config)
        client = build_client(config)
        try:
            report = check_fields(client.field_map(SOBJECT, guarded=False), specs)
            if report.ok:
                click.echo(f"All {len(specs)} connector fields on Campaign are in place.")
                return
            if check_only:
                for _, text in _findings(report):
                    click.echo(text)
                raise Failure("Campaign fields need setting up (see above)")
            outcome = FieldSetup(client, permission_set=permission_set).run(specs)
            for name in outcome.created:
                click.echo(f"created Campaign.{name}")
            if outcome.granted:
                click.echo(
                    f"granted read/edit on {', '.join(outcome.granted)} in permission set "
                    f"{permission_set}"
                    + (" (assigned to the API user)" if outcome.assigned else "")
                )
                if not outcome.assigned:
                    click.echo(f"assign permission set {permission_set} to the API user")
            for note in outcome.notes:
                click.echo(note)
            if outcome.admin_must_create:
                for line in admin_instructions(outcome.admin_must_create, permission_set):
                    click.echo(line)
            after = check_fields(client.field_map(SOBJECT, refresh=True, guarded=False), specs)
            if after.ok:
                click.echo("Campaign fields ready.")
                return
            for problem in after.wrong_type:
                click.echo(f"Campaign.{problem}: change it in Setup (or delete it and re-run)")
            raise Failure(
                "some Campaign fields still need an admin (see above); then run `crm-roi doctor`"
            )
        except HttpError as exc:
            raise Failure(str(exc)) from None
        finally:
            client.close()
