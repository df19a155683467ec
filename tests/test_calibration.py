"""Verification of the HU → density calibration from phantom rods (bonefe.calibration).

Reference: a synthetic CT of known calibration ρ = a·HU + b, so each rod of density ρ_k holds
HU_k = (ρ_k − b)/a plus Gaussian noise σ. The mean over N interior voxels then errs by σ/√N, and
the least-squares line through the rods errs (first order in the HU errors e_k, x_k the true HU)
by δa = −a·Σ(x_k − x̄)e_k / Sxx and δb = −a·ē − x̄·δa. Tests assert |error| < 4 standard
deviations of those (a 4σ bound fails once in ~16000 runs; the seed is fixed anyway).
"""

import re

import numpy as np
import pytest
from scipy import ndimage

from bonefe.calibration import CalibrationOptions, Rod, RodROI, raw_labels_on_ct, resolve_calibration
from bonefe.errors import BonefeError
from bonefe.imaging import write_image
from bonefe.schema import build

SLOPE, INTERCEPT, NOISE_HU = 0.00075, -0.012, 30.0
DENSITIES = [0.0, 0.1, 0.2, 0.4]
VOXEL = np.array([0.7, 0.7, 1.5])
ROD_RADIUS_MM = 4.5


def phantom_ct(seed=1):
    """Four rods (r = 4.5 mm along k, labels 11–14) in water (0 HU) with a partial-volume rim:
    the rods' outer voxel layer (voxels with a 4-neighbour in the water) holds the average of rod
    and water HU, the bias the erosion removes. Returns hu, raw labels, affine and the rods' (centre xy world mm)."""
    shape = (70, 70, 16)
    affine = np.diag([*VOXEL, 1.0])
    affine[:3, 3] = [-24.0, -24.0, 100.0]
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    x, y = affine[0, 0] * i + affine[0, 3], affine[1, 1] * j + affine[1, 3]
    centres = [(-12.0, -12.0), (12.0, -12.0), (-12.0, 12.0), (12.0, 12.0)]
    hu = np.zeros(shape[:2])
    labels = np.zeros(shape[:2], np.int16)
    for k, ((cx, cy), rho) in enumerate(zip(centres, DENSITIES)):
        rod = np.hypot(x - cx, y - cy) <= ROD_RADIUS_MM
        labels[rod] = 11 + k
        hu[rod] = (rho - INTERCEPT) / SLOPE
        hu[rod & ~ndimage.binary_erosion(rod)] /= 2  # in-plane edge voxels: half rod, half water
    rng = np.random.default_rng(seed)
    hu = np.repeat(hu[:, :, None], shape[2], axis=2) + rng.normal(0.0, NOISE_HU, shape)
    labels = np.repeat(labels[:, :, None], shape[2], axis=2)
    labels[30:40, 30:40, :] = 1  # a "bone" label that is not a rod
    return hu.astype(np.float32), labels, affine, centres


def error_bounds(n_voxels):
    """4σ bounds on (δa, δb) for rod means of n_voxels each (see the module docstring)."""
    x = (np.array(DENSITIES) - INTERCEPT) / SLOPE
    e = NOISE_HU / np.sqrt(np.asarray(n_voxels, float))
    sxx = ((x - x.mean()) ** 2).sum()
    sd_a = SLOPE * np.sqrt((((x - x.mean()) * e) ** 2).sum()) / sxx
    weights = 1 / len(x) - x.mean() * (x - x.mean()) / sxx  # δb = −a Σ w_k e_k
    sd_b = SLOPE * np.sqrt(((weights * e) ** 2).sum())
    return 4 * sd_a, 4 * sd_b


def test_rods_recover_the_calibration_within_noise():
    """Rod labels → slope and intercept within 4σ of the truth despite the partial-volume rim;
    the rim alone would bias the plain mean of the uneroded rods well beyond that."""
    hu, labels, affine, _ = phantom_ct()
    rods = [Rod(11 + k, rho) for k, rho in enumerate(DENSITIES)]
    calibration = resolve_calibration(CalibrationOptions(rods=rods), hu, affine, labels)
    n_core = [int(ndimage.binary_erosion(labels == 11 + k).sum()) for k in range(4)]
    bound_a, bound_b = error_bounds(n_core)
    assert calibration.n_rods == 4
    assert abs(calibration.slope - SLOPE) < bound_a
    assert abs(calibration.intercept - INTERCEPT) < bound_b
    # stderr: residual scatter of the rod densities, a·σ/√N scale (here ~1e-3 g/cm³ or less)
    assert calibration.stderr < 5 * SLOPE * NOISE_HU / np.sqrt(min(n_core))
    plain = [hu[labels == 11 + k].mean() for k in range(4)]
    biased_slope = np.polyfit(plain, DENSITIES, 1)[0]
    assert abs(biased_slope - SLOPE) > 10 * bound_a


def test_spherical_rois_recover_the_calibration():
    """ROIs of radius 3 mm at the rod centres (world mm, inside the rim) → the same truth within 4σ."""
    hu, _, affine, centres = phantom_ct(seed=2)
    rois = [RodROI((cx, cy, 100.0 + 7.5 * VOXEL[2]), 3.0, rho) for (cx, cy), rho in zip(centres, DENSITIES)]
    calibration = resolve_calibration(CalibrationOptions(rois=rois), hu, affine)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in hu.shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    counts = [int((np.linalg.norm(xyz - r.centre, axis=1) <= 3.0).sum()) for r in rois]
    bound_a, bound_b = error_bounds(counts)
    assert abs(calibration.slope - SLOPE) < bound_a
    assert abs(calibration.intercept - INTERCEPT) < bound_b


def test_given_line_and_no_calibration():
    """A given line passes through unchanged (no fit: stderr 0, no rods); no option gives None."""
    assert resolve_calibration(CalibrationOptions(slope=0.0009, intercept=0.01), np.zeros((2, 2, 2)),
                               np.eye(4)) == (0.0009, 0.01, 0.0, 0, None)
    assert resolve_calibration(CalibrationOptions(), np.zeros((2, 2, 2)), np.eye(4)) is None


def test_case_file_section_builds_and_rejects_bad_input():
    """The YAML section builds through the case-file schema; conflicting or short inputs give
    one-line BonefeErrors naming the problem."""
    options = build(CalibrationOptions, {"rods": [{"label": 11, "density": 0.0}, {"label": 12, "density": 0.1},
                                                  {"label": 13, "density": 0.2}]}, "case.yaml: calibration")
    assert options.rods[2] == Rod(13, 0.2)
    bad = [
        ({"slope": 0.001, "intercept": 0.0, "rods": [{"label": 1, "density": 0.1}] * 3}, "only one of"),
        ({"rods": [{"label": 1, "density": 0.1}] * 3, "internal": {}}, "only one of"),
        ({"rods": [{"label": 11, "density": 0.0}, {"label": 12, "density": 0.1}]}, "at least 3"),
        ({"slope": 0.001}, "together"),
        ({"rois": [{"centre": [0, 0, 0], "radius_mm": 0.0, "density": 0.1}] * 3}, "radius_mm"),
    ]
    for data, message in bad:
        with pytest.raises(BonefeError, match=message) as info:
            build(CalibrationOptions, data, "case.yaml: calibration")
        assert "\n" not in str(info.value)


def test_missing_rod_label_and_outside_roi_are_named():
    """A rod label absent from the label map and an ROI outside the CT raise BonefeError naming them."""
    hu, labels, affine, _ = phantom_ct()
    rods = [Rod(11, 0.0), Rod(12, 0.1), Rod(99, 0.2)]
    with pytest.raises(BonefeError, match="rod label 99 is not in the label map"):
        resolve_calibration(CalibrationOptions(rods=rods), hu, affine, labels)
    rois = [RodROI((500.0, 0.0, 0.0), 3.0, 0.0)] * 3
    with pytest.raises(BonefeError, match=r"ROI at \(500, 0, 0\) mm \(radius 3 mm\) is not wholly inside"):
        resolve_calibration(CalibrationOptions(rois=rois), hu, affine)


def test_raw_labels_read_back_on_the_ct_grid(tmp_path):
    """Rod label values written to a label file on the CT's grid come back unchanged (exact):
    no value is mapped onto canonical labels."""
    hu, labels, affine, _ = phantom_ct()
    write_image(tmp_path / "ct.nii.gz", hu, affine)
    write_image(tmp_path / "labels.nii.gz", labels, affine)
    raw = raw_labels_on_ct(tmp_path / "ct.nii.gz", tmp_path / "labels.nii.gz")
    assert np.array_equal(raw, labels)


def refusal(options, hu, affine, labels=None) -> str:
    """The one-line message with which the rod checks refuse `options`; the same options pass with
    the check turned off (checks.calibration_fit: false) whenever a positive slope can be fitted."""
    with pytest.raises(BonefeError) as info:
        resolve_calibration(options, hu, affine, labels)
    message = str(info.value)
    assert "\n" not in message and "checks.calibration_fit: false" in message
    return message


def test_swapped_rods_are_named():
    """Densities 0.1 and 0 given to labels 11 and 12 (swapped): the rod of 0.1 g/cm³ reads the
    water rod's ~0 HU (truth: (0 + 0.012)/0.00075 = 16 HU, halved rim eroded away), below the other."""
    hu, labels, affine, _ = phantom_ct()
    rods = [Rod(11, 0.1), Rod(12, 0.0), Rod(13, 0.2), Rod(14, 0.4)]
    message = refusal(CalibrationOptions(rods=rods), hu, affine, labels)
    assert message.startswith("calibration: rod label 11 (0.1 g/cm³) reads 16 HU, not above rod label 12 (0 g/cm³) at 149 HU")
    assert "swapped" in message
    assert resolve_calibration(CalibrationOptions(rods=rods), hu, affine, labels, check_fit=False).slope > 0


def test_rod_in_air_breaks_the_order():
    """The 0.4 g/cm³ rod filled with air (−1000 HU, e.g. an empty tube or a label on the air gap)."""
    hu, labels, affine, _ = phantom_ct()
    hu[labels == 14] = -1000.0
    message = refusal(CalibrationOptions(rods=[Rod(11 + k, rho) for k, rho in enumerate(DENSITIES)]), hu, affine, labels)
    assert message.startswith("calibration: rod label 14 (0.4 g/cm³) reads -1000 HU, not above rod label 13")


def test_roi_partly_outside_and_too_small_are_refused():
    """A sphere reaching past the CT's last slice (centre 0.5 voxel inside, radius 3 mm), and one of
    radius 1 mm centred on a voxel that holds 9 voxel centres at 0.7 × 0.7 × 1.5 mm (the centre voxel,
    its four in-plane neighbours at 0.7 mm and four diagonal ones at 0.99 mm; the slice neighbours lie
    at 1.5 mm)."""
    hu, _, affine, centres = phantom_ct()
    z_last = 100.0 + 15 * VOXEL[2]
    rois = [RodROI((cx, cy, 100.0 + 7 * VOXEL[2]), 3.0, rho) for (cx, cy), rho in zip(centres, DENSITIES)]
    edge = rois[:3] + [RodROI((*centres[3], z_last), 3.0, DENSITIES[3])]
    with pytest.raises(BonefeError, match=r"is not wholly inside the CT") as info:
        resolve_calibration(CalibrationOptions(rois=edge), hu, affine)
    assert "\n" not in str(info.value)
    small = rois[:3] + [RodROI((-24.0 + 0.7 * 51, -24.0 + 0.7 * 51, 100.0 + 7 * VOXEL[2]), 1.0, DENSITIES[3])]
    message = refusal(CalibrationOptions(rois=small), hu, affine)
    assert message.startswith("calibration: ROI at (11.7, 11.7, 110.5) mm averages only 9 voxels (need 50)")


def test_densities_in_mg_and_an_off_line_rod_are_refused():
    """Densities typed in mg/cm³ give a slope 1000 times too large (0.75 g/cm³ per HU). A rod given
    0.26 for 0.2 g/cm³ lies off the line by the residual np.polyfit finds on the same rod means
    (an independent least-squares fit), beyond the ±0.010 g/cm³ bound."""
    hu, labels, affine, _ = phantom_ct()
    mg = [Rod(11 + k, 1000 * rho) for k, rho in enumerate(DENSITIES)]
    assert re.search(r"slope of 0\.7[4-6]\d g/cm³ per HU, outside the 0\.0004…0\.0013",
                     refusal(CalibrationOptions(rods=mg), hu, affine, labels))
    typo = [0.0, 0.1, 0.26, 0.4]
    means = [hu[ndimage.binary_erosion(labels == 11 + k)].mean(dtype=np.float64) for k in range(4)]
    residuals = np.array(typo) - np.polyval(np.polyfit(means, typo, 1), means)
    worst = int(np.argmax(np.abs(residuals)))
    assert abs(residuals[worst]) > 0.010
    message = refusal(CalibrationOptions(rods=[Rod(11 + k, rho) for k, rho in enumerate(typo)]), hu, affine, labels)
    assert message.startswith(f"calibration: rod label {11 + worst} ({typo[worst]:g} g/cm³, {means[worst]:.0f} HU) "
                              f"lies {residuals[worst]:+.3f} g/cm³ off the line")


def test_a_good_rod_set_at_the_slope_window_edges_passes():
    """Rods exactly on lines of slope 0.00045 and 0.00125 g/cm³ per HU (inside 0.0004–0.0013, the
    physics window of the module docstring) with 30 HU noise pass every check."""
    for slope in (0.00045, 0.00125):
        hu, labels, affine, _ = phantom_ct()
        rods = [Rod(11 + k, slope / SLOPE * (rho - INTERCEPT) + INTERCEPT) for k, rho in enumerate(DENSITIES)]
        assert resolve_calibration(CalibrationOptions(rods=rods), hu, affine, labels).slope == pytest.approx(slope, rel=0.05)


def test_turning_the_rod_check_off_is_said():
    """checks.calibration_fit: false in the case builds and yields the sentence that the run prints
    as a warning and the report lists among its assumptions."""
    from bonefe.plausibility import InputChecks

    checks = build(InputChecks, {"calibration_fit": False}, "case.yaml: checks")
    assert checks.overrides() == ["Input check 'calibration_fit' turned off by the case (checks.calibration_fit: "
                                  "false): the calibration rods' order, slope and scatter were not verified."]
