"""``crm-roi alerts``: the alerts with their state and deliveries (``alerts run`` is
:mod:`sync.alerts.cli`'s, attached to this group: delivering belongs to ``sync/``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from connector.alerts import log as alert_log
from connector.alerts.log import AlertRecord
from connector.budgets import formats as budget_format
from connector.cli.options import (
    read_config,
)
from connector.config import Config
from connector.store import Store

# ----- alerts ----------------------------------------------------------------------------


@click.group("alerts", invoke_without_command=True)
@click.option("--open", "open_only", is_flag=True, help="only alerts still open")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def alerts(ctx: click.Context, open_only: bool, fmt: str) -> None:
    """List budget and health alerts with their state and where they were delivered.

    \b
    Examples:
      crm-roi alerts --open
      crm-roi alerts --format json
      crm-roi alerts run
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.obj
    config = read_config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        found = alert_log.list_alerts(store, open_only=open_only)
    if fmt == "json":
        click.echo(budget_format.alerts_json(found))
    else:
        budget_format.render_alerts(found, app.out, title="Open alerts" if open_only else "Alerts")


SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def most_severe_first(alerts: Iterable[AlertRecord], period: str) -> list[AlertRecord]:
    """Critical first, then warning, then info; within each, ``period``'s alerts (the
    budgets on screen) first, then the latest periods."""
    ordered = sorted(alerts, key=lambda a: a.scope)
    ordered.sort(key=lambda a: a.period, reverse=True)
    return sorted(
        ordered,
        key=lambda a: (SEVERITY_RANK.get(a.severity, len(SEVERITY_RANK)), a.period != period),
    )


def _stranded_check(stranded: list[AlertRecord]) -> tuple[bool, str]:
    """Open alerts nobody received: a finding when the CRM had no campaign to hang a task on
    (the other channels would carry them), a failure when no channel took them at all."""
    first = stranded[0]
    skipped_only = all(a.delivered_to for a in stranded)
    why = "no campaign for a CRM task" if first.delivered_to else "no channel has taken it"
    text = (
        f"{len(stranded)} open alert(s) reached nobody (e.g. {first.rule} on {first.scope}: "
        f"{why}); set a Slack, e-mail or webhook channel in [alerts] (`crm-roi alerts run` "
        "delivers them)"
    )
    return (True, f"warning: {text}") if skipped_only else (False, text)


def doctor_checks(config: Config) -> list[tuple[bool, str]]:
    """Deliveries not failing and alerts reaching someone (the channels themselves are
    checked by :mod:`sync.alerts.cli`)."""
    with Store.if_ready(config.connector.database_url) as store:
        if store is None:
            return []
        try:
            found = alert_log.list_alerts(store)
        except Exception as exc:  # the store check of doctor reports store problems
            return [(False, f"alerts: cannot read the store ({type(exc).__name__})")]
    checks = _owed_checks(found)
    stranded = [
        a
        for a in found
        if a.state == alert_log.OPEN and not alert_log.reached(a) and not a.delivery_errors
    ]
    if stranded:
        checks.append(_stranded_check(stranded))
    return checks


def _owed_checks(found: list[AlertRecord]) -> list[tuple[bool, str]]:
    """What is still owed: open alerts to their channels, resolutions to theirs."""
    owed: dict[str, list[dict[str, Any]]] = {}
    for a in found:
        for key, error in a.delivery_errors.items():
            channel = key.partition(":")[0]
            resolution = key == alert_log.resolution_channel(channel)
            if (a.state == alert_log.RESOLVED) == resolution:
                owed.setdefault(key, []).append(error)
    checks: list[tuple[bool, str]] = []
    for key, errors in sorted(owed.items()):
        channel = key.partition(":")[0]
        what = "resolutions not announced on" if key != channel else "open alerts not delivered to"
        checks.append(
            (
                False,
                f"{len(errors)} {what} {channel} "
                f"({errors[0]['attempts']} attempts): {errors[0]['error']}",
            )
        )
    return checks


def register(cli: click.Group) -> None:
    cli.add_command(alerts)
