"""Budget categories against their targets: strategic ~20 %, growth ~50 %, retention ~30 %.

The practice the product is built around (DESIGN section 5) splits spend into three
categories. For a period this compares each category's share of the categorized cost with
its configured target; a share further from the target than the tolerance is drift, which
raises an alert. Campaigns without a category are left out of the shares (they would push
every category under target) and reported beside them, so they can be categorized. The
planned share (the category's budget over the total budget) is shown too, when both are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

from connector.budgets.campaign_tree import CampaignTree
from connector.budgets.cost_index import CostIndex, exact_context
from connector.money import quantize
from connector.periods import Period

_DIGITS = 40


@dataclass(frozen=True)
class CategoryShare:
    category: str
    cost: Decimal
    share: Decimal | None
    """Of the categorized cost in the period; None while nothing is spent."""
    target: Decimal
    planned: Decimal | None
    tolerance: Decimal

    @property
    def drift(self) -> Decimal | None:
        return None if self.share is None else self.share - self.target

    @property
    def drifting(self) -> bool:
        drift = self.drift
        return drift is not None and abs(drift) > self.tolerance


@dataclass(frozen=True)
class CategoryMix:
    period: Period
    shares: list[CategoryShare]
    uncategorized_cost: Decimal


def category_mix(
    period: Period,
    index: CostIndex,
    tree: CampaignTree,
    *,
    targets: Mapping[str, Decimal],
    tolerance: Decimal,
    budgets: Mapping[str, Decimal],
    currency: str,
) -> CategoryMix:
    """Shares of ``period``'s cost per category; ``budgets`` maps ``category:<name>`` and
    ``total`` to the period's budget amounts, where set."""
    context = Context(prec=_DIGITS)
    exact = {c: index.cost(tree.members(f"category:{c}"), period) for c in targets}
    with localcontext(exact_context()):
        categorized = sum(exact.values(), Decimal(0))
        uncategorized = index.cost(tree.members("total"), period) - categorized
    total_budget = budgets.get("total")
    shares = []
    for category, target in targets.items():
        share = context.divide(exact[category], categorized) if categorized > 0 else None
        planned = None
        amount = budgets.get(f"category:{category}")
        if amount is not None and total_budget:
            planned = context.divide(amount, total_budget)
        shares.append(
            CategoryShare(
                category=category,
                cost=quantize(exact[category], currency),
                share=share,
                target=target,
                planned=planned,
                tolerance=tolerance,
            )
        )
    return CategoryMix(
        period=period,
        shares=shares,
        uncategorized_cost=quantize(uncategorized, currency),
    )
