"""Test set-up shared by every test: quiet ranks under MPI (real data: real_data.py)."""

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Under `mpirun -n N pytest`, only rank 0 reports; the other ranks run the same tests silently."""
    if int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))) > 0:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)
