"""From touch credits to money per (opportunity, campaign) pair (DESIGN section 4, "Money").

Per opportunity, the credits of touches of one campaign are summed; the opportunity's campaigns
are ordered by their **first** touch in the journey, and the opportunity's amount (already
converted to the reporting currency and rounded to minor units by the caller; a missing amount
is 0) is split over them with :func:`connector.money.split_minor_grouped` (largest remainder,
ties to the earlier position, i.e. to the campaign whose first touch comes first), so the shares
of one opportunity add up to its amount exactly.

Every campaign with a touch in a journey gets a pair, even one whose credit is 0 (its amount is
then 0 too): that is what ``influenced_opportunities`` counts. An opportunity whose credits are
all 0 (empty journey, or a data-driven model that gives its touches no weight) is
``unattributed``: its pairs, if any, carry 0 credit and 0 amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..money import split_minor_grouped
from .journeys import Journeys, segment_sum

__all__ = ["Allocation", "CampaignTotals", "allocate"]


@dataclass(frozen=True, eq=False)
class CampaignTotals:
    """Per-campaign totals (arrays of length n_campaigns)."""

    pipeline_minor: np.ndarray  # int64: attributed pipeline, all opportunities
    revenue_minor: np.ndarray  # int64: attributed revenue, won opportunities
    attributed_opportunities: np.ndarray  # float64: sum of credits, all opportunities
    attributed_won: np.ndarray  # float64: sum of credits, won opportunities
    influenced_opportunities: np.ndarray  # int64: opportunities with any touch of the campaign


@dataclass(frozen=True, eq=False)
class Allocation:
    """One row per (opportunity, campaign) pair, grouped by opportunity in journey order.

    The pairs of opportunity ``i`` are ``[offsets[i], offsets[i + 1])``, in the order of each
    campaign's first touch.
    """

    opp: np.ndarray  # int64[n_pairs]
    campaign: np.ndarray  # int32[n_pairs]
    credit: np.ndarray  # float64[n_pairs]
    amount_minor: np.ndarray  # int64[n_pairs]
    won: np.ndarray  # bool[n_pairs]: the pair's opportunity is won
    offsets: np.ndarray  # int64[n_opps + 1]
    unattributed: np.ndarray  # int64: indices of opportunities with no credit
    n_campaigns: int

    def _sum_int(self, values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(self.n_campaigns, dtype=np.int64)
        if where is None:
            np.add.at(out, self.campaign, values)
        else:
            np.add.at(out, self.campaign[where], values[where])
        return out

    def pipeline_minor(self) -> np.ndarray:
        """Attributed pipeline per campaign in minor units (all opportunities, any stage)."""
        return self._sum_int(self.amount_minor)

    def revenue_minor(self) -> np.ndarray:
        """Attributed revenue per campaign in minor units (won opportunities)."""
        return self._sum_int(self.amount_minor, self.won)

    def attributed_opportunities(self) -> np.ndarray:
        """Sum of credits per campaign over all opportunities."""
        return np.bincount(self.campaign, self.credit, minlength=self.n_campaigns)

    def attributed_won(self) -> np.ndarray:
        """Sum of credits per campaign over won opportunities."""
        return np.bincount(
            self.campaign, np.where(self.won, self.credit, 0.0), minlength=self.n_campaigns
        )

    def influenced_opportunities(self) -> np.ndarray:
        """Number of opportunities with any touch of the campaign in their journey."""
        return np.bincount(self.campaign, minlength=self.n_campaigns).astype(np.int64)

    def totals(self) -> CampaignTotals:
        return CampaignTotals(
            pipeline_minor=self.pipeline_minor(),
            revenue_minor=self.revenue_minor(),
            attributed_opportunities=self.attributed_opportunities(),
            attributed_won=self.attributed_won(),
            influenced_opportunities=self.influenced_opportunities(),
        )


def allocate(j: Journeys, credits: np.ndarray, amount_minor: np.ndarray) -> Allocation:
    """Sum ``credits`` (float64[n_touches], >= 0) per (opportunity, campaign) and split each
    opportunity's ``amount_minor`` (int64[n_opps]) over its campaigns in proportion."""
    credits = np.asarray(credits)
    amount_minor = np.asarray(amount_minor)
    if credits.dtype != np.float64 or credits.shape != (j.n_touches,):
        raise ValueError(
            f"credits must be float64[{j.n_touches}], got {credits.dtype}{list(credits.shape)}"
        )
    if amount_minor.dtype != np.int64 or amount_minor.shape != (j.n_opps,):
        raise ValueError(
            f"amount_minor must be int64[{j.n_opps}], got {amount_minor.dtype}"
            f"{list(amount_minor.shape)}"
        )
    if credits.size and not (np.all(np.isfinite(credits)) and credits.min() >= 0):
        raise ValueError("credits must be finite and >= 0")

    opp = j.touch_opp
    campaign = j.touch_campaign
    # Group touches by (opportunity, campaign); the stable sort keeps touch order inside a
    # group, so the group's first element is the campaign's first touch in the journey.
    key = opp * max(int(j.n_campaigns), 1) + campaign
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new = np.ones(sorted_key.shape[0], dtype=bool)
    new[1:] = sorted_key[1:] != sorted_key[:-1]
    starts = np.flatnonzero(new)
    first_touch = order[starts]
    group_credit = (
        np.add.reduceat(credits[order], starts) if starts.size else np.zeros(0, dtype=np.float64)
    )
    # Pairs in journey order: by opportunity, then by the campaign's first touch (touch
    # indices already run opportunity by opportunity).
    by_first = np.argsort(first_touch)
    first_touch = first_touch[by_first]
    pair_credit = group_credit[by_first]
    pair_opp = opp[first_touch]
    offsets = np.zeros(j.n_opps + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_opp, minlength=j.n_opps), out=offsets[1:])
    amounts = np.asarray(split_minor_grouped(amount_minor, offsets, pair_credit), dtype=np.int64)

    opp_credit = segment_sum(credits, j.offsets)
    return Allocation(
        opp=pair_opp,
        campaign=campaign[first_touch],
        credit=pair_credit,
        amount_minor=amounts,
        won=j.opp_won[pair_opp],
        offsets=offsets,
        unattributed=np.flatnonzero(~(opp_credit > 0)),
        n_campaigns=int(j.n_campaigns),
    )
