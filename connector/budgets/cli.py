"""``crm-roi budget``, ``crm-roi expenses`` and ``crm-roi alerts`` (DESIGN section 10).

Registered into the CLI by :func:`connector.cli.command_modules`. ``alerts run``, which
delivers through the channels of ``sync/``, lives in :mod:`sync.alerts.cli` and attaches
itself to the ``alerts`` group here: the core imports nothing of the outside-system layers
(DESIGN section 2).
"""

from __future__ import annotations

import getpass
import os
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector import model
from connector.alerts import log as alert_log
from connector.alerts.log import AlertRecord
from connector.budgets import formats as budget_format
from connector.budgets.engine import BudgetEngine
from connector.config import Config
from connector.csv_rows import CsvRejected
from connector.money import format_money, quantize, to_decimal
from connector.store import Store

# ----- shared helpers ------------------------------------------------------------------------


def _failure(message: str) -> click.ClickException:
    from connector.cli import Failure

    return Failure(message)


def _usage(message: str) -> click.ClickException:
    from connector.cli import Usage

    return Usage(message)


def _as_of(value: str | None) -> datetime:
    from connector.cli import _parse_as_of

    return _parse_as_of(value)


def _config(app: Any) -> Config:
    return app.config(resolve_secrets=False)


def _engine(store: Store, config: Config, as_of: datetime) -> BudgetEngine:
    from connector.alerts.run import budget_engine_for

    return budget_engine_for(store, config, as_of=as_of)


def _who(value: str | None) -> str | None:
    if value:
        return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
_AS_OF = click.option(
    "--as-of", default=None, metavar="TIME", help="compute as of this ISO time (default: now)"
)


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
@_FORMAT
@_AS_OF
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
    config = _config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        engine = _engine(store, config, _as_of(as_of))
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

    config = _config(app)
    try:
        parsed = parse_budget_file(file, reporting_currency=config.connector.reporting_currency)
    except CsvRejected as exc:
        raise _failure(str(exc)) from None
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


# ----- expenses --------------------------------------------------------------------------


def _ledger(store: Store, config: Config, now: datetime) -> Any:
    from connector.expenses.ledger import Ledger
    from connector.expenses.rules import ExpensePolicy

    return Ledger(store, _engine(store, config, now), ExpensePolicy.from_config(config))


def _amount(value: str) -> Decimal:
    try:
        return to_decimal(value)
    except (TypeError, ValueError):
        raise click.BadParameter(
            f"{value!r} is not an amount (write 1234.50)", param_hint="--amount"
        ) from None


@click.group("expenses")
def expenses() -> None:
    """Enter, approve, reject, list and import non-ad costs (only approved ones are cost).

    \b
    Example:
      crm-roi expenses add --campaign 701Hs00000AbCdE --amount 4800 --description "Booth"
      crm-roi expenses approve E-1A2B3C4D5E --by cmo@example.com
    """


@expenses.command("add")
@click.option("--campaign", required=True, metavar="ID", help="CRM campaign id (or source:id)")
@click.option("--amount", required=True, help="amount, e.g. 4800.00")
@click.option(
    "--credit",
    is_flag=True,
    help="a refund or credit of --amount (lowers cost; needs --description and an approver)",
)
@click.option("--currency", default=None, help="ISO code (default: the reporting currency)")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="default: today")
@click.option("--description", default=None)
@click.option("--vendor", default=None)
@click.option("--requested-by", default=None, help="default: the current user")
@click.option("--id", "external_id", default=None, help="your own id (default: generated)")
@click.pass_obj
def expenses_add(
    app: Any,
    campaign: str,
    amount: str,
    currency: str | None,
    day: str | None,
    description: str | None,
    vendor: str | None,
    requested_by: str | None,
    external_id: str | None,
    credit: bool,
) -> None:
    """Enter an expense; under the auto-approval limit and within budget it is approved at once.

    \b
    Example:
      crm-roi expenses add --campaign 701Hs00000AbCdE --amount 4800 --currency EUR \\
        --date 2026-11-20 --description "Booth, Web Summit" --vendor Freeman
    """
    from connector.expenses.ledger import ExpenseError, signed_amount
    from connector.money import AmountError, entered_amount, normalize_currency

    config = _config(app)
    now = datetime.now(UTC)
    try:
        incurred = date.fromisoformat(day) if day else now.date()
    except ValueError:
        raise click.BadParameter(f"{day!r} is not a date", param_hint="--date") from None
    code = normalize_currency(currency or config.connector.reporting_currency)
    try:
        value = signed_amount(entered_amount(_amount(amount), code), credit, description)
    except AmountError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    value = abs(value)  # the ledger applies the sign of a credit
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            expense, decision = ledger.add(
                campaign=campaign,
                amount=value,
                credit=credit,
                currency=code,
                incurred_on=incurred,
                requested_by=_who(requested_by),
                now=now,
                description=description,
                vendor=vendor,
                external_id=external_id,
            )
        except ExpenseError as exc:
            raise _failure(str(exc)) from None
    app.out.print(
        f"expense {expense.source}:{expense.external_id} "
        f"{format_money(expense.amount, expense.currency)} "
        f"-> {expense.status} ({decision.reason})",
        highlight=False,
        markup=False,
    )


@expenses.command("list")
@click.option("--status", type=click.Choice(model.EXPENSE_STATUSES), default=None)
@click.option("--campaign", default=None, metavar="ID")
@_FORMAT
@click.pass_obj
def expenses_list(app: Any, status: str | None, campaign: str | None, fmt: str) -> None:
    """List expenses with their status and latest decision.

    \b
    Example:
      crm-roi expenses list --status requested
    """
    from connector.expenses.ledger import ExpenseError

    config = _config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, datetime.now(UTC))
        try:
            rows = ledger.list_expenses(status=status, campaign=campaign)
        except ExpenseError as exc:
            raise _failure(str(exc)) from None
    _print_expenses(app, rows, fmt)


_EXPENSE_FIELDS = (
    "id",
    "campaign",
    "date",
    "amount",
    "currency",
    "status",
    "description",
    "vendor",
    "requested_by",
    "decided_by",
    "decided_at",
    "decision_reason",
)


def _expense_dict(e: model.Expense) -> dict[str, Any]:
    return {
        "id": f"{e.source}:{e.external_id}",
        "campaign": f"{e.campaign_source}:{e.campaign_id}",
        "date": e.incurred_on.isoformat(),
        "amount": str(quantize(e.amount, e.currency)),
        "currency": e.currency,
        "status": e.status,
        "description": e.description,
        "vendor": e.vendor,
        "requested_by": e.requested_by,
        "decided_by": e.decided_by,
        "decided_at": e.decided_at.isoformat() if e.decided_at else None,
        "decision_reason": e.decision_reason,
    }


def _print_expenses(app: Any, rows: Sequence[model.Expense], fmt: str) -> None:
    import csv
    import io
    import json

    dicts = [_expense_dict(e) for e in rows]
    if fmt == "json":
        click.echo(json.dumps({"expenses": dicts}, indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_EXPENSE_FIELDS, lineterminator="\n")
        writer.writeheader()
        for d in dicts:
            writer.writerow({k: "" if v is None else v for k, v in d.items()})
        click.echo(out.getvalue(), nl=False)
        return
    table = Table(title=f"Expenses ({len(rows)})", title_justify="left", header_style="bold")
    for name in ("id", "campaign", "date", "amount", "status", "description", "decided by"):
        table.add_column(name, justify="right" if name == "amount" else "left")
    style = {"approved": "green", "rejected": "red", "requested": "yellow"}
    for e in rows:
        table.add_row(
            escape(f"{e.source}:{e.external_id}"),
            escape(e.campaign_id),
            e.incurred_on.isoformat(),
            format_money(e.amount, e.currency),
            f"[{style.get(e.status, '')}]{e.status}[/]",
            escape(e.description or ""),
            escape(e.decided_by or ""),
        )
    app.out.print(table)


@expenses.command("show")
@click.argument("expense_id")
@click.pass_obj
def expenses_show(app: Any, expense_id: str) -> None:
    """Show one expense and every decision on it: who, when, why, and the budgets it hit.

    \b
    Example:
      crm-roi expenses show manual:E-1A2B3C4D5E
    """
    from connector.expenses.ledger import ExpenseError

    config = _config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, datetime.now(UTC))
        try:
            expense = ledger.expense(expense_id)
        except ExpenseError as exc:
            raise _failure(str(exc)) from None
        history = ledger.history(expense)
    d = _expense_dict(expense)
    app.out.print(
        f"{d['id']}: {format_money(expense.amount, expense.currency)} on {d['date']} for campaign "
        f"{d['campaign']} — {d['status']}",
        highlight=False,
        markup=False,
    )
    for h in history:
        override = " OVERRIDE" if h["override"] else ""
        app.out.print(
            f"  {h['decided_at']:%Y-%m-%d %H:%M} {h['action']}{override} by {h['actor'] or '?'}"
            + (f" [{h['rule']}]" if h["rule"] else "")
            + (f": {h['reason']}" if h["reason"] else ""),
            highlight=False,
            markup=False,
        )


@expenses.command("approve")
@click.argument("expense_id")
@click.option("--by", "by", required=True, help="who approves (name or e-mail)")
@click.option("--reason", default=None, help="why (required with --override)")
@click.option("--override", is_flag=True, help="approve although it takes a budget over 100 %")
@click.pass_obj
def expenses_approve(
    app: Any, expense_id: str, by: str, reason: str | None, override: bool
) -> None:
    """Approve an expense; refused over budget unless overridden with a reason.

    \b
    Example:
      crm-roi expenses approve E-1A2B3C4D5E --by cmo@example.com
      crm-roi expenses approve E-1A2B3C4D5E --by cmo@example.com --override \\
        --reason "Board approved the Q4 push"
    """
    from connector.expenses.ledger import ExpenseError

    config = _config(app)
    now = datetime.now(UTC)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            expense, decision = ledger.approve(
                expense_id, by=by, reason=reason, override=override, now=now
            )
        except ExpenseError as exc:
            raise _failure(str(exc)) from None
    note = " (budget lock overridden)" if decision.override else ""
    app.out.print(
        f"expense {expense.source}:{expense.external_id} approved by {by}{note}.",
        highlight=False,
        markup=False,
    )


@expenses.command("reject")
@click.argument("expense_id")
@click.option("--by", "by", required=True, help="who rejects (name or e-mail)")
@click.option("--reason", required=True, help="why")
@click.pass_obj
def expenses_reject(app: Any, expense_id: str, by: str, reason: str) -> None:
    """Reject an expense (or withdraw an approved one), with the reason kept.

    \b
    Example:
      crm-roi expenses reject E-1A2B3C4D5E --by cmo@example.com --reason "Duplicate invoice"
    """
    from connector.expenses.ledger import ExpenseError

    config = _config(app)
    now = datetime.now(UTC)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            expense = ledger.reject(expense_id, by=by, reason=reason, now=now)
        except ExpenseError as exc:
            raise _failure(str(exc)) from None
    app.out.print(
        f"expense {expense.source}:{expense.external_id} rejected.", highlight=False, markup=False
    )


@expenses.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source",
    default="csv",
    show_default=True,
    help="name of the finance system, kept as the expenses' source",
)
@click.option("--dry-run", is_flag=True, help="check the file, change nothing")
@click.pass_obj
def expenses_import(app: Any, file: Path, source: str, dry_run: bool) -> None:
    """Import expenses from a finance system's CSV export, all or nothing.

    Columns: id, campaign_id, date, amount, and optionally currency, description, vendor,
    requested_by. Rows enter as requests and pass the approval rules in file order; one bad
    row rejects the whole file naming its line and column. Re-importing a file is safe.

    \b
    Example:
      crm-roi expenses import invoices-2026-11.csv --source netsuite
    """
    from connector.expenses.csv_import import apply_expense_file, parse_expense_file

    config = _config(app)
    now = datetime.now(UTC)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            parsed = parse_expense_file(ledger, file, source=source)
        except CsvRejected as exc:
            raise _failure(str(exc)) from None
        if parsed.ignored_columns:
            app.err.print(
                f"ignored columns: {', '.join(parsed.ignored_columns)}",
                highlight=False,
                markup=False,
            )
        if dry_run:
            app.out.print(f"{file}: {len(parsed.rows)} expenses, all valid (nothing changed).")
            return
        result = apply_expense_file(ledger, parsed, now=now)
    app.out.print(
        f"{file}: {result.added} added, {result.updated} changed, {result.unchanged} unchanged; "
        f"{len(result.approved)} approved by rule.",
        highlight=False,
        markup=False,
    )
    for external_id, why in result.held:
        app.out.print(
            f"  held for an approver: {external_id}: {why}", highlight=False, markup=False
        )


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
    config = _config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        found = alert_log.list_alerts(store, open_only=open_only)
    if fmt == "json":
        click.echo(budget_format.alerts_json(found))
    else:
        budget_format.render_alerts(found, app.out, title="Open alerts" if open_only else "Alerts")


# ----- demo, doctor, registration ------------------------------------------------------------


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
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def most_severe_first(alerts: Iterable[AlertRecord], period: str) -> list[AlertRecord]:
    """Critical first, then warning, then info; within each, ``period``'s alerts (the
    budgets on screen) first, then the latest periods."""
    ordered = sorted(alerts, key=lambda a: a.scope)
    ordered.sort(key=lambda a: a.period, reverse=True)
    return sorted(
        ordered,
        key=lambda a: (_SEVERITY_RANK.get(a.severity, len(_SEVERITY_RANK)), a.period != period),
    )


def _by_rank(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: _SEVERITY_RANK.get(kv[0], len(_SEVERITY_RANK)))


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
    """Deliveries not failing, budgets pointing at real scopes (the channels themselves are
    checked by :mod:`sync.alerts.cli`)."""
    checks: list[tuple[bool, str]] = []
    try:
        store = Store(config.connector.database_url)
        if not store.exists():  # the core check says so; connecting would create the file
            return checks
        try:
            # what is still owed: open alerts to their channels, resolutions to theirs
            owed: dict[str, list[dict[str, Any]]] = {}
            for a in alert_log.list_alerts(store):
                for key, error in a.delivery_errors.items():
                    channel = key.partition(":")[0]
                    resolution = key == alert_log.resolution_channel(channel)
                    if (a.state == alert_log.RESOLVED) == resolution:
                        owed.setdefault(key, []).append(error)
            for key, errors in sorted(owed.items()):
                channel = key.partition(":")[0]
                resolution = key != channel
                what = (
                    "resolutions not announced on" if resolution else "open alerts not delivered to"
                )
                checks.append(
                    (
                        False,
                        f"{len(errors)} {what} {channel} "
                        f"({errors[0]['attempts']} attempts): {errors[0]['error']}",
                    )
                )
            stranded = [
                a
                for a in alert_log.list_alerts(store)
                if a.state == alert_log.OPEN and not alert_log.reached(a) and not a.delivery_errors
            ]
            if stranded:
                checks.append(_stranded_check(stranded))
            campaigns = list(store.iter_records(model.Campaign))
        finally:
            store.close()
    except Exception as exc:  # the store check of doctor reports store problems
        checks.append((False, f"alerts: cannot read the store ({type(exc).__name__})"))
        return checks
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
    cli.add_command(expenses)
    cli.add_command(alerts)
