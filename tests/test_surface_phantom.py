"""Surface → CT-like volume (bonefe.sites.femur.surface_phantom) and lesion placement (bonefe.sites.femur.lesions), without ../shared.

References: exact volumes of spheres and spherical shells, the documented cortical thicknesses and HU of
bonefe.sites.femur.phantom, the true landmarks of the procedural phantom whose surface is fed back in, and the
documented placement rule C = P + n·(t·(1 − c) + r) on an analytic tube.
"""

import bonefe  # noqa: F401  (before dolfinx)
import numpy as np
import pytest
import pyvista as pv

from bonefe.sites.femur.anatomy import FemurFrame
from bonefe.errors import BonefeError
from bonefe.sites.femur.lesions import place_lesion, site_ray
from bonefe.sites.long_bone.lesions import VoxelBone, in_ball
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.sites.femur.surface_phantom import (SurfaceSpec, cortex_between, depth_below,
                                    make_surface_phantom, read_surface, voxelise)
from bonefe.volume import LYTIC

# Documented values of the modules under test (their docstrings), literal here so a changed constant fails:
NECK_POSITION_RADII = 1.25        # bonefe.sites.femur.lesions: mid-neck, 1.25 head radii from the head centre
CORTEX_DIAPHYSIS_MM = 5.0         # bonefe.sites.femur.phantom: diaphyseal cortex
HU_CORTEX_DIAPHYSIS, HU_MARROW = 1700.0, 45.0
TRABECULAR_HU_RANGE = (150.0, 380.0)
MIN_CORTEX_MM = 1.0               # bonefe.sites.femur.surface_phantom: thinnest cortex kept


def sphere_file(tmp_path, radius, centre=(0.0, 0.0, 0.0), name="sphere.stl"):
    """A finely tessellated sphere written as STL (its polygon volume is within 0.1 % of 4/3 π r³)."""
    path = tmp_path / name
    pv.Sphere(radius=radius, center=centre, theta_resolution=180, phi_resolution=180).save(path)
    return path


def test_voxelised_sphere_keeps_its_volume(tmp_path):
    """Voxel centres inside a 20 mm sphere at 1 mm: count × h³ vs 4/3 π r³. Tolerance 1 %: the lattice-point
    count of a ball deviates by O(r^1.5) voxels (Gauss sphere problem), ≈ 0.3 % at r = 20 voxels."""
    surface = read_surface(sphere_file(tmp_path, 20.0))
    mask = voxelise(surface, np.full(3, -25.0), 1.0, (51, 51, 51))
    assert mask.sum() == pytest.approx(4 / 3 * np.pi * 20.0**3, rel=0.01)
    for axis in range(3):  # r = 19 mm inside, r = 21 mm outside along each grid axis
        inside, outside = [25, 25, 25], [25, 25, 25]
        inside[axis], outside[axis] = 6, 4
        assert mask[tuple(inside)] and not mask[tuple(outside)]


def test_cortex_between_concentric_spheres(tmp_path):
    """Outer r = 20 mm, inner r = 15 mm: cortex volume = 4/3 π (20³ − 15³) within 2 % (two lattice-count errors
    of ≈ 0.3 % of the larger ball each, relative to the shell, ≈ 1 %)."""
    outer = voxelise(read_surface(sphere_file(tmp_path, 20.0)), np.full(3, -25.0), 1.0, (51, 51, 51))
    inner = voxelise(read_surface(sphere_file(tmp_path, 15.0, name="inner.stl")), np.full(3, -25.0), 1.0,
                     (51, 51, 51))
    cortex = cortex_between(outer, inner, depth_below(outer, 1.0))
    assert cortex.sum() == pytest.approx(4 / 3 * np.pi * (20.0**3 - 15.0**3), rel=0.02)


def test_inner_surface_poking_through_is_clipped(tmp_path):
    """An inner sphere of the outer's radius shifted 3 mm pokes through it: the cortex must still cover the
    whole periosteal surface (every envelope voxel next to the outside is cortex) and every non-cortical
    voxel must lie at least MIN_CORTEX_MM below it (depth: scipy's exact distance transform)."""
    h = 0.5
    origin, shape = np.full(3, -25.0), (101, 101, 101)
    outer = voxelise(read_surface(sphere_file(tmp_path, 20.0)), origin, h, shape)
    inner = voxelise(read_surface(sphere_file(tmp_path, 20.0, (3.0, 0.0, 0.0), "inner.stl")), origin, h, shape)
    depth = depth_below(outer, h)
    cortex = cortex_between(outer, inner, depth)
    from scipy import ndimage
    rim = outer & ndimage.binary_dilation(~outer)
    assert cortex[rim].all()
    assert depth[outer & ~cortex].min() >= MIN_CORTEX_MM
    assert (inner & ~outer).any()  # it did poke through


def test_open_surface_is_capped(tmp_path):
    """A sphere with its cap cut off (open, like a proximal femur cut through the shaft) is closed by capping
    the hole: the voxelised volume is the sphere less the cap, V = π/3·(4r³ − h²(3r − h)) for a cap of height
    h = 5 mm (planar cap of a fine tessellation: 1 %)."""
    path = tmp_path / "open.vtk"
    pv.Sphere(radius=20.0, theta_resolution=180, phi_resolution=180).clip("z", origin=(0, 0, 15.0)).save(path)
    surface = read_surface(path)
    assert surface.n_open_edges == 0
    mask = voxelise(surface, np.full(3, -25.0), 0.5, (101, 101, 101))
    r, cap = 20.0, 5.0
    assert mask.sum() * 0.125 == pytest.approx(np.pi / 3 * (4 * r**3 - cap**2 * (3 * r - cap)), rel=0.01)


def test_missing_surface_is_a_user_error(tmp_path):
    with pytest.raises(BonefeError, match="not found"):
        read_surface(tmp_path / "nothing.stl")


# ---------------------------------------------------------------------------------------------
# The procedural phantom's surface fed back in (thickness model, no inner surface)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phantom_stl(tmp_path_factory):
    """The procedural femur (1 mm voxels, no lesion): its label envelope contoured at ½ (padded so the distal
    cut closes), written as STL; returns (path, true frame, enclosed volume mm³)."""
    volume, frame = make_phantom(PhantomSpec(lesion_site=None, voxel_mm=1.0))
    grid = pv.ImageData(dimensions=np.array(volume.labels.shape) + 2, spacing=volume.spacing,
                        origin=volume.affine[:3, 3] - volume.spacing)
    grid.point_data["bone"] = np.pad(volume.labels, 1).astype(np.float32).ravel(order="F")
    surface = grid.contour([0.5], scalars="bone").smooth_taubin(n_iter=20, pass_band=0.1)
    path = tmp_path_factory.mktemp("surface") / "phantom-femur.stl"
    surface.save(path)
    return path, frame, surface.volume


@pytest.fixture(scope="module")
def from_phantom(phantom_stl):
    """The phantom femur's STL turned back into a volume at 1 mm."""
    path, frame, stl_volume = phantom_stl
    return make_surface_phantom(SurfaceSpec(path, voxel_mm=1.0, noise_hu=0.0)), frame, stl_volume


def test_cli_surface_phantom_writes_ct_labels_and_lesion(phantom_stl, tmp_path, capsys):
    """`bonefe phantom --surface` end to end at 2 mm: CT and label map on one grid, the lesion present (its
    voxel count within the lattice error of the ball's 4/3 π r³ part inside the bone: between ¼ and 1 of it for
    a neck lesion breaching the cortex); `--inner` without `--surface` is a one-line user error."""
    from bonefe.cli import main
    from bonefe.imaging import read_volume

    out = tmp_path / "femur"
    assert main(["phantom", "--surface", str(phantom_stl[0]), "--out", str(out), "--voxel", "2",
                 "--lesion-site", "neck_inferomedial", "--lesion-diameter", "16"]) == 0
    volume = read_volume(out / "ct.nii.gz", out / "labels.nii.gz")
    lesion_mm3 = np.count_nonzero(volume.labels == LYTIC) * 8.0
    assert 0.25 < lesion_mm3 / (4 / 3 * np.pi * 8.0**3) <= 1.05
    assert main(["phantom", "--inner", str(phantom_stl[0]), "--out", str(out)]) == 2
    assert "--inner needs --surface" in capsys.readouterr().err


def test_surface_phantom_volume_and_landmarks(from_phantom):
    """Bone volume = the STL's enclosed volume (vtk) within 1 % (unbiased centre test, see above); head centre
    2 mm and radius 1 mm of the procedural phantom's true ones (bonefe.sites.femur.anatomy tolerances on the phantom);
    no knee in a proximal femur."""
    phantom, true, stl_volume = from_phantom
    volume = phantom.volume
    assert np.count_nonzero(volume.labels) * volume.voxel_volume == pytest.approx(stl_volume, rel=0.01)
    assert np.linalg.norm(phantom.frame.head_centre - true.head_centre) < 2.0
    assert abs(phantom.frame.head_radius - true.head_radius) < 1.0
    assert phantom.frame.knee_centre is None and phantom.lesion is None


def test_thickness_model_and_hu(from_phantom):
    """Without an inner surface: diaphyseal cortex (lateral ray from the shaft axis 80 mm above the cut)
    CORTEX_DIAPHYSIS_MM within 1 voxel + the contour's ½-voxel smoothing; CT values of bonefe.sites.femur.phantom: diaphyseal
    cortex HU_CORTEX_DIAPHYSIS, marrow HU_MARROW on the shaft axis there, trabecular bone in the head within
    TRABECULAR_HU_RANGE."""
    phantom, true, _ = from_phantom
    volume = phantom.volume
    start = volume.to_index((true.distal_centre + 80.0 * true.shaft_axis)[None])[0]
    i, j, k = np.round(start).astype(int)
    ray = phantom.cortex[i:, j, k]
    assert np.count_nonzero(ray) * volume.spacing[0] == pytest.approx(CORTEX_DIAPHYSIS_MM, abs=1.5)
    assert volume.hu[i:, j, k][ray].mean() == pytest.approx(HU_CORTEX_DIAPHYSIS, abs=1.0)
    assert volume.hu[i, j, k] == pytest.approx(HU_MARROW, abs=1.0)
    head = np.round(volume.to_index(true.head_centre[None])[0]).astype(int)
    assert TRABECULAR_HU_RANGE[0] <= volume.hu[tuple(head)] <= TRABECULAR_HU_RANGE[1]


# ---------------------------------------------------------------------------------------------
# Lesion placement (bonefe.sites.femur.lesions, bonefe.sites.long_bone.lesions)
# ---------------------------------------------------------------------------------------------

TUBE_RADIUS, TUBE_CORTEX = 15.3, 4.0
TUBE_FRAME = FemurFrame(head_centre=np.array([-40.0, 0.0, 250.0]), head_radius=22.0,
                        shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=np.array([-0.8, 0.0, 0.6]),
                        distal_centre=np.zeros(3))


@pytest.fixture(scope="module")
def tube():
    """A tube along z (outer radius 15.3 mm, cortex 4 mm, 1 mm voxels centred on integers): voxel centres
    inside r ≤ 15.3 end at r = 15, so the voxel surface (midway) is at 15.5 mm along ±x."""
    ax = np.arange(-25.0, 26.0)
    z = np.arange(0.0, 260.0)
    x, y, _ = np.meshgrid(ax, ax, z, indexing="ij", sparse=True)
    r = np.sqrt(x**2 + y**2)
    envelope = np.broadcast_to(r <= TUBE_RADIUS, (ax.size, ax.size, z.size)).copy()
    cortex = envelope & (r > TUBE_RADIUS - TUBE_CORTEX)
    affine = np.eye(4)
    affine[:3, 3] = (-25.0, -25.0, 0.0)
    return VoxelBone(envelope, cortex, affine)


@pytest.mark.parametrize("involvement", [0.0, 0.5, 1.0])
def test_lesion_centre_on_a_tube(tube, involvement):
    """Diaphysis site: the ray runs laterally (+x, away from the neck) from the shaft axis 120 mm below the head
    centre; surface at 15.5 mm, measured cortex 4 voxels = 4 mm, so C = (15.5 − 4(1 − c) − r, 0, 130) mm
    (tolerance 0.5 mm: half a voxel, the resolution of the voxel surface and of the cortex run)."""
    lesion = place_lesion("diaphysis", TUBE_FRAME, tube, 16.0, involvement)
    expected = np.array([15.5 - TUBE_CORTEX * (1 - involvement) - 8.0, 0.0, 130.0])
    assert np.linalg.norm(lesion.centre - expected) < 0.5
    assert lesion.cortical_thickness_mm == pytest.approx(TUBE_CORTEX, abs=0.5)
    assert lesion.label == LYTIC


def test_lesion_volume_is_the_ball_volume(tube):
    """A 16 mm lesion with c = 0.5 lies inside the tube: its voxel count ≈ 4/3 π r³ (r = 8 voxels; lattice-count
    error O(r^1.5) ≈ 1 %, tolerance 3 %)."""
    lesion = place_lesion("subtrochanteric", TUBE_FRAME, tube, 16.0, 0.5)
    points = np.meshgrid(*[tube.affine[a, 3] + np.arange(n) for a, n in enumerate(tube.envelope.shape)],
                         indexing="ij", sparse=True)
    count = np.count_nonzero(tube.envelope & in_ball(points, lesion.centre, lesion.radius_mm))
    assert count == pytest.approx(4 / 3 * np.pi * 8.0**3, rel=0.03)
    assert lesion.centre[0] < 0  # subtrochanteric: the medial cortex, towards the neck (−x here)


def test_neck_sites_are_opposite_rays():
    """Documented rays: both neck sites start on the neck axis NECK_POSITION_RADII head radii from the head
    centre; superolateral points along the superior direction made normal to the neck, inferomedial opposite;
    "neck" is the superolateral site."""
    start, up = site_ray("neck_superolateral", TUBE_FRAME)
    start_inf, down = site_ray("neck_inferomedial", TUBE_FRAME)
    neck = TUBE_FRAME.neck_axis / np.linalg.norm(TUBE_FRAME.neck_axis)
    np.testing.assert_allclose(start, TUBE_FRAME.head_centre - NECK_POSITION_RADII * 22.0 * neck)
    np.testing.assert_allclose(start_inf, start)
    np.testing.assert_allclose(down, -up)
    assert abs(up @ neck) < 1e-12 and up[2] > 0
    np.testing.assert_allclose(site_ray("neck", TUBE_FRAME)[1], up)


def test_unknown_site_is_a_user_error():
    with pytest.raises(BonefeError, match="lesion site must be one of"):
        site_ray("knee", TUBE_FRAME)
