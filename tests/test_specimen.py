"""The specimen site (issue 19): a bone in a virtual test machine.

Checked against independent values, not against the module's own numbers:
- the homogeneous block in uniaxial compression (poisson 0, so the clamped ends constrain nothing
  and u = −δ z / L is the exact solution, which P1 represents exactly): stiffness E A / L, plate
  force, failure load E A ε_c when the uniform strain reaches the compressive limit; under force
  control the plate travel is F L / (E A);
- equilibrium: the fixed region's force is minus the plate's;
- CalculiX on the same mesh (`model.inp`: the fixed nodes held, the plate's nodes moved): the
  reaction force of the block with poisson 0.3 and of the shared micro-CT cube, to solver precision;
- user mistakes end in one line with exit status 2.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.cli import main
from bonefe.sites.specimen.case import load_specimen_case
from bonefe.sites.specimen.reading import read_specimen
from bonefe.sites.specimen.run import run_specimen, solve_specimen
from tests.real_data import shared_data

COMM = MPI.COMM_WORLD
CASES = Path(__file__).resolve().parents[1] / "cases"
E_MPA, AREA_MM2, LENGTH_MM, TRAVEL_MM = 10_000.0, 100.0, 20.0, 0.02
"""The phantom case's block: E = 10,000 (100/100)^1.5 MPa, 10 x 10 mm, 20 mm long, pushed 0.02 mm."""
COMPRESSIVE_LIMIT = 0.0104
MICROCT_FORCE_N = 74.92967587916758
"""The micro-CT cube's plate force (N, z), measured serially; CalculiX gave 74.92968 N on the same mesh."""


def _shared_folder(tmp_path_factory, name: str) -> Path:
    return Path(COMM.bcast(str(tmp_path_factory.mktemp(name)) if COMM.rank == 0 else None))


@pytest.fixture(scope="module")
def phantom():
    case = load_specimen_case(CASES / "specimen-phantom.yaml")
    return case, solve_specimen(case, read_specimen(case.image, case.specimen), COMM)


def test_block_stiffness_and_force_are_e_a_over_l(phantom):
    _, solved = phantom
    rig = solved.model.loading.readouts(solved.setup.rig)
    assert rig["stiffness_n_per_mm"] == pytest.approx(E_MPA * AREA_MM2 / LENGTH_MM, rel=1e-8)
    assert rig["reaction_force_n"] == pytest.approx([0.0, 0.0, -E_MPA * AREA_MM2 * TRAVEL_MM / LENGTH_MM], abs=1e-6)
    assert np.add(rig["fixed_region_force_n"], rig["reaction_force_n"]) == pytest.approx(np.zeros(3), abs=1e-6)
    assert rig["reaction_moment_nmm"] == pytest.approx(np.zeros(3), abs=1e-5)  # centred plate, symmetric block


def test_block_fails_when_its_uniform_strain_reaches_the_limit(phantom):
    _, solved = phantom
    assert solved.stance.failure_load_n == pytest.approx(E_MPA * AREA_MM2 * COMPRESSIVE_LIMIT, rel=1e-7)
    assert solved.stance.mode == "compressive"


def test_force_control_moves_the_plate_by_f_l_over_e_a(phantom):
    case, solved = phantom
    rig = replace(case.rig, displacement_mm=None, force_n=(0.0, 0.0, -500.0))
    loading = solved.model.loading
    assert loading.state(rig) == pytest.approx([0.0, 0.0, -500.0 * LENGTH_MM / (E_MPA * AREA_MM2)], rel=1e-8, abs=1e-14)
    assert loading.readouts(rig)["reaction_force_n"] == pytest.approx([0.0, 0.0, -500.0], abs=1e-6)


def _ccx_reactions(inp: Path) -> dict[str, np.ndarray]:
    """CalculiX's total reaction force per node set (N) of an exported rig."""
    run = subprocess.run([shutil.which("ccx"), "-i", inp.stem], cwd=inp.parent, capture_output=True,
                         timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, encoding="utf-8")
    assert run.returncode == 0, run.stdout[-2000:]
    text = inp.with_suffix(".dat").read_text(encoding="utf-8")
    found = re.findall(r"total force \(fx,fy,fz\) for set (\S+) and time[^\n]*\n\s*\n\s*(\S+)\s+(\S+)\s+(\S+)", text)
    return {name: np.array([float(v) for v in values]) for name, *values in found}


def _check_against_calculix(results: dict, folder: Path) -> None:
    if COMM.rank != 0:
        return
    ccx = _ccx_reactions(folder / "model.inp")
    force = np.array(results["rig"]["reaction_force_n"])
    scale = np.abs(force).max()
    assert np.abs(ccx["P_LOADED"] - force).max() / scale < 2e-6  # ccx prints 7 digits
    assert np.abs(ccx["NFIX"] + force).max() / scale < 2e-6


@pytest.fixture
def ccx():
    if shutil.which("ccx") is None:
        pytest.skip("CalculiX `ccx` not on PATH (apt-get install calculix-ccx)")


def test_block_with_poisson_reaction_agrees_with_calculix(ccx, tmp_path_factory):
    """With poisson 0.3 the clamped ends stiffen the block beyond E A / L; CalculiX, on the same mesh
    with the same moved nodes, must find the same plate force."""
    folder = _shared_folder(tmp_path_factory, "phantom-nu")
    case = folder / "case.yaml"
    if COMM.rank == 0:
        text = (CASES / "specimen-phantom.yaml").read_text(encoding="utf-8").replace("poisson: 0.0", "poisson: 0.3")
        case.write_text(text, encoding="utf-8")
    COMM.barrier()
    results = run_specimen(case, output=folder / "run", quiet=True)
    assert results["rig"]["stiffness_n_per_mm"] > 1.01 * E_MPA * AREA_MM2 / LENGTH_MM
    _check_against_calculix(results, folder / "run")


def test_microct_cube_runs_and_agrees_with_calculix(ccx, tmp_path_factory):
    shared_data("microct-trabecular-lhdl-ciclope")
    folder = _shared_folder(tmp_path_factory, "microct")
    results = run_specimen(CASES / "specimen-microct.yaml", output=folder, quiet=True)
    assert results["mesh"]["cells"] == 48_000
    assert results["rig"]["reaction_force_n"][2] == pytest.approx(-MICROCT_FORCE_N, rel=1e-7)
    assert 0 < results["failure_load_n"] < MICROCT_FORCE_N  # 1 % apparent strain is past the onset of failure
    _check_against_calculix(results, folder)


def _case(tmp_path: Path, text: str, **changes) -> Path:
    """The phantom case with text replaced (old: new) and `text` appended, written to tmp_path."""
    source = (CASES / "specimen-phantom.yaml").read_text(encoding="utf-8")
    for old, new in changes.items():
        assert old in source
        source = source.replace(old, new)
    path = tmp_path / "case.yaml"
    if COMM.rank == 0:
        path.write_text(source + text, encoding="utf-8")
    COMM.barrier()
    return path


@pytest.mark.parametrize("changes, message", [
    ({"point: [0, 0, 20]": "point: [0, 0, 30]"}, "rig.loaded: the plane misses the specimen"),
    ({"point: [0, 0, 0], normal: [0, 0, 1]}": "point: [0, 0, -5], normal: [0, 0, 1]}"},
     "rig.fixed: the plane misses the specimen"),
    ({"point: [0, 0, 0], normal: [0, 0, 1]}": "point: [0, 0, 0], normal: [0, 0, 1], depth_mm: 25}"},
     "rig: the fixed and loaded regions touch"),
    ({"displacement_mm: [0, 0, -0.02]": "displacement_mm: [0, 0, -0.02]\n  force_n: [0, 0, 1]"},
     "give either displacement_mm or force_n"),
    ({"mesh: {size_mm: 2.0}": "mesh: {size_mm: 2.0, degree: 2}"}, "exports: inp writes linear tetrahedra"),
    ({"displacement_mm: [0, 0, -0.02]": "displacement_mm: [0, 0, -0.02]\n  rotation_deg: [0, 0, 1]\n  moment_nmm: [0, 0, 0]"},
     "give rotation_deg or moment_nmm, not both"),
    ({"displacement_mm: [0, 0, -0.02]": "displacement_mm: [0, 0, 0]\n  moment_nmm: [0, 0, 0]"},
     "the rig's load is zero"),
    ({"normal: [0, 0, 1]}}": "normal: [0, 0, 1]}, layer: {E_mpa: 2500, nu: 0.3, thickness_mm: 5}}"},
     "exports: inp holds bonded regions only"),
    ({"normal: [0, 0, 1]}}": "normal: [0, 0, 1]}, layer: {E_mpa: 2500, nu: 0.3, thickness_mm: 0}}",
      "exports: [inp]": "exports: []"}, "a layer needs E_mpa > 0, thickness_mm > 0"),
])
def test_bad_rigs_end_in_one_line_with_status_2(tmp_path_factory, capsys, changes, message):
    if COMM.size > 1:
        pytest.skip("the CLI aborts every rank on an error (its MPI behaviour); serial only")
    case = _case(tmp_path_factory.mktemp("bad"), "", **changes)
    assert main(["run", str(case), "--output", str(case.parent / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error, error


def test_uncertainty_flag_on_a_specimen_is_refused_not_ignored(tmp_path, capsys):
    """`--uncertainty` has no meaning for a rig (no patient, no segmentation or calibration factors):
    one line and status 2, nothing written (it used to run the rig and drop the flag silently)."""
    if COMM.size > 1:
        pytest.skip("the CLI aborts every rank on an error (its MPI behaviour); serial only")
    case = _case(tmp_path, "")
    assert main(["run", str(case), "--output", str(tmp_path / "run"), "--quiet", "--uncertainty", "5"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--uncertainty applies to the patient bone sites" in error and "\n" not in error, error
    assert not (tmp_path / "run").exists()


def _write_stack(folder: Path, values: np.ndarray) -> None:
    """values [i, j, k] as TIFF slices k (rows j, columns i), names in slice order."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(values.shape[2]):
        Image.fromarray(np.ascontiguousarray(values[:, :, k].T)).save(folder / f"slice_{k:04d}.tif")


def test_tiff_stack_keeps_columns_rows_slices_and_downsamples(tmp_path):
    from bonefe.sites.specimen.case import ImageOptions
    from bonefe.sites.specimen.reading import read_specimen

    values = np.zeros((6, 8, 6), np.uint8)
    values[5, 0, 5] = 80  # the last column of the first row of the last slice
    _write_stack(tmp_path / "stack", values)
    volume = read_specimen(ImageOptions(path=tmp_path / "stack", voxel_mm=(0.5, 0.5, 0.25)), "box")
    assert volume.hu.shape == (6, 8, 6) and volume.hu[5, 0, 5] == 80 and volume.hu.sum() == 80
    assert volume.to_world([[0, 0, 0]])[0] == pytest.approx([0.25, 0.25, 0.125])  # box from 0
    coarse = read_specimen(ImageOptions(path=tmp_path / "stack", voxel_mm=(0.5, 0.5, 0.25), downsample=2), "box")
    assert coarse.hu.shape == (3, 4, 3) and coarse.hu[2, 0, 2] == pytest.approx(80 / 8)
    assert coarse.to_world([[0, 0, 0]])[0] == pytest.approx([0.5, 0.5, 0.25])  # still from 0


CYLINDER_VOXEL_MM, CYLINDER_RADIUS_MM, CYLINDER_LENGTH_MM = 0.5, 4.0, 12.0


def _cylinder(folder: Path, mesh: str) -> tuple[str, np.ndarray]:
    """A cylinder of grey 200 (radius 4 mm, 12 mm long, cut by the image at both ends) as a TIFF stack
    of 0.5 mm voxels in folder/stack (written by rank 0), and a case text for it: thresholded at 100,
    E = 10 GPa, ν 0, bottom clamped, top pushed 0.012 mm, then `mesh` (YAML lines). Returns the case
    text and which voxels of a slice are inside."""
    n_xy, n_z = 20, round(CYLINDER_LENGTH_MM / CYLINDER_VOXEL_MM)
    centre = (np.arange(n_xy) + 0.5) * CYLINDER_VOXEL_MM - n_xy * CYLINDER_VOXEL_MM / 2
    inside = centre[:, None] ** 2 + centre[None, :] ** 2 <= CYLINDER_RADIUS_MM**2
    if COMM.rank == 0:
        _write_stack(folder / "stack", np.repeat((200 * inside)[:, :, None], n_z, axis=2).astype(np.uint8))
    return f"""site: specimen
name: cylinder
image: {{path: stack, voxel_mm: {CYLINDER_VOXEL_MM}}}
specimen: {{threshold: 100}}
material: {{grey_power: {{scale_mpa: 5000, exponent: 1.0, reference_grey: 100}}, poisson: 0.0}}
rig:
  fixed: {{plane: {{point: [0, 0, 0], normal: [0, 0, 1]}}}}
  loaded: {{plane: {{point: [0, 0, {CYLINDER_LENGTH_MM}], normal: [0, 0, -1]}}}}
  displacement_mm: [0, 0, -0.012]
failure: {{averaging_radius_mm: 1.0, exclusion_mm: 1.0}}
{mesh}
""", inside


def test_thresholded_cylinder_from_a_tiff_stack_is_e_a_over_l(tmp_path_factory):
    """A cylinder (radius 4 mm, 12 mm long, cut by the image at both ends) of grey 200 in a TIFF
    stack, thresholded and meshed by bonefe's smooth mesher. With poisson 0 the uniform strain
    field u = −δ z / L is admissible, so the stiffness is at most E V / L² (V: the mesh volume;
    the energy bound), reached by an exact prism; the smoothed surface rounds the rims at the cut
    faces, so the stiffness lies a little below (1.6 % at 1 mm elements)."""
    folder = _shared_folder(tmp_path_factory, "cylinder")
    text, _ = _cylinder(folder, "mesh: {size_mm: 1.0}")
    if COMM.rank == 0:
        (folder / "case.yaml").write_text(text, encoding="utf-8")
    COMM.barrier()
    results = run_specimen(folder / "case.yaml", output=folder / "run", quiet=True)
    voigt = 10_000.0 * results["mesh"]["mesh_volume_mm3"] / CYLINDER_LENGTH_MM**2
    assert voigt == pytest.approx(10_000.0 * np.pi * CYLINDER_RADIUS_MM**2 / CYLINDER_LENGTH_MM, rel=0.03)
    assert 0.97 * voigt < results["rig"]["stiffness_n_per_mm"] < voigt


def test_vertebra_between_plates_agrees_with_calculix(ccx, tmp_path_factory):
    """Any bone: the procedural L1 vertebra (bonefe's vertebra phantom, no lesion) from its CT and
    label files, HU → density → Morgan's vertebral law, between two plates that take everything
    within 1.5 mm of its lowest and highest points; CalculiX must find the same plate force."""
    from bonefe.sites import site_of

    folder = _shared_folder(tmp_path_factory, "vertebra")
    if COMM.rank == 0:
        site_of("vertebra").write_phantom({"level": "L1", "lesion_site": None, "voxel_mm": 0.6}, folder, "nii.gz")
        (folder / "case.yaml").write_text("""site: specimen
name: vertebra-in-plates
image: {path: ct.nii.gz}
specimen: {labels: labels.nii.gz, value: 1}
material: {density: {law: morgan2003_vertebra}, poisson: 0.3}
rig:
  fixed: {plane: {point: [0, 0, 6.0], normal: [0, 0, 1], depth_mm: 1.5}}
  loaded: {plane: {point: [0, 0, 30.0], normal: [0, 0, -1], depth_mm: 1.5}}
  displacement_mm: [0, 0, -0.1]
mesh: {size_mm: 2.5}
failure: {averaging_radius_mm: 2.0, exclusion_mm: 3.0}
exports: [inp]
""", encoding="utf-8")
    COMM.barrier()
    results = run_specimen(folder / "case.yaml", output=folder / "run", quiet=True)
    assert results["failure_mode"] == "compressive"
    _check_against_calculix(results, folder / "run")


def test_a_label_region_takes_the_facets_next_to_its_voxels():
    """On a box mesh, the facets whose midpoints a label map puts in label 7 (z < 0.5 mm) are the
    bottom face's: the same facets as the plane z = 0 with depth 0."""
    import dolfinx

    from bonefe.sites.specimen.case import Plane, Region
    from bonefe.sites.specimen.rig import region_facets

    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), np.array([4.0, 4.0, 8.0])], [2, 2, 4],
                                   dolfinx.mesh.CellType.tetrahedron)
    by_label = region_facets(mesh, Region(label=7), "fixed", lambda points: np.where(points[:, 2] < 0.5, 7, 0))
    by_plane = region_facets(mesh, Region(plane=Plane((0, 0, 0), (0, 0, 1))), "fixed")
    assert np.array_equal(np.sort(by_label), np.sort(by_plane))
    assert COMM.allreduce(len(by_plane)) == 8  # 2 x 2 squares, two triangles each


def test_the_specimen_site_implements_the_interface():
    """Every member of `bonefe.sites.base.Site` and `Setup` exists on the specimen site (the clinical
    ones say why they do not apply instead of inventing a meaning)."""
    from bonefe.errors import BonefeError
    from bonefe.sites import SPECIMEN, site_of
    from bonefe.sites.base import Setup, Site
    from bonefe.sites.specimen.site import SpecimenSetup

    def members(protocol):
        return {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)

    site = site_of(SPECIMEN)
    assert not members(Site) - set(dir(site))
    assert not members(Setup) - set(dir(SpecimenSetup)) - set(SpecimenSetup.__dataclass_fields__)
    with pytest.raises(BonefeError, match="no patient"):
        site.setup(load_specimen_case(CASES / "specimen-phantom.yaml"), None).thresholds(None)


def test_quadratic_elements_give_the_same_exact_block():
    """mesh.degree 2 (P2): the linear field is still exact, so E A / L and E A ε_c again."""
    case = load_specimen_case(CASES / "specimen-phantom.yaml")
    case = replace(case, mesh=replace(case.mesh, degree=2), exports=[])
    solved = solve_specimen(case, read_specimen(case.image, case.specimen), COMM)
    assert solved.model.loading.K[2, 2] == pytest.approx(E_MPA * AREA_MM2 / LENGTH_MM, rel=1e-8)
    assert solved.stance.failure_load_n == pytest.approx(E_MPA * AREA_MM2 * COMPRESSIVE_LIMIT, rel=1e-7)


CANTILEVER = """site: specimen
name: cantilever
image:
  phantom: {size_mm: [10, 10, 100], voxel_mm: 2.0, grey: 100}
specimen: box
material:
  grey_power: {scale_mpa: 10000, exponent: 1.5, reference_grey: 100}
  poisson: 0.0
rig:
  fixed: {plane: {point: [0, 0, 0], normal: [0, 0, 1]}}
  loaded: {plane: {point: [0, 0, 100], normal: [0, 0, -1]}}
  force_n: [100, 0, 0]
  moment_nmm: [0, 0, 0]
mesh: {size_mm: 2.5, degree: 2}
failure: {averaging_radius_mm: 2.0, exclusion_mm: 5.0}
"""


def test_a_plate_free_to_rotate_makes_a_cantilever_and_a_locked_one_a_guided_beam(tmp_path_factory):
    """A 10 × 10 × 100 mm block (E 10 GPa, ν 0, P2) clamped at z = 0, its top bonded to a plate on a
    ball joint at the top face's centre (moment_nmm [0, 0, 0]) pushed sideways by 100 N: a
    cantilever whose end section stays plane. Timoshenko: tip deflection F L³/(3EI) + F L/(κGA) =
    4.000 + 0.024 mm and end rotation F L²/(2EI) = 0.0600 rad (I = a⁴/12, G = E/2, κ = 10(1+ν)/(12+11ν)
    = 5/6, Cowper 1966); measured 4.02387 mm (−0.003 %: the clamped base also holds the section's
    shear warping) and 0.0600000 rad, asserted within 0.1 %. Locked against rotation (a platen) the
    same force deflects the beam F L³/(12EI) + F L/(κGA) = 1.024 mm (measured 1.02387) and the
    platen holds the guided end's moment F L / 2 = 5000 N·mm. The 6 × 6 stiffness is symmetric
    (reciprocity)."""
    from bonefe.sites.specimen.rig import RigLoading

    folder = _shared_folder(tmp_path_factory, "cantilever")
    if COMM.rank == 0:
        (folder / "case.yaml").write_text(CANTILEVER, encoding="utf-8")
    COMM.barrier()
    case = load_specimen_case(folder / "case.yaml")
    solved = solve_specimen(case, read_specimen(case.image, case.specimen), COMM)
    loading = solved.model.loading
    E, L, a, F = 10_000.0, 100.0, 10.0, 100.0
    EI, kGA = E * a**4 / 12.0, 5.0 / 6.0 * E / 2.0 * a * a
    rig = loading.readouts(case.rig)
    assert rig["plate_translation_mm"][0] == pytest.approx(F * L**3 / (3 * EI) + F * L / kGA, rel=1e-3)
    assert np.radians(rig["plate_rotation_deg"][1]) == pytest.approx(F * L**2 / (2 * EI), rel=1e-3)
    assert rig["reaction_force_n"] == pytest.approx([F, 0.0, 0.0], abs=1e-8 * F)
    assert rig["reaction_moment_nmm"] == pytest.approx(np.zeros(3), abs=1e-8 * F * L)
    assert np.allclose(loading.K, loading.K.T, rtol=0, atol=1e-7 * np.abs(loading.K).max())
    platen = RigLoading(solved.mesh, solved.material.E, 0.0, solved.tags, replace(case.rig, moment_nmm=None), degree=2)
    guided = platen.readouts(replace(case.rig, moment_nmm=None))
    assert guided["plate_translation_mm"][0] == pytest.approx(F * L**3 / (12 * EI) + F * L / kGA, rel=1e-3)
    assert guided["plate_rotation_deg"] == [0.0, 0.0, 0.0]
    assert guided["reaction_moment_nmm"] == pytest.approx([0.0, -F * L / 2.0, 0.0], rel=1e-3, abs=1e-3 * F * L)


def _ccx_plate_moment(folder: Path, pivot) -> np.ndarray:
    """CalculiX's moment (N·mm) about `pivot` of the reaction forces on the plate's nodes."""
    inp = (folder / "model.inp").read_text(encoding="utf-8")
    nodes = inp[inp.index("*NODE, NSET=NALL\n") + 17:inp.index("*ELEMENT")]
    xyz = {int(row.split(",")[0]): np.array(row.split(",")[1:], float) for row in nodes.splitlines()}
    dat = (folder / "model.dat").read_text(encoding="utf-8")
    block = re.search(r"\n forces \(fx,fy,fz\) for set P_LOADED and time[^\n]*\n\s*\n((?:\s*\d+(?:\s+\S+){3}\n)+)", dat)
    rows = np.array([row.split() for row in block.group(1).strip().splitlines()], float)
    arms = np.array([xyz[int(n)] for n in rows[:, 0]]) - np.asarray(pivot)
    return np.cross(arms, rows[:, 1:]).sum(axis=0)


def test_a_rotated_plate_s_moment_agrees_with_calculix(ccx, tmp_path_factory):
    """Torsion: the phantom block (10 × 10 × 20 mm, ν 0.3) with its plate turned 1° about the block's
    axis through the top face's centre and not moved. CalculiX, each plate node moved by θ × (x − c)
    on the same mesh, must find the same moment (from its nodal reactions; 7 printed digits) and a nil
    net force on both regions; the fixed region holds minus the plate's force and moment
    (equilibrium); the plate force is nil, so the report gives a failure moment and no failure load."""
    folder = _shared_folder(tmp_path_factory, "torsion")
    case = _case(folder, "", **{"poisson: 0.0": "poisson: 0.3",
                                "displacement_mm: [0, 0, -0.02]": "displacement_mm: [0, 0, 0]\n  rotation_deg: [0, 0, 1]"})
    results = run_specimen(case, output=folder / "run", quiet=True)
    rig = results["rig"]
    torque = rig["reaction_moment_nmm"][2]
    assert torque > 0 and rig["moment_pivot_mm"] == pytest.approx([5.0, 5.0, 20.0])
    assert np.abs(rig["reaction_force_n"]).max() < 1e-6 * torque / 10.0
    assert np.add(rig["fixed_region_moment_nmm"], rig["reaction_moment_nmm"]) == pytest.approx(np.zeros(3), abs=1e-6 * torque)
    assert results["failure_moment_nmm"] > 0 and results["failure_load_n"] is None
    if COMM.rank == 0:
        totals = _ccx_reactions(folder / "run" / "model.inp")  # runs ccx
        assert np.abs(totals["P_LOADED"]).max() < 1e-5 * torque / 10.0 and np.abs(totals["NFIX"]).max() < 1e-5 * torque / 10.0
        ccx_moment = _ccx_plate_moment(folder / "run", rig["moment_pivot_mm"])
        assert ccx_moment == pytest.approx(rig["reaction_moment_nmm"], abs=1e-5 * torque)


def test_compliant_layers_act_as_springs_in_series(tmp_path_factory):
    """The phantom block (E 10 GPa, ν 0, A 100 mm², L 20 mm) held and pushed through 5 mm PMMA
    layers (E 2.5 GPa, `bonefe.plate_layer`: k_n = E/h = 500 N/mm³): the block's uniform strain
    makes the rig three springs in series, 1/K = 2/(k_n A) + L/(E A) → K = 16,666.67 N/mm (exact on
    any mesh: u is linear in z and the layers' shear springs see no slip). The fixed layer holds
    minus the plate's force. A nearly rigid layer (E 10⁷ MPa, 1 µm) on a block with ν 0.3 gives the
    bonded block's stiffness (52,308.42 N/mm, CalculiX-checked above) within 1e-5 (measured 2e-7).
    With the plate also turned 0.1° through its layer, the 6 × 6 stiffness stays symmetric and the
    fixed layer holds minus the plate's moment."""
    folder = _shared_folder(tmp_path_factory, "layers")
    pmma = "\n    layer: {E_mpa: 2500, nu: 0.3, thickness_mm: 5}"
    text = (CASES / "specimen-phantom.yaml").read_text(encoding="utf-8").replace("exports: [inp]", "exports: []")
    layered = text.replace("normal: [0, 0, 1]}}", "normal: [0, 0, 1]}" + pmma.replace("\n    ", ", ") + "}") \
                  .replace("normal: [0, 0, -1]}}", "normal: [0, 0, -1]}" + pmma.replace("\n    ", ", ") + "}")
    stiff = layered.replace("E_mpa: 2500, nu: 0.3, thickness_mm: 5", "E_mpa: 10000000, nu: 0.3, thickness_mm: 0.001") \
                   .replace("poisson: 0.0", "poisson: 0.3")
    bonded = text.replace("poisson: 0.0", "poisson: 0.3")
    found = {}
    turned = layered.replace("displacement_mm: [0, 0, -0.02]", "displacement_mm: [0, 0, -0.02]\n  rotation_deg: [0.1, 0, 0]")
    for name, source in (("layered", layered), ("stiff", stiff), ("bonded", bonded), ("turned", turned)):
        if COMM.rank == 0:
            (folder / f"{name}.yaml").write_text(source, encoding="utf-8")
        COMM.barrier()
        case = load_specimen_case(folder / f"{name}.yaml")
        loading = solve_specimen(case, read_specimen(case.image, case.specimen), COMM).model.loading
        found[name] = loading.readouts(case.rig)
    k_layer = 2500.0 / 5.0 * AREA_MM2
    assert found["layered"]["stiffness_n_per_mm"] == pytest.approx(1.0 / (2.0 / k_layer + LENGTH_MM / (E_MPA * AREA_MM2)),
                                                                   rel=1e-8)
    assert np.add(found["layered"]["fixed_region_force_n"], found["layered"]["reaction_force_n"]) == \
        pytest.approx(np.zeros(3), abs=1e-6)
    assert found["stiff"]["stiffness_n_per_mm"] == pytest.approx(found["bonded"]["stiffness_n_per_mm"], rel=1e-5)
    K = np.array(found["turned"]["stiffness_matrix"])
    assert K.shape == (6, 6) and np.abs(K - K.T).max() < 1e-8 * np.abs(K).max()
    moment = found["turned"]["reaction_moment_nmm"]
    assert np.add(found["turned"]["fixed_region_moment_nmm"], moment) == pytest.approx(np.zeros(3), abs=1e-7 * np.abs(moment).max())


def test_a_voxel_mesh_is_exact_for_a_voxel_prism_and_agrees_with_calculix(ccx, tmp_path_factory):
    """mesh.kind voxel: the thresholded cylinder's voxels (radius 4 mm, 0.5 mm voxels, 12 mm long)
    become six tetrahedra each, so the specimen is exactly the staircase prism of its voxels. With
    ν 0 the uniform strain is the exact solution on any prism: stiffness E · n · h² / L (n voxels per
    slice) to solver precision — no smoothing error, unlike the smooth mesh above. With ν 0.3,
    CalculiX on the same voxel mesh must find the same plate force."""
    folder = _shared_folder(tmp_path_factory, "voxels")
    text, inside = _cylinder(folder, "mesh: {kind: voxel}\nexports: [inp]")
    if COMM.rank == 0:
        (folder / "exact.yaml").write_text(text, encoding="utf-8")
        (folder / "poisson.yaml").write_text(text.replace("poisson: 0.0", "poisson: 0.3"), encoding="utf-8")
    COMM.barrier()
    exact = run_specimen(folder / "exact.yaml", output=folder / "exact", quiet=True)
    n, h, length = int(inside.sum()), CYLINDER_VOXEL_MM, CYLINDER_LENGTH_MM
    assert exact["mesh"]["cells"] == 6 * n * round(length / h) and exact["mesh"]["mesh_volume_mm3"] == pytest.approx(n * h**2 * length)
    assert exact["rig"]["stiffness_n_per_mm"] == pytest.approx(10_000.0 * n * h**2 / length, rel=1e-8)
    poisson = run_specimen(folder / "poisson.yaml", output=folder / "poisson", quiet=True)
    _check_against_calculix(poisson, folder / "poisson")
