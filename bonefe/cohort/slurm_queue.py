"""What Slurm says about this user's array jobs (squeue, sacct): imported by the local batch
(`bonefe.cohort.batch`, to refuse a rerun under a queued array and explain ended tasks) and by the
submission side (`bonefe.cohort.slurm`), so neither imports the other."""

import subprocess
from pathlib import Path

from bonefe.errors import BonefeError


def refuse_if_queued(job_ids: list[str], folder: Path) -> None:
    """Raise while one of the batch folder's job arrays is queued or running: its tasks find their
    case by index in batch.json, which must not change under them."""
    busy = sorted({job for job, _ in queued_tasks() or ()} & set(job_ids))
    if busy:
        raise BonefeError(f"Slurm job {', '.join(busy)} of {folder} is still queued or running: "
                          "follow it with `bonefe batch status` or scancel it before rerunning")


def queued_tasks() -> set[tuple[str, int]] | None:
    """(array job id, task index) of this user's array tasks still queued or running; None without squeue."""
    try:
        result = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%F %K"], capture_output=True,
                                encoding="utf-8", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    tasks = set()
    for line in result.stdout.split("\n"):
        job, _, index = line.strip().partition(" ")
        if index.isdigit():
            tasks.add((job, int(index)))
    return tasks


def ended_state(job: str, index: int) -> str | None:
    """Slurm's final state of one array task (e.g. TIMEOUT), or None where accounting is off."""
    try:
        result = subprocess.run(["sacct", "-n", "-P", "-X", "-j", f"{job}_{index}", "-o", "State"],
                                capture_output=True, encoding="utf-8", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    states = result.stdout.split()
    return states[0] if result.returncode == 0 and states else None
