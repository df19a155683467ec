"""ROC, Mann-Whitney AUC, cut-points and the bootstrap interval against hand-computed values,
scipy's Mann-Whitney U and the Hanley & McNeil (1982, Radiology 143:29-36) standard error."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from bonefe.errors import BonefeError
from bonefe.cohort.roc import auc, bootstrap_auc_ci, roc_curve, target_sensitivity_point, youden_point

# Hand-computed set (higher is riskier); 0.6 is tied between the two outcomes.
#   fractured: 0.9 0.8 0.6 0.4          intact: 0.7 0.6 0.5 0.3 0.2
# Mann-Whitney over the 4 x 5 = 20 pairs (fractured riskier = 1, tie = 1/2):
#   0.9 -> 5, 0.8 -> 5, 0.6 -> 3 + 1/2 (beats 0.5 0.3 0.2, ties 0.6), 0.4 -> 2 (beats 0.3 0.2)
#   AUC = 15.5 / 20 = 0.775
# Cut-points (midpoints of the distinct values, flag score > cut):
#   cut    inf  0.85 0.75 0.65 0.55 0.45 0.35 0.25 -inf
#   sens   0    .25  .5   .5   .75  .75  1    1    1
#   spec   1    1    1    .8   .6   .4   .4   .2   0
#   J      0    .25  .5   .3   .35  .15  .4   .2   0
# Youden: J = 0.5 at 0.75 (sens 0.5, spec 1). Sensitivity 1 first at 0.35 (spec 0.4);
# sensitivity 0.75 first at 0.55 (spec 0.6). Trapezoids under the curve: 0.1 + 0.125 + 0.15 +
# 0.2 + 0.2 = 0.775, the AUC again.
FRACTURED_SCORES = [0.9, 0.8, 0.6, 0.4]
INTACT_SCORES = [0.7, 0.6, 0.5, 0.3, 0.2]
SCORES = np.array(FRACTURED_SCORES + INTACT_SCORES)
OUTCOME = np.array([True] * 4 + [False] * 5)


def test_hand_computed_set():
    """Every number of the table above; tolerance: float rounding of the midpoints."""
    curve = roc_curve(SCORES, OUTCOME)
    assert curve.cuts == pytest.approx([np.inf, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, -np.inf], abs=1e-12)
    assert curve.sensitivity == pytest.approx([0, .25, .5, .5, .75, .75, 1, 1, 1], abs=1e-12)
    assert curve.specificity == pytest.approx([1, 1, 1, .8, .6, .4, .4, .2, 0], abs=1e-12)
    assert auc(SCORES, OUTCOME) == pytest.approx(0.775, abs=1e-12)
    assert np.trapezoid(curve.sensitivity, 1 - curve.specificity) == pytest.approx(0.775, abs=1e-12)
    best = youden_point(curve)
    assert (best.cut, best.sensitivity, best.specificity, best.youden) == pytest.approx((0.75, 0.5, 1.0, 0.5))
    full = target_sensitivity_point(curve, 1.0)
    assert (full.cut, full.sensitivity, full.specificity) == pytest.approx((0.35, 1.0, 0.4))
    three_quarters = target_sensitivity_point(curve, 0.75)
    assert (three_quarters.cut, three_quarters.specificity) == pytest.approx((0.55, 0.6))


def test_lower_is_riskier_mirrors_the_cut_points():
    """The same set negated, with lower = riskier, is the same test: AUC 0.775 and the cut-points
    negated (flag score < -0.75 for Youden, < -0.35 for sensitivity 1). Exact up to rounding."""
    curve = roc_curve(-SCORES, OUTCOME, higher_is_riskier=False)
    assert auc(-SCORES, OUTCOME, higher_is_riskier=False) == pytest.approx(0.775, abs=1e-12)
    assert youden_point(curve).cut == pytest.approx(-0.75)
    assert target_sensitivity_point(curve).cut == pytest.approx(-0.35)


def test_perfect_separation_gives_auc_1_and_a_perfect_cut():
    """Fractured 5 6 7 against intact 1 2 3: every pair ordered, AUC 1; the Youden cut 4 (midpoint
    of 3 and 5) flags exactly the fractured cases: sensitivity 1, specificity 1 (exact)."""
    scores, outcome = [5, 6, 7, 1, 2, 3], [1, 1, 1, 0, 0, 0]
    assert auc(scores, outcome) == 1.0
    best = youden_point(roc_curve(scores, outcome))
    assert (best.cut, best.sensitivity, best.specificity) == (4.0, 1.0, 1.0)
    assert target_sensitivity_point(roc_curve(scores, outcome)).cut == 4.0


def test_reversed_data_gives_auc_0_unless_the_direction_says_so():
    """Fractured 1 2 3 against intact 5 6 7: with 'higher is riskier' every pair is misordered,
    AUC 0 (not silently flipped); declared 'lower is riskier' it is AUC 1, cut 4 (exact)."""
    scores, outcome = [1, 2, 3, 5, 6, 7], [1, 1, 1, 0, 0, 0]
    assert auc(scores, outcome, higher_is_riskier=True) == 0.0
    assert auc(scores, outcome, higher_is_riskier=False) == 1.0
    assert youden_point(roc_curve(scores, outcome, higher_is_riskier=False)).cut == 4.0


def test_ties_follow_the_mann_whitney_formula():
    """Integer (Mirels-like) scores with ties across outcomes. By hand over the 20 pairs:
    fractured 9 9 8 10 against intact 8 8 7 9 6: each 9 -> 4 + 1/2, 8 -> 2 + 2·1/2, 10 -> 5,
    AUC = 17/20 = 0.85; scipy's Mann-Whitney U / (n1 n0) gives the same; all scores tied -> 0.5."""
    fractured, intact = [9, 9, 8, 10], [8, 8, 7, 9, 6]
    scores, outcome = fractured + intact, [1] * 4 + [0] * 5
    u = mannwhitneyu(fractured, intact).statistic
    assert auc(scores, outcome) == pytest.approx(0.85, abs=1e-12)
    assert auc(scores, outcome) == pytest.approx(u / 20, abs=1e-12)
    assert auc([1, 1, 1, 1, 1], [1, 1, 0, 0, 0]) == 0.5


def binormal(n: int, seed: int):
    """n fractured ~ N(1, 1) and n intact ~ N(0, 1): true AUC Φ(1/√2) = 0.760."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)]), np.arange(2 * n) < n


def hanley_mcneil_se(a: float, n1: int, n0: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982, eq. 2 with Q1 = A/(2-A), Q2 = 2A²/(1+A))."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))


def test_bootstrap_interval_contains_the_auc_matches_hanley_mcneil_and_narrows():
    """The 95 % interval holds the AUC; its width is 2·1.96·SE of Hanley & McNeil within 20 % (their
    Q1, Q2 assume exponential score distributions, and 2000 replicates leave a few % Monte-Carlo
    error); 10 x more cases shrink it by about √10 (asserted: by more than 2)."""
    widths = []
    for n in (20, 200):
        scores, outcome = binormal(n, seed=1)
        a = auc(scores, outcome)
        low, high = bootstrap_auc_ci(scores, outcome, replicates=2000, seed=0)
        assert low < a < high
        assert high - low == pytest.approx(2 * 1.96 * hanley_mcneil_se(a, n, n), rel=0.2)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_reproducible_and_stratified():
    """Same seed, same interval (exact); a perfectly separated set stays perfectly separated in
    every stratified replicate (each keeps both outcomes), so its interval is [1, 1]."""
    scores, outcome = binormal(30, seed=2)
    assert bootstrap_auc_ci(scores, outcome, seed=5) == bootstrap_auc_ci(scores, outcome, seed=5)
    assert bootstrap_auc_ci([5, 6, 7, 1, 2, 3], [1, 1, 1, 0, 0, 0], replicates=200) == (1.0, 1.0)


def test_user_errors():
    """One outcome only, a bad target sensitivity, a single distinct value: one-line BonefeErrors."""
    with pytest.raises(BonefeError, match="at least one fractured and one non-fractured"):
        auc([1, 2, 3], [1, 1, 1])
    with pytest.raises(BonefeError, match="target sensitivity"):
        target_sensitivity_point(roc_curve(SCORES, OUTCOME), 0.0)
    with pytest.raises(BonefeError, match="single value"):
        youden_point(roc_curve([2, 2, 2, 2], [1, 0, 1, 0]))
    with pytest.raises(BonefeError, match="finite"):
        auc([1, np.nan], [1, 0])
