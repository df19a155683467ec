"""Internal (phantomless) calibration from the patient's tissues (bonefe.internal_calibration).

References: (1) a body phantom (bonefe.phantom_body) whose scanner maps the ideal 70 keV CT
numbers by HU = gain·HU_ideal + offset, so the true line is ρ = 0.000867·(HU − offset)/gain
(typed here from the phantom's definition): without noise or cupping the fit must recover it to
rounding (1e-6 relative); (2) the rods of the same phantom; (3) a Monte-Carlo of the fit under
the stated tissue spreads, against which the reported standard errors are checked.
"""

import numpy as np
import pytest
import yaml

from bonefe.calibration import (CalibrationOptions, Rod, calibration_errors, calibration_record,
                                raw_labels_on_ct, resolve_calibration)
from bonefe.case import load_case
from bonefe.errors import BonefeError
from bonefe.internal_calibration import InternalCalibration, TissueROI, TissueSample, fit_internal, internal_fit
from bonefe.phantom_body import BodySpec, add_body
from bonefe.schema import build
from bonefe.volume import Volume

SLOPE_70KEV = 0.000867
RODS = [Rod(11, 0.0), Rod(12, 0.05), Rod(13, 0.1), Rod(14, 0.2)]
BLOOD = InternalCalibration(labels={"blood": 20})


def bone_volume():
    """A 30 mm bone cylinder (1500 HU, label 1) along z on 1.5 mm voxels, 30 slices."""
    shape = (40, 40, 30)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = [-30.0, -30.0, 0.0]
    i, j = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    disc = np.hypot(1.5 * i - 30.0, 1.5 * j - 30.0) <= 15.0
    labels = np.repeat(disc[:, :, None], shape[2], axis=2).astype(np.uint8)
    return Volume(hu=np.where(labels > 0, 1500.0, 40.0).astype(np.float32), labels=labels, affine=affine)


def body(spec):
    volume, raw, _ = add_body(bone_volume(), spec)
    return volume, raw


def test_exact_scanner_is_recovered_by_tissues_and_rods():
    """No noise, no cupping: both calibrations give the true line to rounding."""
    gain, offset = 1.04, 12.0
    volume, raw = body(BodySpec(gain=gain, offset_hu=offset, cupping_hu=0.0, noise_hu=0.0))
    truth = (SLOPE_70KEV / gain, -SLOPE_70KEV * offset / gain)
    internal = resolve_calibration(CalibrationOptions(internal=BLOOD), volume.hu, volume.affine, raw, volume.labels > 0)
    rods = resolve_calibration(CalibrationOptions(rods=RODS), volume.hu, volume.affine, raw)
    for line in (internal, rods):
        assert line.slope == pytest.approx(truth[0], rel=1e-3)   # the module rounds ρ_eq to 1e-4 g/cm³
        assert line.intercept == pytest.approx(truth[1], abs=2e-4)
    assert [s.name for s in internal.internal.samples] == ["air", "adipose", "muscle", "blood"]
    assert all(s.sd_hu < 1e-3 for s in internal.internal.samples)


def test_noise_and_cupping_keep_tissues_and_rods_within_the_cupping():
    """With 15 HU noise and 15 HU cupping the two lines differ by at most the cupping at soft-tissue
    HU (15 HU × slope ≈ 0.013 g/cm³) and by < 3 % in slope (the cupping tilts the soft-tissue cluster
    by ≤ 15 HU over the 1000 HU lever of air)."""
    volume, raw = body(BodySpec())
    internal = resolve_calibration(CalibrationOptions(internal=BLOOD), volume.hu, volume.affine, raw, volume.labels > 0)
    rods = resolve_calibration(CalibrationOptions(rods=RODS), volume.hu, volume.affine, raw)
    assert internal.slope == pytest.approx(rods.slope, rel=0.03)
    for hu in (0.0, 200.0):
        difference = (internal.slope - rods.slope) * hu + internal.intercept - rods.intercept
        assert abs(difference) < 15 * SLOPE_70KEV


def test_standard_errors_match_a_monte_carlo_of_the_tissue_spreads():
    """Jitter each tissue's mean HU by its stated spread (air 10, adipose 15, muscle 10, blood 8 HU):
    the SD of the fitted slope and intercept over 2000 fits matches the reported SEs within 10 %
    (Monte-Carlo error of an SD from 2000 samples ≈ 1.6 %; Huber down-weighting of the tails
    widens the spread by a few %)."""
    names, hu, rho, spread = ["air", "adipose", "muscle", "blood"], [-998.9, -76.5, 43.0, 56.1], \
        [-0.8659, -0.0663, 0.0373, 0.0487], [10.0, 15.0, 10.0, 8.0]
    rng = np.random.default_rng(3)
    fits = [fit_internal([TissueSample(n, "test", 10**9, h + s * rng.standard_normal(), 0.0, r)
                          for n, h, r, s in zip(names, hu, rho, spread)]) for _ in range(2000)]
    slopes, intercepts = np.array([f.slope for f in fits]), np.array([f.intercept for f in fits])
    nominal = fit_internal([TissueSample(n, "test", 10**9, h, 0.0, r) for n, h, r in zip(names, hu, rho)])
    assert slopes.std() == pytest.approx(nominal.slope_se, rel=0.10)
    assert intercepts.std() == pytest.approx(nominal.intercept_se, rel=0.10)


def test_spheres_in_the_vessel_sample_blood_like_its_label():
    """Blood from three 3 mm spheres on the vessel's axis (world mm from the phantom's definition:
    12 mm anterior of the bone's box, at the box's x centre) reads the vessel's HU exactly (no
    noise): 1.04·56.1 + 12 = 70.3 HU."""
    volume, raw = body(BodySpec(cupping_hu=0.0, noise_hu=0.0))
    vessel = np.argwhere(raw == 20)
    centre = vessel.mean(axis=0) @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    rois = [TissueROI((centre[0], centre[1], z), 3.0) for z in (10.0, 20.0, 30.0)]
    fit = internal_fit(InternalCalibration(rois={"blood": rois}, min_voxels=20), volume.hu, volume.affine, None,
                       volume.labels > 0)
    blood = fit.samples[3]
    assert blood.region == "rois" and blood.mean_hu == pytest.approx(1.04 * 56.1 + 12.0, abs=0.05)
    with pytest.raises(BonefeError, match="blood ROI at .* lies outside the CT"):
        internal_fit(InternalCalibration(rois={"blood": [TissueROI((900.0, 0.0, 0.0), 3.0)]}), volume.hu,
                     volume.affine, None, volume.labels > 0)


def test_an_atypical_tissue_is_down_weighted():
    """Fat 60 HU too dense (an unusual fat): Huber's weight on it drops below 1 and the line at
    bone HU moves less than an unweighted least-squares line through the same points would."""
    names, hu, rho = ["air", "adipose", "muscle", "blood"], [-998.9, -16.5, 43.0, 56.1], [-0.8659, -0.0663, 0.0373, 0.0487]
    fit = fit_internal([TissueSample(n, "t", 10**6, h, 5.0, r) for n, h, r in zip(names, hu, rho)])
    adipose = fit.samples[1]
    assert adipose.huber_weight < 0.5
    ols = np.polyfit(hu, rho, 1)
    true_at_1000 = SLOPE_70KEV * 1000
    assert abs(fit.slope * 1000 + fit.intercept - true_at_1000) < abs(np.polyval(ols, 1000) - true_at_1000)


def test_errors_reach_uncertainty_through_calibration_errors():
    """calibration_errors gives the internal fit's SEs and covariance (the uncertainty study's input)."""
    volume, raw = body(BodySpec())
    options = CalibrationOptions(internal=BLOOD)
    errors = calibration_errors(options, volume.hu, volume.affine, raw, volume.labels > 0)
    fit = internal_fit(BLOOD, volume.hu, volume.affine, raw, volume.labels > 0)
    assert errors == (fit.slope_se, fit.intercept_se, fit.covariance, 4)
    assert 0 < errors.slope_se < 0.05 * fit.slope and errors.intercept_se > 0
    assert abs(errors.covariance) <= errors.slope_se * errors.intercept_se * (1 + 1e-12)
    record, sentence = calibration_record(resolve_calibration(options, volume.hu, volume.affine, raw,
                                                              volume.labels > 0), fit.slope, fit.intercept)
    assert record["method"] == "internal" and len(record["tissues"]) == 4
    assert sentence.startswith("Density calibration: internal (phantomless)")


def test_missing_and_implausible_tissues_fail_in_one_line():
    volume, raw = body(BodySpec())
    bone = volume.labels > 0
    contrast = volume.hu.copy()
    contrast[raw == 20] += 300.0   # iodine in the vessel
    cases = [
        (InternalCalibration(labels={"blood": 99}), volume.hu, "blood \\(label 99 region\\) holds 0 voxels"),
        (BLOOD, contrast, "IV contrast"),
        (InternalCalibration(tissues=["air", "muscle"]), volume.hu + 150.0, "air .* averages"),
    ]
    for options, hu, message in cases:
        with pytest.raises(BonefeError, match=message) as info:
            internal_fit(options, hu, volume.affine, raw, bone)
        assert "\n" not in str(info.value)
    slab = np.zeros_like(volume.hu) - 1000.0   # nothing but air: no fat, no muscle
    with pytest.raises(BonefeError, match="adipose \\(automatic region\\) holds 0 voxels"):
        internal_fit(InternalCalibration(), slab, volume.affine, raw, bone)


def test_case_file_short_and_long_forms(tmp_path):
    """`calibration: internal` builds the defaults; the long form takes labels; bad keys are named."""
    case = {"name": "c", "ct": "ct.nii.gz", "labels": "l.nii.gz", "patient": {"body_mass_kg": 70},
            "calibration": "internal"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
    loaded = load_case(tmp_path / "c.yaml")
    assert loaded.calibration.internal == InternalCalibration()
    assert loaded.calibration.internal.selected() == ["air", "adipose", "muscle"]
    options = build(CalibrationOptions, {"internal": {"labels": {"blood": 52}}}, "case.yaml: calibration")
    assert options.internal.selected() == ["air", "adipose", "muscle", "blood"]
    for data, message in [({"internal": {"tissues": ["blood", "air"]}}, "blood has no automatic region"),
                          ({"internal": {"labels": {"bone": 1}}}, "unknown tissue 'bone'"),
                          ({"internal": {"tissues": ["air"]}}, "at least 2 tissues"),
                          ({"internal": {"labels": {"blood": 52}, "rois": {"blood": [
                              {"centre": [0, 0, 0], "radius_mm": 5}]}}}, "labels or rois, not both"),
                          ({"internal": {}, "slope": 0.001, "intercept": 0.0}, "only one of")]:
        with pytest.raises(BonefeError, match=message):
            build(CalibrationOptions, data, "case.yaml: calibration")


def test_phantom_labels_hold_rods_and_vessel(tmp_path):
    """bonefe phantom --body writes rods and vessel into the label map, read back on the CT grid."""
    from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
    paths = write_phantom(PhantomSpec(voxel_mm=2.0, lesion_site=None), tmp_path, body=BodySpec(noise_hu=0.0))
    raw = raw_labels_on_ct(paths["ct"], paths["labels"])
    assert set(np.unique(raw)) == {0, 1, 11, 12, 13, 14, 20}


def test_run_without_tissues_exits_2_in_one_line_and_writes_nothing(tmp_path):
    """A bare femur phantom (no body: no fat, no muscle) with `calibration: internal` is refused by
    `bonefe run` before meshing: exit 2, one line naming the tissue, no output folder."""
    import subprocess
    import sys

    from mpi4py import MPI

    from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
    if MPI.COMM_WORLD.size > 1:
        pytest.skip("spawns the bonefe CLI, which cannot start inside an MPI job; serial only")
    write_phantom(PhantomSpec(voxel_mm=2.0, lesion_site=None), tmp_path / "ct")
    case = {"name": "bare", "ct": "ct/ct.nii.gz", "labels": "ct/labels.nii.gz", "output": "out",
            "patient": {"body_mass_kg": 70}, "calibration": "internal"}
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bonefe.cli", "run", str(tmp_path / "bare.yaml"), "--quiet"],
                            capture_output=True, encoding="utf-8", timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "calibration.internal: air (automatic region) holds 0 voxels" in lines[0], lines
    assert not (tmp_path / "out").exists()
