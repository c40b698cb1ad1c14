"""The statistics behind every verdict, checked against scipy's own tests and textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from test_suites import cell, fake_suite

from harness import claims
from harness.stats import difference, holm, seeds_needed, summarize

A = [0.951, 0.944, 0.962, 0.949, 0.957]
B = [0.921, 0.933, 0.925, 0.930, 0.919]


def test_welch_interval_matches_scipy() -> None:
    d = difference(A, B, paired=False)
    ci = sps.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert d.method == "welch"
    assert d.lo == pytest.approx(ci.low) and d.hi == pytest.approx(ci.high)
    assert d.p == pytest.approx(sps.ttest_ind(A, B, equal_var=False).pvalue)


def test_paired_interval_matches_scipy() -> None:
    d = difference(A, B, paired=True)
    ci = sps.ttest_rel(A, B).confidence_interval(0.95)
    assert d.method == "paired-t"
    assert d.lo == pytest.approx(ci.low) and d.hi == pytest.approx(ci.high)
    diffs = np.subtract(A, B)
    assert d.effect == pytest.approx(diffs.mean() / diffs.std(ddof=1))


def test_pairs_with_a_missing_value_are_dropped() -> None:
    d = difference([1.0, 2.0, math.nan, 4.0], [0.5, 1.0, 1.0, 3.5], paired=True)
    assert d.n_a == d.n_b == 3


def test_count_interval_never_leaves_the_possible_range() -> None:
    # epochs to a target (1..budget+1 = 1..11): a t-interval of [1, 1, 11] would reach below 1
    bn, no_bn = [1.0, 1.0, 2.0, 1.0, 3.0], [11.0, 2.0, 11.0, 3.0, 11.0]
    d = difference(bn, no_bn, paired=True, counts=True)
    diffs = np.subtract(bn, no_bn)
    assert d.method == "paired-bootstrap"
    assert diffs.min() <= d.lo <= d.hi <= diffs.max()
    t_lo = sps.ttest_rel(bn, no_bn).confidence_interval().low
    assert t_lo < diffs.min()  # what the bootstrap avoids
    one_arm = difference([1.0, 1.0, 2.0], [1.0, 1.0, 1.0], counts=True)
    assert one_arm.lo >= 0.0 and one_arm.hi <= 1.0


def test_seeds_needed_reproduces_cohens_table() -> None:
    # Cohen (1988): d = 0.5 needs 64 per group (two-sample), d_z = 0.5 needs 34 (paired)
    assert seeds_needed(0.5, paired=False) == 64
    assert seeds_needed(0.5, paired=True) == 34
    assert seeds_needed(0.0, paired=True) == 0


def test_unresolved_difference_says_how_many_seeds() -> None:
    d = difference([0.90, 0.93, 0.91], [0.91, 0.90, 0.90], paired=True)
    assert not d.resolved and d.seeds_needed > 3


def test_holm_matches_the_textbook_example() -> None:
    # Holm (1979) step-down: sorted p * (m - rank), made monotone
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(holm([math.nan, 0.01])[0])


def test_summary_uses_the_t_quantile() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert s.hi - s.mean == pytest.approx(sps.t.ppf(0.975, 2) / math.sqrt(3))


def test_verdicts_from_the_difference() -> None:
    cells = [cell("bn", s, [0.9, a], backend="torch") for s, a in enumerate(A)]
    cells += [cell("no-bn", s, [0.8, b], backend="torch") for s, b in enumerate(B)]
    cells += [cell("bn", s, [0.9, b], backend="jax") for s, b in enumerate(B)]
    cells += [cell("no-bn", s, [0.8, a], backend="jax") for s, a in enumerate(A)]
    results = {r.where: r for r in claims.bn_more_accurate(cells, fake_suite("x"))}
    assert results["torch/cpu"].verdict == claims.SUPPORTED
    assert results["jax/cpu"].verdict == claims.CONTRADICTED
    assert results["torch/cpu"].unit == "pp" and "Δ +" in results["torch/cpu"].measurement


def test_backends_that_agree_within_noise_get_one_verdict() -> None:
    """Two backends whose numbers differ by 0.1 pp must not get different verdicts."""
    no_bn = [0.920, 0.930, 0.925, 0.915, 0.935]
    bn = [0.932, 0.931, 0.941, 0.921, 0.945]  # torch: Δ resolved (barely)
    cells = [
        cell("no-bn", s, [0.5, a], backend=b)
        for b in ("torch", "numpy")
        for s, a in enumerate(no_bn)
    ]
    cells += [cell("bn", s, [0.5, a], backend="torch") for s, a in enumerate(bn)]
    shifted = [a - 0.004 if s == 1 else a for s, a in enumerate(bn)]  # numpy: 0.4 pp off once
    cells += [cell("bn", s, [0.5, a], backend="numpy") for s, a in enumerate(shifted)]
    results = {r.where: r for r in claims.bn_more_accurate(cells, fake_suite("x"))}
    own = {w: r.own_verdict for w, r in results.items()}
    assert own["torch/cpu"] != own["numpy/cpu"]  # the split the pooled verdict removes
    assert results["torch/cpu"].verdict == results["numpy/cpu"].verdict
    assert results["torch/cpu"].pooled["backends"] == ["torch/cpu", "numpy/cpu"]


def test_backends_that_agree_within_noise_get_one_verdict_when_unpaired() -> None:
    """The same for a claim whose arms are not paired (Welch's interval; batch-size's "train
    and eval modes disagree" at full size split jax 'supported' / keras-jax 'unresolved')."""
    no_bn = [0.920, 0.930, 0.925, 0.915, 0.935]
    bn = [a + 0.0135 + d for a, d in zip(no_bn, [0.004, -0.002, 0.006, -0.004, 0.008])]
    shifted = [a - 0.006 if s == 1 else a for s, a in enumerate(bn)]  # numpy: 0.6 pp off once
    cells = [
        cell("no-bn", s, [0.5, a], backend=b)
        for b in ("torch", "numpy")
        for s, a in enumerate(no_bn)
    ]
    cells += [cell("bn", s, [0.5, a], backend="torch") for s, a in enumerate(bn)]
    cells += [cell("bn", s, [0.5, a], backend="numpy") for s, a in enumerate(shifted)]
    sides = (("bn", lambda c: c["variant"] == "bn"), ("no-bn", lambda c: c["variant"] == "no-bn"))
    metric = claims.mean_of(claims.final_acc)
    found = claims.versus(cells, "c", "w", metric, sides, True, claims.PP, paired=False)
    results = {r.where: r for r in found}
    assert results["torch/cpu"].own_verdict == claims.SUPPORTED
    assert results["numpy/cpu"].own_verdict == claims.UNRESOLVED
    assert results["torch/cpu"].verdict == results["numpy/cpu"].verdict == claims.SUPPORTED
    pooled = results["numpy/cpu"].pooled
    assert pooled["backends"] == ["torch/cpu", "numpy/cpu"] and "(welch" in pooled["text"]
    arms = [[sum(v) / 2 for v in zip(*pair)] for pair in ((bn, shifted), (no_bn, no_bn))]
    assert pooled["diff"] == pytest.approx(np.mean(arms[0]) - np.mean(arms[1]))


def test_backends_that_really_differ_keep_their_own_verdicts() -> None:
    no_bn = [0.920, 0.930, 0.925, 0.915, 0.935]
    cells = [
        cell("no-bn", s, [0.5, a], backend=b)
        for b in ("torch", "keras")
        for s, a in enumerate(no_bn)
    ]
    cells += [
        cell("bn", s, [0.5, a + 0.02 + s / 1000], backend="torch") for s, a in enumerate(no_bn)
    ]
    cells += [
        cell("bn", s, [0.5, a - 0.02 - s / 1000], backend="keras") for s, a in enumerate(no_bn)
    ]
    results = {r.where: r for r in claims.bn_more_accurate(cells, fake_suite("x"))}
    assert results["torch/cpu"].verdict == claims.SUPPORTED
    assert results["keras/cpu"].verdict == claims.CONTRADICTED
    assert not results["torch/cpu"].pooled


def test_evaluate_adds_holm_adjusted_p() -> None:
    cells = [cell("bn", s, [0.9, a], backend="torch") for s, a in enumerate(A)]
    cells += [cell("no-bn", s, [0.8, b], backend="torch") for s, b in enumerate(B)]
    suite = fake_suite("x", claims=("bn_more_accurate", "bn_regularizes"))
    results = claims.evaluate(cells, suite)
    raw = [r.diff["p"] for r in results]
    assert [r.p_holm for r in results] == pytest.approx(holm(raw))
