"""Mirels score, axial cortical involvement and the lesion-free twin on hand-built label maps.

The bone is a straight tube along z on 1 mm voxels: radius 15 mm, cortex where the depth below the
periosteal surface (distance transform) is at most 4 mm (1500 HU), 300 HU inside. The answers
follow from the construction; widths are voxel-centre extents plus one voxel (module doc), so a
sphere of radius r in the tube has size (2r + 1) / 31.
"""

from functools import partial

import numpy as np
import pytest
from scipy import ndimage

from bonefe.sites.femur.anatomy import FemurFrame
from bonefe.materials import healthy_volume
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.sites.femur.scores import femur_site_points
from bonefe.sites.long_bone.scores import axial_involvement, mirels_recommendation, mirels_score
from bonefe.volume import BLASTIC, BONE, LYTIC, Volume

femur_mirels = partial(mirels_score, site_points=femur_site_points)
"""Mirels with the femur's site points (peritrochanteric 3, else lower limb 2)."""

FRAME = FemurFrame(head_centre=np.array([60.0, 0.0, 260.0]), head_radius=22.0,
                   shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=np.array([1.0, 0.0, 1.0]) / np.sqrt(2),
                   distal_centre=np.array([0.0, 0.0, 0.0]))
# peritrochanteric above z = 260 - 3 * 22 = 194 mm


def tube() -> Volume:
    ijk = np.indices((41, 41, 201)).astype(float)
    x, y = ijk[0] - 20.0, ijk[1] - 20.0
    labels = np.where(x**2 + y**2 <= 15.0**2, BONE, 0).astype(np.uint8)
    depth = ndimage.distance_transform_edt(labels > 0)
    hu = np.where(labels > 0, np.where(depth <= 4.0, 1500.0, 300.0), 40.0).astype(np.float32)
    affine = np.eye(4)
    affine[:3, 3] = (-20.0, -20.0, 0.0)
    return Volume(hu, labels, affine)


def with_lesion(volume: Volume, mask_fn, label=LYTIC) -> Volume:
    ijk = np.indices(volume.labels.shape).astype(float)
    x, y, z = ijk[0] - 20.0, ijk[1] - 20.0, ijk[2]
    mask = mask_fn(x, y, z) & (volume.labels > 0)
    labels, hu = volume.labels.copy(), volume.hu.copy()
    labels[mask] = label if np.isscalar(label) else label(x, y, z)[mask]
    hu[mask] = 40.0 if label == LYTIC else 1000.0
    return Volume(hu, labels, volume.affine)


def sphere(cx, cz, r):
    return lambda x, y, z: (x - cx) ** 2 + y**2 + (z - cz) ** 2 <= r**2


def test_lytic_diaphyseal_lesion_of_forty_percent_with_moderate_pain_scores_nine():
    """Site lower limb 2, pain moderate 2, lytic 3, size (12 + 1)/31 = 0.42 → 2: total 9, fixation."""
    score = femur_mirels(with_lesion(tube(), sphere(5.0, 100.0, 6.0)), FRAME, "moderate")
    assert (score.site, score.pain, score.lesion_type, score.size) == (2, 2, 3, 2)
    assert score.size_fraction == pytest.approx(13.0 / 31.0, abs=0.01)
    assert score.total_min == score.total_max == 9
    assert score.recommendation == "prophylactic fixation recommended"


def test_unknown_pain_gives_the_range_of_totals():
    score = femur_mirels(with_lesion(tube(), sphere(5.0, 100.0, 6.0)), FRAME)
    assert (score.pain, score.total_min, score.total_max) == (None, 8, 10)
    assert "borderline" in score.recommendation and "fixation" in score.recommendation


def test_small_blastic_lesion_with_mild_pain_scores_five():
    """Blastic 1, size 7/31 = 0.23 → 1, lower limb 2, mild pain 1: 5, radiotherapy (Mirels ≤ 7)."""
    score = femur_mirels(with_lesion(tube(), sphere(0.0, 100.0, 3.0), BLASTIC), FRAME, "mild")
    assert (score.site, score.lesion_type, score.size, score.total_min) == (2, 1, 1, 5)
    assert score.recommendation == "radiotherapy and observation"


def test_half_lytic_half_blastic_is_mixed_and_proximal_lesion_is_peritrochanteric():
    """Lytic for y < 0, blastic for y ≥ 0 → mixed (2); centroid at z = 196 > 194 mm → site 3."""
    volume = with_lesion(tube(), sphere(0.0, 196.0, 3.0),
                         lambda x, y, z: np.where(y < 0, LYTIC, BLASTIC))
    score = femur_mirels(volume, FRAME, "functional")
    assert (score.site, score.lesion_type) == (3, 2)


def test_mirels_recommendation_boundaries():
    """Mirels 1989: 9 and above fixation, 8 borderline, 7 and below radiotherapy."""
    assert mirels_recommendation(9, 9) == "prophylactic fixation recommended"
    assert mirels_recommendation(8, 8).startswith("borderline")
    assert mirels_recommendation(7, 7) == "radiotherapy and observation"


def test_axial_involvement_counts_the_cortex_the_lesion_replaces():
    """A lesion through the cortex (x ≥ 9 mm, |y| ≤ 2) over z = 80..119 replaces 40 mm of cortex
    (> 30 mm: high risk); one in the marrow (r ≤ 5 mm, depth ≥ 10 mm) replaces none."""
    through = with_lesion(tube(), lambda x, y, z: (x >= 9) & (np.abs(y) <= 2) & (z >= 80) & (z <= 119))
    result = axial_involvement(through, FRAME)
    assert result.length_mm == pytest.approx(40.0)
    assert result.high_risk
    inside = axial_involvement(with_lesion(tube(), sphere(0.0, 100.0, 5.0)), FRAME)
    assert inside.length_mm == 0.0 and not inside.high_risk


def test_no_lesion_gives_no_scores_and_an_unchanged_twin():
    volume = tube()
    assert femur_mirels(volume, FRAME) is None and axial_involvement(volume, FRAME) is None
    assert healthy_volume(volume) is volume


def test_twin_restores_cortex_and_trabecular_bone_where_the_lesion_cut_them():
    """The twin of a tube with a lesion through its wall is the intact tube: every lesion voxel
    gets label bone, and its HU is the intact HU except possibly on the voxel shell where the depth
    crosses the 4 mm cortex boundary (distance-transform depths are quantised: ≤ 5 % of voxels)."""
    intact = tube()
    lesion = lambda x, y, z: (x >= 3) & (np.abs(y) <= 4) & (np.abs(z - 100) <= 4)  # noqa: E731
    lesioned = with_lesion(intact, lesion)
    twin = healthy_volume(lesioned)
    assert np.array_equal(twin.labels, intact.labels)
    filled = lesioned.labels == LYTIC
    assert np.count_nonzero(twin.hu[filled] != intact.hu[filled]) <= 0.05 * np.count_nonzero(filled)
    assert np.array_equal(twin.hu[~filled], intact.hu[~filled])


# ---------------------------------------------------------------------------------------------
# Known answers: size boundaries, several lesions, the 30 mm rule, phantom femora
# ---------------------------------------------------------------------------------------------

def prism() -> Volume:
    """A square bone prism |x|, |y| ≤ 13 mm on 1 mm voxels (27 voxels wide), z = 0..200, 1500 HU. Along
    the in-plane direction 0° (the y axis for a z axis) its width is 26 + 1 = 27 mm, along θ it is
    26(|cos θ| + |sin θ|) + 1, so a lesion bar along y of n voxels at x = 0 has its largest ratio
    n / 27 exactly at 0°: (8 |cos θ| + 1) / (26 (|cos θ| + |sin θ|) + 1) falls away from 0°."""
    ijk = np.indices((27, 27, 201)).astype(float)
    labels = np.full(ijk.shape[1:], BONE, np.uint8)
    hu = np.full(labels.shape, 1500.0, np.float32)
    affine = np.eye(4)
    affine[:3, 3] = (-13.0, -13.0, 0.0)
    return Volume(hu, labels, affine)


def bar_lesion(volume: Volume, y_from: int, y_to: int, z_from: int = 98, z_to: int = 102) -> Volume:
    """Lytic voxels at x = 0, y_from ≤ y ≤ y_to, z_from ≤ z ≤ z_to (mm, voxel centres)."""
    labels, hu = volume.labels.copy(), volume.hu.copy()
    i = 13
    labels[i, 13 + y_from:13 + y_to + 1, z_from:z_to + 1] = LYTIC
    hu[i, 13 + y_from:13 + y_to + 1, z_from:z_to + 1] = 40.0
    return Volume(hu, labels, volume.affine)


@pytest.mark.parametrize("y_from, y_to, fraction, points", [
    (-4, 3, 8 / 27, 1),     # 8 of 27 mm: below 1/3
    (-4, 4, 9 / 27, 2),     # exactly 1/3: Mirels 1989 '1/3–2/3' → 2
    (-9, 8, 18 / 27, 2),    # exactly 2/3: still 2
    (-9, 9, 19 / 27, 3),    # above 2/3 → 3
])
def test_size_points_at_exactly_one_third_and_two_thirds(y_from, y_to, fraction, points):
    """Size fraction n/27 of a lesion bar in the prism, computed by hand (voxel extent + 1 voxel over the
    27 mm section); Mirels' bands: < 1/3 → 1, 1/3 to 2/3 (both inclusive) → 2, > 2/3 → 3."""
    score = femur_mirels(bar_lesion(prism(), y_from, y_to), FRAME, "mild")
    assert score.size_fraction == pytest.approx(fraction, rel=1e-12)
    assert score.size == points


def test_several_lesions_report_the_worst_not_the_largest():
    """A large blastic diaphyseal lesion (r = 6 mm: site 2, blastic 1, size 13/31 → 2: 5 with mild pain)
    and a smaller lytic peritrochanteric one (r = 4 mm at z = 196: site 3, lytic 3, size 9/31 → 1: 8):
    Mirels reports the worse (8), although it is the smaller. Axial involvement reports the longer: a
    cortical strip over z = 60..99 (40 mm) against 20 mm (z = 120..139)."""
    volume = with_lesion(tube(), sphere(5.0, 100.0, 6.0), BLASTIC)
    volume = with_lesion(volume, sphere(5.0, 196.0, 4.0))
    score = femur_mirels(volume, FRAME, "mild")
    assert (score.site, score.lesion_type, score.size, score.total_min) == (3, 3, 1, 8)
    strips = with_lesion(tube(), lambda x, y, z: (x >= 9) & (np.abs(y) <= 2) & (z >= 60) & (z <= 99))
    strips = with_lesion(strips, lambda x, y, z: (x >= 9) & (np.abs(y) <= 2) & (z >= 120) & (z <= 139))
    assert axial_involvement(strips, FRAME).length_mm == pytest.approx(40.0)


@pytest.mark.parametrize("last_z, length, high", [(109, 30.0, False), (110, 31.0, True)])
def test_axial_involvement_thirty_millimetre_boundary(last_z, length, high):
    """Van der Linden 2004: > 30 mm is high risk; exactly 30 mm (slabs z = 80..109) is not, 31 mm is."""
    result = axial_involvement(with_lesion(tube(), lambda x, y, z: (x >= 9) & (np.abs(y) <= 2) & (z >= 80)
                                           & (z <= last_z)), FRAME)
    assert result.length_mm == pytest.approx(length)
    assert result.high_risk is high
    assert result.threshold_mm == 30.0


@pytest.mark.parametrize("site, diameter, expected", [
    # neck: peritrochanteric 3, lytic 3, a 20 mm sphere in a neck whose supero-inferior width at mid-neck
    # is ≈ 2 × 17.5 mm (bonefe.sites.femur.phantom: r_si from 20 mm at the shaft to 0.68 × 22.5 at the head) → > 2/3: 3
    ("neck", 20.0, (3, 3, 3, 11)),
    # intertrochanteric (45 mm below the head centre, above 3 head radii = 67.5 mm): site 3; the metaphysis
    # is ≈ 42 mm wide (ellipsoid half-axis 21 mm), 20 mm is between 1/3 and 2/3: 2
    ("intertrochanteric", 20.0, (3, 3, 2, 10)),
    # subtrochanteric (80 mm below, distal to 67.5 mm): lower limb 2; shaft Ø 30 mm, a 12 mm lesion:
    # (12 + 1.5) / (30 + 1.5) ≈ 0.43 → 2
    ("subtrochanteric", 12.0, (2, 3, 2, 9)),
    # a 26 mm lesion in the 30 mm shaft: > 2/3 → 3
    ("subtrochanteric", 26.0, (2, 3, 3, 10)),
])
def test_mirels_on_phantom_femora(site, diameter, expected):
    """Mirels components (site, type, size) and the total with moderate pain (2) on the procedural phantom
    (1.5 mm voxels, lytic, full cortical involvement), each worked out from the phantom's documented
    geometry (comments); none of these lesions replaces 30 mm of cortex (the spheres are ≤ 26 mm)."""
    volume, frame = make_phantom(PhantomSpec(voxel_mm=1.5, lesion_site=site, lesion_diameter_mm=diameter,
                                             cortical_involvement=1.0))
    score = femur_mirels(volume, frame, "moderate")
    assert (score.site, score.lesion_type, score.size, score.total_min) == expected
    assert score.total_min == score.total_max
    if site == "subtrochanteric" and diameter == 12.0:
        assert score.size_fraction == pytest.approx(13.5 / 31.5, abs=0.03)
    axial = axial_involvement(volume, frame)
    assert 0 < axial.length_mm <= diameter and not axial.high_risk
