"""The femur's synthetic follow-up series (`bonefe.followup.synthetic`): the demo patient's phantom.

`python -m bonefe.sites.femur.series OUT` writes the demo series (`make followup-demo`): the demo
patient's 20 mm lytic calcar lesion, grown to 26 mm after 90 days, then re-mineralised half-way
by day 180 (radiotherapy), each later scan moved by a few mm and degrees about the head centre.
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bonefe.followup.synthetic import remineralised_scan, rigid_motion, write_series
from bonefe.sites.femur.phantom import DEMO_LESION, PhantomSpec, make_phantom
from bonefe.volume import Volume

DEMO_DAYS = (0.0, 90.0, 180.0)
"""Days since the baseline of the demo's three scans."""
DEMO_MOTIONS = (([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), ([2.0, -1.5, 3.0], [3.0, -2.0, 5.0]),
                ([-1.0, 2.0, -2.5], [-4.0, 1.0, 2.0]))
"""Each demo scan's placement: x-y-z Euler angles (deg) about the femoral head centre, translation (mm)."""


def case_keys(mesh_size_mm: float = 3.0, side: str = "left", body_mass_kg: float = 75.0) -> dict:
    """A femur scan's case keys besides its images and days."""
    return {"patient": {"body_mass_kg": body_mass_kg, "side": side}, "mesh": {"size_mm": mesh_size_mm},
            "activities": ["walking", "stairs_up"]}


def demo_scans(voxel_mm: float = 1.0) -> list[tuple[Volume, np.ndarray]]:
    """The demo series (module docstring) before placement, each with its motion matrix (4×4)."""
    spec = PhantomSpec(voxel_mm=voxel_mm, **DEMO_LESION)
    baseline, frame = make_phantom(spec)
    grown, _ = make_phantom(replace(spec, lesion_diameter_mm=26.0))
    volumes = [baseline, grown, remineralised_scan(grown, 0.5)]
    return [(volume, rigid_motion(*motion, frame.head_centre)) for volume, motion in zip(volumes, DEMO_MOTIONS)]


def write_demo(out: Path, mesh_size_mm: float = 4.0, voxel_mm: float = 1.0) -> list[Path]:
    """Write the demo series (module docstring); returns its three case files in time order."""
    return write_series(out, "demo-followup", demo_scans(voxel_mm), DEMO_DAYS, case_keys(mesh_size_mm))


if __name__ == "__main__":
    for path in write_demo(Path(sys.argv[1])):
        print(path)
