"""`bonefe batch run --slurm`: one Slurm job array per submission, one array task per case.

The job script comes from the template `hpc/bonefe-array.sbatch.in` (installed with the package as
bonefe/data/bonefe-array.sbatch.in; placeholders `@NAME@`); each
array task runs `python -m bonefe.cli batch task DIR INDEX`, which runs case INDEX of the batch
folder exactly as the local batch does (`bonefe.cohort.batch.run_one`) and rewrites the cohort summary.
`squeue` tells which tasks are still queued or running; `sacct`, where accounting is enabled,
says why a task ended without a result (TIMEOUT, OUT_OF_MEMORY, ...).
"""

import re
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from bonefe.cohort.batch import Cohort, load_cohort, run_one, write_summary
from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_json, atomic_write_text
from bonefe.cohort.slurm_queue import queued_tasks

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "bonefe-array.sbatch.in"
SCRIPT = "bonefe-array.sbatch"


@dataclass(frozen=True)
class SlurmOptions:
    """memory: per array task, i.e. per case (sbatch --mem, e.g. "4G"); time: wall-time limit per case
    (sbatch --time); sbatch: further `#SBATCH` options (e.g. "--partition=short", "--account=abc");
    template: the job-script template (default: the one installed with bonefe, hpc/bonefe-array.sbatch.in)."""

    memory: str = "4G"
    time: str = "02:00:00"
    sbatch: list[str] = field(default_factory=list)
    template: Path | None = None


def render_script(cohort: Cohort, indices: list[int], options: SlurmOptions) -> str:
    """The job-array script for the cases at `indices` of the cohort (absolute paths only)."""
    template = options.template or TEMPLATE
    if not Path(template).is_file():
        raise BonefeError(f"Slurm template {template} not found: fix --template (a copy of "
                          "hpc/bonefe-array.sbatch.in)")
    values = {
        "JOB_NAME": f"bonefe-{cohort.folder.name}", "ARRAY": ",".join(map(str, indices)),
        "RANKS": str(cohort.ranks), "MEMORY": options.memory, "TIME": options.time,
        "DIR": str(cohort.folder), "PYTHON": sys.executable,
        "SBATCH_OPTIONS": "\n".join(f"#SBATCH {option}" for option in options.sbatch),
    }
    template_text = Path(template).read_text(encoding="utf-8")
    text = re.sub(r"@([A-Z_]+)@", lambda m: values.get(m.group(1), m.group(0)), template_text)
    unknown = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if unknown:
        raise BonefeError(f"Slurm template {template} has unknown placeholders {unknown}: "
                          f"use only {sorted(values)}")
    return text


def submit(cohort: Cohort, options: SlurmOptions) -> tuple[Cohort, str | None]:
    """Submit the cases that are not done as one job array; returns the updated cohort and the job
    id (None when every case is done)."""
    if queued_tasks() is None:
        raise BonefeError("squeue does not answer: run on a Slurm login node (or without --slurm)")
    names = list(cohort.cases)
    indices = [i for i, name in enumerate(names) if not cohort.is_done(name)]
    if not indices:
        return cohort, None
    script = cohort.folder / SCRIPT
    atomic_write_text(script, render_script(cohort, indices, options))
    result = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                            cwd=cohort.folder, encoding="utf-8")
    if result.returncode != 0:
        raise BonefeError(f"sbatch refused {script}: {result.stderr.strip().splitlines()[-1:]}")
    job = result.stdout.strip().split(";")[0]
    cohort = replace(cohort, slurm_jobs=[*cohort.slurm_jobs, job])
    cohort.save()
    for i in indices:
        atomic_write_json(cohort.status_path(names[i]),
                          {"case": names[i], "status": "pending", "slurm_job": job, "index": i})
    return cohort, job


def run_task(folder: Path, index: int, job: str | None) -> int:
    """Run case `index` of a batch folder inside a Slurm array task; 0 when it is done."""
    cohort = load_cohort(folder)
    names = list(cohort.cases)
    if not 0 <= index < len(names):
        raise BonefeError(f"array index {index} out of range: {folder} has {len(names)} cases")
    name = names[index]
    record = {"status": "done"} if cohort.is_done(name) else run_one(
        cohort, name, {"slurm_job": job, "index": index} if job else None)
    write_summary(cohort)
    return 0 if record["status"] == "done" else 1
