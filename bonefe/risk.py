"""Fracture-risk numbers from per-cell principal strains.

Everything here works on plain numpy arrays over the **local owned cells** of a rank, plus an
optional MPI communicator; results are identical on 1 and N ranks.

Failure criterion
    Maximum principal strain (Schileo et al. 2008, J Biomech 41:356-367, "To what extent can
    linear finite element models of human femora predict failure under stance and fall loading
    configurations?"): bone fails where ε1 > ε_t = 0.73 % (tension) or ε3 < -ε_c = -1.04 %
    (compression). The per-cell failure index is max(ε1/ε_t, -ε3/ε_c).

Failure load
    Linear elasticity makes strain proportional to load. For strains computed under a unit force
    (1 N along a fixed direction) a point with index r fails at F = 1/r. Schileo took the first
    *node* reaching the limit, but a peak node or element strain rises without bound as the mesh
    resolves a stress concentration. We read the index from the nonlocal strain, the strain tensor
    averaged over a sphere of bone of fixed radius (`bonefe.nonlocal_strain`, default radius 2 mm), at
    lattice points: F_fail = 1 / (largest nonlocal index over the evaluated points).

Risk categories, safety factors and the strain fold ratio are documented on their functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from bonefe.errors import BonefeError

GRAVITY = 9.81
"""Standard gravity (m/s²): body weight BW = body mass (kg) x 9.81 N."""

SCHILEO_2008 = (
    "Schileo E et al. 2008, J Biomech 41:356-367 (maximum principal strain criterion, "
    "0.73 % tensile / 1.04 % compressive)"
)
STERNHEIM_2020 = (
    "Sternheim A et al. 2020, Bone Joint J 102-B(5), doi:10.1302/0301-620X.102B5.BJJ-2019-1328.R2 "
    "(strain fold ratio > 1.48: "
    "sensitivity 100 %, specificity 67 %)"
)
NIJMEGEN = (
    "Derikx LC et al. 2012, J Bone Joint Surg Br 94-B:1135-1142; Eggermont F et al. 2018, "
    "Bone Joint Res 7:430-439 (nonlinear FE failure load, 7.5 kN threshold for high risk)"
)
STERNHEIM_SFR_THRESHOLD = 1.48
"""Strain fold ratio above which Sternheim et al. 2020 predicted a pathological fracture."""


@dataclass(frozen=True)
class StrainCriterion:
    """Asymmetric maximum principal strain limits (dimensionless)."""

    tensile_limit: float = 0.0073
    compressive_limit: float = 0.0104
    reference: str = SCHILEO_2008

    def __post_init__(self):
        if not (self.tensile_limit > 0 and self.compressive_limit > 0):
            raise BonefeError(
                "strain limits must be positive numbers (e.g. tensile 0.0073, compressive 0.0104)"
            )


@dataclass(frozen=True)
class FailureResult:
    """Failure load under one loading direction and where failure starts.

    failure_load_n: force magnitude (N) at which the nonlocal strain first reaches the limit.
    location_mm: the lattice point where it peaks, world mm (None without points).
    mode: "tensile" or "compressive" at that point (None without mode flags).
    """

    failure_load_n: float
    location_mm: tuple[float, float, float] | None
    mode: str | None


def failure_index(principal: np.ndarray, criterion: StrainCriterion = StrainCriterion()) -> np.ndarray:
    """Per-cell index max(ε1/ε_t, -ε3/ε_c, 0) from principal strains (n,3) sorted descending."""
    principal = np.asarray(principal, dtype=float)
    tension = principal[:, 0] / criterion.tensile_limit
    compression = -principal[:, 2] / criterion.compressive_limit
    return np.maximum(np.maximum(tension, compression), 0.0)


def tensile_dominant(principal: np.ndarray, criterion: StrainCriterion = StrainCriterion()) -> np.ndarray:
    """True where the tensile term of the failure index is the larger one (n,) bool."""
    principal = np.asarray(principal, dtype=float)
    return principal[:, 0] / criterion.tensile_limit >= -principal[:, 2] / criterion.compressive_limit


def distance_mask(cell_centres: np.ndarray, points: np.ndarray, distance: float) -> np.ndarray:
    """True for cells whose centre lies within `distance` mm of any of `points` (m,3), world mm.

    Use it to exclude the boundary artefacts next to load and support patches from failure_load.
    The tree search stops at `distance` (just beyond it, so a centre at exactly `distance` is
    found): most centres lie far from a patch, and the search costs a fifth.
    """
    centres = np.asarray(cell_centres, dtype=float).reshape(-1, 3)
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    if len(points) == 0 or len(centres) == 0:
        return np.zeros(len(centres), dtype=bool)
    nearest, _ = cKDTree(points).query(centres, k=1, distance_upper_bound=np.nextafter(distance, np.inf))
    return nearest <= distance


def global_peak(values: np.ndarray, comm=None, mask: np.ndarray | None = None,
                centres: np.ndarray | None = None, flags: np.ndarray | None = None) -> np.ndarray:
    """The row [value, x, y, z, flag] of the largest value over all ranks (mask True = excluded).

    Ties go to the smallest (x, y, z, flag), so the answer does not depend on how the points are
    split between ranks.
    """
    values = np.asarray(values, dtype=float).ravel()
    kept = np.arange(values.size) if mask is None else np.flatnonzero(~np.asarray(mask, bool).ravel())
    top = kept[values[kept] == values[kept].max()] if len(kept) else kept
    local = np.zeros((len(top), 5))
    local[:, 0] = values[top]
    if centres is not None:
        local[:, 1:4] = np.asarray(centres, dtype=float).reshape(-1, 3)[top]
    if flags is not None:
        local[:, 4] = np.asarray(flags, dtype=float).ravel()[top]
    if comm is not None and comm.size > 1:
        local = np.concatenate(comm.allgather(local), axis=0)
    if len(local) == 0:
        raise BonefeError("no bone is evaluated for failure: lower the exclusion distance "
                          "(risk.exclusion_mm) or check the load and support patches")
    best = local[local[:, 0] == local[:, 0].max()]
    return best[np.lexsort(best[:, :0:-1].T)][0]


def failure_load(
    index_unit: np.ndarray,
    comm=None,
    mask: np.ndarray | None = None,
    centres: np.ndarray | None = None,
    tensile: np.ndarray | None = None,
) -> FailureResult:
    """Force (N) at which the largest failure index reaches 1: F_fail = 1 / max index.

    index_unit: failure index per point under a 1 N force along a fixed direction (1/N).
    mask: True = point excluded (lesion, near load/support patches). centres: the points (n,3)
    world mm, for the failure location. tensile: per-point bool from `tensile_dominant`, for the
    failure mode.
    """
    peak = global_peak(index_unit, comm, mask, centres, tensile)
    if peak[0] <= 0:
        raise BonefeError("the unit load produces no strain in the evaluated bone: check the load patch")
    return FailureResult(
        failure_load_n=1.0 / peak[0],
        location_mm=None if centres is None else tuple(float(c) for c in peak[1:4]),
        mode=None if tensile is None else ("tensile" if peak[4] else "compressive"),
    )


def failure_under_unit_load(
    principal_unit: np.ndarray,
    centres: np.ndarray,
    comm=None,
    mask: np.ndarray | None = None,
    criterion: StrainCriterion = StrainCriterion(),
) -> FailureResult:
    """`failure_load` with location and mode, from principal strains (n,3) under a 1 N force."""
    return failure_load(failure_index(principal_unit, criterion), comm, mask, centres,
                        tensile_dominant(principal_unit, criterion))


def peak(values: np.ndarray, comm=None, mask: np.ndarray | None = None) -> float:
    """Largest value of a per-point field over all ranks (mask True = excluded)."""
    return float(global_peak(values, comm, mask)[0])


def body_weight_n(body_mass_kg: float) -> float:
    """Body weight (N) from body mass (kg)."""
    if not body_mass_kg > 0:
        raise BonefeError(f"body mass must be positive in kg, got {body_mass_kg}")
    return body_mass_kg * GRAVITY


@dataclass(frozen=True)
class RiskThresholds:
    """Failure load (x body weight) boundaries between high, moderate and low risk.

    high if F_fail < high_below_bw; low if F_fail >= low_from_bw; moderate in between.
    The Nijmegen group (Derikx 2012; Eggermont 2018) classified femora as high risk below an
    absolute failure load of 7.5 kN from an experimentally validated *nonlinear* model under axial
    head loading. Our failure load is the *onset* of local failure in a linear model along the
    stance direction: a different, lower quantity, so their number is not transferable as is.
    Defaults, to be calibrated on a cohort (`bonefe calibrate`):
    - high below 5 BW: twice the walking hip-contact peak (~2.4-2.6 BW, Bergmann et al. 2016,
      PLoS One 11:e0155612), i.e. walking would fail the safety factor of 2 of `VerdictPolicy`;
    - low from 10 BW: 7.5 kN for a 76 kg patient, the Nijmegen threshold in units of body weight.
    """

    high_below_bw: float = 5.0
    low_from_bw: float = 10.0
    reference: str = NIJMEGEN
    note: str = (
        "Linear onset-of-failure load, not the Nijmegen nonlinear failure load: thresholds are "
        "uncalibrated defaults"
    )

    def __post_init__(self):
        if not 0 < self.high_below_bw <= self.low_from_bw:
            raise BonefeError(
                "risk thresholds need 0 < high_below_bw <= low_from_bw (e.g. 5 and 10 x BW)"
            )


CALIBRATION_SCHEMA = "bonefe-calibration/1"


def thresholds_from_calibration(path: Path) -> RiskThresholds:
    """Risk thresholds from a calibration file (JSON, schema `bonefe-calibration/1`):

        {"schema": "bonefe-calibration/1",
         "risk_thresholds": {"high_below_bw": 4.2, "low_from_bw": 8.0},
         "provenance": {"cohort": "...", "predictor": "failure_load_bw", "method": "Youden", ...}}

    written by a cohort calibration (ROC against fracture outcomes). The thresholds' reference
    names the file and its sha256 so a report can be traced to the calibration it used.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
        values = data["risk_thresholds"]
        if data.get("schema") != CALIBRATION_SCHEMA:
            raise KeyError("schema")
        high, low = float(values["high_below_bw"]), float(values["low_from_bw"])
    except FileNotFoundError:
        raise BonefeError(f"calibration file {path} not found: fix risk.calibration_file in the case") from None
    except (ValueError, KeyError, TypeError) as error:
        raise BonefeError(f"calibration file {path.name} is not a {CALIBRATION_SCHEMA} file with "
                          f"risk_thresholds.high_below_bw and low_from_bw ({error})") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return RiskThresholds(high, low, reference=f"calibrated: {path.name} (sha256 {digest}…)",
                          note="Thresholds from a cohort calibration file")


def risk_category(failure_load_bw: float, thresholds: RiskThresholds = RiskThresholds()) -> str:
    """'high', 'moderate' or 'low' fracture risk from the failure load in x body weight."""
    if failure_load_bw < thresholds.high_below_bw:
        return "high"
    if failure_load_bw < thresholds.low_from_bw:
        return "moderate"
    return "low"


@dataclass(frozen=True)
class VerdictPolicy:
    """Safety factor boundaries for an activity: safe if SF >= safe_factor, avoid if SF < avoid_factor.

    Default safe factor 2: peak hip-contact forces vary between patients and trials by some 20-30 %
    (Bergmann et al. 2016), and linear FE failure loads scatter by ~15-20 % around experiment
    (Schileo 2008: SEE 814 N); a factor of 2 covers both with margin. Below 1 the model predicts
    failure onset during the activity: avoid. In between: caution (walking aid, supervision).
    """

    safe_factor: float = 2.0
    avoid_factor: float = 1.0

    def __post_init__(self):
        if not 0 < self.avoid_factor <= self.safe_factor:
            raise BonefeError("verdict policy needs 0 < avoid_factor <= safe_factor (e.g. 1 and 2)")


def activity_thresholds(daily_peaks_n: list[float], body_weight_n: float, policy: VerdictPolicy) -> RiskThresholds:
    """Failure-load thresholds (× BW) at which the most loaded daily activity turns 'avoid' and 'caution'
    (the vertebra's and the humerus's risk categories); daily_peaks_n: the daily activities' peaks (N)."""
    worst = max(daily_peaks_n) / body_weight_n
    return RiskThresholds(worst * policy.avoid_factor, worst * policy.safe_factor,
                          reference="the largest daily-activity peak × the verdict factors (bonefe.risk.VerdictPolicy)",
                          note="high: a daily activity is to be avoided; moderate: one needs caution")


def safety_factor(allowed_force_n: float, activity_force_n: float) -> float:
    """SF = allowed force along the activity's direction / the activity's peak force (both N)."""
    if not activity_force_n > 0 or allowed_force_n < 0:
        raise BonefeError(
            f"safety factor needs a positive activity force and a non-negative allowed force in N "
            f"(got {activity_force_n} and {allowed_force_n})"
        )
    return allowed_force_n / activity_force_n


def verdict(factor: float, policy: VerdictPolicy = VerdictPolicy()) -> str:
    """'safe', 'caution' or 'avoid' for a safety factor."""
    if factor >= policy.safe_factor:
        return "safe"
    if factor < policy.avoid_factor:
        return "avoid"
    return "caution"


@dataclass(frozen=True)
class ActivityAssessment:
    """One row of the activity table: peak and allowed force (N) and the verdict."""

    name: str
    label: str
    peak_force_n: float
    allowed_force_n: float
    safety_factor: float
    verdict: str
    reference: str


def assess_activity(
    name: str,
    label: str,
    peak_force_n: float,
    allowed_force_n: float,
    reference: str,
    policy: VerdictPolicy = VerdictPolicy(),
) -> ActivityAssessment:
    """Safety factor and verdict of one activity from its peak force and the allowed force."""
    factor = safety_factor(allowed_force_n, peak_force_n)
    return ActivityAssessment(
        name, label, float(peak_force_n), float(allowed_force_n), factor, verdict(factor, policy), reference
    )


def weight_bearing_fraction(
    allowed_force_n: float, walking_peak_force_n: float, policy: VerdictPolicy = VerdictPolicy()
) -> float:
    """Fraction (0..1) of full weight bearing for walking that keeps SF >= policy.safe_factor.

    Assumes the hip-contact force scales in proportion to the weight put on the leg, so
    fraction = allowed / (safe_factor x walking peak), capped at 1 (full weight bearing).
    """
    if not walking_peak_force_n > 0:
        raise BonefeError("walking peak force must be positive in N")
    return min(1.0, allowed_force_n / (policy.safe_factor * walking_peak_force_n))


def strain_fold_ratio(lesioned_peak: float, twin_peak: float) -> float:
    """Strain fold ratio (Sternheim 2020): peak strain with the lesion / peak in the lesion-free twin.

    Above STERNHEIM_SFR_THRESHOLD (1.48) Sternheim et al. predicted a pathological fracture.
    """
    if not twin_peak > 0:
        raise BonefeError("the lesion-free twin's peak strain must be positive to form a strain fold ratio")
    return float(lesioned_peak) / float(twin_peak)
