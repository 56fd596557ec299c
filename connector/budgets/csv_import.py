"""``crm-roi budget import FILE``: budgets from a spreadsheet, checked row by row.

Columns: ``scope`` (``channel:paid_social``, ``department:Brand``, ``category:growth``,
``campaign:<id>`` or ``total``), ``period`` (``2026-11``, ``2026-Q4`` or ``2026``), ``amount``
(0 or more) and optionally ``currency`` (default: the reporting currency). Each row is
checked with the same rules as a ``[[budgets]]`` row of config. The rows are stored as Budget
records of source ``csv``: importing a corrected file updates them; with ``replace`` the
imported budgets missing from the file are removed (recorded as deleted). An imported row wins
over a budget another source (a CRM) stored for the same scope and period; a ``[[budgets]]``
row in config wins over both. Each row is reported as added, replacing (another source's
budget, with its amount), changed (from what), unchanged, or shadowed by config.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import ValidationError

from connector import config as config_module
from connector import model
from connector.csv_rows import MAX_REPORTED, CsvRejected, RowError, read_rows
from connector.money import format_money
from connector.store import Store

SOURCE = "csv"
COLUMNS = ("scope", "period", "amount")
OPTIONAL = ("currency",)


@dataclass
class BudgetFile:
    budgets: list[model.Budget]
    ignored_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RowOutcome:
    """What importing one row did to the budget of its scope and period."""

    scope: str
    period: str
    amount: Decimal
    currency: str
    action: str  # added, replaced, changed, unchanged
    detail: str = ""  # replaced: whose budget and its amount; changed: the amount before


@dataclass
class BudgetImportResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    replaced: int = 0
    outcomes: list[RowOutcome] = field(default_factory=list)
    removed: int = 0
    shadowed: list[str] = field(default_factory=list)
    """``scope period`` of rows that config's ``[[budgets]]`` overrides."""


def _row_budget(row_cells: dict[str, str], line: int, currency: str) -> model.Budget:
    values = {
        "scope": row_cells.get("scope", "").strip(),
        "period": row_cells.get("period", "").strip(),
        "amount": row_cells.get("amount", "").strip(),
        "currency": (row_cells.get("currency") or "").strip().upper() or currency,
    }
    try:
        checked = config_module.Budget.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        column = str(err["loc"][0]) if err["loc"] else None
        message = str(err["msg"]).removeprefix("Value error, ")
        raise RowError(line, column, message) from None
    return model.Budget(
        source=SOURCE,
        external_id=model.Budget.key(checked.scope, checked.period),
        scope=checked.scope,
        period=checked.period,
        amount=checked.amount,
        currency=checked.currency,
    )


def parse_budget_file(path: Path, *, reporting_currency: str) -> BudgetFile:
    """Check every row; raise :class:`CsvRejected` listing the bad ones (nothing applied)."""
    rows, ignored = read_rows(path, required=COLUMNS, optional=OPTIONAL)
    budgets: list[model.Budget] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for row in rows:
        try:
            budget = _row_budget(row.cells, row.line, reporting_currency)
        except RowError as exc:
            errors.append(exc)
            continue
        if budget.external_id in first_line:
            errors.append(
                RowError(
                    row.line,
                    "scope",
                    f"a second budget for {budget.scope} {budget.period} "
                    f"(the first is on line {first_line[budget.external_id]})",
                )
            )
            continue
        first_line[budget.external_id] = row.line
        budgets.append(budget)
    if errors:
        raise CsvRejected(str(path), errors[:MAX_REPORTED])
    return BudgetFile(budgets, ignored)


def apply_budget_file(
    store: Store,
    parsed: BudgetFile,
    *,
    configured: Iterable[config_module.Budget] = (),
    replace: bool = False,
) -> BudgetImportResult:
    """Store the budgets in one transaction (with ``replace``, remove the imported ones the
    file no longer lists)."""
    result = BudgetImportResult()
    in_config = {model.Budget.key(b.scope, b.period) for b in configured}
    result.shadowed = [
        f"{b.scope} {b.period}" for b in parsed.budgets if b.external_id in in_config
    ]
    keep = {b.external_id for b in parsed.budgets}
    stale = (
        [
            b.external_id
            for b in store.iter_records(model.Budget, source=SOURCE)
            if b.external_id not in keep
        ]
        if replace
        else []
    )
    result.outcomes = _outcomes(parsed.budgets, list(store.iter_records(model.Budget)))
    result.replaced = sum(1 for o in result.outcomes if o.action == "replaced")
    with store.begin() as conn:
        report = store.upsert(parsed.budgets, connection=conn)
        counts = report.counts(model.Budget.entity)
        result.inserted, result.updated, result.unchanged = (
            counts.inserted,
            counts.updated,
            counts.unchanged,
        )
        if stale:
            result.removed = store.mark_deleted(model.Budget, SOURCE, stale, connection=conn)
    return result


def _outcomes(rows: list[model.Budget], before: list[model.Budget]) -> list[RowOutcome]:
    mine = {b.external_id: b for b in before if b.source == SOURCE}
    others: dict[tuple[str, str], list[model.Budget]] = {}
    for b in before:
        if b.source != SOURCE:
            others.setdefault((b.scope, b.period), []).append(b)
    outcomes = []
    for row in rows:
        old = mine.get(row.external_id)
        if old is not None:
            same = (old.amount, old.currency) == (row.amount, row.currency)
            action = "unchanged" if same else "changed"
            detail = "" if same else f"was {format_money(old.amount, old.currency)}"
        elif shadowed := others.get((row.scope, row.period)):
            action = "replaced"
            detail = ", ".join(
                f"{b.source}'s {format_money(b.amount, b.currency)}" for b in shadowed
            )
        else:
            action, detail = "added", ""
        outcomes.append(RowOutcome(row.scope, row.period, row.amount, row.currency, action, detail))
    return outcomes
