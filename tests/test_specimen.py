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
    assert loading.motion(rig) == pytest.approx([0.0, 0.0, -500.0 * LENGTH_MM / (E_MPA * AREA_MM2)], rel=1e-8, abs=1e-14)
    assert loading.readouts(rig)["reaction_force_n"] == pytest.approx([0.0, 0.0, -500.0], abs=1e-6)


def _ccx_reactions(inp: Path) -> dict[str, np.ndarray]:
    """CalculiX's total reaction force per node set (N) of an exported rig."""
    run = subprocess.run([shutil.which("ccx"), "-i", inp.stem], cwd=inp.parent, capture_output=True, text=True,
                         timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-2000:]
    text = inp.with_suffix(".dat").read_text()
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
        text = (CASES / "specimen-phantom.yaml").read_text().replace("poisson: 0.0", "poisson: 0.3")
        case.write_text(text)
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
    source = (CASES / "specimen-phantom.yaml").read_text()
    for old, new in changes.items():
        assert old in source
        source = source.replace(old, new)
    path = tmp_path / "case.yaml"
    if COMM.rank == 0:
        path.write_text(source + text)
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
])
def test_bad_rigs_end_in_one_line_with_status_2(tmp_path_factory, capsys, changes, message):
    if COMM.size > 1:
        pytest.skip("the CLI aborts every rank on an error (its MPI behaviour); serial only")
    case = _case(tmp_path_factory.mktemp("bad"), "", **changes)
    assert main(["run", str(case), "--output", str(case.parent / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error, error
