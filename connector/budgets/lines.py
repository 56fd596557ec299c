"""Every budget of a run, in the reporting currency: set ones and campaigns' own.

Two kinds (DESIGN section 5):

- **set budgets** for ``channel:``, ``department:``, ``category:``, ``campaign:`` scopes and the
  ``total``, per month, quarter or year, from ``[[budgets]]`` in config or a budgets CSV
  (stored as Budget records). Config wins where both set one scope and period, so the file an
  admin edits is the last word.
- a campaign's **own budget**: the CRM's budgeted cost over the campaign's start to end date
  (period name ``lifetime``). A parent's is its own budgeted cost plus its descendants'
  (Salesforce's ``BudgetedCostInHierarchy``), each campaign counted once; its cost is likewise
  its own plus its descendants'.

Amounts in another currency are converted at the rate of the period's first day (a campaign's
at its start date) and rounded once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext

from connector import model
from connector.budgets.campaign_tree import CampaignKey, CampaignTree, scope_kind, scope_name
from connector.budgets.cost_index import exact_context
from connector.money import FxRates, quantize
from connector.periods import Period

LIFETIME = "lifetime"


@dataclass(frozen=True)
class BudgetLine:
    """One budget: a scope, its period, and its amount in the reporting currency."""

    scope: str
    period: Period
    amount: Decimal
    source: str
    """Where it was set: ``config``, ``csv`` (an import), another store source, or ``crm``
    for a campaign's budgeted cost."""
    campaign: CampaignKey | None = None
    """For a campaign's own budget: the campaign (its hierarchy is the scope's members)."""

    @property
    def kind(self) -> str:
        return scope_kind(self.scope)

    @property
    def name(self) -> str:
        return scope_name(self.scope)

    @property
    def is_lifetime(self) -> bool:
        return self.period.name == LIFETIME

    @property
    def key(self) -> tuple[str, str]:
        return (self.scope, self.period.name)


IMPORTED = "csv"  # the source of ``crm-roi budget import`` rows


def merged_budgets(
    stored: Iterable[model.Budget], configured: Iterable[model.Budget]
) -> list[model.Budget]:
    """One budget per scope and period: config's ``[[budgets]]`` win, then imported rows,
    then budgets another source (a CRM) stored; within a kind, the first source by name,
    so the result never depends on the order the store returns rows in."""
    # weakest first, so the winner is written last: other sources before imports, and
    # within each, names in reverse order (stable sorts: by name, then by kind)
    by_name = sorted(stored, key=lambda b: b.source, reverse=True)
    ranked = sorted(by_name, key=lambda b: b.source == IMPORTED)
    merged = {(b.scope, b.period): b for b in ranked}
    merged.update({(b.scope, b.period): b for b in configured})
    return list(merged.values())


def set_budget_lines(
    budgets: Iterable[model.Budget], fx: FxRates, currency: str
) -> list[BudgetLine]:
    lines = []
    for budget in budgets:
        period = Period.parse(budget.period)
        amount = quantize(fx.convert_exact(budget.amount, budget.currency, period.start), currency)
        lines.append(BudgetLine(budget.scope, period, amount, budget.source))
    return lines


def campaign_budget_lines(tree: CampaignTree, fx: FxRates, currency: str) -> list[BudgetLine]:
    """Each campaign's own budget over its start..end, parents including their descendants.

    A campaign without dates has no period to pace against and gets no line; a parent without
    dates of its own takes the span of its descendants'.
    """
    own: dict[CampaignKey, Decimal] = {}
    for key, campaign in tree.campaigns.items():
        if campaign.budgeted_cost is None:
            continue
        on = campaign.start_date or campaign.end_date
        if on is None:
            continue
        own[key] = fx.convert_exact(
            campaign.budgeted_cost, campaign.currency or fx.reporting_currency, on
        )
    lines = []
    for key in tree.campaigns:
        members = [key, *tree.descendants(key)]
        amounts = [own[m] for m in members if m in own]
        if not amounts:
            continue
        span = _span(tree, members)
        if span is None:
            continue
        with localcontext(exact_context()):
            total = sum(amounts, Decimal(0))
        lines.append(
            BudgetLine(
                f"campaign:{key[1]}",
                Period(span[0], span[1], LIFETIME),
                quantize(total, currency),
                "crm",
                campaign=key,
            )
        )
    return lines


def _span(tree: CampaignTree, members: list[CampaignKey]) -> tuple[date, date] | None:
    head = tree.campaigns[members[0]]
    if head.start_date is not None and head.end_date is not None:
        if head.end_date < head.start_date:
            return None
        return head.start_date, head.end_date
    starts = [tree.campaigns[m].start_date for m in members]
    ends = [tree.campaigns[m].end_date for m in members]
    known_starts = [d for d in starts if d is not None]
    known_ends = [d for d in ends if d is not None]
    if not known_starts or not known_ends or max(known_ends) < min(known_starts):
        return None
    return min(known_starts), max(known_ends)
