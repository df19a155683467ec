"""ROC analysis of one predictor against binary outcomes (fractured or not).

Direction: `higher_is_riskier` says which end of the predictor flags a case. A cut-point c flags
the cases strictly beyond it: score > c when higher is riskier, score < c when lower is riskier
(e.g. failure load: high risk below a load). Cut-points are the midpoints between consecutive
distinct observed values, so every case with the same value falls on the same side (ties handled
exactly), plus the two sentinels that flag nobody and everybody (±inf). Sensitivity = flagged
fractured / fractured, specificity = unflagged non-fractured / non-fractured.

AUC: the Mann-Whitney statistic, P(a fractured case is riskier than a non-fractured one) with ties
counting 1/2 (Hanley & McNeil 1982, Radiology 143:29-36), computed from average ranks. It is not
flipped below 0.5: an AUC under 0.5 says the predictor works opposite to its assumed direction.

Confidence interval: percentile bootstrap (Efron & Tibshirani 1993, An Introduction to the
Bootstrap, ch. 13) with stratified resampling, i.e. the fractured and the non-fractured cases are
each resampled with replacement at their own size, so every replicate keeps the case mix.

Youden cut-point: the finite cut-point maximising J = sensitivity + specificity - 1 (Youden 1950,
Cancer 3:32-35); ties go to the more sensitive cut-point. Target-sensitivity cut-point: among the
cut-points whose sensitivity reaches the target (e.g. 1.0: every fractured case flagged), the one
with the highest specificity (the least flagging); it is infinite when only flagging everybody
reaches the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from bonefe.errors import BonefeError


@dataclass(frozen=True)
class RocCurve:
    """ROC of one predictor: cut-points (predictor units, ±inf sentinels) from flagging nobody to
    flagging everybody, with sensitivity and specificity (0..1) and the number flagged at each."""

    cuts: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    flagged: np.ndarray
    higher_is_riskier: bool
    n_fractured: int
    n_intact: int

    @property
    def youden(self) -> np.ndarray:
        """J = sensitivity + specificity - 1 at every cut-point."""
        return self.sensitivity + self.specificity - 1.0


@dataclass(frozen=True)
class CutPoint:
    """One operating point: cut-point (predictor units), sensitivity, specificity, Youden J."""

    cut: float
    sensitivity: float
    specificity: float
    youden: float


def _checked(scores, fractured) -> tuple[np.ndarray, np.ndarray]:
    """Finite scores (n,) and boolean outcomes (n,), with both outcomes present."""
    scores = np.asarray(scores, dtype=float).ravel()
    fractured = np.asarray(fractured, dtype=bool).ravel()
    if scores.shape != fractured.shape:
        raise BonefeError(f"ROC needs one outcome per score (got {scores.size} scores, {fractured.size} outcomes)")
    if not np.all(np.isfinite(scores)):
        raise BonefeError("ROC scores must be finite numbers: drop the cases without a value first")
    if fractured.all() or not fractured.any():
        raise BonefeError("ROC needs at least one fractured and one non-fractured case")
    return scores, fractured


def _risk(scores: np.ndarray, higher_is_riskier: bool) -> np.ndarray:
    """Scores oriented so that larger means riskier."""
    return scores if higher_is_riskier else -scores


def roc_curve(scores, fractured, higher_is_riskier: bool = True) -> RocCurve:
    """The full ROC curve of `scores` against `fractured` (bool per case); see the module docstring."""
    scores, fractured = _checked(scores, fractured)
    risk = _risk(scores, higher_is_riskier)
    values = np.unique(risk)[::-1]  # riskiest first
    cuts = np.concatenate([[np.inf], (values[:-1] + values[1:]) / 2.0, [-np.inf]])
    flagged = risk[None, :] > cuts[:, None]
    positives, negatives = fractured.sum(), (~fractured).sum()
    sensitivity = (flagged & fractured).sum(axis=1) / positives
    specificity = (~flagged & ~fractured).sum(axis=1) / negatives
    oriented = cuts if higher_is_riskier else -cuts
    return RocCurve(oriented, sensitivity, specificity, flagged.sum(axis=1), higher_is_riskier,
                    int(positives), int(negatives))


def auc(scores, fractured, higher_is_riskier: bool = True) -> float:
    """Mann-Whitney AUC: (R_fractured - n1(n1+1)/2) / (n1 n0) with average ranks of the risk score
    (ties count 1/2; Hanley & McNeil 1982)."""
    scores, fractured = _checked(scores, fractured)
    return float(_auc_rows(_risk(scores, higher_is_riskier)[None, :], fractured)[0])


def _auc_rows(risk: np.ndarray, fractured: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of every row of `risk` (m, n) against the same outcomes (n,)."""
    ranks = rankdata(risk, axis=1)
    n1, n0 = fractured.sum(), (~fractured).sum()
    return (ranks[:, fractured].sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def bootstrap_auc_ci(scores, fractured, higher_is_riskier: bool = True, replicates: int = 2000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling each outcome group at its own size."""
    scores, fractured = _checked(scores, fractured)
    if replicates < 10:
        raise BonefeError(f"the bootstrap needs at least 10 replicates (got {replicates}); 2000 is usual")
    risk = _risk(scores, higher_is_riskier)
    rng = np.random.default_rng(seed)
    positive, negative = risk[fractured], risk[~fractured]
    sample = np.concatenate([rng.choice(positive, (replicates, positive.size)),
                             rng.choice(negative, (replicates, negative.size))], axis=1)
    labels = np.arange(sample.shape[1]) < positive.size
    values = _auc_rows(sample, labels)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _point(curve: RocCurve, i: int) -> CutPoint:
    return CutPoint(float(curve.cuts[i]), float(curve.sensitivity[i]), float(curve.specificity[i]),
                    float(curve.youden[i]))


def youden_point(curve: RocCurve) -> CutPoint:
    """The finite cut-point of largest Youden J; ties go to the higher sensitivity."""
    finite = np.flatnonzero(np.isfinite(curve.cuts))
    if finite.size == 0:
        raise BonefeError("the predictor takes a single value in the cohort: no cut-point separates cases")
    best = finite[np.lexsort((-curve.sensitivity[finite], -curve.youden[finite]))[0]]
    return _point(curve, best)


def target_sensitivity_point(curve: RocCurve, target: float = 1.0) -> CutPoint:
    """The cut-point of highest specificity among those with sensitivity >= target (0 < target <= 1)."""
    if not 0.0 < target <= 1.0:
        raise BonefeError(f"target sensitivity must lie in (0, 1] (got {target}); 1.0 flags every fractured case")
    # a small tolerance so that e.g. target 0.9 is met by 9 of 10 despite 9/10 rounding below 0.9
    reaching = np.flatnonzero(curve.sensitivity >= target - 1e-12)
    best = reaching[np.lexsort((-curve.sensitivity[reaching], -curve.specificity[reaching]))[0]]
    return _point(curve, best)
