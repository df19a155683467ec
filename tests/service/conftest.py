"""Service test set-up: one service database for the session, the Django test client's users, and
small images to upload (the service home, environment and helpers: service_support.py).

The database is PostgreSQL when BONEFE_SERVICE_TEST_DATABASE_URL names one (`.ci/run` sets it;
each test process empties a schema of its own first), SQLite in the session's temporary home otherwise.
"""

import importlib.util
import shutil
import time

import numpy as np
import pytest

from service_support import HOME, PASSWORD, SCHEMA, nifti_bytes

if importlib.util.find_spec("django") is None:
    collect_ignore_glob = ["test_service_*.py"]  # the service extra is not installed (pip install -e '.[service]')


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
            cursor.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
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


@pytest.fixture(scope="session")
def small_images():
    """(ct, labels) .nii.gz bytes of a 12×12×8 box of bone with a lytic core: enough to upload."""
    ct = np.full((12, 12, 8), -50.0, dtype=np.float32)
    labels = np.zeros((12, 12, 8), dtype=np.uint8)
    ct[3:9, 3:9, :], labels[3:9, 3:9, :] = 900.0, 1
    ct[5:7, 5:7, 3:5], labels[5:7, 5:7, 3:5] = 40.0, 2
    return nifti_bytes(ct), nifti_bytes(labels)
