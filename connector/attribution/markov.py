"""Markov-chain attribution with exact removal effects (DESIGN section 4, ``markov``).

The chain (first order, as ChannelAttribution builds it): transient states are ``start`` and
every state (campaign or channel) seen in a path; absorbing states are ``conversion`` and
``null``. Consecutive repeats of a state in a path collapse into one. A converting path
``a > b`` contributes one count to each of ``start->a``, ``a->b``, ``b->conversion``; a
non-converting path ends in ``null`` instead. A path seen ``c`` times counts ``c`` times.
Transition probabilities are counts divided by row totals.

The removal effect of state ``s`` is ``1 - P(conv | s removed) / P(conv)``, where removing
``s`` sends every transition into ``s`` to ``null``. A converting walk either avoids ``s`` or
visits it, so ``P(conv) - P(conv | s removed) = h_s * v_s``, with ``h_s`` the probability of
ever reaching ``s`` from ``start`` and ``v_s`` the probability of converting from ``s``. With
``N = (I - Q)^-1`` the fundamental matrix of the transient part ``Q``:
``v = N r`` (``r`` the one-step conversion probabilities) and ``h_s = N[start, s] / N[s, s]``
(expected visits from start divided by the expected visits once there). So all removal effects
come from one dense inverse, solved exactly in float64 (no sampling): the same input gives the
same output bit for bit (the counts are sums in a fixed order, the solve one LAPACK call; a
different BLAS build or thread count may change the last bits, never more).

Size limit: the inverse is dense, ``O(k^3)`` time and ``8 k^2`` bytes per matrix for ``k``
states that appear in the paths (states never seen are left out and get 0). Channel level is
trivial (milliseconds); campaign level is fine up to a few thousand active campaigns (measured
on two cores: 0.6 s for 2,000 states, 3.3 s for 4,000, 11 s and about 1 GB for 6,000); above
``MAX_MARKOV_STATES`` (6,000) a ValueError suggests the channel level.
"""

from __future__ import annotations

import numpy as np

from .journeys import Journeys, Paths, proportional_credits

__all__ = ["MAX_MARKOV_STATES", "markov_credits", "markov_removal_effects"]

MAX_MARKOV_STATES = 6000
_DIRECT_STATES = 1000  # below this, transitions are counted without remapping the states


def _path_weights(name: str, counts: np.ndarray | None, n_paths: int) -> np.ndarray | None:
    if counts is None:
        return None
    w = np.asarray(counts, dtype=np.float64)
    if w.shape != (n_paths,):
        raise ValueError(f"{name} must have one count per path ({n_paths}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return w


def _check_paths(name: str, offsets: np.ndarray, states: np.ndarray, n_states: int) -> None:
    if offsets.ndim != 1 or offsets.shape[0] < 1 or states.ndim != 1:
        raise ValueError(f"{name}: offsets and states must be 1-dimensional, offsets non-empty")
    if offsets[0] != 0 or offsets[-1] != states.shape[0] or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{name}: offsets must go from 0 to len(states) without decreasing")
    if states.size and (int(states.min()) < 0 or int(states.max()) >= n_states):
        raise ValueError(f"{name}: states must lie in [0, {n_states})")


def _count_transitions(
    offsets: np.ndarray,
    states: np.ndarray,
    weights: np.ndarray | None,
    remap: np.ndarray | None,
    end: int,
    width: int,
) -> np.ndarray:
    """Transition counts ``from * width + to`` of the paths (float64[(width - 2) * width]).

    Row and column 0 is ``start``, states are ``1..k`` (``remap`` maps state -> 1..k, or
    ``None`` for state + 1), ``end`` is the absorbing column the paths finish in. Repeats are
    not collapsed here: a repeat is a self-transition, and dropping those afterwards (the
    caller zeroes the diagonal) gives exactly the counts of the collapsed paths, since the
    transitions between different states, the first state and the last one are the same.
    """
    n = states.shape[0]
    size = (width - 2) * width  # rows: start and the states; columns: also conv and null
    if n == 0:
        return np.zeros(size)
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    idx = remap[states] if remap is not None else states.astype(np.intp) + 1
    nxt = np.empty(n, dtype=np.intp)
    nxt[:-1] = idx[1:]
    nxt[offsets[1:][nonempty] - 1] = end  # the last touch of a path goes to ``end``
    codes = idx * width
    codes += nxt
    del nxt
    firsts = idx[offsets[:-1][nonempty]]  # start (row 0) -> first state
    if weights is None:
        return (np.bincount(codes, minlength=size) + np.bincount(firsts, minlength=size)).astype(
            np.float64
        )
    return np.bincount(codes, np.repeat(weights, lengths), minlength=size) + np.bincount(
        firsts, weights[nonempty], minlength=size
    )


def markov_removal_effects(
    conv_offsets: np.ndarray,
    conv_states: np.ndarray,
    null_offsets: np.ndarray,
    null_states: np.ndarray,
    n_states: int,
    conv_counts: np.ndarray | None = None,
    null_counts: np.ndarray | None = None,
) -> np.ndarray:
    """Exact removal effect of each state (float64[n_states], each in [0, 1]).

    Converting paths are CSR ``(conv_offsets, conv_states)``, non-converting ones
    ``(null_offsets, null_states)``; ``conv_counts`` / ``null_counts`` say how many times each
    path was seen (default 1 each). States never seen, and all states when nothing converts,
    get 0.
    """
    conv_offsets = np.asarray(conv_offsets, dtype=np.int64)
    null_offsets = np.asarray(null_offsets, dtype=np.int64)
    conv_states = np.asarray(conv_states)
    null_states = np.asarray(null_states)
    n_states = int(n_states)
    _check_paths("converting paths", conv_offsets, conv_states, n_states)
    _check_paths("non-converting paths", null_offsets, null_states, n_states)
    conv_w = _path_weights("conv_counts", conv_counts, conv_offsets.shape[0] - 1)
    null_w = _path_weights("null_counts", null_counts, null_offsets.shape[0] - 1)

    effects = np.zeros(n_states, dtype=np.float64)
    seen = np.zeros(n_states, dtype=bool)
    seen[conv_states] = True
    seen[null_states] = True
    k = int(seen.sum())
    if k == 0:
        return effects
    if k > MAX_MARKOV_STATES:
        raise ValueError(
            f"{k} states appear in the paths; the exact Markov solver is limited to "
            f"{MAX_MARKOV_STATES} (dense matrices): use level='channel'"
        )
    # Few states: count over all of them (state s is row s + 1) and drop the unseen ones
    # afterwards; many: map the seen ones to 1..k first so the count matrix stays small.
    remap = None if n_states <= _DIRECT_STATES else np.cumsum(seen) * seen
    m = n_states if remap is None else k
    conv, null = m + 1, m + 2
    width = m + 3
    counts = (
        _count_transitions(conv_offsets, conv_states, conv_w, remap, conv, width)
        + _count_transitions(null_offsets, null_states, null_w, remap, null, width)
    ).reshape(m + 1, width)
    diagonal = np.arange(1, m + 1)
    counts[diagonal, diagonal] = 0.0  # consecutive repeats collapse into one state
    if remap is None:
        keep = np.concatenate(([0], np.flatnonzero(seen) + 1))
        counts = counts[np.ix_(keep, np.concatenate((keep, [conv, null])))]
        conv, null = k + 1, k + 2
    if counts[:, conv].sum() <= 0:
        return effects
    totals = counts.sum(axis=1)
    # A state reached only by paths counted 0 times has no outgoing probability; it is
    # unreachable (h = 0) anyway.
    counts /= np.where(totals > 0, totals, 1.0)[:, None]  # now transition probabilities
    to_conv = counts[:, conv].copy()
    a = np.negative(counts[:, : k + 1])  # I - Q, built in place to keep big chains lean
    del counts
    a[np.diag_indices(k + 1)] += 1.0
    fundamental = np.linalg.inv(a)
    del a
    v = fundamental @ to_conv  # P(conversion) from each transient state
    p_conv = v[0]
    if not p_conv > 0:
        return effects
    diag = np.diagonal(fundamental)[1:]
    h = fundamental[0, 1:] / diag  # P(ever reaching s) from start
    effects[seen] = np.clip(h * v[1:] / p_conv, 0.0, 1.0)
    return effects


def markov_credits(
    j: Journeys, nonconverting: Paths, level: str = "campaign"
) -> tuple[np.ndarray, np.ndarray]:
    """Markov credits of every touch and the removal effect of every state.

    Converting paths are the journeys of won opportunities, non-converting ones are
    ``nonconverting``; states are campaigns or channels (``level``). Every opportunity's credit
    goes to its touches in proportion to their state's removal effect; an opportunity whose
    touches all have effect 0 gets no credit (it is unattributed).
    """
    states, n_states = j.states(level)
    conv_offsets, conv_states = j.won_paths(level)
    effects = markov_removal_effects(
        conv_offsets, conv_states, nonconverting.offsets, nonconverting.states(level), n_states
    )
    return proportional_credits(j, effects[states]), effects
