"""Shapley-value attribution over channels (DESIGN section 4, ``shapley``).

The game is the coalition conversion-rate game of Zhao et al. (2018), "Shapley Value Methods
for Attribution Modeling in Online Advertising" (the "simplified Shapley value"):

- every path, converting or not, is reduced to its channel **set** (order and repeats are
  dropped; empty paths are ignored);
- for a set ``S``, ``r(S)`` = converting paths / all paths among the paths whose set is
  exactly ``S`` (0 when no path has that set);
- the worth of a coalition is ``v(S) = sum of r(T) over the non-empty T subset of S``.

``v`` is the subset-sum (zeta) transform of ``r`` over the ``2^n`` lattice of channel sets,
computed with ``n`` vectorised passes (:func:`coalition_values`). Because ``r`` is then exactly
the Harsanyi dividend of ``v``, the Shapley value of channel ``i`` is
``phi_i = sum over S containing i of r(S) / |S|``, which equals the classical permutation
formula ``sum over S not containing i of |S|! (n-|S|-1)! / n! * (v(S+i) - v(S))`` exactly
(the tests check both); it is computed over the lattice in ``O(n 2^n)``, never by permutations.
Efficiency holds: the values sum to ``v(all channels)``.

Credits: a touch gets its channel's value, normalised per opportunity. Values in this game are
never negative (rates are >= 0); they are clipped at 0 all the same, so that a channel can never
take credit away. An opportunity whose touches all have value 0 is unattributed.

At most ``MAX_SHAPLEY_CHANNELS`` (16) channels: beyond that the lattice grows too fast and the
Markov model (``level='campaign'`` or ``'channel'``) is the one to use.
"""

from __future__ import annotations

import numpy as np

from .journeys import Journeys, Paths, proportional_credits

__all__ = [
    "MAX_SHAPLEY_CHANNELS",
    "coalition_values",
    "set_rates",
    "shapley_credits",
    "shapley_values",
]

MAX_SHAPLEY_CHANNELS = 16


def _check_n(n_channels: int) -> int:
    n = int(n_channels)
    if n > MAX_SHAPLEY_CHANNELS:
        raise ValueError(
            f"Shapley attribution supports at most {MAX_SHAPLEY_CHANNELS} channels, got {n}: "
            "use the markov model instead"
        )
    if n < 0:
        raise ValueError(f"n_channels must be >= 0, got {n}")
    return n


def _path_sets(offsets: np.ndarray, channels: np.ndarray, n: int) -> np.ndarray:
    """The channel set of every path as a bit mask (0 for an empty path)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    channels = np.asarray(channels).astype(np.int64, copy=False)
    if offsets.ndim != 1 or offsets.shape[0] < 1 or offsets[0] != 0:
        raise ValueError("offsets must be 1-dimensional and start at 0")
    if offsets[-1] != channels.shape[0] or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must go from 0 to len(channels) without decreasing")
    if channels.size and (int(channels.min()) < 0 or int(channels.max()) >= n):
        raise ValueError(f"channels must lie in [0, {n})")
    masks = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    starts = offsets[:-1]
    nonempty = offsets[1:] > starts
    if channels.size:
        masks[nonempty] = np.bitwise_or.reduceat(np.left_shift(1, channels), starts[nonempty])
    return masks


def _counts(name: str, counts: np.ndarray | None, masks: np.ndarray) -> np.ndarray | None:
    if counts is None:
        return None
    w = np.asarray(counts, dtype=np.float64)
    if w.shape != masks.shape:
        raise ValueError(f"{name} must have one count per path ({masks.shape[0]})")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return w


def set_rates(
    conv_offsets: np.ndarray,
    conv_channels: np.ndarray,
    null_offsets: np.ndarray,
    null_channels: np.ndarray,
    n_channels: int,
    conv_counts: np.ndarray | None = None,
    null_counts: np.ndarray | None = None,
) -> np.ndarray:
    """``r(S)`` for every channel set ``S`` (float64[2^n], indexed by bit mask; r(empty) = 0)."""
    n = _check_n(n_channels)
    size = 1 << n
    conv = _path_sets(conv_offsets, conv_channels, n)
    null = _path_sets(null_offsets, null_channels, n)
    conversions = np.bincount(conv, _counts("conv_counts", conv_counts, conv), minlength=size)
    paths = conversions + np.bincount(
        null, _counts("null_counts", null_counts, null), minlength=size
    )
    rates = np.divide(conversions, paths, out=np.zeros(size), where=paths > 0)
    rates[0] = 0.0
    return rates


def coalition_values(rates: np.ndarray) -> np.ndarray:
    """``v(S) = sum of r(T) for T subset of S``: the zeta transform of ``rates`` (float64[2^n])."""
    v = np.array(rates, dtype=np.float64)
    n = v.shape[0].bit_length() - 1
    if v.shape[0] != 1 << n:
        raise ValueError("rates must have 2^n entries")
    for i in range(n):
        pairs = v.reshape(-1, 2, 1 << i)  # [..., 0, :] lacks bit i, [..., 1, :] has it
        pairs[:, 1, :] += pairs[:, 0, :]
    return v


def _popcount(n: int) -> np.ndarray:
    sizes = np.zeros(1 << n, dtype=np.int64)
    masks = np.arange(1 << n, dtype=np.int64)
    for i in range(n):
        sizes += (masks >> i) & 1
    return sizes


def shapley_values(
    conv_offsets: np.ndarray,
    conv_channels: np.ndarray,
    null_offsets: np.ndarray,
    null_channels: np.ndarray,
    n_channels: int,
    conv_counts: np.ndarray | None = None,
    null_counts: np.ndarray | None = None,
) -> np.ndarray:
    """Exact Shapley value of every channel (float64[n_channels]) in the conversion-rate game.

    Paths are CSR ``(offsets, channels)``; ``*_counts`` say how many times each path was seen
    (default 1). See the module docstring for the game.
    """
    rates = set_rates(
        conv_offsets,
        conv_channels,
        null_offsets,
        null_channels,
        n_channels,
        conv_counts,
        null_counts,
    )
    n = _check_n(n_channels)
    sizes = _popcount(n)
    per_member = np.divide(rates, sizes, out=np.zeros_like(rates), where=sizes > 0)
    values = np.empty(n, dtype=np.float64)
    for i in range(n):
        values[i] = per_member.reshape(-1, 2, 1 << i)[:, 1, :].sum()
    return values


def shapley_credits(j: Journeys, nonconverting: Paths) -> tuple[np.ndarray, np.ndarray]:
    """Shapley credits of every touch and the value of every channel.

    Converting paths are the journeys of won opportunities, non-converting ones
    ``nonconverting``. A touch's weight is its channel's value clipped at 0, normalised per
    opportunity.
    """
    _check_n(j.n_channels)
    conv_offsets, conv_channels = j.won_paths("channel")
    values = shapley_values(
        conv_offsets, conv_channels, nonconverting.offsets, nonconverting.channel, j.n_channels
    )
    weights = np.maximum(values, 0.0)[j.touch_channel]
    return proportional_credits(j, weights), values
