"""``crm-roi alerts run`` and the alert channels' doctor check: the alert commands that
deliver, attached to the ``alerts`` group of :mod:`connector.alerts.cli` (the core imports
nothing of ``sync/``, DESIGN section 2)."""

from __future__ import annotations

from typing import Any

import click

from connector.alerts import log as alert_log
from connector.alerts.cli import alerts
from connector.budgets import formats as budget_format
from connector.cli.options import AS_OF, parse_as_of, read_config
from connector.config import Config
from connector.store import Store
from sync.alerts.delivery import channels_from_config, deliver_alerts
from sync.pipeline import build_writer


@click.command("run")
@AS_OF
@click.option("--no-deliver", is_flag=True, help="evaluate and record only")
@click.pass_obj
def alerts_run(app: Any, as_of: str | None, no_deliver: bool) -> None:
    """Evaluate the budget and health rules now and deliver new alerts to their channels.

    The sync does this after every run; use this after importing budgets or expenses.
    Exits 3 when some deliveries failed (they are retried on the next run).

    \b
    Example:
      crm-roi alerts run
    """
    from connector.alerts.run import evaluate_alerts
    from connector.roi import RoiEngine, Settings
    from connector.store.dataset import Dataset

    config = read_config(app)
    when = parse_as_of(as_of)
    with Store.open(config.connector.database_url, create=False) as store:
        roi_engine = None
        if config.alerts.health:
            roi_engine = RoiEngine(Dataset.load(store), Settings.from_config(config), as_of=when)
        run = evaluate_alerts(store, config, as_of=when, roi_engine=roi_engine)
        fired = [a for a in alert_log.list_alerts(store) if a.dedup_key in run.outcome.fired]
        app.out.print(
            f"{run.evaluated} rules evaluated: {len(run.outcome.fired)} fired, "
            f"{len(run.outcome.passed)} passed (a higher one fired), "
            f"{len(run.outcome.resolved)} resolved.",
            highlight=False,
            markup=False,
        )
        budget_format.render_alerts(fired, app.out, title="New alerts")
        if no_deliver:
            return
        failed = _deliver(app, store, config)
    if failed:
        raise SystemExit(3)


def _deliver(app: Any, store: Store, config: Config) -> bool:
    """Deliver open alerts; True when some delivery failed."""
    writer = None
    try:
        writer = build_writer(config, store)
    except Exception as exc:  # no CRM adapter yet, or a CRM without credentials
        app.err.print(f"CRM tasks skipped: {exc}", highlight=False, markup=False)
    channels, problems = channels_from_config(config, crm_writer=writer)
    for problem in problems:
        app.err.print(problem, highlight=False, markup=False)
    if not channels:
        app.out.print(
            "No alert channel is configured ([alerts] in config).", highlight=False, markup=False
        )
        return bool(problems)
    report = deliver_alerts(store, channels)
    for name in (c.name for c in channels):
        sent = report.delivered.get(name, 0)
        errors = [
            *report.failed.get(name, []),
            *report.failed.get(alert_log.resolution_channel(name), []),
        ]
        line = f"{name}: {sent} delivered"
        if report.resolved.get(name):
            count = report.resolved[name]
            line += f", {count} resolution{'s' if count != 1 else ''} announced"
        if report.skipped.get(name):
            line += f", {report.skipped[name]} it cannot carry (no campaign for a task)"
        if errors:
            line += f", {len(errors)} failed (retried next run): {errors[0]}"
        app.out.print(line, highlight=False, markup=False)
    return bool(problems) or not report.ok


def doctor_checks(config: Config) -> list[tuple[bool, str]]:
    """Which alert channels are usable."""
    channels, problems = channels_from_config(config)
    checks = [(False, p) for p in problems]
    names = ", ".join(c.name for c in channels)
    crm = " (+ CRM tasks)" if config.alerts.crm_tasks and config.enabled_crms else ""
    checks.append((True, f"alert channels: {names or 'none configured'}{crm}"))
    return checks


def register(cli: click.Group) -> None:
    alerts.add_command(alerts_run)
