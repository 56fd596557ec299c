"""Attribution engine (DESIGN section 4): pure computation over CSR journeys, no database.

The caller builds :class:`Journeys` (one per opportunity, touches filtered to the window and
sorted) and, for the data-driven models, the non-converting :class:`Paths`; the engine gives
credits per touch (rule-based models, Markov, Shapley) and :func:`allocate` turns them into
money per (opportunity, campaign).
"""

from .allocate import Allocation, CampaignTotals, allocate
from .journeys import Journeys, Paths
from .markov import MAX_MARKOV_STATES, markov_credits, markov_removal_effects
from .rules import MODELS, Milestones, milestones, rule_credits
from .shapley import (
    MAX_SHAPLEY_CHANNELS,
    coalition_values,
    set_rates,
    shapley_credits,
    shapley_values,
)

__all__ = [
    "MAX_MARKOV_STATES",
    "MAX_SHAPLEY_CHANNELS",
    "MODELS",
    "Allocation",
    "CampaignTotals",
    "Journeys",
    "Milestones",
    "Paths",
    "allocate",
    "coalition_values",
    "markov_credits",
    "markov_removal_effects",
    "milestones",
    "rule_credits",
    "set_rates",
    "shapley_credits",
    "shapley_values",
]
