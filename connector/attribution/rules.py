"""Rule-based attribution models (DESIGN section 4), fully vectorised over CSR journeys.

Milestones of a journey (absolute touch indices, -1 for an empty journey):

- **FT** the first touch;
- **LC** the last touch at or before the earliest ``created_at`` of the opportunity's persons,
  FT if there is none;
- **OC** the last touch at or before the opportunity's ``created_at``, LC if there is none;
- **CW** the last touch of the journey, for won opportunities only (-1 otherwise).

A model gives each of its milestone *roles* a share and the *rest* (touches that are none of
the model's milestones) a share split evenly among them. A touch holding several roles gets all
their shares. When there is no rest touch, the rest share is split evenly over the model's roles
(w_shaped, FT = LC on one touch, OC on another: 2/3 and 1/3). A one-touch journey gives its
touch 1 under every model. An empty journey gets no credit (reported unattributed).

A model's roles are those with a non-zero share: ``u_shaped`` has FT and LC (its OC touch is
rest unless it is also FT or LC). The same rule applies to ``custom`` weights, so
``custom`` with ``ft=0.4, lc=0.4, rest=0.2`` is exactly ``u_shaped``.

``full_path`` on a non-won opportunity is ``w_shaped``. ``custom`` on a non-won opportunity
drops CW and renormalises ``ft, lc, oc, rest`` to sum to 1 (custom weights with nothing but
``cw`` are refused, since open and lost opportunities could get no credit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .journeys import Journeys, segment_sum

__all__ = ["MODELS", "Milestones", "milestones", "rule_credits"]

MODELS: tuple[str, ...] = (
    "first_touch",
    "lead_creation",
    "last_touch",
    "linear",
    "time_decay",
    "u_shaped",
    "w_shaped",
    "full_path",
    "custom",
)

_ROLES = ("ft", "lc", "oc", "cw")
_KEYS = (*_ROLES, "rest")

# (ft, lc, oc, cw, rest) for won and for non-won opportunities.
_FIXED: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "first_touch": ((1.0, 0.0, 0.0, 0.0, 0.0),) * 2,
    "lead_creation": ((0.0, 1.0, 0.0, 0.0, 0.0),) * 2,
    "last_touch": ((0.0, 0.0, 1.0, 0.0, 0.0),) * 2,
    "u_shaped": ((0.4, 0.4, 0.0, 0.0, 0.2),) * 2,
    "w_shaped": ((0.3, 0.3, 0.3, 0.0, 0.1),) * 2,
    "full_path": ((0.225, 0.225, 0.225, 0.225, 0.1), (0.3, 0.3, 0.3, 0.0, 0.1)),
}

_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, eq=False)
class Milestones:
    """Absolute touch indices per opportunity (int64[n_opps]); -1 where absent."""

    ft: np.ndarray
    lc: np.ndarray
    oc: np.ndarray
    cw: np.ndarray


def _count_at_or_before(j: Journeys, limit: np.ndarray) -> np.ndarray:
    """Per opportunity, the number of its touches with ``touch_time <= limit[opp]``.

    Touches are time-sorted inside a journey, so these are the first ``count`` touches.
    """
    le = j.touch_time <= np.repeat(limit, j.lengths)
    cum = np.zeros(j.n_touches + 1, dtype=np.int64)
    np.cumsum(le, out=cum[1:])
    return cum[j.offsets[1:]] - cum[j.offsets[:-1]]


def milestones(j: Journeys) -> Milestones:
    """FT, LC, OC and CW of every journey (see the module docstring)."""
    start = j.offsets[:-1]
    empty = j.lengths == 0
    ft = np.where(empty, -1, start)
    n_lc = _count_at_or_before(j, j.opp_person_created)
    lc = np.where(n_lc > 0, start + n_lc - 1, ft)
    n_oc = _count_at_or_before(j, j.opp_created)
    oc = np.where(n_oc > 0, start + n_oc - 1, lc)
    cw = np.where(j.opp_won & ~empty, j.offsets[1:] - 1, -1)
    return Milestones(ft=ft, lc=lc, oc=oc, cw=cw)


def _custom_weights(
    custom: Mapping[str, Decimal | float] | None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if custom is None:
        raise ValueError("model 'custom' needs custom weights for ft, lc, oc, cw and rest")
    unknown = set(custom) - set(_KEYS)
    if unknown:
        raise ValueError(f"unknown custom weight(s) {sorted(unknown)}; valid: {list(_KEYS)}")
    try:
        exact = [Decimal(str(custom.get(k, 0))) for k in _KEYS]
    except ArithmeticError:  # decimal.InvalidOperation: not a number
        raise ValueError(f"custom weights must be numbers, got {dict(custom)}") from None
    if any(not w.is_finite() or w < 0 for w in exact):
        raise ValueError(f"custom weights must be finite and >= 0, got {dict(custom)}")
    if abs(sum(exact) - 1) > Decimal("1e-9"):
        raise ValueError(f"custom weights must sum to 1, got {sum(exact)}")
    non_won = [*exact[:3], Decimal(0), exact[4]]
    total = sum(non_won)
    if total == 0:
        raise ValueError(
            "custom weights give everything to cw: open and lost opportunities would get "
            "no credit; give a share to ft, lc, oc or rest"
        )
    won = tuple(float(w) for w in exact)
    return won, tuple(float(w / total) for w in non_won)


def _role_credits(
    j: Journeys, ms: Milestones, won_w: tuple[float, ...], lost_w: tuple[float, ...]
) -> np.ndarray:
    """Credits of a milestone + rest model with per-opportunity weights (won vs not)."""
    won = j.opp_won
    idx = (ms.ft, ms.lc, ms.oc, ms.cw)
    # Per opportunity: the share of each role and of the rest.
    w = [np.where(won, won_w[r], lost_w[r]) for r in range(5)]
    active = [(w[r] > 0) & (idx[r] >= 0) for r in range(4)]
    n_roles = np.zeros(j.n_opps, dtype=np.int64)
    n_distinct = np.zeros(j.n_opps, dtype=np.int64)
    for r in range(4):
        n_roles += active[r]
        new = active[r].copy()
        for q in range(r):
            new &= ~(active[q] & (idx[q] == idx[r]))
        n_distinct += new
    n_rest = j.lengths - n_distinct
    has_rest = n_rest > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rest_each = np.where(has_rest, w[4] / n_rest, 0.0)
        role_bonus = np.where(has_rest | (n_roles == 0), 0.0, w[4] / n_roles)
    credits = np.repeat(rest_each, j.lengths)
    share = [np.where(active[r], w[r] + role_bonus, 0.0) for r in range(4)]
    for r in range(4):
        # Everything the touch holding role r receives: the shares of all roles on it.
        total = share[r].copy()
        for q in range(4):
            if q != r:
                total += np.where(active[q] & (idx[q] == idx[r]), share[q], 0.0)
        credits[idx[r][active[r]]] = total[active[r]]
    return credits


def _time_decay(j: Journeys, half_life_days: float) -> np.ndarray:
    if not (half_life_days > 0 and np.isfinite(half_life_days)):
        raise ValueError(f"half_life_days must be a positive number, got {half_life_days}")
    # 2 ** (-(cutoff - t) / h), normalised per opportunity. Scaling every weight of one
    # opportunity by 2 ** ((cutoff - t_last) / h) leaves the normalised credits unchanged and
    # keeps the largest weight at 1, so old touches never underflow to an all-zero journey.
    last = np.where(j.lengths > 0, j.offsets[1:] - 1, 0)
    t_last = j.touch_time[last] if j.n_touches else np.zeros(j.n_opps, dtype=np.int64)
    age = (np.repeat(t_last, j.lengths) - j.touch_time).astype(np.float64)
    weights = np.exp2(age / (-half_life_days * _US_PER_DAY))
    totals = segment_sum(weights, j.offsets)
    weights /= np.repeat(totals, j.lengths)
    return weights


def rule_credits(
    j: Journeys,
    model: str,
    *,
    half_life_days: float = 7.0,
    custom: Mapping[str, Decimal | float] | None = None,
    ms: Milestones | None = None,
) -> np.ndarray:
    """Credit of every touch (float64[n_touches]) under a rule-based ``model``.

    The credits of each non-empty journey sum to 1 (to float rounding, < 1e-12); empty
    journeys have no touches and so no credit. ``half_life_days`` is used by ``time_decay``,
    ``custom`` (weights for ``ft``, ``lc``, ``oc``, ``cw``, ``rest``; missing keys are 0) by
    ``custom``. ``ms`` may pass milestones already computed for ``j`` (several models in a row).
    """
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}; valid models: {', '.join(MODELS)}")
    if model == "linear":
        with np.errstate(divide="ignore"):
            return np.repeat(1.0 / j.lengths, j.lengths)
    if model == "time_decay":
        return _time_decay(j, float(half_life_days))
    won_w, lost_w = _custom_weights(custom) if model == "custom" else _FIXED[model]
    return _role_credits(j, milestones(j) if ms is None else ms, won_w, lost_w)
