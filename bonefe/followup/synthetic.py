"""Synthetic follow-up series of any site's phantom: known motion, growth, re-mineralisation, conversion.

A later scan is the phantom of its own spec (e.g. a larger lesion) placed in the scanner by a known
rigid motion M (4×4, world mm): its voxel→world affine becomes M·A, so the image data are untouched
and the registration must find T = M exactly. Re-mineralisation by a fraction t moves each lesion
voxel's HU towards the lesion-free twin's, HU = (1 − t)·HU_lesion + t·HU_twin, with the lesion
labels kept (a segmentation still outlines the treated lesion), so its healing fraction is t.
Lytic → blastic conversion (a sclerotic response to treatment): each lesion voxel takes the twin's
HU plus `excess_hu` and the blastic label, so its healing fraction is 1 + excess_hu / (the mean HU
gap of the lesion to the twin).

Each site's demo series (its phantom, lesion sizes, days and motions) lives with the site
(`bonefe.sites.femur.series`, `bonefe.sites.vertebra.series`): `python -m bonefe.sites.<site>.series OUT`.
"""

from pathlib import Path

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from bonefe.imaging import write_image
from bonefe.materials import healthy_volume
from bonefe.outputs import atomic_write_text
from bonefe.volume import BLASTIC, LESION_LABELS, Volume


def rigid_motion(angles_deg, translation_mm, centre_mm) -> np.ndarray:
    """4×4 rotation by x-y-z Euler angles (deg) about centre_mm, then translation (mm)."""
    rotation = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = np.asarray(centre_mm, float) - rotation @ np.asarray(centre_mm, float) + translation_mm
    return matrix


def moved(volume: Volume, matrix: np.ndarray) -> Volume:
    """The same image placed by the motion `matrix` (module docstring)."""
    return Volume(hu=volume.hu, labels=volume.labels, affine=np.asarray(matrix) @ volume.affine)


def remineralised_scan(volume: Volume, fraction: float) -> Volume:
    """Lesion HU moved by `fraction` towards the lesion-free twin's, labels kept (module docstring)."""
    lesion = np.isin(volume.labels, LESION_LABELS)
    hu = volume.hu.copy()
    hu[lesion] = (1.0 - fraction) * volume.hu[lesion] + fraction * healthy_volume(volume).hu[lesion]
    return Volume(hu=hu, labels=volume.labels, affine=volume.affine)


def converted_scan(volume: Volume, excess_hu: float) -> Volume:
    """The lesion turned blastic: the twin's HU plus excess_hu, blastic labels (module docstring)."""
    lesion = np.isin(volume.labels, LESION_LABELS)
    hu, labels = volume.hu.copy(), volume.labels.copy()
    hu[lesion] = healthy_volume(volume).hu[lesion] + excess_hu
    labels[lesion] = BLASTIC
    return Volume(hu=hu, labels=labels, affine=volume.affine)


def write_scan(folder: Path, name: str, volume: Volume, days: float, keys: dict) -> Path:
    """Write ct.nii.gz, labels.nii.gz and a case file `<name>.yaml` beside them (the site's case
    keys `keys`: site, patient, mesh, activities, ...); returns the case path."""
    folder = Path(folder) / name
    write_image(folder / "ct.nii.gz", volume.hu, volume.affine)
    write_image(folder / "labels.nii.gz", volume.labels, volume.affine)
    case = {"name": name, "ct": f"{name}/ct.nii.gz", "labels": f"{name}/labels.nii.gz", "output": f"runs/{name}",
            **keys, "days_since_baseline": days}
    path = folder.parent / f"{name}.yaml"
    atomic_write_text(path, yaml.safe_dump(case, sort_keys=False))
    return path


def write_series(out: Path, name: str, scans: list[tuple[Volume, np.ndarray]], days, keys: dict) -> list[Path]:
    """Each (volume, motion) of `scans` placed by its motion and written as `<name>-<i>` with its days
    since the baseline; returns the case files in time order."""
    return [write_scan(out, f"{name}-{i}", moved(volume, motion), day, keys)
            for i, ((volume, motion), day) in enumerate(zip(scans, days))]
