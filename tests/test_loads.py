"""Activity library: published magnitudes, the sign convention, and the femur-frame mapping.

References: Bergmann et al. 1993 (J Biomech 26:969), 2001 (J Biomech 34:859), 2016 (PLoS One
11:e0155612), 2018 (PLoS One 13:e0207014); Heller et al. 2005 (J Biomech 38:1155); Schwachmeyer et
al. 2013 (PLoS One 8:e77807); Kutzner et al. 2017 (PLoS One 12:e0171972); Buehler et al. 2021
(Front Sports Act Living 3:695383); Aschenbrenner et al. 2025 (Front Bioeng Biotechnol 13:1653208).
"""

import numpy as np
import pytest

from bonefe.sites.femur.anatomy import FemurFrame
from bonefe.errors import BonefeError
from bonefe.activities import activity_from_dict, force_world
from bonefe.sites.femur.loads import ACTIVITIES, PATCHES, STANCE_ACTIVITY, patch_forces

#: Each activity: (published resultant in %BW, published direction as lateral / posterior / distal
#: components of the force on the head in Bergmann's frame). Directions: walking and stairs up from
#: Heller et al. 2005 (54.0 / 32.8 / 229.2 and 59.3 / 60.6 / 236.3 %BW); stand-up and one-leg stance
#: from the mean OrthoLoad Hip III peak-phase vectors of Bergmann 2016 (9 and 10 subjects; files of
#: Fischer et al. 2021: 86.1 / 23.4 / 194.5 and 73.6 / 15.0 / 248.8 %BW).
#: Magnitudes: Bergmann 2001 abstract and table (238, 251, 260, 156, 143); Bergmann 2016 "Average75"
#: stand up 1600 N / 75 kg = 217; OrthoLoad one-leg stance 261 ± 29; Bergmann 1993 single patient
#: scaled by his ~4 km/h walking (280 + 200·3/4 = 430 %BW): jogging 238·550/430, walking at 1 and
#: 5 km/h 238·280/430 and 238·480/430; stumbling 720 unscaled (worst case); Schwachmeyer 2013: 441
#: and 0.5 × 238; Bergmann 2018 vibration: static stance up to 141, total < 0.79 × walking; Kutzner
#: 2017 water: 36 % below land (0.64 × 238), maxima 396 and 301; Buehler 2021 bands and Aschenbrenner
#: 2025 ski simulator: at most walking (238); Altai et al. (OpenSim): hopping 21 % above and jumps 36 %
#: below the same participants' walking.
WALK, STAIRS = (54.0, 32.8, 229.2), (59.3, 60.6, 236.3)
STAND_UP, STANCE = (86.1, 23.4, 194.5), (73.6, 15.0, 248.8)
PUBLISHED = {
    "walking": (238.0, WALK), "stairs_up": (251.0, STAIRS), "stairs_down": (260.0, STAIRS),
    "sit_to_stand": (217.0, STAND_UP), "stand_to_sit": (156.0, STAND_UP),
    "one_leg_stance": (261.0, STANCE), "knee_bend": (143.0, STAND_UP),
    "jogging": (238.0 * 550.0 / 430.0, WALK), "stumbling": (720.0, WALK),
    "physio_weight_bearing": (441.0, WALK), "physio_long_lever": (119.0, WALK),
    "physio_dynamic": (119.0, WALK),
    "walking_slow": (238.0 * 280.0 / 430.0, WALK), "walking_fast": (238.0 * 480.0 / 430.0, WALK),
    "standing_two_legs": (141.0, STANCE), "vibration_platform": (0.79 * 238.0, STANCE),
    "aquatic_walking": (0.64 * 238.0, WALK), "aquatic_dynamic": (396.0, WALK),
    "aquatic_fast_fins": (301.0, WALK), "squat_bodyweight": (143.0, STAND_UP),
    "step_up": (251.0, STAIRS), "hip_band_exercises": (238.0, WALK), "ski_simulator": (238.0, WALK),
    "hopping": (1.21 * 238.0, WALK), "jumping": (0.64 * 238.0, WALK),
}


def left_femur() -> FemurFrame:
    """A left femur in LPS: patient's left is +x, so its medial side is −x; anterior is −y."""
    return FemurFrame(head_centre=np.array([0.0, 0.0, 400.0]), head_radius=23.0,
                      shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=np.array([-0.7, 0.0, 0.7]),
                      distal_centre=np.array([30.0, 0.0, 0.0]), side="left")


def mirrored(frame: FemurFrame) -> FemurFrame:
    """The same femur reflected through the mid-sagittal plane (x → −x): a right femur."""
    flip = np.array([-1.0, 1.0, 1.0])
    return FemurFrame(frame.head_centre * flip, frame.head_radius, frame.shaft_axis * flip,
                      frame.neck_axis * flip, frame.distal_centre * flip, side="right")


def test_every_activity_is_checked_here():
    """Each line of the library has its published magnitude and direction in this file."""
    assert set(ACTIVITIES) == set(PUBLISHED)
    assert len(ACTIVITIES) >= 25  # the 'at least 25 femoral activities'
    assert STANCE_ACTIVITY == "walking"
    assert all(a.reference and a.unit == "%BW" and a.patch == "head" for a in ACTIVITIES.values())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_activity_matches_its_source(name):
    """Resultant within 0.5 % of the published value (Heller's components are rounded to 0.1 %BW)
    and direction within 0.01° of the published vector mapped to (medial, anterior, superior) =
    (−lateral, −posterior, −distal)."""
    magnitude, (lateral, posterior, distal) = PUBLISHED[name]
    activity = ACTIVITIES[name]
    assert activity.magnitude == pytest.approx(magnitude, rel=5e-3)
    expected = -np.array([lateral, posterior, distal]) / np.linalg.norm([lateral, posterior, distal])
    cosine = np.dot(np.asarray(activity.force) / activity.magnitude, expected)
    assert np.degrees(np.arccos(min(cosine, 1.0))) < 0.01


def test_walking_stance_vector_unchanged():
    """The stance failure load's walking vector is Heller's, component by component (%BW)."""
    assert ACTIVITIES["walking"].force == (-54.0, -32.8, -229.2)


def test_chair_activities_do_not_borrow_the_stairs_direction():
    """Stand-up, sit-down and knee bend lie 12° from the stairs-up direction (OrthoLoad data are
    more lateral and less posterior than Heller's stairs vector)."""
    stairs = np.asarray(ACTIVITIES["stairs_up"].force) / ACTIVITIES["stairs_up"].magnitude
    for name in ("sit_to_stand", "stand_to_sit", "knee_bend"):
        d = np.asarray(ACTIVITIES[name].force) / ACTIVITIES[name].magnitude
        assert np.degrees(np.arccos(d @ stairs)) == pytest.approx(12.0, abs=1.0), name


def test_contact_forces_point_distal_lateral_posterior():
    """On the femoral head the peak force acts distally, from medial to lateral and from ventral
    to dorsal (Bergmann 1993 abstract): all three (medial, anterior, superior) components < 0."""
    for activity in ACTIVITIES.values():
        if activity.patch == "head":
            assert np.all(np.asarray(activity.force) < 0), activity.name


def test_walking_angle_from_shaft_axis():
    """Walking peak (Heller 2005 components) lies 15.6° from the shaft axis: atan(√(54²+32.8²)/229.2)."""
    f = np.asarray(ACTIVITIES["walking"].force)
    angle = np.degrees(np.arctan2(np.hypot(f[0], f[1]), -f[2]))
    assert angle == pytest.approx(np.degrees(np.arctan(np.hypot(54.0, 32.8) / 229.2)), abs=1e-9)
    assert 14.0 < angle < 17.0


def test_force_world_left_femur_in_lps():
    """Left femur in LPS: lateral = +x, posterior = +y, distal = −z. 238 %BW of 70 kg = 1634 N."""
    force = force_world(ACTIVITIES["walking"], left_femur(), 70.0)
    scale = 70.0 * 9.81 / 100.0
    assert np.allclose(force, scale * np.array([54.0, 32.8, -229.2]))
    assert np.linalg.norm(force) == pytest.approx(2.38 * 70.0 * 9.81, rel=5e-3)


def test_force_world_right_femur_is_mirror_image():
    """The frame is mirrored for a right femur, so its world force is the left one reflected."""
    frame = left_femur()
    for activity in ACTIVITIES.values():
        left = force_world(activity, frame, 80.0)
        right = force_world(activity, mirrored(frame), 80.0)
        assert np.allclose(right, left * np.array([-1.0, 1.0, 1.0])), activity.name


def test_abductor_option():
    """Abductor pull (Heller 2005: 58.0 medial, 4.3 anterior, 86.5 superior %BW) on the trochanter
    only when asked for."""
    walking, frame = ACTIVITIES["walking"], left_femur()
    assert set(patch_forces(walking, frame, 70.0)) == {"head"}
    forces = patch_forces(walking, frame, 70.0, abductor=True)
    assert np.allclose(forces["trochanter"], 70 * 9.81 / 100 * np.array([-58.0, -4.3, 86.5]))


def test_activity_from_dict_forms():
    a = activity_from_dict({"name": "lift", "force": [0, 0, -300], "label": "Lifting"}, PATCHES)
    assert a.force == (0.0, 0.0, -300.0) and a.patch == "head" and a.unit == "%BW"
    b = activity_from_dict({"name": "push", "magnitude": 200, "direction": [0, 3, -4]}, PATCHES)
    assert np.allclose(b.force, [0, 120, -160])
    c = activity_from_dict({"name": "kick", "force": [3000, 0, 0], "patch": "trochanter",
                            "unit": "N"}, PATCHES)
    assert np.allclose(force_world(c, left_femur(), 70.0), [-3000.0, 0.0, 0.0])


@pytest.mark.parametrize("bad", [
    {"force": [0, 0, -1]},
    {"name": "x"},
    {"name": "x", "force": [0, 0]},
    {"name": "x", "force": "down"},
    {"name": "x", "force": [0, 0, -1], "patch": "knee"},
    {"name": "x", "force": [0, 0, -1], "unit": "kg"},
    {"name": "x", "force": [0, 0, -1], "colour": "red"},
    {"name": "x", "magnitude": 100, "direction": [0, 0, 0]},
    "walking",
])
def test_activity_from_dict_rejects_bad_fields(bad):
    with pytest.raises(BonefeError):
        activity_from_dict(bad, PATCHES)


def test_force_world_rejects_bad_mass():
    with pytest.raises(BonefeError):
        force_world(ACTIVITIES["walking"], left_femur(), 0.0)
