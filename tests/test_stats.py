"""Statistics of the self-vs-cross comparison, against hand-computed values and enumerations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfcross.analysis.stats import (
    bootstrap_mean_diff,
    holm,
    mcnemar,
    min_wilcoxon_p,
    paired_t,
    wilcoxon_paired,
)


def test_wilcoxon_hand_value_exact_small():
    # d = 1..6 all positive: W- = 0; exact two-sided p = 2 * (1 / 2**6) = 0.03125
    x = np.array([1.0, 2, 3, 4, 5, 6])
    r = wilcoxon_paired(x, np.zeros(6))
    assert r.statistic == 0.0
    assert r.p_value == pytest.approx(2 / 64)
    assert r.n == 6 and r.note == ""


def test_wilcoxon_n_below_6_explained():
    # 5 pairs all in one direction: the most extreme possible data still gives p = 0.0625
    r = wilcoxon_paired([0.6, 0.62, 0.65, 0.7, 0.71], [0.5, 0.5, 0.5, 0.5, 0.5])
    assert r.p_value == pytest.approx(0.0625)
    assert "cannot reach p < 0.05" in r.note
    assert min_wilcoxon_p(5) == pytest.approx(0.0625)
    assert min_wilcoxon_p(6) == pytest.approx(0.03125)


def _exact_signed_rank_p(ranks, w):
    """Two-sided exact p of the signed-rank statistic ``w`` by enumerating all 2**n sign patterns."""
    n = len(ranks)
    hits = sum(1 for signs in itertools.product((0, 1), repeat=n)
               if sum(r for r, s in zip(ranks, signs) if s) <= w + 1e-9)
    return min(1.0, 2 * hits / 2**n)


def test_wilcoxon_zero_differences_dropped_hand_value():
    x = np.array([0.50, 0.52, 0.55, 0.60, 0.61, 0.63, 0.70, 0.40])
    y = np.array([0.50, 0.50, 0.56, 0.57, 0.61, 0.60, 0.64, 0.45])
    # d = 0, .02, -.01, .03, 0, .03, .06, -.05: two zeros dropped; |d| .01 .02 .03 .03 .05 .06
    # -> ranks 1 2 3.5 3.5 5 6; negatives -.01 and -.05: W- = 1 + 5 = 6
    r = wilcoxon_paired(x, y)
    assert r.details["n_zero"] == 2 and r.n == 6 and r.details["ties"] is True
    assert r.statistic == 6.0
    # 13 of the 64 sign patterns give a rank sum <= 6: p = 2 * 13 / 64
    assert r.p_value == pytest.approx(26 / 64)
    assert r.p_value == pytest.approx(_exact_signed_rank_p([1, 2, 3.5, 3.5, 5, 6], 6))
    assert "zero difference" in r.note


def test_wilcoxon_ties_hand_statistic_and_exact_p():
    # |d| = 1,1,2,2,3,3,3 ; signs + + - + + + - ; ranks 1.5,1.5,3.5,3.5,6,6,6
    d = np.array([1, 1, -2, 2, 3, 3, -3], dtype=float)
    r = wilcoxon_paired(d, np.zeros_like(d))
    assert r.details["ties"] is True
    # W- = 3.5 + 6 = 9.5 (the smaller rank sum, SciPy's two-sided statistic)
    assert r.statistic == pytest.approx(9.5)
    assert r.p_value == pytest.approx(_exact_signed_rank_p([1.5, 1.5, 3.5, 3.5, 6, 6, 6], 9.5))
    assert r.p_value == pytest.approx(66 / 128)


def test_wilcoxon_sees_ties_between_differences_of_accuracies():
    # 0.7 - 0.6 and 0.4 - 0.3 are both 0.1 but differ in the last bits as floats; likewise the
    # three differences of 0.05. Counted as ties: |d| ranks 2,2,2 (0.05) 4.5,4.5 (0.1) 6 7,
    # one negative 0.05 -> W- = 2; the 8 of 128 sign patterns with a rank sum <= 2 -> p = 0.0625
    x = [0.7, 0.4, 0.9, 0.8, 0.65, 0.5, 0.55]
    y = [0.6, 0.3, 0.7, 0.5, 0.6, 0.45, 0.6]
    r = wilcoxon_paired(x, y)
    assert r.details["ties"] is True
    assert r.statistic == 2.0
    assert r.p_value == pytest.approx(8 / 128)
    assert r.p_value == pytest.approx(_exact_signed_rank_p([2, 2, 2, 4.5, 4.5, 6, 7], 2))


def test_wilcoxon_difference_equal_to_zero_up_to_rounding_is_dropped():
    # 0.3 - 0.1 and 0.5 - 0.3 are both 0.2 mathematically; the pair 0.3/0.3 - 0.1 is a zero
    r = wilcoxon_paired([0.1 + 0.2, 0.5, 0.9, 0.8, 0.7, 0.6], [0.3, 0.3, 0.2, 0.1, 0.3, 0.1])
    assert r.details["n_zero"] == 1 and r.n == 5


def test_wilcoxon_all_zero():
    r = wilcoxon_paired([0.5, 0.6], [0.5, 0.6])
    assert r.p_value == 1.0 and r.n == 0 and "zero" in r.note


def test_paired_t_matches_scipy_and_hand():
    x = np.array([0.61, 0.64, 0.58, 0.66, 0.60])
    y = np.array([0.60, 0.61, 0.59, 0.62, 0.57])
    r = paired_t(x, y)
    d = x - y
    t_hand = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    assert r.statistic == pytest.approx(t_hand)
    assert t_hand == pytest.approx(np.sqrt(5))
    # Student's t CDF for 4 degrees of freedom in closed form
    u = t_hand**2 / 4
    cdf = 0.5 + 3 / 8 * t_hand / math.sqrt(1 + u) * (1 - u / (3 * (1 + u)))
    assert r.p_value == pytest.approx(2 * (1 - cdf))
    assert r.p_value == pytest.approx(0.0890093, abs=1e-7)
    assert r.details == {"df": 4}


def test_paired_t_degenerate():
    assert paired_t([0.5, 0.6], [0.5, 0.6]).p_value == 1.0
    r = paired_t([0.6, 0.7], [0.5, 0.6])
    assert np.isnan(r.p_value) and "identical" in r.note
    assert np.isnan(paired_t([0.5], [0.4]).p_value)


def test_mcnemar_exact_hand_value():
    # b = 3 (A right, B wrong), c = 1 -> exact p = 2 * P(X <= 1 | n=4, 0.5) = 2 * 5/16
    y = np.array([0, 0, 0, 0, 1, 1])
    a = np.array([0, 0, 0, 1, 1, 1])
    b = np.array([1, 1, 1, 0, 1, 1])
    r = mcnemar(y, a, b)
    assert r.details["b"] == 3 and r.details["c"] == 1
    assert r.details["method"] == "exact-binomial"
    assert r.p_value == pytest.approx(10 / 16)


def test_mcnemar_chi2_continuity_hand_value():
    rng = np.random.default_rng(0)
    y = np.zeros(100, dtype=int)
    a = np.zeros(100, dtype=int)
    b = np.zeros(100, dtype=int)
    b[:30] = 1  # A right, B wrong: 30
    a[30:40] = 1  # A wrong, B right: 10
    perm = rng.permutation(100)
    r = mcnemar(y[perm], a[perm], b[perm])
    stat = (abs(30 - 10) - 1) ** 2 / 40
    assert r.details["method"] == "chi2-continuity"
    assert r.statistic == pytest.approx(stat)
    # chi-square with 1 df: P(X > s) = erfc(sqrt(s / 2))
    assert r.p_value == pytest.approx(math.erfc(math.sqrt(stat / 2)))


def test_mcnemar_no_discordant():
    y = np.array([0, 1, 2])
    r = mcnemar(y, y, y)
    assert r.p_value == 1.0 and r.n == 0


def test_holm_hand_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.2, float("nan"), 0.9])
    assert out[0] == pytest.approx(0.4) and np.isnan(out[1]) and out[2] == pytest.approx(0.9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_holm_properties(p):
    adj = holm(p)
    arr = np.asarray(p)
    assert np.all(adj >= arr - 1e-12) and np.all(adj <= 1.0)
    order = np.argsort(arr, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-12)


def test_bootstrap_seeded_and_contains_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(0.6, 0.02, 20)
    y = x - 0.01 + rng.normal(0, 0.005, 20)
    a = bootstrap_mean_diff(x, y, seed=3)
    b = bootstrap_mean_diff(x, y, seed=3)
    assert a == b
    assert a.low <= a.mean_diff <= a.high
    assert a.mean_diff == pytest.approx(np.mean(x - y))
    assert 0.0 < a.low  # a clear 0.01 shift with small noise is detected
    c = bootstrap_mean_diff([0.5, 0.5, 0.5], [0.4, 0.4, 0.4])
    assert c.low == pytest.approx(0.1) and c.high == pytest.approx(0.1)


def test_bad_shapes():
    with pytest.raises(ValueError):
        wilcoxon_paired([1, 2], [1])
    with pytest.raises(ValueError):
        mcnemar(np.zeros(3), np.zeros(2), np.zeros(3))
