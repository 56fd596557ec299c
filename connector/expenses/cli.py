"""``crm-roi expenses``: enter, approve, reject, list and import non-ad costs (DESIGN section
10); registered by :func:`connector.cli.command_modules`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from connector import model
from connector.cli.options import (
    FORMAT,
    budget_engine,
    failure,
    read_config,
    who,
)
from connector.config import Config
from connector.csv_rows import CsvRejected
from connector.money import format_money, quantize, to_decimal
from connector.store import Store

# ----- expenses --------------------------------------------------------------------------


def _ledger(store: Store, config: Config, now: datetime) -> Any:
    from connector.expenses.ledger import Ledger
    from connector.expenses.rules import ExpensePolicy

    return Ledger(store, budget_engine(store, config, now), ExpensePolicy.from_config(config))


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

    config = read_config(app)
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
                requested_by=who(requested_by),
                now=now,
                description=description,
                vendor=vendor,
                external_id=external_id,
            )
        except ExpenseError as exc:
            raise failure(str(exc)) from None
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
@FORMAT
@click.pass_obj
def expenses_list(app: Any, status: str | None, campaign: str | None, fmt: str) -> None:
    """List expenses with their status and latest decision.

    \b
    Example:
      crm-roi expenses list --status requested
    """
    from connector.expenses.ledger import ExpenseError

    config = read_config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, datetime.now(UTC))
        try:
            rows = ledger.list_expenses(status=status, campaign=campaign)
        except ExpenseError as exc:
            raise failure(str(exc)) from None
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

    config = read_config(app)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, datetime.now(UTC))
        try:
            expense = ledger.expense(expense_id)
        except ExpenseError as exc:
            raise failure(str(exc)) from None
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

    config = read_config(app)
    now = datetime.now(UTC)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            expense, decision = ledger.approve(
                expense_id, by=by, reason=reason, override=override, now=now
            )
        except ExpenseError as exc:
            raise failure(str(exc)) from None
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

    config = read_config(app)
    now = datetime.now(UTC)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            expense = ledger.reject(expense_id, by=by, reason=reason, now=now)
        except ExpenseError as exc:
            raise failure(str(exc)) from None
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

    config = read_config(app)
    now = datetime.now(UTC)
    with Store.open(config.connector.database_url, create=False) as store:
        ledger = _ledger(store, config, now)
        try:
            parsed = parse_expense_file(ledger, file, source=source)
        except CsvRejected as exc:
            raise failure(str(exc)) from None
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


def register(cli: click.Group) -> None:
    cli.add_command(expenses)
