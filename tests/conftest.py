"""Shared test helpers: where the optional real data lives."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(folder: str) -> Path:
    """Path of a folder of ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data {path} not present (optional; see ../shared/data/README.md)")
    return path


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Under `mpirun -n N pytest`, only rank 0 reports; the other ranks run the same tests silently."""
    if int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))) > 0:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)
