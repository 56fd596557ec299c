"""From credits to money per (opportunity, campaign): exact splits and per-campaign totals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.attribution import (
    MODELS,
    Journeys,
    Paths,
    allocate,
    markov_credits,
    rule_credits,
    shapley_credits,
)
from tests.test_attribution_rules import journeys

D = 86_400_000_000
A, B, C = 0, 1, 2


def make(journeys_, won, n_campaigns=3):
    n = len(journeys_)
    return Journeys.from_lists(
        [[(i * D, c, c) for i, c in enumerate(cs)] for cs in journeys_],
        opp_created=[0] * n,
        opp_person_created=[0] * n,
        opp_cutoff=[30 * D] * n,
        opp_won=won,
        n_campaigns=n_campaigns,
        n_channels=n_campaigns,
    )


def test_hand_computed_split():
    # Opp 0: touches B, A, B, C, linear -> B 0.5, A 0.25, C 0.25, in first-touch order B, A, C.
    # 101 cents: quotas 50.5, 25.25, 25.25 -> floors 50, 25, 25, the last cent to B.
    # Opp 1: one touch of C gets everything. Opp 2: no touch, unattributed.
    j = make([[B, A, B, C], [C], []], won=[True, False, True])
    alloc = allocate(j, rule_credits(j, "linear"), np.array([101, 40, 999], dtype=np.int64))
    assert alloc.opp.tolist() == [0, 0, 0, 1]
    assert alloc.campaign.tolist() == [B, A, C, C]
    assert alloc.credit.tolist() == pytest.approx([0.5, 0.25, 0.25, 1.0])
    assert alloc.amount_minor.tolist() == [51, 25, 25, 40]
    assert alloc.offsets.tolist() == [0, 3, 4, 4]
    assert alloc.won.tolist() == [True, True, True, False]
    assert alloc.unattributed.tolist() == [2]

    totals = alloc.totals()
    assert totals.pipeline_minor.tolist() == [25, 51, 65]
    assert totals.revenue_minor.tolist() == [25, 51, 25]
    assert totals.attributed_opportunities.tolist() == pytest.approx([0.25, 0.5, 1.25])
    assert totals.attributed_won.tolist() == pytest.approx([0.25, 0.5, 0.25])
    assert totals.influenced_opportunities.tolist() == [1, 1, 2]
    assert totals.pipeline_minor.dtype == totals.revenue_minor.dtype == np.int64


def test_remainder_ties_go_to_the_campaign_touched_first():
    # Three campaigns with equal credit, 2 cents: quotas 2/3 each, the two units go to the
    # campaigns whose first touches come first (C, then A), not to the lowest campaign index.
    j = make([[C, A, B]], won=[True])
    alloc = allocate(j, rule_credits(j, "linear"), np.array([2], dtype=np.int64))
    assert alloc.campaign.tolist() == [C, A, B]
    assert alloc.amount_minor.tolist() == [1, 1, 0]
    # Same with a repeated campaign: A's first touch is first.
    j = make([[A, B, A, C, B, C]], won=[False])
    alloc = allocate(j, rule_credits(j, "linear"), np.array([1], dtype=np.int64))
    assert alloc.campaign.tolist() == [A, B, C]
    assert alloc.amount_minor.tolist() == [1, 0, 0]


def test_zero_credit_campaigns_still_count_as_influenced():
    j = make([[A, B, C]], won=[True])
    alloc = allocate(j, rule_credits(j, "first_touch"), np.array([1000], dtype=np.int64))
    assert alloc.campaign.tolist() == [A, B, C]
    assert alloc.amount_minor.tolist() == [1000, 0, 0]
    assert alloc.influenced_opportunities().tolist() == [1, 1, 1]
    assert alloc.revenue_minor().tolist() == [1000, 0, 0]


def test_unattributed_data_driven_opportunity_keeps_its_pairs_with_zero_money():
    # Campaign C never converts: its removal effect is 0, so the open opp touching only C
    # is unattributed but C still influenced it.
    j = make([[A, B], [C]], won=[True, False])
    credits, _ = markov_credits(j, Paths.from_lists([[(C, C)], [(B, B)]]))
    alloc = allocate(j, credits, np.array([500, 700], dtype=np.int64))
    assert alloc.unattributed.tolist() == [1]
    assert alloc.amount_minor[alloc.opp == 1].tolist() == [0]
    assert alloc.amount_minor[alloc.opp == 0].sum() == 500
    assert alloc.influenced_opportunities().tolist() == [1, 1, 1]


def test_negative_and_zero_amounts():
    j = make([[A, B, B], [A]], won=[True, True])
    alloc = allocate(j, rule_credits(j, "linear"), np.array([-100, 0], dtype=np.int64))
    assert alloc.amount_minor.tolist() == [-33, -67, 0]


def test_bad_input():
    j = make([[A, B]], won=[True])
    with pytest.raises(ValueError, match="credits"):
        allocate(j, np.ones(3), np.array([1], dtype=np.int64))
    with pytest.raises(ValueError, match="amount_minor"):
        allocate(j, np.ones(2), np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        allocate(j, np.array([1.0, -0.5]), np.array([1], dtype=np.int64))


@settings(max_examples=150, deadline=None)
@given(j=journeys(max_opps=10, max_len=8), data=st.data())
def test_every_opportunity_is_split_exactly(j, data):
    amounts = np.array(
        data.draw(st.lists(st.integers(-(10**12), 10**12), min_size=j.n_opps, max_size=j.n_opps)),
        dtype=np.int64,
    )
    nonconverting = Paths.from_lists(
        [
            [(int(c), int(c) % j.n_channels) for c in p]
            for p in data.draw(
                st.lists(st.lists(st.integers(0, j.n_campaigns - 1), max_size=4), max_size=5)
            )
        ]
    )
    all_credits = [rule_credits(j, m, custom={"ft": 0.5, "rest": 0.5}) for m in MODELS]
    all_credits.append(markov_credits(j, nonconverting)[0])
    all_credits.append(shapley_credits(j, nonconverting)[0])
    for credits in all_credits:
        alloc = allocate(j, credits, amounts)
        per_opp = np.zeros(j.n_opps, dtype=np.int64)
        np.add.at(per_opp, alloc.opp, alloc.amount_minor)
        attributed = np.ones(j.n_opps, dtype=bool)
        attributed[alloc.unattributed] = False
        assert per_opp[attributed].tolist() == amounts[attributed].tolist()
        assert not per_opp[~attributed].any()
        # Pairs: one per (opp, campaign) touched, grouped per opp in first-touch order.
        for i in range(j.n_opps):
            cs = j.touch_campaign[j.offsets[i] : j.offsets[i + 1]].tolist()
            first_order = list(dict.fromkeys(cs))
            sl = slice(alloc.offsets[i], alloc.offsets[i + 1])
            assert alloc.campaign[sl].tolist() == first_order
            assert alloc.opp[sl].tolist() == [i] * len(first_order)
        assert alloc.pipeline_minor().sum() == amounts[attributed].sum()
        assert alloc.revenue_minor().sum() == amounts[attributed & j.opp_won].sum()
        assert alloc.attributed_opportunities().sum() == pytest.approx(attributed.sum())


@settings(max_examples=60, deadline=None)
@given(j=journeys(max_opps=8, max_len=6), data=st.data())
def test_permuting_opportunities_permutes_the_allocation(j, data):
    from tests.test_attribution_rules import permute

    perm = np.array(data.draw(st.permutations(range(j.n_opps))), dtype=np.int64)
    amounts = np.array(
        data.draw(st.lists(st.integers(0, 10**9), min_size=j.n_opps, max_size=j.n_opps)),
        dtype=np.int64,
    )
    pj, _ = permute(j, perm)
    for model in ("linear", "w_shaped", "time_decay"):
        alloc = allocate(j, rule_credits(j, model), amounts)
        palloc = allocate(pj, rule_credits(pj, model), amounts[perm])
        for k, i in enumerate(perm.tolist()):
            old = slice(alloc.offsets[i], alloc.offsets[i + 1])
            new = slice(palloc.offsets[k], palloc.offsets[k + 1])
            assert palloc.campaign[new].tolist() == alloc.campaign[old].tolist()
            assert palloc.amount_minor[new].tolist() == alloc.amount_minor[old].tolist()
            assert palloc.credit[new].tolist() == alloc.credit[old].tolist()
        assert palloc.unattributed.tolist() == sorted(
            np.flatnonzero(np.isin(perm, alloc.unattributed)).tolist()
        )
