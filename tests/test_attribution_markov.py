"""Markov attribution: exact removal effects against an independent solver and by hand."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.attribution import Journeys, Paths, markov_credits, markov_removal_effects

D = 86_400_000_000


def csr(paths):
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in paths], out=offsets[1:])
    states = np.array([s for p in paths for s in p], dtype=np.int64)
    return offsets, states


def effects(conv, null, n_states, conv_counts=None, null_counts=None):
    return markov_removal_effects(*csr(conv), *csr(null), n_states, conv_counts, null_counts)


# --- an independent, straightforward solver --------------------------------------------------


def reference_effects(conv, null, n_states, conv_counts=None, null_counts=None):
    """Count transitions path by path, build the full matrix over start, states, conversion and
    null, and for every removed state redirect its incoming transitions to null and solve the
    absorbing chain again with numpy.linalg.solve."""
    conv_counts = conv_counts if conv_counts is not None else [1] * len(conv)
    null_counts = null_counts if null_counts is not None else [1] * len(null)
    start, conv_s, null_s = n_states, n_states + 1, n_states + 2
    size = n_states + 3
    counts = np.zeros((size, size))
    for paths, weights, end in ((conv, conv_counts, conv_s), (null, null_counts, null_s)):
        for path, w in zip(paths, weights, strict=True):
            collapsed = [s for i, s in enumerate(path) if i == 0 or path[i - 1] != s]
            if not collapsed:
                continue
            for a, b in zip([start, *collapsed], [*collapsed, end], strict=True):
                counts[a, b] += w
    counts[conv_s, conv_s] = counts[null_s, null_s] = 1
    seen = [s for s in range(n_states) if counts[s].sum() > 0]

    def p_conv(removed):
        p = counts / np.where(counts.sum(1) > 0, counts.sum(1), 1)[:, None]
        if removed is not None:
            p[:, null_s] += p[:, removed]
            p[:, removed] = 0
        transient = [start, *[s for s in seen if s != removed]]
        q = p[np.ix_(transient, transient)]
        r = p[transient, conv_s]
        x = np.linalg.solve(np.eye(len(transient)) - q, r)
        return x[0]

    base = p_conv(None)
    out = np.zeros(n_states)
    if base == 0:
        return out
    for s in seen:
        out[s] = 1 - p_conv(s) / base
    return out


def test_hand_derived_case():
    # States a=0, b=1. Converting paths: a > a > b (the repeat collapses: a > b) and a;
    # non-converting: a and b. Counts: start->a 3, start->b 1; a->b 1, a->conv 1, a->null 1;
    # b->conv 1, b->null 1. So P(start->a) = 3/4, P(start->b) = 1/4, from a: b, conv, null 1/3
    # each, from b: conv, null 1/2 each.
    # P(conv from b) = 1/2; P(conv from a) = 1/3 + 1/3 * 1/2 = 1/2; P(conv) = 1/2.
    # Without a: only start->b->conv = 1/4 * 1/2 = 1/8, effect 1 - (1/8)/(1/2) = 3/4.
    # Without b: only start->a->conv = 3/4 * 1/3 = 1/4, effect 1 - (1/4)/(1/2) = 1/2.
    re = effects([[0, 0, 1], [0]], [[0], [1]], 2)
    assert re == pytest.approx([0.75, 0.5], abs=1e-15)
    # Credits: an opportunity touching a then b splits 3/4 : 1/2 = 0.6 : 0.4.
    j = Journeys.from_lists(
        [[(0, 0, 0), (D, 0, 0), (2 * D, 1, 1)], [(0, 0, 0)], [(0, 0, 0), (D, 1, 1)]],
        opp_created=[0, 0, 0],
        opp_person_created=[0, 0, 0],
        opp_cutoff=[2 * D] * 3,
        opp_won=[True, True, False],
    )
    c, re_campaign = markov_credits(j, Paths.from_lists([[(0, 0)], [(1, 1)]]), "campaign")
    assert re_campaign == pytest.approx([0.75, 0.5], abs=1e-15)
    # Opportunity 0 has touches a, a, b: weights 3/4, 3/4, 1/2 -> 0.375, 0.375, 0.25.
    assert c.tolist() == pytest.approx([0.375, 0.375, 0.25, 1.0, 0.6, 0.4], abs=1e-15)


def test_hand_case_with_fractions_and_a_cycle():
    # a > b > a converts once; b converts once; a is a dead end once. Exact with Fractions:
    # start->a 2/3, start->b 1/3; a->b 1/2, a->null... see below, solved by substitution.
    conv, null = [[0, 1, 0], [1]], [[0]]
    # counts: start->a 2, start->b 1; a->b 1, a->conv 1, a->null 1; b->a 1, b->conv 1.
    # x_a = 1/3 x_b + 1/3, x_b = 1/2 x_a + 1/2  =>  x_a = 3/5, x_b = 4/5.
    x_a, x_b = Fraction(3, 5), Fraction(4, 5)
    assert x_a == Fraction(1, 3) * x_b + Fraction(1, 3)
    assert x_b == Fraction(1, 2) * x_a + Fraction(1, 2)
    p = Fraction(2, 3) * x_a + Fraction(1, 3) * x_b  # 2/3
    # Without a: start->b->conv = 1/3 * 1/2. Without b: start->a->conv = 2/3 * 1/3.
    re_a = 1 - Fraction(1, 6) / p
    re_b = 1 - Fraction(2, 9) / p
    assert effects(conv, null, 2) == pytest.approx([float(re_a), float(re_b)], abs=1e-15)


paths_strategy = st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=7), max_size=25)


@settings(max_examples=150, deadline=None)
@given(
    conv=paths_strategy,
    null=paths_strategy,
    data=st.data(),
)
def test_matches_the_independent_solver(conv, null, data):
    conv_counts = data.draw(st.lists(st.integers(0, 5), min_size=len(conv), max_size=len(conv)))
    null_counts = data.draw(st.lists(st.integers(0, 5), min_size=len(null), max_size=len(null)))
    got = effects(conv, null, 6, np.array(conv_counts), np.array(null_counts))
    want = reference_effects(conv, null, 6, conv_counts, null_counts)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert got[5] == 0  # never seen
    assert np.all((got >= 0) & (got <= 1))


def test_matches_the_independent_solver_on_a_larger_dataset():
    rng = np.random.default_rng(7)
    n = 12
    paths = [list(rng.integers(0, n, rng.integers(1, 9))) for _ in range(3000)]
    bias = rng.random(n)
    converted = [rng.random() < bias[p].mean() * 0.5 for p in paths]
    conv = [p for p, c in zip(paths, converted, strict=True) if c]
    null = [p for p, c in zip(paths, converted, strict=True) if not c]
    got = effects(conv, null, n)
    want = reference_effects(conv, null, n)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert len(set(np.round(got, 6))) > 5  # the effects really differ


def test_counts_are_the_same_as_repeated_paths():
    conv, null = [[0, 1], [2]], [[1, 2], [0]]
    weighted = effects(conv, null, 3, np.array([3, 1]), np.array([2, 5]))
    repeated = effects([[0, 1]] * 3 + [[2]], [[1, 2]] * 2 + [[0]] * 5, 3)
    np.testing.assert_allclose(weighted, repeated, rtol=0, atol=1e-15)


def test_nothing_converts_or_nothing_at_all():
    assert effects([], [[0, 1]], 3).tolist() == [0, 0, 0]
    assert effects([], [], 2).tolist() == [0, 0]
    assert effects([[]], [[]], 2).tolist() == [0, 0]


def test_bad_input():
    with pytest.raises(ValueError, match="states must lie"):
        effects([[0, 3]], [], 3)
    with pytest.raises(ValueError, match="one count per path"):
        effects([[0]], [], 1, np.array([1, 2]))
    with pytest.raises(ValueError, match=">= 0"):
        effects([[0]], [], 1, np.array([-1]))
    j = Journeys.from_lists(
        [[(0, 0, 0)]], opp_created=[0], opp_person_created=[0], opp_cutoff=[0], opp_won=[True]
    )
    with pytest.raises(ValueError, match="level"):
        markov_credits(j, Paths.empty(), "person")


def test_unattributed_when_all_touches_have_zero_effect():
    # Campaign 1 only appears in non-converting paths: effect 0; an open opportunity touching
    # only campaign 1 gets no credit.
    j = Journeys.from_lists(
        [[(0, 0, 0)], [(0, 1, 1), (D, 1, 1)], []],
        opp_created=[0, 0, 0],
        opp_person_created=[0, 0, 0],
        opp_cutoff=[D] * 3,
        opp_won=[True, False, False],
    )
    c, re = markov_credits(j, Paths.from_lists([[(1, 1)], [(0, 0)]]))
    assert re.tolist() == [1.0, 0.0]
    assert c.tolist() == [1.0, 0.0, 0.0]
    c, re = markov_credits(j, Paths.from_lists([[(1, 1)], [(0, 0)]]), level="channel")
    assert c.tolist() == [1.0, 0.0, 0.0]


def random_journeys(seed, n_opps=300, n_campaigns=6):
    rng = np.random.default_rng(seed)
    touches = []
    for _ in range(n_opps):
        k = int(rng.integers(0, 6))
        times = np.sort(rng.integers(0, 10, k))
        touches.append(
            [
                (int(t) * D, int(c), int(c) % 3)
                for t, c in zip(times, rng.integers(0, n_campaigns, k), strict=True)
            ]
        )
    j = Journeys.from_lists(
        touches,
        opp_created=[0] * n_opps,
        opp_person_created=[0] * n_opps,
        opp_cutoff=[10 * D] * n_opps,
        opp_won=list(rng.random(n_opps) < 0.4),
        n_campaigns=n_campaigns,
        n_channels=3,
    )
    null = Paths.from_lists(
        [
            [(int(c), int(c) % 3) for c in rng.integers(0, n_campaigns, int(rng.integers(0, 6)))]
            for _ in range(400)
        ]
    )
    return j, null


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_deterministic_and_normalised(seed):
    j, null = random_journeys(seed)
    for level in ("campaign", "channel"):
        c1, re1 = markov_credits(j, null, level)
        c2, re2 = markov_credits(j, null, level)
        assert c1.tobytes() == c2.tobytes()
        assert re1.tobytes() == re2.tobytes()
        sums = np.array([c1[j.offsets[i] : j.offsets[i + 1]].sum() for i in range(j.n_opps)])
        assert np.all((np.abs(sums - 1) <= 1e-12) | (sums == 0))


def test_permuting_opportunities_permutes_the_credits():
    from tests.test_attribution_rules import permute

    j, null = random_journeys(3)
    perm = np.random.default_rng(1).permutation(j.n_opps)
    pj, touch_idx = permute(j, perm)
    c, re = markov_credits(j, null)
    pc, pre = markov_credits(pj, null)
    np.testing.assert_allclose(pre, re, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pc, c[touch_idx], rtol=0, atol=1e-15)


def test_many_possible_states_few_seen():
    # With thousands of possible states (campaign level) only the seen ones enter the chain;
    # the result is the same as with a compact numbering.
    rng = np.random.default_rng(5)
    conv = [list(rng.integers(0, 5, rng.integers(1, 6))) for _ in range(60)]
    null = [list(rng.integers(0, 5, rng.integers(1, 6))) for _ in range(90)]

    def spread(paths):
        return [[s * 293 + 3 for s in p] for p in paths]

    small = effects(conv, null, 5)
    big = effects(spread(conv), spread(null), 1500)
    ids = np.arange(5) * 293 + 3
    np.testing.assert_allclose(big[ids], small, rtol=0, atol=1e-14)
    assert np.count_nonzero(big) == np.count_nonzero(small)
    np.testing.assert_allclose(
        big[ids], reference_effects(spread(conv), spread(null), 1500)[ids], rtol=0, atol=1e-9
    )
