"""Synthetic follow-up series from the phantom femur: known motion, growth and re-mineralisation.

A later scan is the phantom of its own spec (e.g. a larger lesion) placed in the scanner by a known
rigid motion M (4×4, world mm): its voxel→world affine becomes M·A, so the image data are untouched
and the registration must find T = M exactly. Re-mineralisation by a fraction t moves each lesion
voxel's HU towards the lesion-free twin's, HU = (1 − t)·HU_lesion + t·HU_twin, with the lesion
labels kept (a segmentation still outlines the treated lesion).

`python -m bonefe.followup.synthetic OUT` writes the demo series (`make followup-demo`): the demo
patient's 20 mm lytic calcar lesion, grown to 26 mm after 90 days, then re-mineralised half-way
by day 180 (radiotherapy), each later scan moved by a few mm and degrees.
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from bonefe.imaging import write_image
from bonefe.materials import healthy_volume
from bonefe.outputs import atomic_write_text
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.volume import LESION_LABELS, Volume


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


def write_scan(folder: Path, name: str, volume: Volume, days: float, body_mass_kg: float = 75.0,
               side: str = "left", mesh_size_mm: float = 3.0) -> Path:
    """Write ct.nii.gz, labels.nii.gz and a case file `<name>.yaml` beside them; returns the case path."""
    folder = Path(folder) / name
    write_image(folder / "ct.nii.gz", volume.hu, volume.affine)
    write_image(folder / "labels.nii.gz", volume.labels, volume.affine)
    case = {"name": name, "ct": f"{name}/ct.nii.gz", "labels": f"{name}/labels.nii.gz",
            "output": f"runs/{name}", "patient": {"body_mass_kg": body_mass_kg, "side": side},
            "mesh": {"size_mm": mesh_size_mm}, "activities": ["walking", "stairs_up"],
            "days_since_baseline": days}
    path = folder.parent / f"{name}.yaml"
    atomic_write_text(path, yaml.safe_dump(case, sort_keys=False))
    return path


DEMO_DAYS = (0.0, 90.0, 180.0)
"""Days since the baseline of the demo's three scans."""
DEMO_MOTIONS = (([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), ([2.0, -1.5, 3.0], [3.0, -2.0, 5.0]),
                ([-1.0, 2.0, -2.5], [-4.0, 1.0, 2.0]))
"""Each demo scan's placement: x-y-z Euler angles (deg) about the femoral head centre, translation (mm)."""


def demo_scans(voxel_mm: float = 1.0) -> list[tuple[Volume, np.ndarray]]:
    """The demo series (module docstring) before placement, each with its motion matrix (4×4)."""
    spec = PhantomSpec(voxel_mm=voxel_mm, lesion_site="neck_inferomedial", lesion_diameter_mm=20.0,
                       cortical_involvement=1.0)
    baseline, frame = make_phantom(spec)
    grown, _ = make_phantom(replace(spec, lesion_diameter_mm=26.0))
    volumes = [baseline, grown, remineralised_scan(grown, 0.5)]
    return [(volume, rigid_motion(*motion, frame.head_centre)) for volume, motion in zip(volumes, DEMO_MOTIONS)]


def write_demo(out: Path, mesh_size_mm: float = 4.0, voxel_mm: float = 1.0) -> list[Path]:
    """Write the demo series (module docstring); returns its three case files in time order."""
    return [write_scan(out, f"demo-followup-{i}", moved(volume, motion), days, mesh_size_mm=mesh_size_mm)
            for i, ((volume, motion), days) in enumerate(zip(demo_scans(voxel_mm), DEMO_DAYS))]


if __name__ == "__main__":
    for path in write_demo(Path(sys.argv[1])):
        print(path)
