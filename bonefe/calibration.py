"""HU → equivalent mineral density calibration of a CT scan (case-file section `calibration`).

The line ρ_QCT = slope·HU + intercept (g/cm³ per HU, g/cm³) comes from one of four sources:

- ``slope`` and ``intercept`` given directly (the scanner's or a previous phantom fit);
- ``rods``: calibration-phantom rods segmented as extra label values of the *raw* label map
  (e.g. 11, 12, 13 next to the bone's 1), each with its nominal K2HPO4-equivalent density;
- ``rois``: spheres (centre in world LPS mm, radius in mm) placed inside the rods, each with its
  density, for scans whose label map does not hold the rods;
- ``internal`` (or ``calibration: internal``): no phantom; the patient's own air, fat, muscle and
  blood, fitted to their K2HPO4-equivalent densities (`bonefe.internal_calibration`).

The rod's HU is the plain mean over its voxels after a one-voxel erosion of the rod mask (6-
connected structuring element): the outer voxel layer mixes rod and surrounding material (partial
volume), and dropping it leaves the interior voxels whose HU is the rod's own plus noise. A rod
must keep voxels after erosion (at least 3 voxels across). ROIs need no erosion: the user places
the sphere inside the rod; voxels whose centre lies within the sphere are averaged. The line is
fitted by least squares over the rods (``bonefe.materials.fit_calibration``), which needs at least
three rods: with two, a line passes through them exactly and its error cannot be estimated.

Consistency of the rods (issue 15; one line naming the rod and exit 2, `checks.calibration_fit:
false` skips these checks with a warning and a sentence in the report). A rod label must be in the
label map and an ROI sphere wholly inside the CT (never overridable), and then:

- each rod keeps at least MIN_ROD_VOXELS voxels (after erosion, or inside its sphere): with CT noise
  up to 30 HU the mean of 50 voxels errs by ≤ 4.2 HU (≈ 0.0036 g/cm³ at 0.00087 g/cm³ per HU);
- the rods' mean HU rise with their nominal density (a swapped label or density, or a rod placed in
  air or soft tissue, breaks the order);
- the fitted slope lies in ROD_SLOPE_RANGE. Not a published range but derived from the physics of
  `bonefe.tissues` (the salt displacing water; xraydb 4.5.8 cross sections): a K2HPO4 rod line is
  0.000489 / 0.000676 / 0.000867 / 0.001046 / 0.001129 g/cm³ per HU at 50 / 60 / 70 / 80 / 85 keV,
  a hydroxyapatite one (3.16 g/cm³ crystal) 0.000441 / 0.000603 / 0.000765 / 0.000915 / 0.000982;
  70 keV matches 120 kVp (Yu, Leng, McCollough 2012, AJR 199:S9); that 80–140 kVp scans lie
  within 50–85 keV is this module's assumption, not a cited figure. A published line from a
  Mindways K2HPO4 phantom at 120 kVp, ρ_ash = 0.0007·HU − 0.009 g/cm³ (Dragomir-Daescu et al.
  2011 and Cong et al. 2011, Siemens Somatom Definition, as tabulated by Knowles, Reeves, Ferreira
  2016, J Exp Orthop 3:36, table 1), has a slope of the same order. Outside the window the HU are not those of a clinical
  CT (a wrong rescale slope) or the densities are in the wrong unit (mg/cm³ for g/cm³);
- no rod lies more than MAX_ROD_RESIDUAL from the fitted line: about 3 times the noise of a 50-voxel
  mean (above), and a fifth of the 0.05 g/cm³ steps of a phantom's lowest rods, so one rod with a
  mistyped density or a partial-volumed ROI is caught.

Standard errors of the fitted line (``calibration_errors``, used by `bonefe.uncertainty`): with s
the standard error of the estimate, x the rods' mean HU, x̄ their mean and Sxx = Σ(x − x̄)², the
ordinary least-squares covariance of (slope, intercept) is s²·[[1/Sxx, −x̄/Sxx], [−x̄/Sxx,
1/n + x̄²/Sxx]] (e.g. Montgomery, Peck, Vining, Introduction to Linear Regression Analysis, §2.2–2.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.internal_calibration import InternalCalibration, InternalFit, internal_fit
from bonefe.materials import fit_calibration
from bonefe.tissues import sphere_voxels

Vector = tuple[float, float, float]
MIN_RODS = 3
"""Rods needed for a fit with an error estimate (n − 2 ≥ 1 degrees of freedom)."""
MIN_ROD_VOXELS = 50
"""Fewest voxels a rod's mean may rest on (module docstring)."""
ROD_SLOPE_RANGE = (0.0004, 0.0013)
"""Plausible rod-fit slopes, g/cm³ per HU: K2HPO4 and hydroxyapatite at 50–85 keV, with ~10 % margin."""
MAX_ROD_RESIDUAL = 0.010
"""Largest distance of a rod's nominal density from the fitted line, g/cm³."""
FIT_OVERRIDE = "checks.calibration_fit: false skips this check"


@dataclass(frozen=True)
class Rod:
    """A phantom rod segmented in the raw label map: its label value and density (g/cm³)."""

    label: int
    density: float


@dataclass(frozen=True)
class RodROI:
    """A spherical region inside a phantom rod: centre (world LPS mm), radius (mm), density (g/cm³)."""

    centre: Vector
    radius_mm: float
    density: float

    def __post_init__(self):
        if not self.radius_mm > 0:
            raise ValueError(f"radius_mm must be positive (got {self.radius_mm})")


@dataclass(frozen=True)
class CalibrationOptions:
    """How HU become ρ_QCT: slope/intercept, or rods (raw label values), or rois (spheres), or
    internal (the patient's tissues, `bonefe.internal_calibration.InternalCalibration`).

    Give exactly one of the four; with none, the material section's slope and intercept apply.
    """

    slope: float | None = None
    intercept: float | None = None
    rods: list[Rod] | None = None
    rois: list[RodROI] | None = None
    internal: InternalCalibration | None = None

    def __post_init__(self):
        given = [name for name in ("slope", "rods", "rois", "internal") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of slope/intercept, rods, rois and internal (got {' and '.join(given)})")
        if (self.slope is None) != (self.intercept is None):
            raise ValueError("give slope and intercept together")
        if self.slope is not None and not self.slope > 0:
            raise ValueError(f"slope must be positive, g/cm³ per HU (got {self.slope})")
        for name in ("rods", "rois"):
            items = getattr(self, name)
            if items is not None and len(items) < MIN_RODS:
                raise ValueError(f"{name}: give at least {MIN_RODS} calibration rods (got {len(items)})")

    def label_values(self) -> list[int]:
        """Label-map values this section names (rods, tissue regions): known values, not bone."""
        rods = [rod.label for rod in self.rods or []]
        tissues = self.internal.labels.values() if self.internal else []
        return rods + [v for value in tissues for v in (value if isinstance(value, list) else [value])]


class Calibration(NamedTuple):
    """A resolved calibration: ρ_QCT = slope·HU + intercept; stderr of the fit (g/cm³, 0 when the
    line was given; the RMS tissue residual for an internal fit), the number of rods or tissues
    fitted (0 when given), and the internal fit with its tissue samples (None otherwise)."""

    slope: float
    intercept: float
    stderr: float
    n_rods: int
    internal: InternalFit | None = None

    def describe(self) -> str:
        """One sentence for the report: which calibration the densities rest on."""
        if self.internal is not None:
            names = ", ".join(s.name.replace("_", " ") for s in self.internal.samples)
            return (f"Density calibration: internal (phantomless), fitted to the patient's {names} "
                    f"(K2HPO4-equivalent, 120 kVp): ρ = {self.slope:.4g}·HU {self.intercept:+.4f} g/cm³.")
        if self.n_rods:
            return (f"Density calibration: phantom, fitted to {self.n_rods} rods: "
                    f"ρ = {self.slope:.4g}·HU {self.intercept:+.4f} g/cm³.")
        return f"Density calibration: given line ρ = {self.slope:.4g}·HU {self.intercept:+.4f} g/cm³."


class LineErrors(NamedTuple):
    """Standard errors of a fitted calibration line: slope (g/cm³ per HU), intercept (g/cm³) and
    their covariance ((g/cm³)² per HU); the number of rods fitted."""

    slope_se: float
    intercept_se: float
    covariance: float
    n_rods: int


def line_errors(hu_means, stderr: float) -> LineErrors:
    """Standard errors of slope and intercept of a least-squares line through rods at `hu_means`
    (HU) whose standard error of the estimate is `stderr` (g/cm³); see the module docstring."""
    hu = np.asarray(hu_means, float)
    mean = hu.mean()
    sxx = float(np.sum((hu - mean) ** 2))
    variance = stderr**2
    return LineErrors(float(np.sqrt(variance / sxx)), float(np.sqrt(variance * (1.0 / hu.size + mean**2 / sxx))),
                      float(-mean * variance / sxx), int(hu.size))


class RodSample(NamedTuple):
    """One measured rod: its name for messages, mean HU, nominal density (g/cm³) and voxels averaged."""

    name: str
    mean_hu: float
    density: float
    voxels: int


def _rod_core(raw_labels: np.ndarray, label: int) -> np.ndarray:
    """The rod's voxels after a one-voxel erosion (module docstring)."""
    rod = np.asarray(raw_labels) == label
    if not rod.any():
        raise BonefeError(f"calibration: rod label {label} is not in the label map; "
                          "check calibration.rods[].label against the label file")
    core = ndimage.binary_erosion(rod)
    if not core.any():
        raise BonefeError(f"calibration: rod label {label} is too thin (no voxel left after a one-voxel "
                          "erosion); segment the whole rod cross-section")
    return core


def rod_mean_hu(hu: np.ndarray, raw_labels: np.ndarray, label: int) -> float:
    """Mean HU of the rod labelled ``label`` in the raw label map, after a one-voxel erosion."""
    return float(np.mean(hu[_rod_core(raw_labels, label)], dtype=np.float64))


def _mm(point) -> str:
    """A world point for messages, e.g. (11.7, -3, 110.5)."""
    return "(" + ", ".join(f"{float(v):g}" for v in point) + ")"


def _roi_voxels(hu: np.ndarray, affine: np.ndarray, roi: RodROI) -> tuple[np.ndarray, ...]:
    """Indices of the voxels inside the ROI sphere; BonefeError when the sphere is not wholly in the CT."""
    affine = np.asarray(affine, float)
    local = np.linalg.solve(affine[:3, :3], np.asarray(roi.centre, float) - affine[:3, 3])
    reach = roi.radius_mm / np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(local - reach < -0.5) or np.any(local + reach > np.asarray(hu.shape) - 0.5):
        raise BonefeError(f"calibration: ROI at {_mm(roi.centre)} mm (radius {roi.radius_mm:g} mm) is not wholly "
                          "inside the CT; give its centre in world (LPS) millimetres inside the rod")
    return sphere_voxels(hu.shape, affine, roi.centre, roi.radius_mm, "calibration: ROI")


def raw_labels_on_ct(ct_path, labels_path, series: str | int | None = None) -> np.ndarray:
    """The label map's own values (not the canonical labels) on the CT's voxel grid, [i, j, k]:
    resampled by nearest neighbour when its grid differs (identity otherwise); `series`: the CT
    series of a DICOM folder (the case's `ct_series`)."""
    import SimpleITK as sitk

    from bonefe.imaging import read_sitk, sitk_array

    ct, labels = read_sitk(ct_path, series), read_sitk(labels_path)
    return sitk_array(sitk.Resample(labels, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0))


def resolve_calibration(options: CalibrationOptions, hu: np.ndarray, affine: np.ndarray,
                        raw_labels: np.ndarray | None = None, bone: np.ndarray | None = None,
                        check_fit: bool = True) -> Calibration | None:
    """The calibration line of ``options`` for a CT (HU array [i, j, k], its affine) and the raw
    label map on the same grid (needed for rods and tissue labels); ``bone``, the bone mask, places
    the internal calibration's tissue regions. None when options name no calibration. With
    ``check_fit`` (the case's checks.calibration_fit) the rods' consistency is checked (module docstring)."""
    if options.slope is not None:
        return Calibration(options.slope, options.intercept, 0.0, 0)
    if options.internal is not None:
        fit = internal_fit(options.internal, hu, affine, raw_labels, _bone_mask(bone, hu))
        return Calibration(fit.slope, fit.intercept, fit.rms_residual, len(fit.samples), fit)
    rods = _rod_measurements(options, hu, affine, raw_labels)
    if rods is None:
        return None
    if check_fit:
        _check_rod_set(rods)
    slope, intercept, stderr = fit_calibration([r.mean_hu for r in rods], [r.density for r in rods])
    if not slope > 0:
        raise BonefeError(f"calibration: the rods give a non-positive slope ({slope:.3g} g/cm³ per HU); "
                          "check that each rod's density matches its label or ROI")
    if check_fit:
        _check_rod_fit(rods, slope, intercept)
    return Calibration(slope, intercept, stderr, len(rods))


def _check_rod_set(rods: list[RodSample]) -> None:
    """Refuse a rod with too few voxels, or rods whose HU do not rise with their density."""
    for rod in rods:
        if rod.voxels < MIN_ROD_VOXELS:
            raise BonefeError(f"calibration: {rod.name} averages only {rod.voxels} voxels (need {MIN_ROD_VOXELS}); "
                              f"segment more of the rod or enlarge its ROI ({FIT_OVERRIDE})")
    ordered = sorted(rods, key=lambda r: r.density)
    for low, high in zip(ordered, ordered[1:]):
        if not high.mean_hu > low.mean_hu:
            raise BonefeError(f"calibration: {high.name} ({high.density:g} g/cm³) reads {high.mean_hu:.0f} HU, not "
                              f"above {low.name} ({low.density:g} g/cm³) at {low.mean_hu:.0f} HU; are their labels or "
                              f"densities swapped, or is one not on its rod? ({FIT_OVERRIDE})")


def _check_rod_fit(rods: list[RodSample], slope: float, intercept: float) -> None:
    """Refuse a fitted slope outside ROD_SLOPE_RANGE or a rod farther than MAX_ROD_RESIDUAL from the line."""
    if not ROD_SLOPE_RANGE[0] <= slope <= ROD_SLOPE_RANGE[1]:
        raise BonefeError(f"calibration: the rods give a slope of {slope:.3g} g/cm³ per HU, outside the "
                          f"{ROD_SLOPE_RANGE[0]:g}…{ROD_SLOPE_RANGE[1]:g} of K2HPO4 or hydroxyapatite rods at "
                          "80–140 kVp; are the densities in g/cm³ (not mg/cm³) and the CT in HU? "
                          f"({FIT_OVERRIDE})")
    residuals = [rod.density - (slope * rod.mean_hu + intercept) for rod in rods]
    worst = int(np.argmax(np.abs(residuals)))
    if abs(residuals[worst]) > MAX_ROD_RESIDUAL:
        rod = rods[worst]
        raise BonefeError(f"calibration: {rod.name} ({rod.density:g} g/cm³, {rod.mean_hu:.0f} HU) lies "
                          f"{residuals[worst]:+.3f} g/cm³ off the line through the rods (at most "
                          f"±{MAX_ROD_RESIDUAL:g}); check its density and that it covers only the rod "
                          f"({FIT_OVERRIDE})")


def _rod_measurements(options: CalibrationOptions, hu: np.ndarray, affine: np.ndarray,
                      raw_labels: np.ndarray | None) -> list[RodSample] | None:
    """Each rod (or ROI) of ``options`` measured on the CT; None without rods or ROIs."""
    if options.rods is not None:
        if raw_labels is None or np.shape(raw_labels) != np.shape(hu):
            raise BonefeError("calibration: rods need the label map on the CT's grid; "
                              "resample it onto the CT or use calibration.rois")
        cores = [_rod_core(raw_labels, rod.label) for rod in options.rods]
        return [RodSample(f"rod label {rod.label}", float(np.mean(hu[core], dtype=np.float64)), rod.density,
                          int(core.sum())) for rod, core in zip(options.rods, cores)]
    if options.rois is not None:
        voxels = [_roi_voxels(hu, affine, roi) for roi in options.rois]
        return [RodSample(f"ROI at {_mm(roi.centre)} mm", float(np.mean(hu[v], dtype=np.float64)), roi.density,
                          int(v[0].size)) for roi, v in zip(options.rois, voxels)]
    return None


def calibration_record(calibration: Calibration | None, slope: float, intercept: float) -> tuple[dict, str]:
    """The calibration for report.json (method, line, and an internal fit's tissues and errors) and
    the report's sentence saying which calibration was used; `slope`, `intercept` are the line applied."""
    if calibration is None:
        return ({"method": "default", "slope_g_cm3_per_hu": slope, "intercept_g_cm3": intercept},
                f"Density calibration: none given; the placeholder line ρ = {slope:.4g}·HU {intercept:+.4f} "
                "g/cm³ applies, so absolute failure loads are uncertain (calibrate with rods or `calibration: internal`).")
    record = {"method": "internal" if calibration.internal else "rods" if calibration.n_rods else "given",
              "slope_g_cm3_per_hu": slope, "intercept_g_cm3": intercept, "stderr_g_cm3": calibration.stderr,
              "points_fitted": calibration.n_rods}
    fit = calibration.internal
    if fit is not None:
        record.update({"slope_se": fit.slope_se, "intercept_se": fit.intercept_se, "covariance": fit.covariance,
                       "rms_residual_g_cm3": fit.rms_residual,
                       "tissues": [{"tissue": t.name, "region": t.region, "voxels": t.voxels,
                                    "mean_hu": round(t.mean_hu, 2), "sd_hu": round(t.sd_hu, 2),
                                    "reference_density_g_cm3": t.density, "residual_g_cm3": t.residual,
                                    "huber_weight": t.huber_weight} for t in fit.samples]})
    return record, calibration.describe()


def _bone_mask(bone: np.ndarray | None, hu: np.ndarray) -> np.ndarray:
    if bone is None or np.shape(bone) != np.shape(hu):
        raise BonefeError("calibration.internal needs the bone mask on the CT's grid")
    return np.asarray(bone, bool)


def calibration_errors(options: CalibrationOptions, hu: np.ndarray, affine: np.ndarray,
                       raw_labels: np.ndarray | None = None, bone: np.ndarray | None = None) -> LineErrors | None:
    """Standard errors of the line fitted to the rods, ROIs or tissues of ``options`` (as
    `resolve_calibration` measures them); None when the line is given or absent (no fit, so no
    error estimate). For an internal fit: its robust weighted covariance (`bonefe.internal_calibration`)."""
    if options.slope is not None:
        return None
    if options.internal is not None:
        fit = internal_fit(options.internal, hu, affine, raw_labels, _bone_mask(bone, hu))
        return LineErrors(fit.slope_se, fit.intercept_se, fit.covariance, len(fit.samples))
    rods = _rod_measurements(options, hu, affine, raw_labels)
    if rods is None:
        return None
    means = [r.mean_hu for r in rods]
    return line_errors(means, fit_calibration(means, [r.density for r in rods])[2])
