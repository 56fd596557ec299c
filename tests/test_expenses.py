"""Expenses: the approval rules (auto-approval per scope, approver, budget lock with override),
every decision kept, only approved ones counted, and all-or-nothing CSV imports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector import model
from connector.alerts.run import budget_engine_for
from connector.config import parse_config
from connector.csv_rows import CsvRejected
from connector.expenses.csv_import import apply_expense_file, parse_expense_file
from connector.expenses.ledger import ExpenseError, ExpenseRefused, Ledger
from connector.expenses.rules import AUTO_APPROVER, ExpensePolicy
from connector.store import Store
from tests.budget_world import ad_campaign, at, budget, campaign, days, figures, spend

NOW = datetime(2026, 10, 11, 9, 30, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'expenses.db'}") as opened:
        opened.upsert(
            [
                # paid social: 850 of its 1,000 Q4 budget already spent
                campaign("C1", ad_campaign_ref="AD1", start_date=date(2026, 10, 1)),
                ad_campaign("AD1"),
                *spend("AD1", days(date(2026, 10, 1), date(2026, 10, 10)), "85"),
                budget("channel:paid_social", "2026-Q4", "1000"),
                campaign("EV", channel="event", department="Field", budget_category="strategic"),
                budget("channel:event", "2026-Q4", "50000"),
            ]
        )
        yield opened


def ledger(store: Store, **expenses: Any) -> Ledger:
    config = parse_config({"connector": {}, "expenses": expenses}, env={})
    return Ledger(
        store, budget_engine_for(store, config, as_of=NOW), ExpensePolicy.from_config(config)
    )


def add(book: Ledger, campaign_id: str, amount: str, **extra: Any) -> model.Expense:
    values: dict[str, Any] = {
        "campaign": campaign_id,
        "amount": Decimal(amount),
        "currency": "USD",
        "incurred_on": date(2026, 10, 10),
        "requested_by": "alice@example.com",
        "now": NOW,
    }
    values.update(extra)
    expense, _ = book.add(**values)
    return expense


def actions(book: Ledger, expense: model.Expense) -> list[tuple[str, str | None, bool]]:
    return [(h["action"], h["actor"], h["override"]) for h in book.history(expense)]


def test_auto_approval_under_the_limit_is_recorded_as_the_rules_decision(db: Store) -> None:
    book = ledger(db, auto_approve_under="100")
    small = add(book, "C1", "99.99", description="Stock photos")
    assert (small.status, small.decided_by) == ("approved", AUTO_APPROVER)
    assert actions(book, small) == [
        ("requested", "alice@example.com", False),
        ("approved", AUTO_APPROVER, False),
    ]
    large = add(ledger(db, auto_approve_under="100"), "C1", "100")
    assert large.status == "requested"  # "under" is strict
    assert figures(ledger(db).engine, "channel:paid_social", "2026-Q4").cost == Decimal("949.99")


def test_auto_approval_limit_per_scope(db: Store) -> None:
    rules = {"auto_approve_under": "100", "auto_approve_under_scopes": {"channel:event": "2000"}}
    assert add(ledger(db, **rules), "EV", "1500").status == "approved"
    assert add(ledger(db, **rules), "C1", "50").status == "approved"
    assert add(ledger(db, **rules), "EV", "2500").status == "requested"


def test_budget_lock_refuses_without_override_and_keeps_every_decision(db: Store) -> None:
    book = ledger(db, auto_approve_under="500")
    expense, decision = book.add(
        campaign="C1",
        amount=Decimal("400"),
        currency="USD",
        incurred_on=date(2026, 10, 10),
        requested_by="alice@example.com",
        now=NOW,
    )
    # under the auto limit, but 850 + 400 would take paid social to 125 %
    assert expense.status == "requested"
    assert decision.rule == "budget_lock"
    assert "channel:paid_social 2026-Q4 to 125.0% (1,250.00 of 1,000.00 USD)" in decision.reason
    with pytest.raises(ExpenseRefused, match="budget_lock") as refused:
        book.approve(expense.external_id, by="bob@example.com", now=NOW)
    assert "--override" in str(refused.value)
    with pytest.raises(ExpenseRefused, match="needs a --reason"):
        book.approve(expense.external_id, by="bob@example.com", override=True, now=NOW)
    assert db.get(model.Expense, "manual", expense.external_id).status == "requested"
    approved, decision = book.approve(
        expense.external_id,
        by="bob@example.com",
        override=True,
        reason="Board approved the Q4 push",
        now=NOW,
    )
    assert (approved.status, approved.decided_by) == ("approved", "bob@example.com")
    assert approved.decision_reason == "Board approved the Q4 push"
    history = book.history(approved)
    assert [(h["action"], h["rule"]) for h in history] == [
        ("requested", None),
        ("refused", "budget_lock"),
        ("refused", "budget_lock"),
        ("refused", "budget_lock"),
        ("approved", "budget_lock_override"),
    ]
    assert history[-1]["override"] is True
    assert history[-1]["details"]["budgets"][0]["after"] == "1250.00"
    assert figures(ledger(db).engine, "channel:paid_social", "2026-Q4").cost == Decimal("1250.00")


def test_within_budget_an_approval_needs_no_override(db: Store) -> None:
    expense = add(ledger(db), "C1", "150")
    approved, decision = ledger(db).approve(expense.external_id, by="bob@example.com", now=NOW)
    assert approved.status == "approved" and not decision.override  # exactly 100 %


def test_lock_can_be_switched_off(db: Store) -> None:
    book = ledger(db, budget_lock=False)
    expense = add(book, "C1", "400")
    assert book.approve(expense.external_id, by="bob@example.com", now=NOW)[0].status == "approved"


def test_approver_rules_above_the_limit(db: Store) -> None:
    rules = {"require_approver_over": "1000", "approvers": ["cfo@example.com"]}
    expense = add(ledger(db, **rules), "EV", "5000")
    with pytest.raises(ExpenseRefused, match="may not approve over 1,000"):
        ledger(db, **rules).approve(expense.external_id, by="bob@example.com", now=NOW)
    # without a list anyone may, but not the requester (four eyes), even where config lets
    # requesters approve their own smaller expenses
    with pytest.raises(ExpenseRefused, match="must not be the requester"):
        ledger(db, require_approver_over="1000", requester_may_approve=True).approve(
            expense.external_id, by="Alice@Example.com", now=NOW
        )
    approved, _ = ledger(db, **rules).approve(expense.external_id, by="cfo@example.com", now=NOW)
    assert approved.status == "approved"
    with pytest.raises(ExpenseError, match="already approved"):
        ledger(db, **rules).approve(expense.external_id, by="cfo@example.com", now=NOW)


def test_reject_needs_a_reason_and_removes_the_cost(db: Store) -> None:
    book = ledger(db, auto_approve_under="100")
    expense = add(book, "C1", "50")
    with pytest.raises(ExpenseError, match="needs a --reason"):
        book.reject(f"manual:{expense.external_id}", by="bob@example.com", reason=" ", now=NOW)
    rejected = book.reject(expense.external_id, by="bob@example.com", reason="Duplicate", now=NOW)
    assert (rejected.status, rejected.decision_reason) == ("rejected", "Duplicate")
    assert figures(ledger(db).engine, "channel:paid_social", "2026-Q4").cost == Decimal("850.00")


@pytest.mark.parametrize(
    ("amount", "currency", "fragment"),
    [
        ("1E+400", "USD", "too large"),
        ("10000000000000", "USD", "below 10,000,000,000,000 USD"),
        ("12.345", "USD", "more decimals than USD has (2 decimals); write 12.34"),
        ("1200.5", "JPY", "JPY has (no decimals); write 1200"),
        ("1.2345", "BHD", "write 1.234"),
    ],
)
def test_amounts_are_bounded_and_in_the_currencys_minor_unit(
    db: Store, amount: str, currency: str, fragment: str
) -> None:
    with pytest.raises(ExpenseError, match=re.escape(fragment)):
        add(ledger(db), "EV", amount, currency=currency)
    assert db.count(model.Expense) == 0
    kept = add(ledger(db), "EV", "9999999999999.99")  # the largest allowed is kept exactly
    assert kept.amount == Decimal("9999999999999.99")
    assert add(ledger(db), "EV", "12.3").amount == Decimal("12.30")


def test_unknown_campaign_and_zero_amount_are_refused(db: Store) -> None:
    with pytest.raises(ExpenseError, match="no campaign 'NOPE'"):
        add(ledger(db), "NOPE", "10")
    with pytest.raises(ExpenseError, match="of 0"):
        add(ledger(db), "C1", "0")


# ----- CSV import ------------------------------------------------------------------------


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


GOOD = (
    "id,campaign_id,date,amount,currency,description,vendor\n"
    "INV-1,EV,2026-10-05,1200.00,USD,Booth,Freeman\n"
    "INV-2,EV,2026-10-06,300,USD,Catering,Levy\n"
    'INV-3,C1,2026-10-07,40,USD,"Agency fee, October",Acme\n'
)


def test_import_applies_every_row_and_is_idempotent(db: Store, tmp_path: Path) -> None:
    book = ledger(db, auto_approve_under="500")
    result = apply_expense_file(
        book, parse_expense_file(book, write(tmp_path / "x.csv", GOOD)), now=NOW
    )
    assert (result.added, result.updated, result.unchanged) == (3, 0, 0)
    assert sorted(result.approved) == ["INV-2", "INV-3"]  # 1200 waits for an approver
    assert db.get(model.Expense, "csv", "INV-3").description == "Agency fee, October"
    again = apply_expense_file(book, parse_expense_file(book, tmp_path / "x.csv"), now=NOW)
    assert (again.added, again.unchanged) == (0, 3)


@pytest.mark.parametrize(
    ("row", "where", "fragment"),
    [
        ('INV-9,EV,2026-10-05,"12,50",USD,,', "line 3, column amount", "no thousands"),
        ("INV-9,EV,05/10/2026,12.50,USD,,", "line 3, column date", "2026-11-23"),
        ("INV-9,NOPE,2026-10-05,12.50,USD,,", "line 3, column campaign_id", "no campaign"),
        ("INV-9,EV,2026-10-05,12.50,XYZ,,", "line 3, column currency", "XYZ"),
        ("INV-9,EV,2026-10-05,12.50,EUR,,", "line 3, column currency", "no exchange rate"),
        ("INV-1,EV,2026-10-05,12.50,USD,,", "line 3, column id", "repeats line 2"),
        ("INV-9,EV,2026-10-05,0,USD,,", "line 3, column amount", "is 0"),
        ("INV-9,EV,2026-10-05,1e400,USD,,", "line 3, column amount", "too large"),
        ("INV-9,EV,2026-10-05,NaN,USD,,", "line 3, column amount", "not an amount"),
        ("INV-9,EV,2026-10-05,-Infinity,USD,,", "line 3, column amount", "not an amount"),
        ("INV-9,EV,2026-10-05,10000000000000,USD,,", "line 3, column amount", "below 10,000,"),
        ("INV-9,EV,2026-10-05,12.345,USD,,", "line 3, column amount", "write 12.34"),
    ],
)
def test_a_bad_row_rejects_the_whole_file(
    db: Store, tmp_path: Path, row: str, where: str, fragment: str
) -> None:
    text = "id,campaign_id,date,amount,currency,description,vendor\n"
    text += "INV-1,EV,2026-10-05,1200.00,USD,Booth,Freeman\n" + row + "\n"
    text += "INV-4,EV,2026-10-06,300,USD,Catering,Levy\n"
    book = ledger(db)
    with pytest.raises(CsvRejected) as rejected:
        parse_expense_file(book, write(tmp_path / "bad.csv", text))
    assert where in str(rejected.value) and fragment in str(rejected.value)
    assert "nothing of the file was applied" in str(rejected.value)
    assert db.count(model.Expense) == 0


def test_missing_column_and_all_bad_rows_are_listed(db: Store, tmp_path: Path) -> None:
    with pytest.raises(CsvRejected, match="line 1, column amount: missing from the header"):
        parse_expense_file(
            ledger(db), write(tmp_path / "a.csv", "id,campaign_id,date\nX,EV,2026-10-01\n")
        )
    text = "id,campaign_id,date,amount\nA,EV,bad,1\nB,EV,2026-10-01,x\n"
    with pytest.raises(CsvRejected) as rejected:
        parse_expense_file(ledger(db), write(tmp_path / "b.csv", text))
    assert [(e.line, e.column) for e in rejected.value.errors] == [(2, "date"), (3, "amount")]
    assert "(and 1 more: line 3 amount)" in str(rejected.value)


def test_excel_export_with_bom_semicolons_and_other_header_case(db: Store, tmp_path: Path) -> None:
    text = "ID;Campaign ID;Date;Amount;Vendor;Cost centre\nINV-7;EV;2026-10-05;99.50;Acme;4711\n"
    path = write(tmp_path / "excel.csv", "\ufeff" + text)
    parsed = parse_expense_file(ledger(db), path, source="netsuite")
    assert parsed.ignored_columns == ["cost_centre"]
    ((line, expense),) = parsed.rows
    assert (line, expense.source, expense.amount, expense.vendor) == (
        2,
        "netsuite",
        Decimal("99.50"),
        "Acme",
    )


def test_a_decided_expense_cannot_change_its_amount_by_import(db: Store, tmp_path: Path) -> None:
    book = ledger(db, auto_approve_under="500")
    apply_expense_file(book, parse_expense_file(book, write(tmp_path / "x.csv", GOOD)), now=NOW)
    changed = GOOD.replace("INV-2,EV,2026-10-06,300", "INV-2,EV,2026-10-06,350")
    with pytest.raises(
        CsvRejected, match="line 3, column amount: expense INV-2 is already approved"
    ):
        parse_expense_file(book, write(tmp_path / "y.csv", changed))
    # a still requested one may change, and goes through the rules again
    changed = GOOD.replace("INV-1,EV,2026-10-05,1200.00", "INV-1,EV,2026-10-05,450")
    result = apply_expense_file(
        book, parse_expense_file(book, write(tmp_path / "z.csv", changed)), now=NOW
    )
    assert (result.updated, result.unchanged, result.approved) == (1, 2, ["INV-1"])


def test_import_checks_the_lock_row_after_row(db: Store, tmp_path: Path) -> None:
    text = "id,campaign_id,date,amount\nA,C1,2026-10-05,100\nB,C1,2026-10-06,100\n"
    book = ledger(db, auto_approve_under="500")
    result = apply_expense_file(
        book, parse_expense_file(book, write(tmp_path / "x.csv", text)), now=NOW
    )
    # 850 + 100 = 950 fits; + 100 more would be 1,050
    assert result.approved == ["A"]
    assert [held_id for held_id, _ in result.held] == ["B"]
    assert "105.0%" in result.held[0][1]


def test_expense_decisions_are_kept_on_postgresql_too(store: Store) -> None:
    store.upsert([campaign("C1", start_date=date(2026, 10, 1)), budget("total", "2026", "10")])
    book = Ledger(
        store,
        budget_engine_for(
            store, parse_config({"connector": {}}, env={}), as_of=at(date(2026, 10, 11))
        ),
        ExpensePolicy(),
    )
    expense = add(book, "C1", "20")
    with pytest.raises(ExpenseRefused):
        book.approve(expense.external_id, by="bob", now=NOW)
    assert [h["action"] for h in book.history(expense)] == ["requested", "refused"]


def test_the_requester_never_approves_their_own_expense_by_default(db: Store) -> None:
    expense = add(ledger(db), "EV", "50")
    with pytest.raises(ExpenseRefused, match="requested this expense and may not approve"):
        ledger(db).approve(expense.external_id, by="ALICE@example.com", now=NOW)
    assert db.get(model.Expense, "manual", expense.external_id).status == "requested"
    assert actions(ledger(db), expense)[-1] == ("refused", "ALICE@example.com", False)
    mine, _ = ledger(db, requester_may_approve=True).approve(
        expense.external_id, by="alice@example.com", now=NOW
    )
    assert mine.status == "approved"
    other = add(ledger(db), "EV", "60")
    assert ledger(db).approve(other.external_id, by="bob@example.com", now=NOW)[0].status == (
        "approved"
    )


def test_a_credit_is_explicit_never_auto_approved_and_needs_a_reason(db: Store) -> None:
    with pytest.raises(ExpenseError, match="--credit"):
        add(ledger(db), "EV", "-1000000")
    book = ledger(db, auto_approve_under="1000000000")
    credit, decision = book.add(
        campaign="EV",
        amount=Decimal("300"),
        credit=True,
        currency="USD",
        incurred_on=date(2026, 10, 10),
        requested_by="alice@example.com",
        now=NOW,
        description="Refund: booth cancelled",
    )
    assert credit.amount == Decimal("-300.00") and credit.status == "requested"
    assert decision.reason == "a credit always waits for an approver"
    with pytest.raises(ExpenseRefused, match="give the --reason"):
        book.approve(credit.external_id, by="cfo@example.com", now=NOW)
    approved, _ = book.approve(
        credit.external_id, by="cfo@example.com", now=NOW, reason="Freeman refund INV-7"
    )
    assert approved.status == "approved" and approved.decision_reason == "Freeman refund INV-7"
    with pytest.raises(ExpenseError, match="positive amount"):
        book.add(
            campaign="EV",
            amount=Decimal("-5"),
            credit=True,
            currency="USD",
            incurred_on=date(2026, 10, 10),
            requested_by="alice@example.com",
            now=NOW,
            description="x",
        )
    with pytest.raises(ExpenseError, match="description"):
        book.add(
            campaign="EV",
            amount=Decimal("5"),
            credit=True,
            currency="USD",
            incurred_on=date(2026, 10, 10),
            requested_by="alice@example.com",
            now=NOW,
        )
