"""The whole chain on the synthetic femur, as a user runs it.

Checks: failure loads in the range measured for real proximal femora under stance loading
(2-20 kN; Schileo et al. 2008 report 2.0-11.4 kN experimentally, linear onset-of-failure loads
sit at or below those), the lesioned femur weaker than the same femur without its lesion, the
same failure load and failure points on 1 and 2 MPI ranks, the failure site at the peak of the
written failure points, and outputs that survive a failed rerun.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import yaml

from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
from bonefe.pipeline import run_case

MESH_MM = 5.0  # coarse, to keep the suite fast; the benchmarks and docs use the default 3 mm
pytestmark = pytest.mark.slow


def make_case(folder: Path, name: str, lesion_site: str | None) -> Path:
    paths = write_phantom(PhantomSpec(lesion_site=lesion_site, lesion_diameter_mm=25.0,
                                      cortical_involvement=0.6, voxel_mm=1.5), folder / name)
    case = {
        "name": name,
        "ct": str(paths["ct"].relative_to(folder)),
        "labels": str(paths["labels"].relative_to(folder)),
        "output": f"runs/{name}",
        "patient": {"body_mass_kg": 75},
        "mesh": {"size_mm": MESH_MM},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    return {name: make_case(folder, name, site) for name, site in (("neck", "neck"), ("intact", None))}


@pytest.fixture(scope="module")
def results(cases):
    return {name: run_case(path, quiet=True) for name, path in cases.items()}


def test_failure_loads_are_physiological_and_the_lesion_weakens_the_femur(results):
    neck, intact = results["neck"]["failure_load_n"], results["intact"]["failure_load_n"]
    assert 2000 < intact < 20000
    assert 500 < neck < intact
    # the lesion-free twin of the lesioned femur is about as strong as the intact phantom (same
    # geometry, different mesh), and the lesion raises the strain near it (Sternheim 2020 SFR > 1)
    assert results["neck"]["twin_failure_load_n"] == pytest.approx(intact, rel=0.05)
    assert results["neck"]["strain_fold_ratio"] > 1.0
    assert results["intact"]["strain_fold_ratio"] is None


def test_outputs_are_complete_and_consistent(cases, results):
    out = cases["neck"].parent / "runs" / "neck"
    for name in ("report.html", "report.pdf", "report.json", "strain.png", "mesh.xdmf", "mesh.h5",
                 "failure-points.vtp", "mesh-quality.json"):
        assert (out / name).stat().st_size > 0, name
    assert not any((out / name).exists() for name in ("fields.xdmf", "fields.h5", "model.inp"))  # exports: none asked
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["failure_load_n"] == pytest.approx(results["neck"]["failure_load_n"], rel=1e-12)
    assert report["failure_load_bw"] == pytest.approx(report["failure_load_n"] / (75 * 9.81))
    assert {a["name"] for a in report["activities"]} >= {"walking", "stairs_up", "jogging"}
    # one synthesised headline (bonefe.synthesis) and the guidance beside each verdict (lesioned bone)
    assert report["synthesis"]["headline"] in ("HIGH fracture risk", "INDETERMINATE: indicators disagree",
                                               "MODERATE fracture risk", "LOW fracture risk")
    assert {row["label"] for row in report["exercise_guidance"]} >= {"Walking (~4 km/h)", "Body-weight squat (both legs)"}
    assert not (out.parent / "neck.partial").exists()


def test_the_failure_site_is_the_peak_of_the_written_failure_points(cases, results):
    """failure-points.vtp holds the nonlocal strain where failure is read: its largest stance
    failure index sits at the reported failure site and equals the stance (walking) peak force
    over the failure load (the strain is linear in the load), its strains obey ε1 ≥ ε3."""
    out = cases["neck"].parent / "runs" / "neck"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    walking = next(a for a in report["activities"] if a["name"] == "walking")
    cloud = pv.read(out / "failure-points.vtp")
    index = cloud.point_data["stance_failure_index"]
    worst = int(np.argmax(index))
    assert index[worst] == pytest.approx(walking["peak_force_n"] / report["failure_load_n"], rel=1e-9)
    np.testing.assert_allclose(cloud.points[worst], report["failure_location_mm"], atol=1e-9)
    assert np.all(cloud.point_data["stance_max_principal_strain"] >= cloud.point_data["stance_min_principal_strain"])


def test_two_ranks_give_the_same_failure_load(cases, results, tmp_path):
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("no mpirun next to the interpreter or on PATH")
    bonefe = [sys.executable, "-m", "bonefe.cli"]
    completed = subprocess.run(
        [str(mpirun), "-n", "2", *bonefe, "run", str(cases["neck"]), "--output", str(tmp_path / "np2"),
         "--quiet"], capture_output=True, encoding="utf-8", timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    parallel = json.loads((tmp_path / "np2" / "report.json").read_text(encoding="utf-8"))
    # iterative solver tolerance (rtol 1e-10 on the residual) bounds the difference
    assert parallel["failure_load_n"] == pytest.approx(results["neck"]["failure_load_n"], rel=1e-6)
    assert parallel["provenance"]["mpi_ranks"] == 2
    serial_points = pv.read(cases["neck"].parent / "runs" / "neck" / "failure-points.vtp")
    parallel_points = pv.read(tmp_path / "np2" / "failure-points.vtp")
    np.testing.assert_array_equal(parallel_points.points, serial_points.points)
    np.testing.assert_allclose(parallel_points.point_data["stance_failure_index"],
                               serial_points.point_data["stance_failure_index"], rtol=1e-6, atol=1e-8)


def test_a_failed_rerun_keeps_the_earlier_results(cases, results, tmp_path):
    case = yaml.safe_load(cases["neck"].read_text(encoding="utf-8"))
    case["ct"] = "missing/ct.nii.gz"
    broken = cases["neck"].with_name("broken.yaml")
    broken.write_text(yaml.safe_dump({**case, "name": "neck"}), encoding="utf-8")
    before = (cases["neck"].parent / "runs" / "neck" / "report.json").read_bytes()
    completed = subprocess.run([sys.executable, "-m", "bonefe.cli", "run", str(broken)],
                               capture_output=True, encoding="utf-8")
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr and "ct.nii.gz" in completed.stderr
    assert (cases["neck"].parent / "runs" / "neck" / "report.json").read_bytes() == before
