"""``crm-roi expenses import FILE``: a finance system's export, checked row by row.

Columns: ``id`` (the finance system's id: re-importing a file changes nothing), ``campaign_id``,
``date``, ``amount`` and optionally ``currency`` (default: the reporting currency),
``description``, ``vendor``, ``requested_by`` and ``kind`` (``expense``, or ``credit`` for a
refund: a positive amount stored negative, with a description, never auto-approved); other
columns are ignored and named. Every row
is checked first (campaign known, date, amount, a rate for the currency on the day, no change
to the amount of an expense already decided); one bad row rejects the file with its line and
column, and nothing is applied. Then the rows enter in file order, in one transaction, as
requests passing the entry rules: each one auto-approved counts toward the budgets the next
rows are checked against.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from connector import model
from connector.csv_rows import MAX_REPORTED, CsvRejected, RowError, read_rows
from connector.expenses.ledger import ExpenseError, Ledger, signed_amount
from connector.money import AmountError, CurrencyError, MissingRateError, entered_amount

SOURCE = "csv"
COLUMNS = ("id", "campaign_id", "date", "amount")
OPTIONAL = ("currency", "description", "vendor", "requested_by", "kind")
KINDS = ("expense", "credit")


@dataclass
class ExpenseFile:
    rows: list[tuple[int, model.Expense]]
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class ExpenseImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    approved: list[str] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)
    """(id, why) of rows the budget lock kept from auto-approval."""


_COMPARED = (
    "campaign_source",
    "campaign_id",
    "incurred_on",
    "amount",
    "currency",
    "description",
    "vendor",
    "requested_by",
)


def _same(stored: model.Expense, new: model.Expense) -> bool:
    return all(getattr(stored, f) == getattr(new, f) for f in _COMPARED)


def parse_expense_file(ledger: Ledger, path: Path, *, source: str = SOURCE) -> ExpenseFile:
    """Check every row (campaign known, amount, date, currency with a rate on the day,
    no change to an already decided expense); raise :class:`CsvRejected` listing the
    bad rows."""
    rows, ignored = read_rows(path, required=COLUMNS, optional=OPTIONAL)
    errors: list[RowError] = []
    parsed: list[tuple[int, model.Expense]] = []
    seen: dict[str, int] = {}
    for row in rows:
        try:
            external_id = row.required("id")
            if external_id in seen:
                raise RowError(row.line, "id", f"{external_id!r} repeats line {seen[external_id]}")
            try:
                key = ledger.campaign(row.required("campaign_id"))
            except ExpenseError as exc:
                raise RowError(row.line, "campaign_id", str(exc)) from None
            incurred_on = row.day("date")
            currency = row.currency("currency", ledger.currency)
            amount = row.amount("amount")
            if amount == 0:
                raise RowError(row.line, "amount", "is 0")
            kind = (row.text("kind") or "expense").lower()
            if kind not in KINDS:
                raise RowError(row.line, "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
            try:
                amount = signed_amount(
                    entered_amount(amount, currency), kind == "credit", row.text("description")
                )
            except AmountError as exc:
                raise RowError(row.line, "amount", str(exc)) from None
            expense = model.Expense(
                source=source,
                external_id=external_id,
                campaign_source=key[0],
                campaign_id=key[1],
                incurred_on=incurred_on,
                amount=amount,
                currency=currency,
                description=row.text("description") or None,
                vendor=row.text("vendor") or None,
                requested_by=row.text("requested_by") or None,
            )
            try:
                ledger.in_reporting(expense)
            except (MissingRateError, CurrencyError) as exc:
                raise RowError(row.line, "currency", str(exc)) from None
            _check_unchanged_decision(ledger, row.line, expense)
        except RowError as exc:
            errors.append(exc)
            continue
        seen[external_id] = row.line
        parsed.append((row.line, expense))
    if errors:
        raise CsvRejected(str(path), errors[:MAX_REPORTED])
    return ExpenseFile(parsed, ignored)


def _check_unchanged_decision(ledger: Ledger, line: int, expense: model.Expense) -> None:
    stored = ledger.store.get(model.Expense, expense.source, expense.external_id)
    if stored is None or stored.status == "requested":
        return
    for column, attribute in [
        ("campaign_id", "campaign_id"),
        ("date", "incurred_on"),
        ("amount", "amount"),
        ("currency", "currency"),
    ]:
        old, new = getattr(stored, attribute), getattr(expense, attribute)
        if old != new:
            raise RowError(
                line,
                column,
                f"expense {expense.external_id} is already {stored.status} "
                f"(by {stored.decided_by}); it cannot change from {old} to {new}: "
                "reject it and import the correction under a new id",
            )


def apply_expense_file(
    ledger: Ledger, parsed: ExpenseFile, *, now: datetime
) -> ExpenseImportResult:
    """Enter the rows in file order, in one transaction; each auto-approved row counts
    toward the budgets the next rows are checked against."""
    result = ExpenseImportResult()
    pending: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with ledger.store.begin() as conn:
        for _line, expense in parsed.rows:
            stored = ledger.store.get(model.Expense, expense.source, expense.external_id)
            if stored is not None:
                if _same(stored, expense):
                    result.unchanged += 1
                    continue
                if stored.status != "requested":
                    # details only (description, vendor): the decision stands
                    kept = replace(
                        expense,
                        status=stored.status,
                        decided_by=stored.decided_by,
                        decided_at=stored.decided_at,
                        decision_reason=stored.decision_reason,
                    )
                    ledger.store.upsert([kept], connection=conn, now=now)
                    result.updated += 1
                    continue
                result.updated += 1
                entered, decision = ledger.enter(conn, expense, now, pending, action="changed")
            else:
                result.added += 1
                entered, decision = ledger.enter(conn, expense, now, pending)
            if entered.status == "approved":
                result.approved.append(entered.external_id)
            elif decision.rule == "budget_lock":
                result.held.append((entered.external_id, decision.reason))
    return result
