"""Where the optional real data lives (../shared/data beside the checkout); tests that use it skip
cleanly when it is absent."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(folder: str) -> Path:
    """Path of a folder of ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data {path} not present (optional; see ../shared/data/README.md)")
    return path
