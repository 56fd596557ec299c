"""Shapley attribution: the coalition conversion-rate game, by hand and by the classic formula."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.attribution import (
    Journeys,
    Paths,
    coalition_values,
    set_rates,
    shapley_credits,
    shapley_values,
)

D = 86_400_000_000


def csr(paths):
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in paths], out=offsets[1:])
    return offsets, np.array([c for p in paths for c in p], dtype=np.int16)


def values(conv, null, n, conv_counts=None, null_counts=None):
    return shapley_values(*csr(conv), *csr(null), n, conv_counts, null_counts)


def test_two_channels_by_hand():
    # Sets: {A}: 10 paths, 2 convert (r = 0.2); {B}: 10 paths, 1 converts (0.1);
    # {A, B}: 5 paths, 3 convert (0.6). v(A) = 0.2, v(B) = 0.1, v(AB) = 0.2 + 0.1 + 0.6 = 0.9.
    # phi_A = 1/2 (v(A) - 0) + 1/2 (v(AB) - v(B)) = 0.1 + 0.4 = 0.5
    # phi_B = 1/2 (v(B) - 0) + 1/2 (v(AB) - v(A)) = 0.05 + 0.35 = 0.4
    A, B = 0, 1
    conv = [[A]] * 2 + [[B]] + [[A, B], [B, A, A], [A, B, A]]
    null = [[A]] * 8 + [[B]] * 9 + [[B, A], [A, B, B]]
    assert values(conv, null, 2) == pytest.approx([0.5, 0.4], abs=1e-15)
    rates = set_rates(*csr(conv), *csr(null), 2)
    assert rates == pytest.approx([0, 0.2, 0.1, 0.6], abs=1e-15)
    assert coalition_values(rates) == pytest.approx([0, 0.2, 0.1, 0.9], abs=1e-15)


def test_three_channels_by_hand():
    # r({0}) = 1/2, r({1}) = 0, r({0,2}) = 1/4, r({0,1,2}) = 1, other sets absent (0).
    # phi_i = sum of r(S)/|S| over S containing i:
    # phi_0 = 1/2 + 1/4 / 2 + 1/3 = 23/24; phi_1 = 1/3; phi_2 = 1/8 + 1/3 = 11/24.
    conv = [[0], [2, 0], [0, 1, 2]]
    null = [[0], [1], [0, 2], [2, 0, 2], [2, 2, 0]]
    got = values(conv, null, 3)
    assert got == pytest.approx([23 / 24, 1 / 3, 11 / 24], abs=1e-15)
    assert got.sum() == pytest.approx(coalition_values(set_rates(*csr(conv), *csr(null), 3))[-1])


def classic_shapley(v, n):
    """The textbook formula: sum over coalitions S without i of |S|!(n-|S|-1)!/n! * marginal."""
    phi = np.zeros(n)
    for i in range(n):
        for size in range(n):
            for members in itertools.combinations([k for k in range(n) if k != i], size):
                s = sum(1 << k for k in members)
                weight = factorial(size) * factorial(n - size - 1) / factorial(n)
                phi[i] += weight * (v[s | (1 << i)] - v[s])
    return phi


def permutation_shapley(v, n):
    """Average marginal contribution over all orderings (n <= 6)."""
    phi = np.zeros(n)
    perms = list(itertools.permutations(range(n)))
    for order in perms:
        s = 0
        for i in order:
            phi[i] += v[s | (1 << i)] - v[s]
            s |= 1 << i
    return phi / len(perms)


def brute_force_values(rates, n):
    """v(S) = sum of r(T) over T subset of S, by enumeration."""
    return np.array([sum(rates[t] for t in range(1 << n) if t & s == t) for s in range(1 << n)])


path_lists = st.lists(st.lists(st.integers(0, 4), max_size=6), max_size=30)


@settings(max_examples=100, deadline=None)
@given(conv=path_lists, null=path_lists, n=st.integers(5, 6))
def test_equals_the_classic_formula_and_is_efficient(conv, null, n):
    rates = set_rates(*csr(conv), *csr(null), n)
    v = coalition_values(rates)
    np.testing.assert_allclose(v, brute_force_values(rates, n), rtol=0, atol=1e-12)
    got = values(conv, null, n)
    np.testing.assert_allclose(got, classic_shapley(v, n), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, permutation_shapley(v, n), rtol=0, atol=1e-12)
    assert got.sum() == pytest.approx(v[-1], abs=1e-12)  # efficiency
    assert np.all(got >= 0)


def test_counts_equal_repeated_paths():
    conv, null = [[0, 1], [2]], [[1], [0, 2]]
    weighted = values(conv, null, 3, np.array([2, 3]), np.array([4, 1]))
    repeated = values([[0, 1]] * 2 + [[2]] * 3, [[1]] * 4 + [[0, 2]], 3)
    np.testing.assert_allclose(weighted, repeated, rtol=0, atol=1e-15)


def test_at_most_sixteen_channels():
    assert values([[15]], [[0]], 16)[15] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"at most 16 channels.*markov"):
        values([[0]], [], 17)
    j = Journeys.from_lists(
        [[(0, 0, 0)]],
        opp_created=[0],
        opp_person_created=[0],
        opp_cutoff=[0],
        opp_won=[True],
        n_channels=17,
    )
    with pytest.raises(ValueError, match="at most 16 channels"):
        shapley_credits(j, Paths.empty())


def test_credits_in_proportion_to_channel_values():
    # Channel 0 converts alone (r = 1); {0, 1} converts half the time; channel 2 never does.
    # phi_0 = 1 + 1/4 = 5/4, phi_1 = 1/4, phi_2 = 0.
    j = Journeys.from_lists(
        [
            [(0, 0, 0)],  # won, channel 0
            [(0, 1, 0), (D, 2, 1)],  # won, channels 0 and 1
            [(0, 3, 1), (D, 4, 0), (2 * D, 5, 1)],  # open: channels 1, 0, 1
            [(0, 6, 2)],  # open, channel 2 only: unattributed
            [],  # empty: unattributed
        ],
        opp_created=[0] * 5,
        opp_person_created=[0] * 5,
        opp_cutoff=[2 * D] * 5,
        opp_won=[True, True, False, False, False],
        n_channels=3,
    )
    null = Paths.from_lists([[(0, 1), (1, 0)], [(0, 2)]])
    c, v = shapley_credits(j, null)
    assert v == pytest.approx([1.25, 0.25, 0.0], abs=1e-15)
    assert c == pytest.approx([1.0, 5 / 6, 1 / 6, 1 / 7, 5 / 7, 1 / 7, 0.0], abs=1e-15)
