"""Pinned clinical numbers of a phantom femur this test builds, and the same femur mirrored.

Why pinned: the numerical core is verified elsewhere against analytic solutions and CalculiX, but
a wrong clinical number (modulus ×2, a load's sign, swapped lesion sites) keeps orderings and
wide ranges true. These values are regression values with tight tolerances, so such a change
fails here.

The bone: `PhantomSpec(voxel_mm=1.5, lesion_site="neck_inferomedial", lesion_diameter_mm=20,
cortical_involvement=1.0)` (explicit here, not the Makefile demo), meshed by the pipeline's
mesh stage at 5 mm (`bonefe.sites.femur.site.mesh_case`), the frame found from the label map
(`bonefe.sites.femur.anatomy.femur_frame`), default CT material (Morgan 2003, ν 0.4), 75 kg, RiskOptions()
defaults, the walking activity only, and the lesion-free twin for the strain fold ratio.

How the numbers were obtained: this file's `assessed` fixture run on 2026-12-01 (branch issue-22,
commit after 3c3a33c), serial and under `mpirun -n 2` (identical to 1e-6); re-measured the same day
(branch lesion-mesh) when the failure points came to follow the CT's label. What may legitimately
move them, and then they are re-measured and the change is said in the commit: the phantom's
geometry or CT values (bonefe.sites.femur.phantom), lesion placement (bonefe.sites.femur.lesions),
the mesher or its refinement defaults (bonefe.meshing), the material law or its defaults, the strain
limits, the nonlocal radius or exclusion zone, the walking hip-contact direction (the stance load
and the head patch follow it) or the walking magnitude (only the safety factor and verdict). The
mesh is gmsh's deterministic output for this volume, so the pinned numbers are reproducible to
solver tolerance; but this lesion's failure load depends on the mesh (below), so any change to the
mesh may move the lesioned numbers by more than 3 % (up to 6 % measured): re-measure, do not widen.
Tolerance 3 % on forces and ratios (platform and library versions), far below a 2× error; the
failure site within 3 mm (lattice spacing 1 mm).

Mirror: the same voxels with x → −x (LPS: a right femur), its frame found as a right femur. (a) On
the mirror image of the left mesh, every stage after meshing (frame, patches, loads, CT material,
nonlocal strain, failure, twin, verdict) must give the same numbers to solver tolerance and the
mirrored failure site exactly: a side error anywhere in the chain shows here. (b) Remeshed by the
pipeline (gmsh does not mesh a mirror image as the mirror of the mesh), the intact twin, verdict and
risk category agree (twin within 3 %; measured 0.7 %), and the lesioned failure load nearly so.
Failure starts at the lattice point (±102.5, −0.5, 167.5) on the lesion's rim, 0.09 mm from the CT's
lesion interface (1.5 mm voxels). Until 2026-12-01 whether that point was evaluated, and how much of
its sphere counted as bone, followed the majority label of the tetrahedra around it, so each mesh
tossed a coin (`bonefe.validation.convergence.LESION_REMAINDER`): left / mirrored right 3406 / 2982
N at 5 mm, 4022 / 2594 N at 4.5 mm, 3424 / 2257 N at 3 mm (the default), 2333 / 2454 N at 2.25 mm,
2606 / 2484 N at 1.75 mm. Both now follow the CT's label at the point (nearest voxel,
`bonefe.assessment.failure_points`), and every mesh fails at that rim point or 1 mm above it: 2436 /
2570 N at 5 mm (+5.5 %), 2470 / 2526 N at 4.5 mm (+2.3 %), 2475 / 2328 N at 3 mm (−5.9 %), 2411 /
2351 N at 2.75 mm (−2.5 %), 2367 / 2364 N at 2.25 mm (−0.1 %), 2477 / 2468 N at 1.75 mm (−0.4 %):
all twelve meshes within 2328–2570 N (before: 2257–4022 N). What is left down to 2.75 mm is,
presumably (not isolated), the finite-element strain at the rim itself: elements straddling the
lesion's outline take the mean modulus of their CT samples and one constant strain, and each mesh
cuts the outline differently. So the 5 mm mirror test (b) of the lesioned failure load still misses
3 % (+5.5 %; SFR 5.912 / 5.494, −7.1 %) and stays a strict xfail; the mirrored mesh (a) is
identical.

Boundary artefacts: the reported failure site lies outside the excluded zone (`exclusion_mm` = 10
mm from a load or support patch, RiskOptions default) of every patch.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

from dataclasses import replace

import basix.ufl
import dolfinx
import numpy as np
import pytest
from dolfinx.mesh import compute_midpoints
from mpi4py import MPI

from bonefe.sites.femur.anatomy import HEAD, SUPPORT, TROCHANTER, boundary_tags, femur_frame
from bonefe.assessment import RiskOptions
from bonefe.sites.femur.assessment import activity_list
from bonefe.sites.femur.site import assess
from bonefe.case import MeshOptions
from bonefe.sites.femur.loads import WALKING_DIRECTION
from bonefe.materials import MaterialOptions, cell_material, healthy_volume, lesion_map
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.risk import risk_category
from bonefe.sites.femur.site import mesh_case

COMM = MPI.COMM_WORLD
SPEC = PhantomSpec(voxel_mm=1.5, lesion_site="neck_inferomedial", lesion_diameter_mm=20.0, cortical_involvement=1.0)
MESH_MM, BODY_MASS_KG, EXCLUSION_MM = 5.0, 75.0, 10.0

# Measured 2026-12-01 (see the module docstring); tolerances 3 %. Re-measured the same day when
# failure points and sphere weights came to follow the CT's label at each point instead of the
# tetrahedron's majority label (bonefe.assessment.failure_points): failure load 3405.5 -> 2436.0 N
# (-28.5 %), SFR 4.229 -> 5.912 (+40 %), walking safety factor 1.947 -> 1.393, site (103.5, 0.5,
# 167.5) -> (102.5, -0.5, 167.5), the lesion's rim; the lesion-free twin unchanged (10763.5 N).
FAILURE_LOAD_N = 2436.0
TWIN_FAILURE_LOAD_N = 10763.5
SFR = 5.912
WALKING_SAFETY_FACTOR = 1.393          # 2436.0 N allowed against walking's 238 % BW at 75 kg = 1749 N
FAILURE_SITE_MM = (102.5, -0.5, 167.5)  # compressive, infero-medial neck, on the lesion's rim


def mirrored(volume):
    """The same voxels with world x → −x: the arrays flipped along i, origin moved so that voxel i of
    the mirror sits at −x of voxel n−1−i of the original (positive spacing kept)."""
    affine = volume.affine.copy()
    assert np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))) and affine[0, 0] > 0
    affine[0, 3] = -(volume.affine[0, 3] + (volume.labels.shape[0] - 1) * volume.affine[0, 0])
    return replace(volume, hu=volume.hu[::-1].copy(), labels=volume.labels[::-1].copy(), affine=affine)


def patch_midpoints(mesh, tags, tag) -> np.ndarray:
    """Midpoints of the facets carrying `tag`, from every rank (world mm; dolfinx's own geometry)."""
    local = compute_midpoints(mesh, 2, tags.find(tag).astype(np.int32))
    return np.concatenate(COMM.allgather(local.reshape(-1, 3)), axis=0)


def mirrored_mesh(mesh):
    """The mirror image x → −x of a distributed P1 tetrahedral mesh: gathered on rank 0 in its input
    node numbering, mirrored, two vertices of each cell swapped to keep positive orientation, and
    distributed again by dolfinx."""
    n = mesh.topology.index_map(3).size_local
    nodes = mesh.geometry.input_global_indices
    cells = nodes[mesh.geometry.dofmaps[0][:n]]
    gathered = COMM.gather((cells, nodes, mesh.geometry.x), root=0)
    if COMM.rank == 0:
        count = max(int(g[1].max()) for g in gathered) + 1
        x = np.zeros((count, 3))
        for _, index, coords in gathered:
            x[index] = coords
        x[:, 0] *= -1.0
        cells = np.concatenate([g[0] for g in gathered])[:, [1, 0, 2, 3]]
    else:
        x, cells = np.zeros((0, 3)), np.zeros((0, 4), np.int64)
    element = basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,))
    return dolfinx.mesh.create_mesh(COMM, cells.astype(np.int64), element, x)


def run(volume, side: str, mesh=None) -> dict:
    """The pipeline's stages after reading: frame, mesh (or the given mesh), material, assessment."""
    frame = femur_frame(volume, side)
    if mesh is None:
        mesh = mesh_case(volume, MeshOptions(size_mm=MESH_MM), frame, COMM)[0].mesh
    tags = boundary_tags(mesh, frame, cap_axis=-(frame.basis() @ WALKING_DIRECTION))
    material = cell_material(mesh, volume, MaterialOptions())
    twin_E = cell_material(mesh, healthy_volume(volume), MaterialOptions()).E
    result = assess(mesh, tags, material.E, material.label, 0.4, frame, BODY_MASS_KG,
                    activity_list(["walking"], []), RiskOptions(), twin_E=twin_E, envelope_step_deg=None,
                    lesion=lesion_map(volume))
    site = np.asarray(result.stance.location_mm)
    distance = {name: float(np.linalg.norm(patch_midpoints(mesh, tags, tag) - site, axis=1).min())
                for name, tag in (("head", HEAD), ("trochanter", TROCHANTER), ("support", SUPPORT))}
    walking = result.activities[0]
    out = {"load": result.stance.failure_load_n, "site": site, "mode": result.stance.mode,
           "twin": result.twin.twin_stance.failure_load_n, "sfr": result.twin.strain_fold_ratio,
           "factor": walking.safety_factor, "verdict": walking.verdict,
           "category": risk_category(result.stance.failure_load_n / (BODY_MASS_KG * 9.81)),
           "distance": distance, "frame": frame}
    if COMM.rank == 0:
        print(f"{side}: failure load {out['load']:.1f} N at {site} ({out['mode']}), twin {out['twin']:.1f} N, "
              f"SFR {out['sfr']:.4f}, walking SF {out['factor']:.4f} ({out['verdict']}), {out['category']}, "
              f"distance to patches {distance}")
    out["mesh"] = mesh
    return out


@pytest.fixture(scope="module")
def left():
    volume, _ = make_phantom(SPEC)
    return volume


@pytest.fixture(scope="module")
def assessed(left):
    return run(left, "left")


@pytest.fixture(scope="module")
def mirror(left, assessed):
    """The mirrored volume on the mirror image of the left mesh."""
    return run(mirrored(left), "right", mirrored_mesh(assessed["mesh"]))


@pytest.fixture(scope="module")
def remeshed(left):
    """The mirrored volume through the pipeline's own meshing."""
    return run(mirrored(left), "right")


def test_stance_failure_load_twin_and_strain_fold_ratio_are_pinned(assessed):
    """Stance failure load 2436 N (3.31 × BW: 'high' risk below 5 × BW, Nijmegen thresholds), lesion-free
    twin 10764 N, SFR 5.91 (above Sternheim's 1.48): each within 3 % of the measured value."""
    assert assessed["load"] == pytest.approx(FAILURE_LOAD_N, rel=0.03)
    assert assessed["twin"] == pytest.approx(TWIN_FAILURE_LOAD_N, rel=0.03)
    assert assessed["sfr"] == pytest.approx(SFR, rel=0.03)
    assert assessed["category"] == "high"


def test_failure_site_and_mode_are_pinned(assessed):
    """Compressive failure in the infero-medial neck, at the measured lattice point within 3 mm, on the
    lesion's (inferior, medial) side of the neck axis."""
    assert assessed["mode"] == "compressive"
    assert np.linalg.norm(assessed["site"] - np.array(FAILURE_SITE_MM)) <= 3.0
    frame = assessed["frame"]
    below_neck_axis = (assessed["site"] - frame.head_centre) @ frame.basis()[:, 2]
    assert below_neck_axis < 0


def test_walking_verdict_is_pinned(assessed):
    """Walking: allowed 2436 N against the 1749 N peak → safety factor 1.393 (±3 %), 'caution'
    (1 ≤ SF < 2, bonefe.risk.VerdictPolicy), 30 % below the 'safe' boundary and 39 % above 'avoid'."""
    assert assessed["factor"] == pytest.approx(WALKING_SAFETY_FACTOR, rel=0.03)
    assert assessed["verdict"] == "caution"


def test_failure_site_lies_outside_every_excluded_zone(assessed, remeshed):
    """No boundary artefact: the failure site is at least exclusion_mm (10 mm) from every facet
    midpoint of the head, trochanter and support patches, left and mirrored."""
    for result in (assessed, remeshed):
        assert min(result["distance"].values()) >= EXCLUSION_MM, result["distance"]


def test_mirrored_right_femur_gives_the_same_numbers_and_the_mirrored_site(assessed, mirror):
    """(a) Right femur = the left phantom mirrored x → −x, on the mirrored mesh: failure load, twin, SFR and
    walking safety factor equal to 1e-6 (CG rtol 1e-10; the SFR to 1e-4: the peak next to the soft lesion
    carries more of the iterative error, measured 4e-5), same mode, verdict and category, the failure
    site the mirror image of the left one (lattice anchored at the world origin: exact), the frame mirrored."""
    for key, rel in (("load", 1e-6), ("twin", 1e-6), ("sfr", 1e-4), ("factor", 1e-6)):
        assert mirror[key] == pytest.approx(assessed[key], rel=rel), key
    for key in ("mode", "verdict", "category"):
        assert mirror[key] == assessed[key], key
    flip = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirror["site"], flip * assessed["site"], atol=1e-9)
    np.testing.assert_allclose(mirror["frame"].head_centre, flip * assessed["frame"].head_centre, atol=0.5)


def test_remeshed_mirror_keeps_the_intact_strength_and_the_verdicts(assessed, remeshed):
    """(b) Through the pipeline's own meshing: the lesion-free twin within 3 % (measured 0.7 %), the
    same failure mode, walking verdict and risk category, the failure site mirrored within 3 mm."""
    assert remeshed["twin"] == pytest.approx(assessed["twin"], rel=0.03)
    for key in ("mode", "verdict", "category"):
        assert remeshed[key] == assessed[key], key
    flip = np.array([-1.0, 1.0, 1.0])
    assert np.linalg.norm(remeshed["site"] - flip * assessed["site"]) <= 3.0


@pytest.mark.xfail(strict=True, reason="lesioned failure load at 5 mm still depends on the mesh by ~5 % "
                                       "(module docstring): left 2436 N, remeshed mirror 2570 N (+5.5 %), "
                                       "SFR 5.912 / 5.494; presumably the rim elements' mixed moduli")
def test_remeshed_mirror_gives_the_same_lesioned_failure_load(assessed, remeshed):
    """(b) The lesioned failure load and SFR of the remeshed mirror within 3 %: fails today (+5.5 % and
    −7.1 % at 5 mm)."""
    assert remeshed["load"] == pytest.approx(assessed["load"], rel=0.03)
    assert remeshed["sfr"] == pytest.approx(assessed["sfr"], rel=0.03)
