"""Test set-up shared by every test: quiet ranks under MPI, one mesh cache per test session (real
data: real_data.py)."""

import os
import shutil
import tempfile

import pytest

MESH_CACHE_ENV = "BONEFE_MESH_CACHE"
"""bonefe.meshing.MESH_CACHE_ENV (not imported here: the pytest-xdist controller stays free of MPI)."""
_OWN_CACHE = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Under `mpirun -n N pytest`, only rank 0 reports; the other ranks run the same tests silently.

    Unless the caller named one, a fresh mesh cache (bonefe.meshing) serves the whole session: its
    xdist workers and the commands tests start inherit it, so each distinct segmentation and set of
    meshing options goes through gmsh once per session; a cache hit is the same mesh, bit for bit
    (tests/test_meshing.py). Tests of gmsh itself remove it (tests/test_reproducibility.py)."""
    if int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))) > 0:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)
    if MESH_CACHE_ENV not in os.environ:
        config.stash[_OWN_CACHE] = os.environ[MESH_CACHE_ENV] = tempfile.mkdtemp(prefix="bonefe-test-meshes-")


def pytest_unconfigure(config):
    """Remove the session's own mesh cache."""
    folder = config.stash.get(_OWN_CACHE, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        del os.environ[MESH_CACHE_ENV]

