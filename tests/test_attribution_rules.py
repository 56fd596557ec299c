"""Rule-based attribution models: hand-computed journeys and properties (DESIGN section 4)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.attribution import MODELS, Journeys, milestones, rule_credits

D = 86_400_000_000  # one day in microseconds
CUSTOM = {"ft": 0.3, "lc": 0.2, "oc": 0.2, "cw": 0.2, "rest": 0.1}


def one(times, *, person, created, won=False, cutoff=None, campaigns=None):
    """A Journeys with one opportunity whose touches are at ``times`` (in journey order)."""
    campaigns = campaigns or list(range(len(times)))
    touches = [(t, c, c % 3) for t, c in zip(times, campaigns, strict=True)]
    return Journeys.from_lists(
        [touches],
        opp_created=[created],
        opp_person_created=[person],
        opp_cutoff=[max(times, default=0) if cutoff is None else cutoff],
        opp_won=[won],
        n_campaigns=max(campaigns, default=0) + 1,
        n_channels=3,
    )


def credits(j, model, **kw):
    return rule_credits(j, model, custom=CUSTOM, **kw)


def approx(values):
    return pytest.approx(values, abs=1e-12)


# --- milestones ---------------------------------------------------------------------------


def test_milestones_distinct():
    j = one([0, D, 2 * D, 3 * D, 4 * D], person=D, created=2 * D, won=True)
    ms = milestones(j)
    assert (ms.ft[0], ms.lc[0], ms.oc[0], ms.cw[0]) == (0, 1, 2, 4)


def test_milestones_ties_in_time_follow_the_given_order():
    # Touches 0 and 1 share a time; "last touch at or before" person creation is touch 1.
    j = one([D, D, 3 * D], person=D, created=D)
    ms = milestones(j)
    assert (ms.ft[0], ms.lc[0], ms.oc[0], ms.cw[0]) == (0, 1, 1, -1)
    assert credits(j, "first_touch").tolist() == [1, 0, 0]
    assert credits(j, "lead_creation").tolist() == [0, 1, 0]


def test_lc_and_oc_fall_back():
    # No touch at or before the person's creation: LC = FT. No touch at or before the
    # opportunity's creation: OC = LC.
    j = one([5 * D, 6 * D, 7 * D], person=D, created=2 * D)
    ms = milestones(j)
    assert (ms.ft[0], ms.lc[0], ms.oc[0]) == (0, 0, 0)
    assert credits(j, "last_touch").tolist() == [1, 0, 0]
    # OC falls back to LC even when LC is not the first touch.
    j = one([0, D, 2 * D, 3 * D], person=D + D // 2, created=-5)
    ms = milestones(j)
    assert (ms.ft[0], ms.lc[0], ms.oc[0]) == (0, 1, 1)
    assert credits(j, "last_touch").tolist() == [0, 1, 0, 0]


def test_absolute_indices_and_empty_journeys():
    j = Journeys.from_lists(
        [[(0, 0, 0), (D, 1, 0)], [], [(0, 0, 0), (D, 1, 0), (2 * D, 1, 0)]],
        opp_created=[D, 0, D],
        opp_person_created=[0, 0, 0],
        opp_cutoff=[2 * D] * 3,
        opp_won=[True, True, False],
    )
    ms = milestones(j)
    assert ms.ft.tolist() == [0, -1, 2]
    assert ms.lc.tolist() == [0, -1, 2]
    assert ms.oc.tolist() == [1, -1, 3]
    assert ms.cw.tolist() == [1, -1, -1]
    for model in MODELS:
        c = credits(j, model)
        assert c.shape == (5,)
        assert c[:2].sum() == approx(1)
        assert c[2:].sum() == approx(1)


# --- the models on hand-computed journeys ------------------------------------------------


def test_one_touch_journey_gets_everything_under_every_model():
    for won in (False, True):
        for person, created in ((0, 0), (-D, -D), (0, -D), (D, 2 * D)):
            j = one([0], person=person, created=created, won=won, cutoff=30 * D)
            for model in MODELS:
                assert credits(j, model).tolist() == [1.0], (model, won, person, created)


def test_w_shaped_contract_example_two_thirds_one_third():
    # FT and LC on touch 0, OC on touch 1, no rest: the rest share is split over the three
    # roles, so touch 0 holds two of them (2/3) and touch 1 one (1/3).
    j = one([0, 2 * D], person=0, created=2 * D)
    assert credits(j, "w_shaped") == approx([2 / 3, 1 / 3])


def test_w_shaped_all_milestones_on_the_first_touch():
    j = one([0, D, 2 * D], person=0, created=0)
    assert credits(j, "w_shaped") == approx([0.9, 0.05, 0.05])


def test_w_shaped_distinct_milestones_and_rest():
    j = one([0, D, 2 * D, 3 * D, 4 * D], person=D, created=3 * D)
    assert credits(j, "w_shaped") == approx([0.3, 0.3, 0.05, 0.3, 0.05])


def test_u_shaped():
    # FT = LC on touch 0: 0.8; the rest (including the OC touch, not a u_shaped role) 0.1 each.
    j = one([0, D, 2 * D], person=0, created=2 * D)
    assert credits(j, "u_shaped") == approx([0.8, 0.1, 0.1])
    # FT = LC and a single other touch.
    assert credits(one([0, D], person=0, created=D), "u_shaped") == approx([0.8, 0.2])
    # FT and LC distinct, no rest: 0.4 + 0.1 each.
    assert credits(one([0, D], person=D, created=D), "u_shaped") == approx([0.5, 0.5])
    # FT and LC distinct with rest.
    j = one([0, D, 2 * D, 3 * D], person=2 * D, created=3 * D)
    assert credits(j, "u_shaped") == approx([0.4, 0.1, 0.4, 0.1])


def test_full_path_won_and_not_won():
    times = [0, D, 2 * D, 3 * D, 4 * D]
    won = one(times, person=D, created=2 * D, won=True)
    assert credits(won, "full_path") == approx([0.225, 0.225, 0.225, 0.1, 0.225])
    lost = one(times, person=D, created=2 * D, won=False)
    assert credits(lost, "full_path") == approx([0.3, 0.3, 0.3, 0.05, 0.05])
    assert credits(lost, "full_path") == approx(credits(lost, "w_shaped"))


def test_full_path_won_with_oc_on_the_closing_touch():
    # FT, LC, OC = CW: no rest, each role 0.225 + 0.1 / 4 = 0.25; the last touch holds two.
    j = one([0, D, 2 * D], person=D, created=5 * D, won=True)
    assert credits(j, "full_path") == approx([0.25, 0.25, 0.5])


def test_linear():
    j = one([0, D, D, 4 * D], person=0, created=0)
    assert credits(j, "linear") == approx([0.25] * 4)


def test_time_decay_exact_weights():
    # Ages 14, 7 and 0 days with a 7-day half-life: weights 1/4, 1/2, 1 -> 1/7, 2/7, 4/7.
    j = one([0, 7 * D, 14 * D], person=0, created=0, cutoff=14 * D)
    assert credits(j, "time_decay") == approx([1 / 7, 2 / 7, 4 / 7])
    # The cutoff after the last touch scales every weight alike.
    j = one([0, 7 * D, 14 * D], person=0, created=0, cutoff=21 * D)
    assert credits(j, "time_decay") == approx([1 / 7, 2 / 7, 4 / 7])
    # Another half-life, and ages that are not whole half-lives.
    j = one([0, 3 * D, 14 * D], person=0, created=0, cutoff=20 * D)
    w = np.array([2 ** (-20 / 10), 2 ** (-17 / 10), 2 ** (-6 / 10)])
    assert credits(j, "time_decay", half_life_days=10) == approx(w / w.sum())


def test_time_decay_does_not_underflow_on_old_journeys():
    j = one([0, 7 * D], person=0, created=0, cutoff=7 * D + 100 * 365 * D)
    assert credits(j, "time_decay") == approx([1 / 3, 2 / 3])


def test_time_decay_rejects_bad_half_life():
    j = one([0], person=0, created=0)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="half_life_days"):
            rule_credits(j, "time_decay", half_life_days=bad)


def test_custom_weights_won_and_renormalised_when_not_won():
    times = [0, D, 2 * D, 3 * D, 4 * D]
    weights = {k: Decimal("0.2") for k in ("ft", "lc", "oc", "cw", "rest")}
    won = one(times, person=D, created=2 * D, won=True)
    assert rule_credits(won, "custom", custom=weights) == approx([0.2] * 5)
    # Not won: CW is dropped and ft, lc, oc, rest renormalised to 0.25 each.
    lost = one(times, person=D, created=2 * D)
    assert rule_credits(lost, "custom", custom=weights) == approx([0.25, 0.25, 0.25, 0.125, 0.125])


def test_custom_with_u_shaped_weights_is_u_shaped():
    # Roles with a zero share are not roles: the OC touch is rest, as in u_shaped.
    weights = {"ft": 0.4, "lc": 0.4, "rest": 0.2}
    for person, created in ((0, 2 * D), (D, D), (0, 0), (2 * D, 3 * D)):
        j = one([0, D, 2 * D, 3 * D], person=person, created=created)
        assert rule_credits(j, "custom", custom=weights) == approx(credits(j, "u_shaped"))


def test_custom_marketo_50_50_and_no_rest():
    j = one([0, D, 2 * D], person=D, created=2 * D)
    # FT and LC only, nothing for the rest.
    assert rule_credits(j, "custom", custom={"ft": 0.5, "lc": 0.5}) == approx([0.5, 0.5, 0])
    # Rest share with no rest touch goes evenly to the roles (ft and lc).
    j = one([0, D], person=D, created=D)
    c = rule_credits(j, "custom", custom={"ft": 0.6, "lc": 0.2, "rest": 0.2})
    assert c == approx([0.7, 0.3])


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (None, "custom weights"),
        ({"ft": 0.5, "lc": 0.4}, "sum to 1"),
        ({"ft": 1.5, "lc": -0.5}, ">= 0"),
        ({"ft": 0.5, "first": 0.5}, "unknown"),
        ({"cw": 1}, "cw"),
        ({"ft": "half", "lc": 0.5}, "numbers"),
    ],
)
def test_custom_weights_validation(weights, match):
    j = one([0], person=0, created=0)
    with pytest.raises(ValueError, match=match):
        rule_credits(j, "custom", custom=weights)


def test_unknown_model_lists_the_valid_names():
    j = one([0], person=0, created=0)
    with pytest.raises(ValueError, match=r"first_touch.*w_shaped.*custom"):
        rule_credits(j, "last_click")


def test_empty_journey_gets_no_credit():
    j = Journeys.from_lists(
        [[], [(0, 0, 0)], []],
        opp_created=[0, 0, 0],
        opp_person_created=[0, 0, 0],
        opp_cutoff=[0, 0, 0],
        opp_won=[True, False, False],
    )
    for model in MODELS:
        assert credits(j, model).tolist() == [1.0]
    ms = milestones(j)
    assert ms.ft.tolist() == ms.lc.tolist() == ms.oc.tolist() == [-1, 0, -1]
    assert ms.cw.tolist() == [-1, -1, -1]
    empty = Journeys.from_lists(
        [], opp_created=[], opp_person_created=[], opp_cutoff=[], opp_won=[]
    )
    for model in MODELS:
        assert credits(empty, model).shape == (0,)


# --- input validation ------------------------------------------------------------------------


def test_journeys_validation():
    good = dict(
        offsets=np.array([0, 2], dtype=np.int64),
        touch_time=np.array([0, 1], dtype=np.int64),
        touch_campaign=np.array([0, 1], dtype=np.int32),
        touch_channel=np.array([0, 0], dtype=np.int16),
        opp_created=np.array([0], dtype=np.int64),
        opp_person_created=np.array([0], dtype=np.int64),
        opp_cutoff=np.array([1], dtype=np.int64),
        opp_won=np.array([True]),
        n_campaigns=2,
        n_channels=1,
    )
    Journeys(**good)
    bad_cases = [
        ({"touch_campaign": np.array([0, 1], dtype=np.int64)}, TypeError, "int32"),
        ({"opp_won": np.array([1], dtype=np.int64)}, TypeError, "bool"),
        ({"offsets": np.array([0, 1], dtype=np.int64)}, ValueError, "end"),
        ({"opp_cutoff": np.array([1, 2], dtype=np.int64)}, ValueError, "length"),
        ({"n_campaigns": 1}, ValueError, "touch_campaign"),
        ({"touch_time": np.array([1, 0], dtype=np.int64)}, ValueError, "sorted"),
        ({"touch_time": [0, 1]}, TypeError, "numpy"),
    ]
    for change, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            Journeys(**{**good, **change})
    # Time may go back across a journey boundary.
    Journeys(
        **{
            **good,
            "offsets": np.array([0, 1, 2], dtype=np.int64),
            "touch_time": np.array([5, 0], dtype=np.int64),
            "opp_created": np.array([0, 0], dtype=np.int64),
            "opp_person_created": np.array([0, 0], dtype=np.int64),
            "opp_cutoff": np.array([5, 5], dtype=np.int64),
            "opp_won": np.array([True, False]),
        }
    )


# --- properties ------------------------------------------------------------------------------


@st.composite
def journeys(draw, max_opps=8, max_len=6):
    n_opps = draw(st.integers(0, max_opps))
    n_campaigns = draw(st.integers(1, 4))
    touches, created, person, cutoff, won = [], [], [], [], []
    for _ in range(n_opps):
        times = sorted(draw(st.lists(st.integers(0, 6), max_size=max_len)))
        touches.append(
            [(t * D, draw(st.integers(0, n_campaigns - 1)), draw(st.integers(0, 2))) for t in times]
        )
        person.append(draw(st.integers(-1, 7)) * D)
        created.append(draw(st.integers(-1, 7)) * D)
        cutoff.append((max(times, default=0) + draw(st.integers(0, 30))) * D)
        won.append(draw(st.booleans()))
    return Journeys.from_lists(
        touches,
        opp_created=created,
        opp_person_created=person,
        opp_cutoff=cutoff,
        opp_won=won,
        n_campaigns=n_campaigns,
        n_channels=3,
    )


custom_weights = (
    st.lists(st.integers(0, 10), min_size=5, max_size=5)
    .filter(lambda w: sum(w[:3]) + w[4] > 0)
    .map(
        lambda w: {
            k: Decimal(x) / sum(w) for k, x in zip(("ft", "lc", "oc", "cw", "rest"), w, strict=True)
        }
    )
)


def per_opp_sums(j, c):
    return np.array([c[j.offsets[i] : j.offsets[i + 1]].sum() for i in range(j.n_opps)])


@settings(max_examples=200, deadline=None)
@given(j=journeys(), weights=custom_weights, half_life=st.floats(0.5, 60))
def test_credits_of_each_journey_sum_to_one(j, weights, half_life):
    nonempty = j.lengths > 0
    for model in MODELS:
        c = rule_credits(j, model, custom=weights, half_life_days=half_life)
        assert c.dtype == np.float64 and c.shape == (j.n_touches,)
        assert np.all(c >= 0)
        sums = per_opp_sums(j, c)
        assert np.all(np.abs(sums[nonempty] - 1) <= 1e-12), model
        # Milestone models only credit milestones or rest touches: never more than 1 each.
        assert np.all(c <= 1 + 1e-12)


def permute(j: Journeys, perm: np.ndarray) -> Journeys:
    """The same opportunities in the order ``perm`` (new opp k is old opp perm[k])."""
    touch_idx = np.concatenate(
        [np.arange(j.offsets[i], j.offsets[i + 1]) for i in perm] + [np.zeros(0, np.int64)]
    ).astype(np.int64)
    offsets = np.zeros(j.n_opps + 1, dtype=np.int64)
    np.cumsum(j.lengths[perm], out=offsets[1:])
    return Journeys(
        offsets=offsets,
        touch_time=j.touch_time[touch_idx],
        touch_campaign=j.touch_campaign[touch_idx],
        touch_channel=j.touch_channel[touch_idx],
        opp_created=j.opp_created[perm],
        opp_person_created=j.opp_person_created[perm],
        opp_cutoff=j.opp_cutoff[perm],
        opp_won=j.opp_won[perm],
        n_campaigns=j.n_campaigns,
        n_channels=j.n_channels,
    ), touch_idx


@settings(max_examples=100, deadline=None)
@given(j=journeys(), data=st.data())
def test_permuting_opportunities_permutes_the_credits(j, data):
    perm = np.array(data.draw(st.permutations(range(j.n_opps))), dtype=np.int64)
    pj, touch_idx = permute(j, perm)
    for model in MODELS:
        np.testing.assert_array_equal(credits(pj, model), credits(j, model)[touch_idx])


@settings(max_examples=100, deadline=None)
@given(j=journeys())
def test_model_identities(j):
    lost = ~j.opp_won[j.touch_opp]
    fp, ws = credits(j, "full_path"), credits(j, "w_shaped")
    np.testing.assert_allclose(fp[lost], ws[lost], atol=1e-15)
    u = rule_credits(j, "custom", custom={"ft": 0.4, "lc": 0.4, "rest": 0.2})
    np.testing.assert_allclose(u, credits(j, "u_shaped"), atol=1e-15)
    w = rule_credits(j, "custom", custom={"ft": 0.3, "lc": 0.3, "oc": 0.3, "rest": 0.1})
    np.testing.assert_allclose(w, ws, atol=1e-15)
