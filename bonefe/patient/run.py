"""`bonefe patient run`: every bone of one patient through the batch machinery, then one report.

The output folder is a batch folder (`bonefe.cohort.batch`: batch.json, cases/<name>/, status/,
logs/, cohort-summary) with the patient's own files beside it:

  inputs/<bone>.yaml   each bone's complete case (absolute paths, the patient's body mass)
  patient-bones.json   the patient id, body mass and which case is which bone (read by `patient report`)
  patient.json/.html/.pdf   the patient report (`bonefe.patient.report`)

Locally each bone runs in its own process (`--ranks` MPI ranks each, `--jobs` bones at a time); with
Slurm the bones are one job array, and a job that depends on it (afterany) runs `bonefe patient
report DIR` when the array has ended (which anyone may also run at any time). A bone that fails
leaves the others' results: the report says which bone is missing and why. Rerunning runs only the
bones without a result.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

from bonefe.cohort.batch import Cohort, load_cohort, prepare, run_local, summary_row
from bonefe.cohort.slurm import SlurmOptions, submit
from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_json
from bonefe.patient.combine import BoneResult, patient_report
from bonefe.patient.report import write_patient_report
from bonefe.patient.spec import load_patient, write_inputs

MANIFEST = "patient-bones.json"


def run_patient(path, output: Path | None = None, jobs: int = 1, ranks: int = 1, mesh_size: float | None = None,
                launcher: str | None = None, slurm: SlurmOptions | None = None) -> tuple[Path, dict, str | None]:
    """Run (or submit, with `slurm`) every bone without a result and write the patient report;
    returns the folder, the report and the Slurm job id (None when run here or nothing was left to run)."""
    patient = load_patient(path)
    folder = Path(output).resolve() if output is not None else patient.output
    inputs = write_inputs(patient, folder)
    cohort = prepare(inputs, folder, ranks, mesh_size, launcher)
    atomic_write_json(folder / MANIFEST, {
        "patient": patient.patient, "body_mass_kg": patient.body_mass_kg,
        "bones": [{"bone": b.bone, "site": b.case.site, "case": b.case.name} for b in patient.bones]})
    job = None
    if slurm is not None:
        cohort, job = submit(cohort, slurm)
        if job is not None:
            submit_report(folder, job, slurm)
    else:
        run_local(cohort, jobs)
    return folder, write_report(folder), job


def submit_report(folder: Path, job: str, options: SlurmOptions) -> str:
    """A Slurm job that rewrites the patient report once the array `job` has ended, however its
    tasks ended (afterany); returns its id. Takes the array's extra sbatch options (partition, account)."""
    command = shlex.join([sys.executable, "-m", "bonefe.cli", "patient", "report", str(folder)])
    result = subprocess.run(["sbatch", "--parsable", f"--dependency=afterany:{job}", "--job-name=bonefe-patient-report",
                             "--ntasks=1", "--time=00:10:00", f"--chdir={folder}",
                             f"--output={folder / 'logs' / 'slurm-patient-report-%j.out'}", *options.sbatch,
                             f"--wrap={command}"], capture_output=True, encoding="utf-8", cwd=folder)
    if result.returncode != 0:
        raise BonefeError(f"sbatch refused the patient report job after array {job}: "
                          f"{result.stderr.strip().splitlines()[-1:]}; run bonefe patient report {folder} when it ends")
    return result.stdout.strip().split(";")[0]


def bone_results(folder: Path) -> tuple[dict, list[BoneResult]]:
    """The patient manifest of a patient folder and each bone's result (report.json, or why not)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BonefeError(f"{folder} is not a patient folder (no {MANIFEST}): start one with "
                          "bonefe patient run patient.yaml") from None
    cohort = load_cohort(folder)
    return manifest, [_result(cohort, bone, manifest["body_mass_kg"]) for bone in manifest["bones"]]


def _result(cohort: Cohort, bone: dict, body_mass_kg: float) -> BoneResult:
    """One bone's result; a report made for another body mass (the patient file changed since) is stale."""
    name = bone["case"]
    if not cohort.is_done(name):
        row = summary_row(cohort, name)
        return BoneResult(bone["bone"], bone["site"], name, None, row["status"], row["error"] or "not run yet")
    report = json.loads((cohort.output(name) / "report.json").read_text(encoding="utf-8"))
    if report["body_mass_kg"] != body_mass_kg:
        return BoneResult(bone["bone"], bone["site"], name, None, "stale",
                          f"its result is for {report['body_mass_kg']:g} kg, the patient's body mass is "
                          f"{body_mass_kg:g} kg: delete {cohort.output(name)} and rerun")
    return BoneResult(bone["bone"], bone["site"], name, report)


def write_report(folder: Path) -> dict:
    """Rewrite the patient report of a patient folder from its bones' results; returns patient.json."""
    manifest, results = bone_results(folder)
    report = patient_report(manifest["patient"], manifest["body_mass_kg"], results)
    write_patient_report(Path(folder), report)
    return report


def summary_line(report: dict, folder: Path) -> str:
    """The line `bonefe patient run` prints: worst risk and bone, missing bones, walking-aid flag."""
    done = sum(b["status"] == "done" for b in report["bones"])
    risk = (f"{report['risk'].upper()} risk (limited by {report['limiting_bone']})" if report["risk"]
            else "no bone has a result yet")
    missing = "".join(f"; MISSING {m['bone']} ({m['status']}: {m['error']})" for m in report["missing"])
    aid = "; WALKING AID CONFLICT" if report["walking_aids"]["flag"] else ""
    return (f"patient {report['patient']}: {risk}; {done} of {len(report['bones'])} bones{missing}{aid}; "
            f"report: {Path(folder) / 'patient.html'}")
