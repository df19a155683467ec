"""Activity library: published magnitudes, the sign convention, and the femur-frame mapping.

References: Bergmann et al. 1993 (J Biomech 26:969), 2001 (J Biomech 34:859); Heller et al.
2005 (J Biomech 38:1155); Schwachmeyer et al. 2013 (PLoS One 8:e77807).
"""

import numpy as np
import pytest

from bonefe.anatomy import FemurFrame
from bonefe.errors import BonefeError
from bonefe.loads import (ACTIVITIES, STANCE_ACTIVITY, activity_from_dict, force_world,
                          patch_forces)

#: Published peak resultants (%BW): Bergmann 2001 abstract (walking 238, stairs up 251, down 260)
#: and its average-patient table (others); Bergmann 1993 abstract (jogging ~550, stumbling 720);
#: Schwachmeyer 2013 abstract (weight-bearing exercises up to 441).
PUBLISHED_BW = {"walking": 238, "stairs_up": 251, "stairs_down": 260, "sit_to_stand": 190,
                "stand_to_sit": 156, "one_leg_stance": 231, "knee_bend": 143, "jogging": 550,
                "stumbling": 720, "physio_weight_bearing": 441}


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


@pytest.mark.parametrize("name", sorted(PUBLISHED_BW))
def test_resultants_match_published_values(name):
    """Resultant within 0.5 % of the published peak (Heller's components are rounded to 0.1)."""
    assert ACTIVITIES[name].unit == "%BW"
    assert ACTIVITIES[name].magnitude == pytest.approx(PUBLISHED_BW[name], rel=5e-3)


def test_required_activities_present():
    required = {"walking", "stairs_up", "stairs_down", "sit_to_stand", "stand_to_sit",
                "one_leg_stance", "knee_bend", "jogging", "stumbling", "sideways_fall"}
    assert required <= set(ACTIVITIES)
    assert sum(name.startswith("physio_") for name in ACTIVITIES) >= 3
    assert STANCE_ACTIVITY in ACTIVITIES
    assert all(a.reference for a in ACTIVITIES.values())


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


def test_sideways_fall_on_trochanter_lateral_to_medial():
    fall = ACTIVITIES["sideways_fall"]
    assert fall.patch == "trochanter" and fall.unit == "N"
    force = force_world(fall, left_femur(), 55.0)  # newtons: independent of body mass
    assert np.allclose(force, [-fall.magnitude, 0.0, 0.0])
    assert 2000.0 <= fall.magnitude <= 10000.0


def test_abductor_option():
    """Abductor pull (Heller 2005: 58.0 medial, 4.3 anterior, 86.5 superior %BW) on the trochanter
    only when asked for."""
    walking, frame = ACTIVITIES["walking"], left_femur()
    assert set(patch_forces(walking, frame, 70.0)) == {"head"}
    forces = patch_forces(walking, frame, 70.0, abductor=True)
    assert np.allclose(forces["trochanter"], 70 * 9.81 / 100 * np.array([-58.0, -4.3, 86.5]))


def test_activity_from_dict_forms():
    a = activity_from_dict({"name": "lift", "force": [0, 0, -300], "label": "Lifting"})
    assert a.force == (0.0, 0.0, -300.0) and a.patch == "head" and a.unit == "%BW"
    b = activity_from_dict({"name": "push", "magnitude": 200, "direction": [0, 3, -4]})
    assert np.allclose(b.force, [0, 120, -160])
    c = activity_from_dict({"name": "kick", "force": [3000, 0, 0], "patch": "trochanter",
                            "unit": "N"})
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
        activity_from_dict(bad)


def test_force_world_rejects_bad_mass():
    with pytest.raises(BonefeError):
        force_world(ACTIVITIES["walking"], left_femur(), 0.0)
