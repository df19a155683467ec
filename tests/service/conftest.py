"""Service test set-up: one service home and database for the session, the Django test client, a
live server in subprocesses, and small images to upload.

The database is PostgreSQL when BONEFE_SERVICE_TEST_DATABASE_URL names one (`.ci/run` sets it;
the tests empty its public schema first), SQLite in the session's temporary home otherwise.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

if importlib.util.find_spec("django") is None:
    collect_ignore_glob = ["test_service_*.py"]  # the service extra is not installed (pip install -e '.[service]')

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
if os.environ.get("BONEFE_SERVICE_TEST_DATABASE_URL"):
    SERVICE_ENV["BONEFE_SERVICE_DATABASE_URL"] = os.environ["BONEFE_SERVICE_TEST_DATABASE_URL"]
os.environ.update(SERVICE_ENV)


def pytest_sessionfinish(session):
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db():
    """Django set up on an empty database with the service's migrations applied."""
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    call_command("migrate", interactive=False, verbosity=0)
    return connection


@pytest.fixture
def make_user(django_db):
    """make_user(role) -> a new user with a unique name and PASSWORD."""
    from django.contrib.auth.models import Group, User

    def make(role="clinician"):
        name = f"{role}-{User.objects.count() + 1}-{time.monotonic_ns() % 10**6}"
        user = User.objects.create_user(name, password=PASSWORD, is_superuser=role == "admin")
        if role == "engineer":
            user.groups.add(Group.objects.get_or_create(name="engineer")[0])
        return user
    return make


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


@pytest.fixture(scope="session")
def small_images():
    """(ct, labels) .nii.gz bytes of a 12×12×8 box of bone with a lytic core: enough to upload."""
    ct = np.full((12, 12, 8), -50.0, dtype=np.float32)
    labels = np.zeros((12, 12, 8), dtype=np.uint8)
    ct[3:9, 3:9, :], labels[3:9, 3:9, :] = 900.0, 1
    ct[5:7, 5:7, 3:5], labels[5:7, 5:7, 3:5] = 40.0, 2
    return nifti_bytes(ct), nifti_bytes(labels)


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
