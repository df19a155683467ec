"""Service test support: the session's service home and environment, small uploads, and a live
server in subprocesses. Imported under a name of its own (not `conftest`, which tests/conftest.py
also is) by conftest.py and the tests."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HOME = Path(tempfile.mkdtemp(prefix="bonefe-service-test-"))
PASSWORD = "correct-horse-battery-9"
SERVICE_ENV = {
    "DJANGO_SETTINGS_MODULE": "bonefe.service.settings",
    "BONEFE_SERVICE_HOME": str(HOME),
    "BONEFE_SERVICE_LEASE_S": "3",
    "BONEFE_SERVICE_HOSTS": "127.0.0.1 testserver",  # testserver: the Django test client
    "BONEFE_SERVICE_MAX_UPLOAD_MB": "64",
    "BONEFE_SERVICE_RUN_COMMAND": f"{sys.executable} {HERE / 'fake_runner.py'}",  # TEST ONLY fake runner
    "FAKE_RUN_LEDGER": str(HOME / "fake-runs.txt"),
}
SCHEMA = "test_" + os.environ.get("PYTEST_XDIST_WORKER", "main")
"""PostgreSQL schema of this test process: `pytest -n 2` workers share the database, not the tables."""
if os.environ.get("BONEFE_SERVICE_TEST_DATABASE_URL"):
    SERVICE_ENV["BONEFE_SERVICE_DATABASE_URL"] = (os.environ["BONEFE_SERVICE_TEST_DATABASE_URL"]
                                                  + f"?options=-c%20search_path%3D{SCHEMA}")
os.environ.update(SERVICE_ENV)


def leave_queued_only(user) -> None:
    """Cancel other tests' queued requests, so that an in-process worker runs only this user's."""
    from bonefe.service.models import RiskRequest

    RiskRequest.objects.filter(status="queued").exclude(owner=user).update(status="cancelled")


def nifti_bytes(pixels: np.ndarray, affine=None) -> bytes:
    """A .nii.gz file's bytes."""
    image = nib.Nifti1Image(pixels, np.diag([-1.0, -1.0, 1.0, 1.0]) if affine is None else affine)
    path = Path(tempfile.mkstemp(suffix=".nii.gz")[1])
    try:
        nib.save(image, path)
        return path.read_bytes()
    finally:
        path.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """`python -m bonefe.service ARGS` in a subprocess with the session's service environment."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "bonefe.service", *args], cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, **SERVICE_ENV, "PYTHONPATH": str(REPO), **(env or {})})


def wait_for_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"service not listening on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen, kill: bool = False) -> None:
    if process.poll() is None:
        process.kill() if kill else process.terminate()
        process.wait(timeout=30)
