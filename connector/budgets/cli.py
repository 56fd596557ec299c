"""``crm-roi budget`` (with ``budget import``) and the demo's budget part (DESIGN section
10); registered by :func:`connector.cli.command_modules`."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from connector import model
from connector.alerts import log as alert_log
from connector.alerts.cli import SEVERITY_RANK, most_severe_first
from connector.budgets import formats as budget_format
from connector.budgets.engine import BudgetEngine
from connector.cli.options import (
    AS_OF,
    FORMAT,
    budget_engine,
    failure,
    parse_as_of,
    read_config,
)
from connector.config import Config
from connector.csv_rows import CsvRejected
from connector.money import format_money
from connector.store import Store

# ----- budget ----------------------------------------------------------------------------


@click.group("budget", invoke_without_command=True)
@click.option(
    "--period",
    default=None,
    metavar="P",
    help="budgets set for 2026-11, 2026-Q4 or 2026 (default: every budget running today)",
)
@click.option(
    "--campaigns", is_flag=True, help="add the campaigns' own budgets (CRM budgeted cost)"
)
@FORMAT
@AS_OF
@click.pass_context
def budget(
    ctx: click.Context, period: str | None, campaigns: bool, fmt: str, as_of: str | None
) -> None:
    """Print budget use, pacing and forecast per scope and period, with bars.

    Scopes are the [[budgets]] of config and imported budgets (total, categories, channels,
    departments, campaigns); --campaigns adds each campaign's own budgeted cost.

    \b
    Examples:
      crm-roi budget
      crm-roi budget --period 2026-Q4 --format json
      crm-roi budget --campaigns --format csv > budgets.csv
      crm-roi budget import budgets.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    from connector.periods import Period

    if period is not None:
        try:
            period = Period.parse(period).name
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--period") from None
    app = ctx.obj
    config = read_config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        engine = budget_engine(store, config, parse_as_of(as_of))
    report = engine.report(period=period, campaigns=campaigns)
    if fmt == "json":
        click.echo(budget_format.to_json(report))
    elif fmt == "csv":
        click.echo(budget_format.to_csv(report), nl=False)
    else:
        budget_format.render_table(report, app.out)


@budget.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="remove imported budgets the file no longer lists")
@click.option("--dry-run", is_flag=True, help="check the file, change nothing")
@click.pass_obj
def budget_import(app: Any, file: Path, replace: bool, dry_run: bool) -> None:
    """Import budgets from a CSV file (columns scope, period, amount, currency), all or nothing.

    Every row is checked first; one bad row rejects the file naming its line and column.
    Importing a corrected file again updates the budgets; [[budgets]] in config win over it.

    \b
    Example:
      crm-roi budget import budgets.csv
    \b
    budgets.csv:
      scope,period,amount,currency
      channel:paid_social,2026-Q4,50000,USD
      department:Brand,2026,220000,USD
      total,2026,1600000,USD
    """
    from connector.budgets.csv_import import apply_budget_file, parse_budget_file

    config = read_config(app)
    try:
        parsed = parse_budget_file(file, reporting_currency=config.connector.reporting_currency)
    except CsvRejected as exc:
        raise failure(str(exc)) from None
    if parsed.ignored_columns:
        app.err.print(
            f"ignored columns: {', '.join(parsed.ignored_columns)}", highlight=False, markup=False
        )
    if dry_run:
        app.out.print(f"{file}: {len(parsed.budgets)} budgets, all valid (nothing changed).")
        return
    with Store.open(config.connector.database_url, create=False) as store:
        result = apply_budget_file(store, parsed, configured=config.budgets, replace=replace)
    counts = {"added": 0, "replaced": 0, "changed": 0, "unchanged": 0}
    for outcome in result.outcomes:
        counts[outcome.action] += 1
    app.out.print(
        f"{file}: "
        + ", ".join(f"{n} {action}" for action, n in counts.items())
        + (f", {result.removed} removed" if replace else "")
        + ".",
        highlight=False,
        markup=False,
    )
    for outcome in result.outcomes[:_LISTED_ROWS]:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        app.out.print(
            f"  {outcome.action:<9} {outcome.scope} {outcome.period}: "
            f"{format_money(outcome.amount, outcome.currency)}{detail}",
            highlight=False,
            markup=False,
        )
    if len(result.outcomes) > _LISTED_ROWS:
        app.out.print(f"  … and {len(result.outcomes) - _LISTED_ROWS} more rows", markup=False)
    for shadowed in result.shadowed:
        app.err.print(
            f"note: {shadowed} is also set in config [[budgets]], which wins",
            highlight=False,
            markup=False,
        )


_LISTED_ROWS = 50


def show_demo(
    out: Console, store: Store, config_path: Path, engine: Any, period: str, command: str
) -> None:
    """The demo's budget part: the quarter's budgets (one channel heading over) and the
    open alerts, most severe first, printed instead of delivered (the demo has no outside
    channel). ``command`` is how the reader runs crm-roi (see ``sync.demo_cli``)."""
    from connector.alerts.run import evaluate_alerts
    from connector.config import load_config

    config = load_config(config_path, os.environ, resolve_secrets=False)
    budgets = BudgetEngine.from_roi(
        engine,
        targets=config.budget_categories.targets.as_mapping(),
        tolerance=config.budget_categories.tolerance,
    )
    budget_format.render_table(budgets.report(period=period), out)
    evaluate_alerts(store, config, as_of=engine.as_of, budget_engine=budgets)
    open_alerts = most_severe_first(alert_log.list_alerts(store, open_only=True), period)
    shown = open_alerts[:_DEMO_ALERTS]
    budget_format.render_alerts(
        shown, out, title=f"Open alerts, most severe first ({len(shown)} of {len(open_alerts)})"
    )
    rest = Counter(a.severity for a in open_alerts[_DEMO_ALERTS:])
    if rest:
        counts = ", ".join(f"{n} {severity}" for severity, n in _by_rank(rest))
        out.print(f"  … and {sum(rest.values())} more open ({counts})", highlight=False)
    for alert in shown:
        if alert.severity != "info":
            out.print(
                f"  {alert.subject}\n    {alert.body}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    config_arg = shlex.quote(str(config_path))
    out.print(
        "  (the sync delivered them as tasks into the sample CRM; with [alerts] configured they "
        "also go to Slack, e-mail or a signed webhook)\n"
        f"  {command} --config {config_arg} budget --campaigns\n"
        f"  {command} --config {config_arg} alerts --open",
        highlight=False,
        markup=False,
    )


_DEMO_ALERTS = 8


def _by_rank(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: SEVERITY_RANK.get(kv[0], len(SEVERITY_RANK)))


def doctor_checks(config: Config) -> list[tuple[bool, str]]:
    """Budgets pointing at real scopes: campaigns and departments the store knows."""
    with Store.if_ready(config.connector.database_url) as store:
        if store is None:
            return []
        try:
            campaigns = list(store.iter_records(model.Campaign))
        except Exception:  # the alerts' and the core's checks report an unreadable store
            return []
    checks: list[tuple[bool, str]] = []
    if campaigns:
        ids = {c.external_id for c in campaigns}
        departments = {c.department for c in campaigns if c.department}
        for i, b in enumerate(config.budgets):
            if b.scope_kind == "campaign" and b.scope_name not in ids:
                checks.append((False, f"budgets[{i}]: no campaign {b.scope_name!r} in the store"))
            if b.scope_kind == "department" and b.scope_name not in departments:
                known = ", ".join(sorted(departments)) or "none"
                checks.append(
                    (False, f"budgets[{i}]: no campaign has department {b.scope_name!r} ({known})")
                )
    return checks


def register(cli: click.Group) -> None:
    cli.add_command(budget)
