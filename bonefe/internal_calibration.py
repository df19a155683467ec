"""Internal (phantomless) calibration: the HU → ρ_QCT line fitted to the patient's own tissues.

Each reference tissue (`bonefe.tissues`: air, adipose, muscle, blood, cortical bone) is sampled in
its automatic region or in the label values the case gives; its mean HU must lie in the tissue's
plausible range (blood above it means IV contrast). The line ρ = slope·HU + intercept is then
fitted through the points (mean HU_t, ρ_eq,t) by robust weighted least squares:

- weights 1/σ_t², σ_t = NOMINAL_SLOPE·√(s_t² + SD_t²/N_t): s_t is the tissue's between-subject
  spread of mean HU (its value is known only to that accuracy), SD_t/√N_t the sampling error of
  the mean of its N_t voxels;
- Huber's M-estimator (k = 1.345, Huber 1981, Robust Statistics, §7) by iteratively reweighted
  least squares: a tissue whose standardised residual r_t/σ_t exceeds k is down-weighted by k/|r/σ|,
  so one atypical tissue (an unusual fat, a partial-volumed vessel) cannot tilt the line;
- covariance of (slope, intercept) = (XᵀWX)⁻¹·max(1, χ²/(n − 2)) with χ² = Σ w_t r_t²: the prior
  spreads, inflated when the tissues scatter more than they allow (Birge ratio). With two tissues
  (Lee et al. 2017's air + blood or air + adipose) the line passes through both and the prior
  spreads alone give its error.

The fitted slope must lie within SLOPE_RANGE, which holds every 80–140 kVp K2HPO4 calibration
(nominal 0.000867 g/cm³ per HU at 120 kVp, `bonefe.tissues`); outside it the scan's HU scale is
not that of a clinical CT and the case is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bonefe.errors import BonefeError
from bonefe.tissues import AUTOMATIC, NOMINAL_SLOPE, REFERENCE_TISSUES, automatic_regions, sphere_voxels

Vector = tuple[float, float, float]

TissueName = Literal["air", "adipose", "muscle", "blood", "cortical_bone"]
HUBER_K = 1.345
"""Huber's tuning constant: 95 % efficiency for normal errors (Huber 1981)."""
SLOPE_RANGE = (0.0005, 0.0013)
"""Plausible fitted slopes, g/cm³ per HU (K2HPO4 phantom fits at 80–140 kVp: about 0.6–1.1)."""
MIN_TISSUES = 2


@dataclass(frozen=True)
class TissueROI:
    """A sphere placed in a tissue: centre (world LPS mm) and radius (mm)."""

    centre: Vector
    radius_mm: float

    def __post_init__(self):
        if not self.radius_mm > 0:
            raise ValueError(f"radius_mm must be positive (got {self.radius_mm})")


@dataclass(frozen=True)
class InternalCalibration:
    """Case-file `calibration: internal` (or `calibration: {internal: {...}}`).

    tissues: the reference tissues to fit (default: air, adipose, muscle, and blood or cortical
        bone when `labels` or `rois` name them); labels: label-map values of a tissue's region
        (e.g. `blood: 52` for TotalSegmentator's aorta); rois: spheres placed in a tissue (their
        union is its region); either replaces the tissue's automatic region; min_voxels: fewest
        voxels a tissue region may hold.
    """

    tissues: list[TissueName] | None = None
    labels: dict[str, int | list[int]] = field(default_factory=dict)
    rois: dict[str, list[TissueROI]] = field(default_factory=dict)
    min_voxels: int = 200

    def __post_init__(self):
        for key in ("labels", "rois"):
            unknown = sorted(set(getattr(self, key)) - set(REFERENCE_TISSUES))
            if unknown:
                raise ValueError(f"{key}: unknown tissue '{unknown[0]}' (allowed: {', '.join(REFERENCE_TISSUES)})")
        both = sorted(set(self.labels) & set(self.rois))
        if both:
            raise ValueError(f"{both[0]}: give labels or rois, not both")
        missing = [t for t in self.selected() if t not in AUTOMATIC and t not in self.given()]
        if missing:
            raise ValueError(f"{missing[0]} has no automatic region: give its label value under labels or a sphere under rois")
        if len(set(self.selected())) < MIN_TISSUES:
            raise ValueError(f"give at least {MIN_TISSUES} tissues (got {len(set(self.selected()))})")
        if self.min_voxels < 10:
            raise ValueError(f"min_voxels must be at least 10 (got {self.min_voxels})")

    def selected(self) -> list[str]:
        """The tissues fitted: `tissues`, or the automatic ones plus those named in `labels`."""
        if self.tissues is not None:
            return list(dict.fromkeys(self.tissues))
        return list(AUTOMATIC) + [t for t in self.given() if t not in AUTOMATIC]

    def given(self) -> list[str]:
        """Tissues whose region the case gives (labels or rois)."""
        return [*self.labels, *self.rois]


@dataclass(frozen=True)
class TissueSample:
    """One tissue's measurement: mean and SD of HU over its voxels, its reference density
    (g/cm³), the fit's residual (g/cm³, reference − line) and Huber weight (1 = not down-weighted)."""

    name: str
    region: str
    voxels: int
    mean_hu: float
    sd_hu: float
    density: float
    residual: float = 0.0
    huber_weight: float = 1.0


@dataclass(frozen=True)
class InternalFit:
    """The fitted line (g/cm³ per HU, g/cm³), its standard errors and covariance, and the samples."""

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
    covariance: float
    samples: list[TissueSample]

    @property
    def rms_residual(self) -> float:
        """Root-mean-square residual of the tissues about the line (g/cm³)."""
        return float(np.sqrt(np.mean([s.residual ** 2 for s in self.samples])))


def sample_tissues(options: InternalCalibration, hu: np.ndarray, affine: np.ndarray,
                   raw_labels: np.ndarray | None, bone: np.ndarray) -> list[TissueSample]:
    """Measure every selected tissue; one-line BonefeError when one is missing or implausible.
    Voxels of a region given for one tissue are left out of the others' automatic regions."""
    tissues = options.selected()
    given = {name: _given_mask(options, name, hu.shape, affine, raw_labels)
             for name in tissues if name in options.given()}
    samples = [_measure(name, f"label {options.labels[name]}" if name in options.labels else "rois",
                        hu[mask], options.min_voxels)
               for name, mask in given.items()]  # given regions first: a wrong one fails fast
    automatic = [t for t in tissues if t not in given]
    if automatic:
        claimed = np.zeros(hu.shape, bool)
        for mask in given.values():
            claimed |= mask
        regions = automatic_regions(hu, bone, affine, automatic)
        samples += [_measure(name, "automatic", hu[regions[name] & ~claimed], options.min_voxels)
                    for name in automatic]
    order = {name: n for n, name in enumerate(tissues)}
    return sorted(samples, key=lambda s: order[s.name])


def _given_mask(options: InternalCalibration, name: str, shape, affine: np.ndarray,
                raw_labels: np.ndarray | None) -> np.ndarray:
    """The region the case gives for a tissue: its label values or the union of its spheres. A
    region given for one tissue is left out of the others' automatic regions."""
    if name in options.rois:
        mask = np.zeros(shape, bool)
        for roi in options.rois[name]:
            mask[sphere_voxels(shape, affine, roi.centre, roi.radius_mm, f"calibration.internal: {name} ROI")] = True
        return mask
    if raw_labels is None:
        raise BonefeError("calibration.internal.labels needs the label map on the CT's grid")
    values = options.labels[name]
    return np.isin(raw_labels, values if isinstance(values, list) else [values])


def _measure(name: str, region: str, values: np.ndarray, min_voxels: int) -> TissueSample:
    reference = REFERENCE_TISSUES[name]
    where = f"calibration.internal: {name} ({region} region)"
    if values.size < min_voxels:
        raise BonefeError(f"{where} holds {values.size} voxels, fewer than {min_voxels}; give its label "
                          f"under calibration.internal.labels or leave {name} out of calibration.internal.tissues")
    mean, sd = float(np.mean(values, dtype=np.float64)), float(np.std(values, dtype=np.float64))
    low, high = reference.plausible_hu
    if not low <= mean <= high:
        contrast = " (IV contrast: a contrast-enhanced scan cannot be calibrated on blood)" \
            if name == "blood" and mean > high else ""
        raise BonefeError(f"{where} averages {mean:.0f} HU, outside its plausible {low:g} to {high:g} HU{contrast}; "
                          f"check the region or leave {name} out of calibration.internal.tissues")
    return TissueSample(name, region, int(values.size), mean, sd, reference.density)


def fit_internal(samples: list[TissueSample]) -> InternalFit:
    """Robust weighted line through the tissues (module docstring); BonefeError when implausible."""
    hu = np.array([s.mean_hu for s in samples])
    rho = np.array([s.density for s in samples])
    sigma = NOMINAL_SLOPE * np.sqrt([REFERENCE_TISSUES[s.name].spread_hu ** 2 + s.sd_hu ** 2 / s.voxels
                                     for s in samples])
    design = np.column_stack([hu, np.ones_like(hu)])
    huber = np.ones_like(hu)
    for _ in range(100):
        weights = huber / sigma ** 2
        normal = design.T @ (weights[:, None] * design)
        line = np.linalg.solve(normal, design.T @ (weights * rho))
        scaled = np.abs(rho - design @ line) / sigma
        updated = np.where(scaled > HUBER_K, HUBER_K / np.maximum(scaled, 1e-300), 1.0)
        if np.allclose(updated, huber, rtol=0, atol=1e-10):
            break
        huber = updated
    residual = rho - design @ line
    chi2 = float(np.sum(weights * residual ** 2))
    inflation = max(1.0, chi2 / (len(hu) - 2)) if len(hu) > 2 else 1.0
    covariance = np.linalg.inv(normal) * inflation
    slope, intercept = float(line[0]), float(line[1])
    if not SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]:
        raise BonefeError(f"calibration.internal: the tissues give a slope of {slope:.3g} g/cm³ per HU, outside "
                          f"the plausible {SLOPE_RANGE[0]:g} to {SLOPE_RANGE[1]:g}; check the tissue regions "
                          "or calibrate with phantom rods")
    fitted = [TissueSample(**{**vars(s), "residual": float(r), "huber_weight": float(h)})
              for s, r, h in zip(samples, residual, huber)]
    return InternalFit(slope, intercept, float(np.sqrt(covariance[0, 0])), float(np.sqrt(covariance[1, 1])),
                       float(covariance[0, 1]), fitted)


def internal_fit(options: InternalCalibration, hu: np.ndarray, affine: np.ndarray,
                 raw_labels: np.ndarray | None, bone: np.ndarray) -> InternalFit:
    """Sample the tissues of `options` in the CT and fit the calibration line through them."""
    return fit_internal(sample_tissues(options, hu, affine, raw_labels, bone))
