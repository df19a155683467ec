"""The synthetic femur measured like a scan: the numbers it shows must be the numbers it was asked for.

Measurements use only the returned Volume and FemurFrame plus independent tools (scipy's exact Euclidean
distance transform, linear interpolation along rays); references are the spec's parameters and the
documented constants of bonefe.sites.femur.phantom.
"""

import json

import numpy as np
import pytest
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.imaging import read_volume
from bonefe.sites.femur.phantom import SITES, PhantomSpec, make_phantom, write_phantom
from bonefe.volume import BACKGROUND, BLASTIC, BONE, LYTIC

# The phantom's documented cortex (bonefe.sites.femur.phantom docstrings), literal here so a changed constant fails:
CORTEX_DIAPHYSIS_MM = 5.0  # mid-shaft femoral cortex 4-7 mm
CORTEX_PROXIMAL_MM = 3.0   # head, neck and trochanters
# Femoral-neck cortex (mm) of women with an age (Poole et al. 2010, J Bone Miner Res 25:482, abstract): the
# superoposterior and inferoanterior quadrants, model predictions at 25 and 85 years.
NECK_SUPERIOR_MM = {25.0: 1.63, 85.0: 0.33}
NECK_INFERIOR_MM = {25.0: 3.9, 85.0: 3.3}


@pytest.fixture(scope="module")
def plain():
    """Default femur (1 mm voxels) without a lesion."""
    return make_phantom(PhantomSpec(lesion_site=None))


@pytest.fixture(scope="module")
def noisy():
    """Default femur with its neck lesion and 25 HU of Gaussian noise."""
    return make_phantom(PhantomSpec(noise_hu=25.0, seed=3))


def depth_mm(volume):
    """Depth (mm) of each voxel centre below the periosteal surface: exact EDT of the label envelope minus half
    a voxel (the surface lies midway between the last bone and first background voxel centres)."""
    h = volume.spacing[0]
    return ndimage.distance_transform_edt(volume.labels != BACKGROUND, sampling=h) - 0.5 * h


def world_grid(volume):
    """World coordinates (x, y, z arrays of the volume's shape) of every voxel centre (axis-aligned phantom)."""
    axes = [volume.affine[a, 3] + volume.affine[a, a] * np.arange(n) for a, n in enumerate(volume.hu.shape)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def half_max_thickness(volume, start, direction, length=40.0):
    """Cortical thickness (mm) along a ray: length of the run around the HU peak above half of (peak + the HU
    at the ray's start) — the half-maximum method of clinical QCT; HU sampled every 0.05 mm, linearly."""
    steps = np.arange(0.0, length, 0.05)
    points = np.asarray(start) + steps[:, None] * np.asarray(direction)
    profile = ndimage.map_coordinates(volume.hu, volume.to_index(points).T, order=1)
    above = profile > 0.5 * (profile.max() + profile[0])
    runs, _ = ndimage.label(above)
    return np.count_nonzero(runs == runs[np.argmax(profile)]) * 0.05


def test_head_diameter_from_the_label_map(plain):
    """Bone voxels on the anterior–posterior line through the true head centre span the head diameter (45 mm);
    tolerance ±2 voxels (each end of the run is known to ±1 voxel)."""
    volume, frame = plain
    i, j, k = np.round(volume.to_index(frame.head_centre[None])[0]).astype(int)
    line = volume.labels[i, :, k] == BONE
    runs, _ = ndimage.label(line)
    assert np.count_nonzero(runs == runs[j]) * volume.spacing[1] == pytest.approx(45.0, abs=2.0)
    assert frame.head_radius == 22.5


@pytest.mark.parametrize("angle, version", [(125.0, 10.0), (135.0, 20.0)])
def test_neck_shaft_angle_and_anteversion_of_the_frame(angle, version):
    """Neck–shaft angle = angle between the neck axis and the distally pointing shaft axis; anteversion = angle of
    the neck's horizontal projection from the medial direction (−x for a left femur) towards anterior (−y)."""
    _, frame = make_phantom(PhantomSpec(lesion_site=None, voxel_mm=3.0, neck_shaft_angle_deg=angle,
                                        anteversion_deg=version))
    assert np.degrees(np.arccos(np.dot(frame.neck_axis, -frame.shaft_axis))) == pytest.approx(angle, abs=1e-9)
    assert np.degrees(np.arctan2(-frame.neck_axis[1], -frame.neck_axis[0])) == pytest.approx(version, abs=1e-9)


def test_cortical_thickness_along_rays(plain):
    """Half-maximum thickness along the surface normal: diaphysis (lateral ray from the shaft axis, 80 mm above the
    cut) = CORTEX_DIAPHYSIS_MM; neck (superior and inferior rays from the neck axis 23 mm from the head centre)
    = CORTEX_PROXIMAL_MM. Tolerance 1 voxel: the cortex is binary on the voxel grid."""
    volume, frame = plain
    shaft_point = frame.distal_centre + 80.0 * frame.shaft_axis
    lateral = np.array([1.0, 0.0, 0.0])
    assert half_max_thickness(volume, shaft_point, lateral) == pytest.approx(CORTEX_DIAPHYSIS_MM, abs=1.0)
    neck_point = frame.head_centre - 23.0 * frame.neck_axis
    up = frame.shaft_axis - np.dot(frame.shaft_axis, frame.neck_axis) * frame.neck_axis
    up /= np.linalg.norm(up)
    for direction in (up, -up):
        assert half_max_thickness(volume, neck_point, direction) == pytest.approx(CORTEX_PROXIMAL_MM, abs=1.0)


@pytest.mark.parametrize("age", [25.0, 85.0])
def test_neck_cortex_thins_superiorly_with_age(age):
    """With an age, the mid-neck cortex (superior and inferior rays from the neck axis 23 mm from the head
    centre, half-maximum thickness, 0.5 mm voxels) follows Poole et al. 2010, linear in age between its 25- and
    85-year predictions, while the head keeps CORTEX_PROXIMAL_MM. Tolerance 0.6 mm: one voxel plus the
    half-maximum of a partial-volume voxel."""
    volume, frame = make_phantom(PhantomSpec(lesion_site=None, voxel_mm=0.5, age_years=age))
    f = (age - 25.0) / 60.0
    superior, inferior = (table[25.0] + f * (table[85.0] - table[25.0]) for table in (NECK_SUPERIOR_MM,
                                                                                     NECK_INFERIOR_MM))
    neck_point = frame.head_centre - 23.0 * frame.neck_axis
    up = frame.shaft_axis - np.dot(frame.shaft_axis, frame.neck_axis) * frame.neck_axis
    up /= np.linalg.norm(up)
    assert half_max_thickness(volume, neck_point, up) == pytest.approx(superior, abs=0.6)
    assert half_max_thickness(volume, neck_point, -up) == pytest.approx(inferior, abs=0.6)
    assert half_max_thickness(volume, frame.head_centre, frame.shaft_axis) == pytest.approx(CORTEX_PROXIMAL_MM,
                                                                                           abs=0.6)


def test_age_through_the_command_line(tmp_path, capsys):
    """`bonefe phantom --age 75` writes the aged femur and states its neck cortex (Poole et al. 2010 at 75 years:
    1.63 − 1.30 × 50/60 = 0.547 mm superior, 3.9 − 0.6 × 50/60 = 3.4 mm inferior); an age outside 25–85, or with
    a real surface, is refused with one line and exit 2."""
    from bonefe.cli import main

    assert main(["phantom", "--out", str(tmp_path / "aged"), "--age", "75", "--lesion", "none", "--voxel", "3"]) == 0
    thickness = json.loads((tmp_path / "aged" / "phantom.json").read_text(encoding="utf-8"))["cortical_thickness_mm"]
    assert thickness["neck_superior"] == pytest.approx(1.63 - 1.30 * 50 / 60, abs=1e-12)
    assert thickness["neck_inferior"] == pytest.approx(3.9 - 0.6 * 50 / 60, abs=1e-12)
    assert main(["phantom", "--out", str(tmp_path / "old"), "--age", "95"]) == 2
    assert main(["phantom", "--out", str(tmp_path / "real"), "--age", "70", "--surface", "femur.stl"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[-2:] == ["bonefe: error: phantom: age_years must be between 25 and 85 (got 95.0)",
                           "bonefe: error: --age shapes the procedural femur's neck cortex; leave it out with --surface"]
    assert not (tmp_path / "old").exists() and not (tmp_path / "real").exists()


def test_hu_of_each_tissue(noisy):
    """Mean HU per tissue within the ranges asked (cortex 1200–1800, trabecular 150–400, marrow 30–60, soft
    tissue 0–60, lytic lesion 20–60). Tissues found geometrically: cortex = bone at depth < 1.5 mm (thinner than
    any cortex); trabecular = bone > 5 mm deep in the head sphere; marrow = within 5 mm of the shaft axis, 20–60 mm
    above the cut; soft tissue = background > 3 mm from bone."""
    volume, frame = noisy
    depth = depth_mm(volume)
    x, y, z = world_grid(volume)
    bone = volume.labels == BONE
    head = (x - frame.head_centre[0]) ** 2 + (y - frame.head_centre[1]) ** 2 + (z - frame.head_centre[2]) ** 2
    axis = (x - frame.distal_centre[0]) ** 2 + (y - frame.distal_centre[1]) ** 2
    soft = ndimage.distance_transform_edt(volume.labels == BACKGROUND, sampling=volume.spacing) > 3.0
    means = {
        "cortex": volume.hu[bone & (depth < 1.5)].mean(),
        "trabecular": volume.hu[bone & (depth > 5.0) & (head < frame.head_radius ** 2)].mean(),
        "marrow": volume.hu[bone & (axis < 25.0) & (z > 20.0) & (z < 60.0)].mean(),
        "soft": volume.hu[soft].mean(),
        "lytic": volume.hu[volume.labels == LYTIC].mean(),
    }
    ranges = {"cortex": (1200, 1800), "trabecular": (150, 400), "marrow": (30, 60), "soft": (0, 60),
              "lytic": (20, 60)}
    for tissue, (low, high) in ranges.items():
        assert low <= means[tissue] <= high, (tissue, means[tissue])


def test_noise_std_in_soft_tissue(noisy):
    """Sample std of the uniform soft tissue = noise_hu (25 HU); tolerance 5 standard errors of a Gaussian
    sample std, σ/√(2N)."""
    volume, _ = noisy
    soft = volume.hu[ndimage.distance_transform_edt(volume.labels == BACKGROUND) > 3.0]
    assert soft.std() == pytest.approx(25.0, abs=5 * 25.0 / np.sqrt(2 * soft.size))


def test_no_lesion_means_no_lesion_labels(plain):
    volume, _ = plain
    assert not np.isin(volume.labels, [LYTIC, BLASTIC]).any()


@pytest.mark.parametrize("site", SITES)
def test_lesion_volume_is_the_sphere_volume(site):
    """A 20 mm lesion with c = 0.5 lies fully inside the envelope, so its voxel count × voxel volume ≈ πd³/6.
    Tolerance 3 %: the lattice-point count of a ball of radius R voxels deviates from its volume by O(R^1.5)
    (Gauss sphere problem), ≈ 32 voxels of 4189 at R = 10; 3 % allows a constant of 4."""
    volume, _ = make_phantom(PhantomSpec(lesion_site=site, lesion_diameter_mm=20.0))
    measured = np.count_nonzero(volume.labels == LYTIC) * volume.voxel_volume
    assert measured == pytest.approx(np.pi * 20.0 ** 3 / 6, rel=0.03)


@pytest.mark.parametrize("site, thickness", [("neck", CORTEX_PROXIMAL_MM), ("diaphysis", CORTEX_DIAPHYSIS_MM)])
@pytest.mark.parametrize("involvement", [0.0, 0.5, 1.0])
def test_cortical_involvement_sets_lesion_depth(site, thickness, involvement):
    """Documented placement: the lesion's shallowest point lies t·(1 − c) below the periosteal surface, t the
    local cortical thickness (tolerance 1 voxel: depth and sphere are both voxelised). c = 0 leaves the cortex
    intact; c = 1 breaches it: lesion voxels then face the soft tissue directly (full-thickness defect)."""
    volume, _ = make_phantom(PhantomSpec(lesion_site=site, cortical_involvement=involvement))
    lesion = volume.labels == LYTIC
    assert depth_mm(volume)[lesion].min() == pytest.approx(thickness * (1 - involvement), abs=1.0)
    breach = ndimage.binary_dilation(volume.labels == BACKGROUND) & lesion
    assert breach.any() == (involvement == 1.0)


def test_blastic_lesion_is_dense_and_labelled_3():
    volume, _ = make_phantom(PhantomSpec(lesion_site="subtrochanteric", lesion_type="blastic", voxel_mm=2.0))
    blastic = volume.labels == BLASTIC
    assert blastic.any() and not (volume.labels == LYTIC).any()
    assert 900 <= volume.hu[blastic].mean() <= 1200


def test_right_femur_is_the_mirror_of_the_left():
    """Mirror symmetry through the sagittal plane x = 0: every left voxel centre (x, y, z) maps onto a right voxel
    centre (−x, y, z) with the same label and HU (noise included, same seed); landmarks mirror likewise."""
    spec = dict(voxel_mm=2.0, noise_hu=10.0, lesion_site="neck")
    left, left_frame = make_phantom(PhantomSpec(side="left", **spec))
    right, right_frame = make_phantom(PhantomSpec(side="right", **spec))
    mirror = np.array([-1.0, 1.0, 1.0])
    ijk = np.argwhere(np.ones(left.hu.shape, bool))
    mapped = right.to_index(left.to_world(ijk) * mirror)
    np.testing.assert_allclose(mapped, np.round(mapped), atol=1e-9)
    mapped = np.round(mapped).astype(int)
    np.testing.assert_array_equal(right.labels[tuple(mapped.T)], left.labels[tuple(ijk.T)])
    np.testing.assert_array_equal(right.hu[tuple(mapped.T)], left.hu[tuple(ijk.T)])
    np.testing.assert_allclose(right_frame.head_centre, mirror * left_frame.head_centre)
    np.testing.assert_allclose(right_frame.neck_axis, mirror * left_frame.neck_axis)
    np.testing.assert_allclose(right_frame.distal_centre, mirror * left_frame.distal_centre)
    assert left_frame.head_centre[0] > 0 > right_frame.head_centre[0]  # LPS: patient's left is +x


def test_distal_cut_touches_the_volume_boundary():
    """The bone is cut flat at the first slice (k = 0) like a real scan, with ≥ 10 mm of soft tissue elsewhere."""
    volume, frame = make_phantom(PhantomSpec(lesion_site=None, voxel_mm=2.0))
    bone = volume.labels != BACKGROUND
    assert bone[:, :, 0].any()
    margin = int(np.ceil(10.0 / volume.spacing[0]))
    assert not bone[:margin].any() and not bone[-margin:].any()
    assert not bone[:, :margin].any() and not bone[:, -margin:].any() and not bone[:, :, -margin:].any()
    assert volume.to_world(np.zeros((1, 3)))[0, 2] == pytest.approx(frame.distal_centre[2])


@pytest.mark.parametrize("fmt", ["nii.gz", "mha", "nrrd"])
def test_write_phantom_round_trip(tmp_path, fmt):
    """write_phantom → read_volume gives back make_phantom's volume (affine to 1e-4 mm: NIfTI stores float32)."""
    spec = PhantomSpec(voxel_mm=2.5, noise_hu=5.0, lesion_type="blastic")
    paths = write_phantom(spec, tmp_path, fmt=fmt)
    volume = read_volume(paths["ct"], paths["labels"])
    expected, frame = make_phantom(spec)
    np.testing.assert_array_equal(volume.labels, expected.labels)
    np.testing.assert_array_equal(volume.hu, expected.hu)
    np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-4)
    description = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert description["spec"]["lesion_type"] == "blastic"
    np.testing.assert_allclose(description["frame"]["head_centre"], frame.head_centre)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["phantom.json", f"ct.{fmt}", f"labels.{fmt}"])


@pytest.mark.parametrize("field, value", [("lesion_diameter_mm", 0.0), ("cortical_involvement", 1.5),
                                          ("lesion_site", "knee"), ("side", "middle"), ("voxel_mm", -1.0)])
def test_invalid_spec_names_the_field(field, value):
    with pytest.raises(BonefeError, match=field):
        PhantomSpec(**{field: value})


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(BonefeError, match="format must be one of nii.gz, mha, nrrd"):
        write_phantom(PhantomSpec(voxel_mm=3.0), tmp_path, fmt="png")
