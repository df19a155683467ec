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


def rod_mean_hu(hu: np.ndarray, raw_labels: np.ndarray, label: int) -> float:
    """Mean HU of the rod labelled ``label`` in the raw label map, after a one-voxel erosion."""
    rod = np.asarray(raw_labels) == label
    if not rod.any():
        raise BonefeError(f"calibration: rod label {label} is not in the label map; "
                          "check calibration.rods[].label against the label file")
    core = ndimage.binary_erosion(rod)
    if not core.any():
        raise BonefeError(f"calibration: rod label {label} is too thin (no voxel left after a one-voxel "
                          "erosion); segment the whole rod cross-section")
    return float(np.mean(hu[core], dtype=np.float64))


def roi_mean_hu(hu: np.ndarray, affine: np.ndarray, roi: RodROI) -> float:
    """Mean HU of the voxels whose centre lies inside the spherical ROI."""
    return float(np.mean(hu[sphere_voxels(hu.shape, affine, roi.centre, roi.radius_mm, "calibration: ROI")],
                         dtype=np.float64))


def raw_labels_on_ct(ct_path, labels_path, series: str | int | None = None) -> np.ndarray:
    """The label map's own values (not the canonical labels) on the CT's voxel grid, [i, j, k]:
    resampled by nearest neighbour when its grid differs (identity otherwise); `series`: the CT
    series of a DICOM folder (the case's `ct_series`)."""
    import SimpleITK as sitk

    from bonefe.imaging import read_sitk, sitk_array

    ct, labels = read_sitk(ct_path, series), read_sitk(labels_path)
    return sitk_array(sitk.Resample(labels, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0))


def resolve_calibration(options: CalibrationOptions, hu: np.ndarray, affine: np.ndarray,
                        raw_labels: np.ndarray | None = None, bone: np.ndarray | None = None) -> Calibration | None:
    """The calibration line of ``options`` for a CT (HU array [i, j, k], its affine) and the raw
    label map on the same grid (needed for rods and tissue labels); ``bone``, the bone mask, places
    the internal calibration's tissue regions. None when options name no calibration."""
    if options.slope is not None:
        return Calibration(options.slope, options.intercept, 0.0, 0)
    if options.internal is not None:
        fit = internal_fit(options.internal, hu, affine, raw_labels, _bone_mask(bone, hu))
        return Calibration(fit.slope, fit.intercept, fit.rms_residual, len(fit.samples), fit)
    measured = _rod_measurements(options, hu, affine, raw_labels)
    if measured is None:
        return None
    means, densities = measured
    slope, intercept, stderr = fit_calibration(means, densities)
    if not slope > 0:
        raise BonefeError(f"calibration: the rods give a non-positive slope ({slope:.3g} g/cm³ per HU); "
                          "check that each rod's density matches its label or ROI")
    return Calibration(slope, intercept, stderr, len(means))


def _rod_measurements(options: CalibrationOptions, hu: np.ndarray, affine: np.ndarray,
                      raw_labels: np.ndarray | None) -> tuple[list[float], list[float]] | None:
    """Mean HU and nominal density of each rod (or ROI) of ``options``; None without rods or ROIs."""
    if options.rods is not None:
        if raw_labels is None or np.shape(raw_labels) != np.shape(hu):
            raise BonefeError("calibration: rods need the label map on the CT's grid; "
                              "resample it onto the CT or use calibration.rois")
        return ([rod_mean_hu(hu, raw_labels, rod.label) for rod in options.rods],
                [rod.density for rod in options.rods])
    if options.rois is not None:
        return [roi_mean_hu(hu, affine, roi) for roi in options.rois], [roi.density for roi in options.rois]
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
    measured = _rod_measurements(options, hu, affine, raw_labels)
    if measured is None:
        return None
    means, densities = measured
    return line_errors(means, fit_calibration(means, densities)[2])
