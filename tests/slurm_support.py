"""Whether a Slurm controller answers (`.ci/start-slurm` starts a single-node one as root). Tests that
need one skip without it, except when the environment variable CI is set: then they fail, so CI
cannot skip them silently."""

import os
import shutil
import subprocess

import pytest


def slurm_answers() -> str | None:
    """None when a Slurm controller answers, else why not."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "sbatch/scontrol not installed"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, encoding="utf-8", timeout=20)
    except subprocess.TimeoutExpired:
        return "scontrol ping timed out"
    return None if "UP" in ping.stdout else f"no Slurm controller answers ({ping.stdout.strip() or ping.stderr.strip()})"


def require_slurm() -> None:
    """Skip (fail under CI) unless a Slurm controller answers."""
    reason = slurm_answers()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the Slurm tests (.ci/run starts Slurm with .ci/start-slurm)")
        pytest.skip(f"{reason}; start one with `sudo .ci/start-slurm`")
