"""The whole pipeline on a real femur: the gfxmorph left femur surface (../shared/data, BSD-2), outer and
endosteal surfaces, turned into a CT-like volume at 1.5 mm and meshed at 6 mm.

References: the closed STL's enclosed volume (vtk mass properties), a least-squares sphere fitted here to the
STL's own vertices, the adult neck–shaft angle range (115–140°), the adult angle between the mechanical and
anatomical axes (≈ 6°, Moreland et al. 1987), and the lesion-free twin of the same femur.
"""

import bonefe  # noqa: F401  (before dolfinx)
import numpy as np
import pytest
import pyvista as pv
import yaml
from mpi4py import MPI

from bonefe.sites.femur.anatomy import neck_shaft_angle
from bonefe.assessment import RiskOptions
from bonefe.sites.femur.assessment import activity_list
from bonefe.sites.femur.site import assess
from bonefe.case import MeshOptions
from bonefe.materials import MaterialOptions, cell_material, lesion_map
from bonefe.sites.femur.surface_phantom import SurfaceSpec, make_surface_phantom, write_surface_phantom
from bonefe.sites.femur.site import mesh_case
from bonefe.volume import LYTIC
from real_data import shared_data

COMM = MPI.COMM_WORLD
VOXEL_MM, MESH_MM = 1.5, 6.0


def spec(**lesion) -> SurfaceSpec:
    folder = shared_data("femur-surface-gfxmorph")
    return SurfaceSpec(folder / "femur.stl", folder / "femur_cortex.stl", voxel_mm=VOXEL_MM, **lesion)


@pytest.fixture(scope="module")
def femur():
    return make_surface_phantom(spec())


@pytest.fixture(scope="module")
def stl():
    return pv.read(shared_data("femur-surface-gfxmorph") / "femur.stl").clean()


@pytest.fixture(scope="module")
def meshed(femur):
    bone, tags = mesh_case(femur.volume, MeshOptions(size_mm=MESH_MM), femur.frame, COMM)
    return bone, tags


def test_volume_is_preserved_through_voxels_and_mesh(femur, stl, meshed):
    """Voxel volume within 1 % and tetrahedral mesh volume within 2 % of the closed STL's volume (the voxel
    count of centres inside is unbiased; the mesh keeps the segmented volume to meshing's chord compensation)."""
    reference = stl.volume
    volume = femur.volume
    assert np.count_nonzero(volume.labels) * volume.voxel_volume == pytest.approx(reference, rel=0.01)
    assert meshed[0].quality["mesh_volume_mm3"] == pytest.approx(reference, rel=0.02)


def test_head_centre_against_an_independent_sphere_fit(femur, stl):
    """Sphere fitted here (algebraic least squares, then two rounds on vertices within 1.5 mm of the sphere)
    to the STL vertices of the head cap (z within 15 mm of the most proximal vertex: above the greater
    trochanter, whose tip lies near the head centre's level): the frame's head centre within 2 mm."""
    points = np.asarray(stl.points, float)
    chosen = points[points[:, 2] > points[:, 2].max() - 15.0]
    for _ in range(3):
        design = np.column_stack([2 * chosen, np.ones(len(chosen))])
        solution = np.linalg.lstsq(design, (chosen**2).sum(axis=1), rcond=None)[0]
        centre, radius = solution[:3], np.sqrt(solution[3] + solution[:3] @ solution[:3])
        chosen = points[np.abs(np.linalg.norm(points - centre, axis=1) - radius) < 1.5]
    print(f"head centre: frame {femur.frame.head_centre.round(2)} vs fit {centre.round(2)}, "
          f"radius {femur.frame.head_radius:.2f} vs {radius:.2f} mm")
    assert np.linalg.norm(femur.frame.head_centre - centre) < 2.0


def test_neck_shaft_angle_and_knee(femur, stl):
    """Neck–shaft angle within the adult range 115–140°. The knee is in the scan: its centre lies between the
    medial and lateral extremes of the STL's distal 30 mm (within 10 mm of their midpoint) and within 40 mm
    of the most distal vertex along z (the femur's long axis in this file); the mechanical axis lies 3–9°
    from the shaft axis (adults ≈ 6°, Moreland et al. 1987)."""
    frame = femur.frame
    angle = neck_shaft_angle(frame)
    mechanical = np.degrees(np.arccos(frame.superior() @ frame.shaft_axis))
    print(f"neck-shaft angle {angle:.1f} deg; knee centre {frame.knee_centre.round(1)}; "
          f"mechanical vs anatomical axis {mechanical:.1f} deg")
    assert 115.0 <= angle <= 140.0
    points = np.asarray(stl.points, float)
    distal = points[points[:, 2] < points[:, 2].min() + 30.0]
    assert distal[:, 0].min() < frame.knee_centre[0] < distal[:, 0].max()
    assert abs(frame.knee_centre[0] - 0.5 * (distal[:, 0].min() + distal[:, 0].max())) < 10.0
    assert 0.0 < frame.knee_centre[2] - points[:, 2].min() < 40.0
    assert 3.0 <= mechanical <= 9.0


def stance(meshed, frame, volume) -> tuple[float, float, float]:
    """Stance (walking-direction) failure load (N), the failure point's height below the head centre (mm) and
    its distance (mm) to the nearest facet midpoint of the head, trochanter or support patch."""
    from dolfinx.mesh import compute_midpoints

    from bonefe.sites.femur.anatomy import HEAD, SUPPORT, TROCHANTER

    bone, tags = meshed
    material = cell_material(bone.mesh, volume, MaterialOptions())
    result = assess(bone.mesh, tags, material.E, material.label, 0.4, frame, 75.0,
                    activity_list(["walking"], []), RiskOptions(), envelope_step_deg=None,
                    lesion=lesion_map(volume)).stance
    patches = np.concatenate([compute_midpoints(bone.mesh, 2, tags.find(t).astype(np.int32)).reshape(-1, 3)
                              for t in (HEAD, TROCHANTER, SUPPORT)])
    patches = np.concatenate(COMM.allgather(patches))
    clearance = float(np.linalg.norm(patches - np.asarray(result.location_mm), axis=1).min())
    return result.failure_load_n, float((frame.head_centre - result.location_mm) @ frame.shaft_axis), clearance


def test_lesion_site_matters(femur, meshed):
    """Equal 20 mm lytic lesions breaching the cortex (c = 1) in the superolateral and in the inferomedial neck,
    on the same mesh: voxel volumes equal within 3 % (both lie inside the neck), and the sizes of the effects:
    the inferomedial (compressive-side) lesion clearly weakens the femur, the superolateral one hardly.

    Pinned (measured 2026-12-01 on this mesh, see docs/real-femur.md): intact 5566 N, superolateral 5566 N
    (the femur still fails in the shaft, 186 mm below the head centre), inferomedial 2004 N (in the neck,
    28 mm below), i.e. ratios 1.00 and 0.360. (Re-measured the same day when failure points and sphere
    weights came to follow the CT's label at each point instead of the tetrahedron's majority label,
    `bonefe.assessment.failure_points`: inferomedial 2199 → 2004 N, −8.9 %, ratio 0.395 → 0.360; intact
    and superolateral unchanged.) Tolerances: intact ±3 %, inferomedial ratio ±0.03,
    superolateral ratio ≥ 0.97 (a lesion cannot strengthen the bone: ≤ 1 to solver tolerance). They move
    with the mesher, material law, strain limits, nonlocal radius, the walking direction, or the real-femur
    potting (bonefe.sites.femur.anatomy). No failure site lies within the 10 mm excluded zone of a patch (no boundary
    artefact)."""
    loads, volumes = {}, {}
    for site in ("neck_superolateral", "neck_inferomedial"):
        lesioned = make_surface_phantom(spec(lesion_site=site, lesion_diameter_mm=20.0, cortical_involvement=1.0))
        volumes[site] = np.count_nonzero(lesioned.volume.labels == LYTIC) * lesioned.volume.voxel_volume
        loads[site] = stance(meshed, femur.frame, lesioned.volume)
    healthy = stance(meshed, femur.frame, femur.volume)
    up, down = loads["neck_superolateral"][0], loads["neck_inferomedial"][0]
    print(f"stance failure load: no lesion {healthy[0]:.0f} N ({healthy[1]:.0f} mm below the head centre, "
          f"{healthy[2]:.1f} mm from a patch); "
          + "; ".join(f"{s} {loads[s][0]:.0f} N ({loads[s][1]:.0f} mm, {loads[s][2]:.1f} mm from a patch), "
                      f"lesion {volumes[s]:.0f} mm3" for s in loads)
          + f"; ratios {up / healthy[0]:.3f} and {down / healthy[0]:.3f}")
    assert volumes["neck_superolateral"] == pytest.approx(volumes["neck_inferomedial"], rel=0.03)
    assert healthy[0] == pytest.approx(5566.0, rel=0.03)
    assert down / healthy[0] == pytest.approx(0.360, abs=0.03)
    assert 0.97 <= up / healthy[0] <= 1.0 + 1e-6
    assert 20.0 <= loads["neck_inferomedial"][1] <= 35.0  # the neck, below the head centre
    assert min(clearance for *_, clearance in (healthy, *loads.values())) >= 10.0


@pytest.mark.slow
def test_end_to_end_real_femur(tmp_path):
    """`bonefe run` on the real femur with a 20 mm lytic lesion breaching the inferomedial neck: the run
    finishes every stage and the lesioned femur is weaker than its lesion-free twin (the same femur with the
    lesion replaced by healthy bone)."""
    from bonefe.pipeline import run_case

    folder = COMM.bcast(str(tmp_path), root=0)
    data = f"{folder}/data"
    if COMM.rank == 0:
        write_surface_phantom(spec(lesion_site="neck_inferomedial", lesion_diameter_mm=20.0,
                                   cortical_involvement=1.0), data)
        case = {"name": "real-femur", "ct": "data/ct.nii.gz", "labels": "data/labels.nii.gz", "output": "run",
                "patient": {"body_mass_kg": 75, "side": "left"}, "mesh": {"size_mm": MESH_MM}}
        (tmp_path / "case.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
    COMM.barrier()
    results = run_case(f"{folder}/case.yaml", quiet=True)
    print(f"failure load {results['failure_load_n']:.0f} N, twin {results['twin_failure_load_n']:.0f} N, "
          f"SFR {results['strain_fold_ratio']:.2f}, DOFs {results['mesh']['dofs']}")
    assert results["failure_load_n"] < results["twin_failure_load_n"]
    assert len(results["activities"]) >= 10
