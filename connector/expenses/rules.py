"""The approval rules an expense passes before it eats budget (``[expenses]``).

- **auto-approval**: an expense under ``auto_approve_under`` (in the reporting currency; a
  per-scope limit in ``auto_approve_under_scopes`` wins, the most specific scope first) is
  approved on entry, by the rule, unless the budget lock stops it;
- **segregation of duties**: the requester never approves their own expense, unless
  ``requester_may_approve = true`` says so explicitly (and never above
  ``require_approver_over``);
- **approver**: above ``require_approver_over`` only someone in ``approvers`` (anyone when the
  list is empty) who is not the requester may approve (four eyes);
- **credits** (refunds, negative amounts, entered as such): never approved by a rule, and a
  person approving one gives the reason on record, so cost never drops without one;
- **budget lock**: an expense that would take any budget covering it over 100 % is refused,
  unless an approver overrides it with a reason.

Only approved expenses count as cost (:mod:`connector.roi.costs`). This module only decides; the
ledger (:mod:`connector.expenses.ledger`) stores the decision with who, when and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from connector.budgets.engine import LockCheck
from connector.config import Config
from connector.money import format_money, quantize

AUTO_APPROVER = "rule:auto_approve_under"


@dataclass(frozen=True)
class ExpensePolicy:
    auto_approve_under: Decimal = Decimal(0)
    scoped_limits: Mapping[str, Decimal] = field(default_factory=dict)
    require_approver_over: Decimal | None = None
    approvers: tuple[str, ...] = ()
    budget_lock: bool = True
    requester_may_approve: bool = False

    @classmethod
    def from_config(cls, config: Config) -> ExpensePolicy:
        section = config.expenses
        return cls(
            auto_approve_under=section.auto_approve_under,
            scoped_limits=dict(section.auto_approve_under_scopes),
            require_approver_over=section.require_approver_over,
            approvers=tuple(section.approvers),
            budget_lock=section.budget_lock,
            requester_may_approve=section.requester_may_approve,
        )

    def auto_limit(self, scopes: Sequence[str]) -> tuple[Decimal, str]:
        """The auto-approval limit for a campaign in ``scopes`` (most specific first) and
        the key it comes from."""
        for scope in scopes:
            if scope in self.scoped_limits:
                return self.scoped_limits[scope], f"auto_approve_under_scopes[{scope!r}]"
        return self.auto_approve_under, "auto_approve_under"


@dataclass(frozen=True)
class Decision:
    """What the rules say: ``approved``, ``requested`` (waits for a person), ``refused`` (a
    person's approval that a rule stopped) or ``rejected``."""

    action: str
    rule: str | None
    reason: str
    override: bool = False
    checks: tuple[LockCheck, ...] = ()

    @property
    def over(self) -> tuple[LockCheck, ...]:
        return tuple(c for c in self.checks if c.over)


def describe_over(checks: Sequence[LockCheck], currency: str) -> str:
    """``channel:event 2026 to 104.2% (312,500.00 of 300,000.00 USD)``, for each budget."""
    parts = []
    for check in checks:
        line = check.line
        consumed = check.consumed_after
        shown = "over a zero budget" if consumed is None else f"{consumed * 100:.1f}%"
        parts.append(
            f"{line.scope} {line.period.name} to {shown} "
            f"({quantize(check.after, currency):,} of {format_money(line.amount, currency)})"
        )
    return "; ".join(parts)


def on_entry(
    policy: ExpensePolicy,
    amount: Decimal,
    scopes: Sequence[str],
    checks: Sequence[LockCheck],
    currency: str,
) -> Decision:
    """A new expense: approved by rule when under its auto-approval limit and within every
    budget, else requested."""
    if amount < 0:
        return Decision("requested", None, "a credit always waits for an approver")
    limit, key = policy.auto_limit(scopes)
    if amount >= limit:
        return Decision("requested", None, f"not under {key} ({format_money(limit, currency)})")
    over = [c for c in checks if c.over]
    if policy.budget_lock and over:
        return Decision(
            "requested",
            "budget_lock",
            "auto-approval withheld by the budget lock: would take "
            + describe_over(over, currency),
            checks=tuple(checks),
        )
    return Decision(
        "approved", key, f"under {key} ({format_money(limit, currency)})", checks=tuple(checks)
    )


def on_approval(
    policy: ExpensePolicy,
    *,
    amount: Decimal,
    approver: str,
    requester: str | None,
    override: bool,
    reason: str | None,
    checks: Sequence[LockCheck],
    currency: str,
) -> Decision:
    """A person approves: refused when they may not approve this amount, or when the budget
    lock applies and they did not override it with a reason."""
    same_person = bool(requester) and approver.casefold() == (requester or "").casefold()
    if same_person and not policy.requester_may_approve:
        return Decision(
            "refused",
            "segregation_of_duties",
            f"{approver} requested this expense and may not approve it too; another person "
            "approves (or set [expenses] requester_may_approve = true)",
        )
    if amount < 0 and not (reason or "").strip():
        return Decision(
            "refused", "credit", "approving a credit lowers cost: give the --reason on record"
        )
    limit = policy.require_approver_over
    if limit is not None and amount > limit:
        allowed = {a.casefold() for a in policy.approvers}
        if allowed and approver.casefold() not in allowed:
            return Decision(
                "refused",
                "require_approver_over",
                f"{approver} may not approve over {format_money(limit, currency)}; approvers: "
                + ", ".join(policy.approvers),
            )
        if same_person:
            return Decision(
                "refused",
                "require_approver_over",
                f"over {format_money(limit, currency)} the approver must not be the requester "
                f"({requester})",
            )
    over = [c for c in checks if c.over]
    if policy.budget_lock and over:
        described = describe_over(over, currency)
        if not override:
            return Decision(
                "refused",
                "budget_lock",
                f"would take {described}; approve with --override and a --reason to spend "
                "over budget",
                checks=tuple(checks),
            )
        if not reason or not reason.strip():
            return Decision(
                "refused",
                "budget_lock",
                f"overriding the budget lock needs a --reason (would take {described})",
                checks=tuple(checks),
            )
        return Decision(
            "approved", "budget_lock_override", reason.strip(), override=True, checks=tuple(checks)
        )
    return Decision("approved", "manual", (reason or "").strip(), checks=tuple(checks))
