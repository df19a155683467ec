"""Mirels score, axial cortical involvement and the lesion-free twin on hand-built label maps.

The bone is a straight tube along z on 1 mm voxels: radius 15 mm, cortex where the depth below the
periosteal surface (distance transform) is at most 4 mm (1500 HU), 300 HU inside. The answers
follow from the construction; widths are voxel-centre extents plus one voxel (module doc), so a
sphere of radius r in the tube has size (2r + 1) / 31.
"""

import numpy as np
import pytest
from scipy import ndimage

from bonefe.anatomy import FemurFrame
from bonefe.materials import healthy_volume
from bonefe.scores import axial_involvement, mirels_recommendation, mirels_score
from bonefe.volume import BLASTIC, BONE, LYTIC, Volume

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
    score = mirels_score(with_lesion(tube(), sphere(5.0, 100.0, 6.0)), FRAME, "moderate")
    assert (score.site, score.pain, score.lesion_type, score.size) == (2, 2, 3, 2)
    assert score.size_fraction == pytest.approx(13.0 / 31.0, abs=0.01)
    assert score.total_min == score.total_max == 9
    assert score.recommendation == "prophylactic fixation recommended"


def test_unknown_pain_gives_the_range_of_totals():
    score = mirels_score(with_lesion(tube(), sphere(5.0, 100.0, 6.0)), FRAME)
    assert (score.pain, score.total_min, score.total_max) == (None, 8, 10)
    assert "borderline" in score.recommendation and "fixation" in score.recommendation


def test_small_blastic_lesion_with_mild_pain_scores_five():
    """Blastic 1, size 7/31 = 0.23 → 1, lower limb 2, mild pain 1: 5, radiotherapy (Mirels ≤ 7)."""
    score = mirels_score(with_lesion(tube(), sphere(0.0, 100.0, 3.0), BLASTIC), FRAME, "mild")
    assert (score.site, score.lesion_type, score.size, score.total_min) == (2, 1, 1, 5)
    assert score.recommendation == "radiotherapy and observation"


def test_half_lytic_half_blastic_is_mixed_and_proximal_lesion_is_peritrochanteric():
    """Lytic for y < 0, blastic for y ≥ 0 → mixed (2); centroid at z = 196 > 194 mm → site 3."""
    volume = with_lesion(tube(), sphere(0.0, 196.0, 3.0),
                         lambda x, y, z: np.where(y < 0, LYTIC, BLASTIC))
    score = mirels_score(volume, FRAME, "functional")
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
    assert mirels_score(volume, FRAME) is None and axial_involvement(volume, FRAME) is None
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
