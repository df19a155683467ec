"""Bad vertebra input → one line on stderr, exit 2, no traceback, no report (serial: subprocesses)."""

import subprocess
import sys

import numpy as np
import pytest
import yaml

from bonefe.imaging import write_image
from bonefe.sites.vertebra.phantom import VertebraPhantomSpec, make_vertebra_phantom
from bonefe.volume import LYTIC


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-spine")
    v = make_vertebra_phantom(VertebraPhantomSpec(level="L1", lesion_site=None, voxel_mm=1.0))
    write_image(folder / "ct.nii.gz", v.hu, v.affine)
    write_image(folder / "labels.nii.gz", v.labels, v.affine)
    gap = 10  # voxels of soft tissue between two copies
    two = np.concatenate([v.labels, np.zeros(v.labels.shape[:2] + (gap,), np.uint8), v.labels], axis=2)
    two_hu = np.concatenate([v.hu, np.full(v.hu.shape[:2] + (gap,), 40.0, np.float32), v.hu], axis=2)
    write_image(folder / "two-ct.nii.gz", two_hu, v.affine)
    write_image(folder / "two-labels.nii.gz", two, v.affine)
    astray = v.labels.copy()
    astray[:3, :3, :3] = LYTIC  # a lesion in the image corner, far from the vertebra
    write_image(folder / "astray-labels.nii.gz", astray, v.affine)
    return folder


def _fails(folder, name, **changes):
    case = {"name": name, "site": "vertebra", "level": "L1", "ct": "ct.nii.gz", "labels": "labels.nii.gz",
            "output": f"runs/{name}", "patient": {"body_mass_kg": 70}, "mesh": {"size_mm": 4.0}, **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bonefe.cli", "run", str(path)], capture_output=True,
                          timeout=600, encoding="utf-8")
    lines = [line for line in done.stderr.splitlines() if line.startswith("bonefe: error")]
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-1500:]
    assert not (folder / "runs" / name).exists()
    return lines[0]


def test_no_vertebra_label(phantom):
    assert "no bone voxels for bone label value(s) [31]" in _fails(phantom, "none", label_values={"bone": 31})


def test_two_vertebrae_in_one_label(phantom):
    assert "two" in _fails(phantom, "two", ct="two-ct.nii.gz", labels="two-labels.nii.gz")


def test_unknown_level(phantom):
    assert "level" in _fails(phantom, "level", level="L7")


def test_lesion_outside_the_vertebra(phantom):
    assert "outside the bone" in _fails(phantom, "astray", labels="astray-labels.nii.gz")


def test_an_export_the_site_has_not(phantom):
    """The femur's CalculiX deck is not written for a vertebra; the fields are written for every site."""
    line = _fails(phantom, "inp", exports=["fields", "inp"])
    assert "exports: 'inp' is not available for the vertebra: choose from fields, vtu" in line
