"""Expenses in the store: entered, approved, rejected, imported — every decision kept.

An expense is a :class:`~connector.model.Expense` record; its latest decision is on the
record (``decided_by``, ``decided_at``, ``decision_reason``) and every decision, including the
refusals of the rules, is a row of ``expense_decisions`` with who, when, why and what the
budgets would have reached. A decision and the record change are written in one transaction.
The rules themselves are :mod:`connector.expenses.rules`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from connector import model
from connector.budgets.campaign_tree import CampaignKey
from connector.budgets.engine import BudgetEngine, LockCheck
from connector.expenses.rules import AUTO_APPROVER, Decision, ExpensePolicy, on_approval, on_entry
from connector.money import AmountError, entered_amount, quantize
from connector.store import Store, schema

MANUAL_SOURCE = "manual"


class ExpenseError(Exception):
    """The request cannot be carried out (unknown id, wrong state); nothing was changed."""


class ExpenseRefused(ExpenseError):
    """A rule refused an approval; the refusal itself was recorded."""

    def __init__(self, expense: model.Expense, decision: Decision) -> None:
        self.expense = expense
        self.decision = decision
        super().__init__(
            f"expense {expense.source}:{expense.external_id} not approved "
            f"({decision.rule}): {decision.reason}"
        )


@dataclass
class Ledger:
    """Expenses of one store, with the budget engine and rules to judge them by."""

    store: Store
    engine: BudgetEngine
    policy: ExpensePolicy

    @property
    def currency(self) -> str:
        return self.engine.currency

    # ----- lookups --------------------------------------------------------------------

    def campaign(self, ref: str) -> CampaignKey:
        """A campaign by ``id`` or ``source:id``."""
        source, sep, external_id = ref.rpartition(":")
        keys = self.engine.tree.find(external_id)
        if sep:
            keys = [k for k in keys if k[0] == source]
        if not keys:
            raise ExpenseError(f"no campaign {ref!r} in the store (run a sync first?)")
        if len(keys) > 1:
            shown = ", ".join(f"{s}:{i}" for s, i in keys)
            raise ExpenseError(f"campaign id {ref!r} is ambiguous: {shown}; write source:id")
        return keys[0]

    def expense(self, ref: str) -> model.Expense:
        """An expense by ``id`` or ``source:id``."""
        source, sep, external_id = ref.rpartition(":")
        t = schema.table_for(model.Expense)
        stmt = select(t.c.source).where(t.c.external_id == external_id, t.c.deleted_at.is_(None))
        if sep:
            stmt = stmt.where(t.c.source == source)
        with self.store.engine.connect() as conn:
            sources = list(conn.execute(stmt).scalars())
        if not sources:
            raise ExpenseError(f"no expense {ref!r}")
        if len(sources) > 1:
            shown = ", ".join(f"{s}:{external_id}" for s in sources)
            raise ExpenseError(f"expense id {ref!r} is ambiguous: {shown}; write source:id")
        found = self.store.get(model.Expense, sources[0], external_id)
        assert found is not None
        return found

    def in_reporting(self, expense: model.Expense) -> Decimal:
        """The amount in the reporting currency at its day's rate, exact."""
        return self.engine.fx.convert_exact(expense.amount, expense.currency, expense.incurred_on)

    def checks(
        self,
        expense: model.Expense,
        amount: Decimal,
        pending: dict[tuple[str, str], Decimal] | None = None,
    ) -> list[LockCheck]:
        key = (expense.campaign_source, expense.campaign_id)
        return self.engine.lock_checks(key, expense.incurred_on, amount, pending)

    # ----- entering -------------------------------------------------------------------

    def add(
        self,
        *,
        campaign: str,
        amount: Decimal,
        currency: str,
        incurred_on: date,
        requested_by: str | None,
        now: datetime,
        description: str | None = None,
        vendor: str | None = None,
        external_id: str | None = None,
        source: str = MANUAL_SOURCE,
        credit: bool = False,
    ) -> tuple[model.Expense, Decision]:
        """Enter an expense (or, with ``credit``, a refund of ``amount``, stored negative);
        the entry rules may approve an expense at once, never a credit."""
        if amount == 0:
            raise ExpenseError("an expense of 0 changes nothing; give its amount")
        try:
            amount = signed_amount(entered_amount(amount, currency), credit, description)
        except AmountError as exc:
            raise ExpenseError(str(exc)) from None
        key = self.campaign(campaign)
        external_id = external_id or f"E-{uuid.uuid4().hex[:10].upper()}"
        if self.store.get(model.Expense, source, external_id) is not None:
            raise ExpenseError(f"expense {source}:{external_id} already exists")
        expense = model.Expense(
            source=source,
            external_id=external_id,
            campaign_source=key[0],
            campaign_id=key[1],
            incurred_on=incurred_on,
            amount=amount,
            currency=currency,
            status="requested",
            description=description,
            vendor=vendor,
            requested_by=requested_by,
        )
        with self.store.begin() as conn:
            expense, decision = self.enter(conn, expense, now, {})
        return expense, decision

    def enter(
        self,
        conn: Connection,
        expense: model.Expense,
        now: datetime,
        pending: dict[tuple[str, str], Decimal],
        *,
        action: str = "requested",
    ) -> tuple[model.Expense, Decision]:
        """Record ``expense`` as requested (or ``changed``) in ``conn``'s transaction and let the
        entry rules approve it; ``pending`` carries what earlier rows of the same import add
        to each budget, and is updated when this one is approved."""
        amount = self.in_reporting(expense)
        checks = self.checks(expense, amount, pending)
        scopes = self.engine.scopes_of((expense.campaign_source, expense.campaign_id))
        decision = on_entry(self.policy, amount, scopes, checks, self.currency)
        _log(
            conn,
            expense,
            action,
            expense.requested_by,
            now,
            None,
            amount=amount,
            currency=self.currency,
        )
        if decision.action == "approved":
            expense = replace(
                expense,
                status="approved",
                decided_by=AUTO_APPROVER,
                decided_at=now,
                decision_reason=decision.reason,
            )
            for check in checks:
                pending[check.line.key] = pending.get(check.line.key, Decimal(0)) + amount
            _log(
                conn,
                expense,
                "approved",
                AUTO_APPROVER,
                now,
                decision,
                amount=amount,
                currency=self.currency,
            )
        elif decision.rule == "budget_lock":
            _log(
                conn,
                expense,
                "refused",
                AUTO_APPROVER,
                now,
                decision,
                amount=amount,
                currency=self.currency,
            )
        self.store.upsert([expense], connection=conn, now=now)
        return expense, decision

    # ----- deciding -------------------------------------------------------------------

    def approve(
        self,
        ref: str,
        *,
        by: str,
        now: datetime,
        reason: str | None = None,
        override: bool = False,
    ) -> tuple[model.Expense, Decision]:
        """Approve a requested (or previously rejected) expense; raises
        :class:`ExpenseRefused` (after recording the refusal) when a rule says no."""
        expense = self.expense(ref)
        if expense.status == "approved":
            raise ExpenseError(
                f"expense {expense.source}:{expense.external_id} is already approved "
                f"(by {expense.decided_by} on {_day(expense.decided_at)})"
            )
        amount = self.in_reporting(expense)
        decision = on_approval(
            self.policy,
            amount=amount,
            approver=by,
            requester=expense.requested_by,
            override=override,
            reason=reason,
            checks=self.checks(expense, amount),
            currency=self.currency,
        )
        with self.store.begin() as conn:
            _log(
                conn,
                expense,
                decision.action,
                by,
                now,
                decision,
                amount=amount,
                currency=self.currency,
            )
            if decision.action == "approved":
                expense = replace(
                    expense,
                    status="approved",
                    decided_by=by,
                    decided_at=now,
                    decision_reason=decision.reason or None,
                )
                self.store.upsert([expense], connection=conn, now=now)
        if decision.action != "approved":
            raise ExpenseRefused(expense, decision)
        return expense, decision

    def reject(self, ref: str, *, by: str, reason: str, now: datetime) -> model.Expense:
        """Reject a requested expense, or withdraw an approved one (a reason is required)."""
        if not reason or not reason.strip():
            raise ExpenseError("a rejection needs a --reason")
        expense = self.expense(ref)
        if expense.status == "rejected":
            raise ExpenseError(
                f"expense {expense.source}:{expense.external_id} is already rejected"
            )
        decision = Decision("rejected", "manual", reason.strip())
        with self.store.begin() as conn:
            _log(
                conn,
                expense,
                "rejected",
                by,
                now,
                decision,
                amount=self.in_reporting(expense),
                currency=self.currency,
            )
            expense = replace(
                expense,
                status="rejected",
                decided_by=by,
                decided_at=now,
                decision_reason=reason.strip(),
            )
            self.store.upsert([expense], connection=conn, now=now)
        return expense

    # ----- reading --------------------------------------------------------------------

    def list_expenses(
        self, *, status: str | None = None, campaign: str | None = None
    ) -> list[model.Expense]:
        key = self.campaign(campaign) if campaign else None
        out = [
            e
            for e in self.store.iter_records(model.Expense)
            if (status is None or e.status == status)
            and (key is None or (e.campaign_source, e.campaign_id) == key)
        ]
        return sorted(out, key=lambda e: (e.incurred_on, e.source, e.external_id))

    def history(self, expense: model.Expense) -> list[dict[str, Any]]:
        return decisions(self.store, expense.source, expense.external_id)


def signed_amount(amount: Decimal, credit: bool, description: str | None) -> Decimal:
    """A credit is entered as what was refunded (positive) and stored negative; a negative
    amount that does not say it is a credit is refused, so cost never drops by a typo."""
    if not credit:
        if amount < 0:
            raise AmountError(
                f"{amount} is negative: a refund or credit is entered as a positive amount "
                "with --credit (CSV: kind = credit) and a description, and always waits for "
                "an approver"
            )
        return amount
    if amount < 0:
        raise AmountError(f"a credit is entered as the positive amount refunded, not {amount}")
    if not (description or "").strip():
        raise AmountError("a credit needs a description saying what was refunded")
    return -amount


def _day(value: datetime | None) -> str:
    return value.date().isoformat() if value else "?"


def _log(
    conn: Connection,
    expense: model.Expense,
    action: str,
    actor: str | None,
    now: datetime,
    decision: Decision | None,
    *,
    amount: Decimal,
    currency: str,
) -> None:
    details: dict[str, Any] = {"amount_reporting": str(quantize(amount, currency))}
    if decision is not None and decision.checks:
        details["budgets"] = [_check_json(c, currency) for c in decision.checks]
    conn.execute(
        schema.expense_decisions.insert().values(
            expense_source=expense.source,
            expense_id=expense.external_id,
            action=action,
            actor=actor,
            decided_at=now,
            reason=decision.reason if decision is not None else None,
            override=bool(decision and decision.override),
            rule=decision.rule if decision is not None else None,
            amount=expense.amount,
            currency=expense.currency,
            details=details,
        )
    )


def _check_json(check: LockCheck, currency: str) -> dict[str, Any]:
    line = check.line
    return {
        "scope": line.scope,
        "period": line.period.name,
        "budget": str(line.amount),
        "after": str(quantize(check.after, currency)),
        "over": check.over,
    }


def decisions(store: Store, source: str, external_id: str) -> list[dict[str, Any]]:
    """Every decision on an expense, oldest first."""
    t = schema.expense_decisions
    stmt = (
        select(t)
        .where(t.c.expense_source == source, t.c.expense_id == external_id)
        .order_by(t.c.decided_at, t.c.id)
    )
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]
