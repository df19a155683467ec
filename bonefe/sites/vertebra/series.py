"""The vertebra's synthetic follow-up series (`bonefe.followup.synthetic`), each with a known truth.

The L1 phantom (`bonefe.sites.vertebra.phantom`) with a central lytic lesion; each later scan is
placed by a known rigid motion about the body centre (`MOTIONS`, in turn):
- `demo_scans`: 12 mm at day 0, grown to 16 mm by day 90, re-mineralised half-way by day 180 and
  wholly (the lesion-free twin's HU, labels kept) by day 270: growth, then healing at 0.5/90 days;
- `growth_scans`: a lesion whose volume doubles every T days, diameter d(t) = d₀·2^{t/(3T)} (the
  voxelised balls follow it to within their voxel error);
- `conversion_scans`: a 14 mm lytic lesion turned blastic (sclerotic: the twin's HU + 200 HU).

`python -m bonefe.sites.vertebra.series OUT` writes the demo series (`make spine-followup-demo`).
"""

import sys
from pathlib import Path

import numpy as np

from bonefe.followup.synthetic import converted_scan, remineralised_scan, rigid_motion, write_series
from bonefe.sites.vertebra.anatomy import vertebra_frame
from bonefe.sites.vertebra.phantom import VertebraPhantomSpec, make_vertebra_phantom
from bonefe.volume import Volume

LEVEL = "L1"
MOTIONS = (([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), ([2.0, -1.5, 3.0], [2.0, -1.0, 3.0]),
           ([-1.5, 2.0, -2.5], [-3.0, 1.5, 1.0]), ([1.0, 1.0, -1.5], [1.0, 2.0, -2.0]))
"""Placements: x-y-z Euler angles (deg) about the body centre, translation (mm); the first is the baseline's."""
DEMO_DAYS = (0.0, 90.0, 180.0, 270.0)
CONVERSION_EXCESS_HU = 200.0
"""A converted (sclerotic) lesion's HU above the lesion-free twin's."""


def case_keys(mesh_size_mm: float = 3.0, body_mass_kg: float = 70.0, level: str = LEVEL) -> dict:
    """A vertebra scan's case keys besides its images and days (as cases/spine-l1-lytic.yaml)."""
    return {"site": "vertebra", "level": level, "patient": {"body_mass_kg": body_mass_kg},
            "mesh": {"size_mm": mesh_size_mm}, "material": {"law": "morgan2003_vertebra"},
            "spine": {"layer": "disc"}, "activities": ["standing", "forward_flexion", "lifting_from_ground"]}


def phantom(diameter_mm: float, voxel_mm: float, noise_hu: float = 0.0, seed: int = 0) -> Volume:
    """The L1 phantom with a central lytic lesion of `diameter_mm`; noise_hu: Gaussian HU noise (SD)."""
    return make_vertebra_phantom(VertebraPhantomSpec(level=LEVEL, lesion_site="central", lesion_diameter_mm=diameter_mm,
                                                     voxel_mm=voxel_mm, noise_hu=noise_hu, seed=seed))


def placed(volumes: list[Volume]) -> list[tuple[Volume, np.ndarray]]:
    """Each volume with its placement (`MOTIONS` in turn) about the baseline's body centre."""
    centre = vertebra_frame(volumes[0]).origin
    return [(v, rigid_motion(*MOTIONS[i % len(MOTIONS)], centre)) for i, v in enumerate(volumes)]


def demo_scans(voxel_mm: float = 1.0, noise_hu: float = 0.0) -> list[tuple[Volume, np.ndarray]]:
    """The demo series; with noise_hu > 0 every scan has its own noise (seed: the scan's index)."""
    first, *grown = [phantom(d, voxel_mm, noise_hu, i) for i, d in enumerate((12.0, 16.0, 16.0, 16.0))]
    return placed([first, grown[0], remineralised_scan(grown[1], 0.5), remineralised_scan(grown[2], 1.0)])


def growth_scans(days, doubling_days: float, first_mm: float, voxel_mm: float) -> list[tuple[Volume, np.ndarray]]:
    return placed([phantom(first_mm * 2.0 ** (d / (3.0 * doubling_days)), voxel_mm) for d in days])


def conversion_scans(voxel_mm: float) -> list[tuple[Volume, np.ndarray]]:
    lytic = phantom(14.0, voxel_mm)
    return placed([lytic, converted_scan(lytic, CONVERSION_EXCESS_HU)])


def write_demo(out: Path, mesh_size_mm: float = 3.0, voxel_mm: float = 1.0) -> list[Path]:
    """Write the demo series (module docstring); returns its four case files in time order."""
    return write_series(out, "spine-followup", demo_scans(voxel_mm), DEMO_DAYS, case_keys(mesh_size_mm))


if __name__ == "__main__":
    for path in write_demo(Path(sys.argv[1])):
        print(path)
