"""`bonefe batch run --slurm` on a real Slurm controller: a two-case job array, submitted, waited
for, and both results checked (report.json present, failure load positive and finite, summary
rows done and equal to the reports).

Needs a running Slurm (tests/slurm_support.py: skipped without one, failed under CI).
The job runs this interpreter by absolute path and is submitted from `/` to show that nothing
depends on the working directory.
"""

import json
import math
import subprocess
import sys
import time

import pytest
import yaml

from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
from slurm_support import require_slurm

WAIT_S = 300  # two tiny cases take well under a minute; a queue that never starts fails the test
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm():
    require_slurm()


def bonefe(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bonefe.cli", *map(str, args)], capture_output=True, encoding="utf-8",
                          timeout=120, cwd="/")


def test_a_two_case_job_array_runs_both_cases(slurm, tmp_path):
    cases = []
    for name, site in (("neck", "neck"), ("intact", None)):
        paths = write_phantom(PhantomSpec(voxel_mm=2.0, lesion_site=site), tmp_path / f"phantom-{name}")
        case = {"name": name, "ct": str(paths["ct"]), "labels": str(paths["labels"]),
                "patient": {"body_mass_kg": 70}, "mesh": {"size_mm": 8.0}, "activities": ["walking"]}
        cases.append(tmp_path / f"{name}.yaml")
        cases[-1].write_text(yaml.safe_dump(case), encoding="utf-8")
    out = tmp_path / "cohort"

    submitted = bonefe("batch", "run", *cases, "--out", out, "--slurm", "--memory", "1G", "--time", "00:10:00")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted Slurm job array" in submitted.stdout
    manifest = json.loads((out / "batch.json").read_text(encoding="utf-8"))
    assert len(manifest["slurm_jobs"]) == 1
    assert "#SBATCH --array=0,1" in (out / "bonefe-array.sbatch").read_text(encoding="utf-8")

    deadline = time.monotonic() + WAIT_S
    while True:
        status = bonefe("batch", "status", out)
        assert status.returncode == 0, status.stderr
        rows = {row["case"]: row for row in json.loads((out / "cohort-summary.json").read_text(encoding="utf-8"))}
        if all(row["status"] in ("done", "failed") for row in rows.values()):
            break
        assert time.monotonic() < deadline, f"the job array did not finish in {WAIT_S} s:\n{status.stdout}"
        time.sleep(2)

    logs = "\n".join(p.read_text(encoding="utf-8") for p in (out / "logs").glob("*"))
    for name in ("neck", "intact"):
        row = rows[name]
        assert row["status"] == "done", f"{name}: {row['error']}\n{logs}"
        report = json.loads((out / "cases" / name / "report.json").read_text(encoding="utf-8"))
        assert math.isfinite(report["failure_load_n"]) and report["failure_load_n"] > 0
        assert row["failure_load_n"] == report["failure_load_n"]
        record = json.loads((out / "status" / f"{name}.json").read_text(encoding="utf-8"))
        assert record["slurm_job"] == manifest["slurm_jobs"][0]
    # each row belongs to its own case: only the lesioned femur has a lesion-free twin and a Mirels score
    assert rows["neck"]["strain_fold_ratio"] > 0 and rows["neck"]["mirels_min"] is not None
    assert rows["intact"]["strain_fold_ratio"] is None and rows["intact"]["mirels_min"] is None
