"""Verification of the femur frame and the boundary patches (bonefe.sites.femur.anatomy).

References: the exact landmarks of shapes built analytically (a sphere, cylinders and a plane cut
on an oblique, anisotropic voxel grid) and the true landmarks the phantom returns
(bonefe.sites.femur.phantom.make_phantom); patch areas integrated by dolfinx (∫ ds) against the label map.
"""

import bonefe  # noqa: F401  (before dolfinx)
import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx.mesh import compute_midpoints
from mpi4py import MPI

from bonefe.sites.femur.anatomy import (
    _slabs,
    CAP_HALF_ANGLE_DEG,
    HEAD,
    SUPPORT,
    TROCHANTER,
    FemurFrame,
    boundary_tags,
    femur_frame,
    neck_shaft_angle,
)
from bonefe.errors import BonefeError
from bonefe.meshing import mesh_bone
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.volume import BONE, Volume

COMM = MPI.COMM_WORLD


def angle_deg(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def rotation(axis, degrees) -> np.ndarray:
    """Rodrigues rotation matrix about a unit axis."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K


# ---------------------------------------------------------------------------------------------
# An analytic femur: shaft cylinder cut by a plane, neck cylinder, head sphere
# ---------------------------------------------------------------------------------------------

SHAFT = np.array([0.05, -0.08, 1.0]) / np.linalg.norm([0.05, -0.08, 1.0])
DISTAL = np.array([20.0, -30.0, 40.0])
HEAD_RADIUS, NECK_LENGTH, NSA, ANTEVERSION = 21.0, 55.0, 125.0, 10.0


def analytic_landmarks():
    """True head centre and neck axis of the analytic left femur (medial ≈ −x, anterior ≈ −y)."""
    medial = np.array([-1.0, 0.0, 0.0]) + SHAFT[0] * SHAFT  # −x made normal to the shaft
    medial /= np.linalg.norm(medial)
    anterior = np.cross(SHAFT, medial)
    tilt, version = np.radians(180.0 - NSA), np.radians(ANTEVERSION)
    neck = np.cos(tilt) * SHAFT + np.sin(tilt) * (np.cos(version) * medial + np.sin(version) * anterior)
    base = DISTAL + 140.0 * SHAFT
    return base + NECK_LENGTH * neck, neck, base


def analytic_volume() -> Volume:
    """Labels of the analytic femur on a grid rotated 8° and 20° from the world axes with
    0.9 × 0.9 × 1.1 mm voxels: shaft radius 14 mm from the distal plane to 160 mm, neck radius
    13 mm from the shaft axis to the head centre, head radius 21 mm."""
    head, neck, base = analytic_landmarks()
    direction = rotation([0, 0, 1], 20.0) @ rotation([1, 0, 0], 8.0)
    linear = direction @ np.diag([0.9, 0.9, 1.1])
    lo = np.minimum(DISTAL - 30.0, head - 30.0)
    hi = np.maximum(DISTAL + 165.0 * SHAFT + 30.0, head + 30.0)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    index = np.linalg.solve(linear, (corners - lo).T).T
    first, last = np.floor(index.min(axis=0)), np.ceil(index.max(axis=0))
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = linear, lo + linear @ first
    ijk = np.stack(np.meshgrid(*[np.arange(int(n)) for n in last - first + 1], indexing="ij"), axis=-1)
    x = ijk @ linear.T + affine[:3, 3]

    def in_cylinder(start, axis, length, radius):
        q = x - start
        t = q @ axis
        return (t >= 0) & (t <= length) & (np.linalg.norm(q - t[..., None] * axis, axis=-1) <= radius)

    inside = in_cylinder(DISTAL, SHAFT, 160.0, 14.0) | in_cylinder(base, neck, NECK_LENGTH, 13.0)
    inside |= np.linalg.norm(x - head, axis=-1) <= HEAD_RADIUS
    labels = inside.astype(np.uint8) * BONE
    return Volume(np.where(inside, 1000.0, 0.0).astype(np.float32), labels, affine)


def test_analytic_femur_landmarks():
    """Exact landmarks of the analytic femur on an oblique anisotropic grid. Tolerances from the
    voxel size (≤ 1.1 mm): head centre 0.5 mm and radius 0.3 mm (a fit over thousands of boundary
    faces averages the staircase), shaft axis 0.5°, neck axis and neck–shaft angle 2°, distal
    centre 1.0 mm (it is put on the voxel faces, half a voxel, ≤ 0.55 mm, beyond the last centres)."""
    head, neck, _ = analytic_landmarks()
    frame = femur_frame(analytic_volume(), "left")
    assert np.linalg.norm(frame.head_centre - head) < 0.5
    assert abs(frame.head_radius - HEAD_RADIUS) < 0.3
    assert angle_deg(frame.shaft_axis, SHAFT) < 0.5
    assert angle_deg(frame.neck_axis, neck) < 2.0
    assert abs(neck_shaft_angle(frame) - NSA) < 2.0
    assert np.linalg.norm(frame.distal_centre - DISTAL) < 1.0


KNEE_BOX_CENTRE = np.array([4.0, 7.0, 25.0])
KNEE_BOX_HALF = np.array([40.0, 20.0, 15.0])


def whole_femur_volume() -> tuple[Volume, np.ndarray]:
    """An analytic whole femur on a 1 mm grid: shaft cylinder (radius 14 mm) on the z axis from z = 40 to
    300 mm, the neck and head of analytic_landmarks' shape from (0, 0, 300), and the condyles as an
    80 × 40 × 30 mm box (z 10–40 mm) centred off the shaft axis at KNEE_BOX_CENTRE; also the true head centre."""
    tilt, version = np.radians(180.0 - NSA), np.radians(ANTEVERSION)
    neck = np.array([-np.sin(tilt) * np.cos(version), -np.sin(tilt) * np.sin(version), np.cos(tilt)])
    base = np.array([0.0, 0.0, 300.0])
    head = base + NECK_LENGTH * neck
    x, y, z = np.meshgrid(np.arange(-75.0, 61.0), np.arange(-40.0, 41.0), np.arange(0.0, 380.0),
                          indexing="ij", sparse=True)
    inside = (x**2 + y**2 <= 14.0**2) & (z >= 40.0) & (z <= 300.0)
    q = [x - base[0], y - base[1], z - base[2]]
    t = q[0] * neck[0] + q[1] * neck[1] + q[2] * neck[2]
    radial2 = sum((q[a] - t * neck[a]) ** 2 for a in range(3))
    inside = inside | ((t >= 0) & (t <= NECK_LENGTH) & (radial2 <= 13.0**2))
    inside = inside | ((x - head[0]) ** 2 + (y - head[1]) ** 2 + (z - head[2]) ** 2 <= HEAD_RADIUS**2)
    box = [np.abs(c - KNEE_BOX_CENTRE[a]) <= KNEE_BOX_HALF[a] for a, c in enumerate((x, y, z))]
    inside = inside | (box[0] & box[1] & box[2])
    affine = np.eye(4)
    affine[:3, 3] = (-75.0, -40.0, 0.0)
    return Volume(np.where(inside, 1000.0, 0.0).astype(np.float32), inside.astype(np.uint8) * BONE, affine), head


def test_knee_centre_of_an_analytic_whole_femur():
    """Knee centre = the centre of the condylar box (documented definition: centre of the bounding box of the
    bone within 30 mm of its most distal point, 15 mm above it; the box is exactly that bone and is centrally
    symmetric, so its bounding box in any rotated frame has the same centre), within 0.5 mm (half a voxel);
    the superior axis becomes the mechanical axis knee → head; the distal centre is the shaft axis (x = y = 0)
    at the distal plane (outer face of the last voxels, z = 9.5 mm); the neck–shaft angle still uses the shaft."""
    volume, head = whole_femur_volume()
    frame = femur_frame(volume, "left")
    assert frame.knee_centre is not None
    assert np.linalg.norm(frame.knee_centre - KNEE_BOX_CENTRE) < 0.5
    mechanical = (head - KNEE_BOX_CENTRE) / np.linalg.norm(head - KNEE_BOX_CENTRE)
    assert angle_deg(frame.superior(), mechanical) < 0.3
    np.testing.assert_allclose(frame.basis()[:, 2], frame.superior())
    assert np.linalg.norm(frame.distal_centre - [0.0, 0.0, 9.5]) < 0.5
    assert abs(neck_shaft_angle(frame) - NSA) < 2.0
    given = femur_frame(volume, "left", {"knee_centre": (1.0, 2.0, 3.0)})
    np.testing.assert_array_equal(given.knee_centre, [1.0, 2.0, 3.0])


def test_proximal_femur_has_no_knee(phantom_frame):
    """The phantom stops at a shaft cut: no condylar flare, no knee centre, superior = shaft axis."""
    assert phantom_frame.knee_centre is None
    np.testing.assert_allclose(phantom_frame.superior(), phantom_frame.shaft_axis)


def test_neck_shaft_angle_of_a_known_frame():
    """Neck 55° from the proximal shaft axis → neck–shaft angle 125° (definition)."""
    t = np.radians(55.0)
    frame = FemurFrame(np.zeros(3), 20.0, np.array([0, 0, 2.0]), np.array([-np.sin(t), 0, np.cos(t)]), np.zeros(3))
    assert neck_shaft_angle(frame) == pytest.approx(125.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# The phantom
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phantom():
    return make_phantom(PhantomSpec())


@pytest.fixture(scope="module")
def phantom_frame(phantom):
    return femur_frame(phantom[0], "left")


def test_phantom_landmarks(phantom, phantom_frame):
    """Against make_phantom's true landmarks: head centre 2 mm, radius 1 mm, shaft axis 3°,
    neck–shaft angle 5° of the 125° built in: acceptance limits well inside the scatter of manual
    landmarking; the voxels are 1 mm."""
    _, true = phantom
    frame = phantom_frame
    assert np.linalg.norm(frame.head_centre - true.head_centre) < 2.0
    assert abs(frame.head_radius - true.head_radius) < 1.0
    assert angle_deg(frame.shaft_axis, true.shaft_axis) < 3.0
    assert abs(neck_shaft_angle(frame) - 125.0) < 5.0
    assert angle_deg(frame.neck_axis, true.neck_axis) < 5.0
    assert np.linalg.norm(frame.distal_centre - true.distal_centre) <= 1.0  # true: voxel centre; ours: its face


def test_right_femur_gives_the_mirrored_frame(phantom_frame):
    """The right phantom is the exact mirror image x → −x of the left one, so its frame is the
    mirrored frame and its basis the mirrored basis (medial, anterior, superior mean the same)."""
    volume, _ = make_phantom(PhantomSpec(side="right"))
    right, left = femur_frame(volume, "right"), phantom_frame
    mirror = np.diag([-1.0, 1.0, 1.0])
    assert right.side == "right"
    assert np.allclose(right.head_centre, mirror @ left.head_centre, atol=1e-6)
    assert right.head_radius == pytest.approx(left.head_radius, abs=1e-6)
    assert np.allclose(right.neck_axis, mirror @ left.neck_axis, atol=1e-6)
    assert np.allclose(right.distal_centre, mirror @ left.distal_centre, atol=1e-6)
    assert np.allclose(right.basis(), mirror @ left.basis(), atol=1e-6)


def test_overrides_are_honoured(phantom):
    volume, _ = phantom
    given = {"head_centre": (91.0, -7.0, 198.0), "head_radius": 23.0, "shaft_axis": (0.0, 0.0, 2.0),
             "neck_axis": (-0.8, 0.0, 0.6), "distal_centre": (130.0, 0.0, 1.0)}
    frame = femur_frame(volume, "left", given)
    assert np.array_equal(frame.head_centre, given["head_centre"])
    assert frame.head_radius == 23.0
    assert np.allclose(frame.shaft_axis, [0, 0, 1]) and np.allclose(frame.neck_axis, [-0.8, 0, 0.6])
    assert np.array_equal(frame.distal_centre, given["distal_centre"])
    partial = femur_frame(volume, "left", {"head_centre": given["head_centre"]})
    assert np.array_equal(partial.head_centre, given["head_centre"])
    assert abs(partial.head_radius - 22.5) < 1.0  # the radius is still found


@pytest.mark.parametrize("overrides, message", [
    ({"greater_trochanter": (0, 0, 0)}, "unknown landmark"),
    ({"shaft_axis": (0, 0, 0)}, "non-zero"),
    ({"head_radius": -3.0}, "positive"),
])
def test_bad_overrides_are_user_errors(phantom, overrides, message):
    with pytest.raises(BonefeError, match=message):
        femur_frame(phantom[0], "left", overrides)


def test_wrong_side_is_a_user_error(phantom):
    with pytest.raises(BonefeError, match="patient.side"):
        femur_frame(phantom[0], "right")


# ---------------------------------------------------------------------------------------------
# Boundary patches on the meshed phantom
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def meshed(phantom, phantom_frame):
    mesh = mesh_bone(phantom[0], 4.0, COMM).mesh
    return mesh, boundary_tags(mesh, phantom_frame)


def patch_area(mesh, tags, tag) -> float:
    """∫ ds over the facets carrying `tag` (dolfinx assembly, summed over ranks), mm²."""
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
    return COMM.allreduce(fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * ds(tag))), op=MPI.SUM)


def gathered_midpoints(mesh, tags, tag) -> np.ndarray:
    return np.concatenate(COMM.allgather(compute_midpoints(mesh, 2, tags.find(tag))))


def test_support_patch_is_the_distal_cut(phantom, meshed):
    """Area of the support patch vs the distal cross-section of the label map (bone voxels of the
    last slice × pixel area). Tolerance 5 %: the smoothed surface rounds the rim of the cut over
    about a voxel, and the mesh follows the segmentation to meshing's volume tolerance."""
    volume, true = phantom
    mesh, tags = meshed
    section = np.count_nonzero(volume.labels[:, :, 0]) * volume.spacing[0] * volume.spacing[1]
    assert patch_area(mesh, tags, SUPPORT) == pytest.approx(section, rel=0.05)
    heights = gathered_midpoints(mesh, tags, SUPPORT)[:, 2] - true.distal_centre[2]
    assert heights.max() < 2.0  # all at the distal end


def test_head_patch_lies_on_the_true_head_sphere(phantom, phantom_frame, meshed):
    """Head patch midpoints on the phantom's true head sphere within 1 mm (half a voxel of
    segmentation staircase, smoothing and the chord sagitta a²/8R ≈ 0.1 mm of 4 mm facets), and
    about the default cap axis within the cap half-angle."""
    _, true = phantom
    mesh, tags = meshed
    points = gathered_midpoints(mesh, tags, HEAD)
    assert len(points) > 0
    distance = np.linalg.norm(points - true.head_centre, axis=1)
    assert np.abs(distance - true.head_radius).max() < 1.0
    cap = -(phantom_frame.basis() @ np.array([-54.0, -32.8, -229.2]))  # opposite the walking force
    angles = [angle_deg(p - true.head_centre, cap) for p in points]
    assert max(angles) <= CAP_HALF_ANGLE_DEG + 0.5  # the centre found is 0.1 mm from the true one


def test_trochanter_patch_is_on_the_lateral_greater_trochanter(phantom, meshed):
    """The phantom's greater trochanter is an ellipsoid centred 13 mm lateral of the shaft axis and
    17.5 mm below the head centre, semi-axes 12 (lateral) and 20 (vertical) mm (bonefe.sites.femur.phantom):
    the patch must lie on its lateral half, within its vertical extent."""
    _, true = phantom
    mesh, tags = meshed
    points = gathered_midpoints(mesh, tags, TROCHANTER)
    assert len(points) > 0
    lateral = points[:, 0] - true.distal_centre[0]  # left femur: lateral is +x, shaft axis at x of the cut centre
    # the 15 mm patch reaches the ellipsoid's mid-plane by construction; facet midpoints of the 4 mm
    # mesh (cortex-refined) sit up to ~1 mm off the smooth surface
    assert lateral.min() > 13.0 - 1.0
    assert np.abs(points[:, 2] - (true.head_centre[2] - 17.5)).max() < 20.0
    assert patch_area(mesh, tags, TROCHANTER) > 0.5 * np.pi * 15.0**2  # most of a 15 mm radius disc


def test_empty_patch_is_a_user_error(phantom_frame, meshed):
    mesh, _ = meshed
    frame = FemurFrame(phantom_frame.head_centre + np.array([0.0, 0.0, 300.0]), phantom_frame.head_radius,
                       phantom_frame.shaft_axis, phantom_frame.neck_axis, phantom_frame.distal_centre)
    with pytest.raises(BonefeError, match="head contact patch is empty"):
        boundary_tags(mesh, frame)


def test_slabs_keep_one_voxel_layer_each_at_any_spacing():
    """Layers at z = k·0.7 mm (a grid axis): every slab holds exactly one layer's voxels. Binning by
    floor put 3·0.7/0.7 = 2.999… into slab 2, doubling some slabs and faking a knee flare on the
    0.7 mm phantom (regression)."""
    layers, per_layer = 300, 7
    z = np.repeat(np.arange(layers) * 0.7, per_layer)
    points = np.column_stack([np.zeros_like(z), np.zeros_like(z), z])
    _, centres, counts = _slabs(points, z, 0.7)
    assert np.all(counts == per_layer) and len(counts) == layers
    assert np.allclose(centres, np.arange(layers) * 0.7)
