"""`bonefe run` with `calibration: internal` against the same phantom calibrated by its rods.

The phantom (bonefe phantom --body tissues+rods) puts the femur in a body with air, fat, muscle and
a vessel, beside a K2HPO4 rod phantom, seen by a scanner with a gain (1.04), an offset (+12 HU),
15 HU of noise and a 15 HU beam-hardening cupping at the body's centre.

Tolerance, stated before the run: the stance failure loads agree within 5 %. Why: the rods lie
outside the body and do not see the cupping, the tissues inside it do, so the two lines differ by
up to the cupping, 15 HU × 0.00083 g/cm³/HU ≈ 0.012 g/cm³ at soft-tissue HU. At the neck's
failure site (ρ_QCT ≈ 0.3–1.2 g/cm³) that moves ρ_app = (0.877 ρ_QCT + 0.079)/0.6 by 1–4 %, E ∝
ρ_app^1.49 by 1.5–6 %, and the strain-based failure load by at most as much, less where the
cortex dominates; noise adds < 0.3 % (≥ 5,000 voxels per region). 5 % is the issue's "a few per
cent", and the bound must hold on 1 and 2 MPI ranks.
"""

from pathlib import Path

import pytest
import yaml
from mpi4py import MPI

from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
from bonefe.phantom_body import BodySpec
from bonefe.pipeline import run_case

COMM = MPI.COMM_WORLD
pytestmark = pytest.mark.slow
RODS = [{"label": 11, "density": 0.0}, {"label": 12, "density": 0.05}, {"label": 13, "density": 0.1},
        {"label": 14, "density": 0.2}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = Path(COMM.bcast(str(tmp_path_factory.mktemp("calibration-run")) if COMM.rank == 0 else None))
    if COMM.rank == 0:
        write_phantom(PhantomSpec(voxel_mm=1.5, lesion_site="neck", lesion_diameter_mm=20.0), folder / "ct",
                      body=BodySpec())
    COMM.barrier()
    results = {}
    # each case names the label values the other calibration uses as `other` (read as background)
    for name, calibration, other in (("rods", {"rods": RODS}, [20]),
                                     ("internal", {"internal": {"labels": {"blood": 20}}}, [11, 12, 13, 14])):
        case = {"name": name, "ct": "ct/ct.nii.gz", "labels": "ct/labels.nii.gz", "output": f"runs/{name}",
                "patient": {"body_mass_kg": 75},
                "label_values": {"bone": 1, "lytic": 2, "blastic": 3, "other": other},
                "mesh": {"size_mm": 5.0}, "activities": ["walking"], "calibration": calibration}
        if COMM.rank == 0:
            (folder / f"{name}.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
        COMM.barrier()
        results[name] = run_case(folder / f"{name}.yaml", quiet=True)
    return results


def test_internal_and_rod_calibrated_failure_loads_agree(runs):
    internal, rods = runs["internal"]["failure_load_n"], runs["rods"]["failure_load_n"]
    assert internal == pytest.approx(rods, rel=0.05)
    record = runs["internal"]["provenance"]["density_calibration"]
    assert record["method"] == "internal"
    assert [t["tissue"] for t in record["tissues"]] == ["air", "adipose", "muscle", "blood"]
    assert runs["rods"]["provenance"]["density_calibration"]["method"] == "rods"
    assert any(a.startswith("Density calibration: internal") for a in runs["internal"]["assumptions"])
    assert runs["internal"]["provenance"]["scan_suitability"] == {
        "slices": "pass", "kernel": "pass", "metal": "pass", "field_of_view": "pass"}
