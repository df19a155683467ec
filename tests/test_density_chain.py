"""Calibration rods to failure load, worked by hand (issue 22: a wrong density chain must fail a test).

A CT with four calibration rods (with a partial-volume rim that the rod reading must erode away)
gives the calibration line; a block of uniform HU in the specimen rig (`bonefe.sites.specimen`,
the same HU → density → modulus code as every bone) is then compressed to failure. With Poisson's
ratio 0 the block's strain is uniform and exact on any mesh, so its failure load is
E · A · ε_c with E from the published chain, every constant written here and not imported:

    ρ_QCT = slope · HU + intercept                 (least squares over the rods)
    ρ_ash = 0.877 ρ_QCT + 0.079,  ρ_app = ρ_ash / 0.6      (Schileo et al. 2008, J Biomech 41:356)
    E     = 6850 ρ_app^1.49 MPa                   (Morgan et al. 2003, J Biomech 36:897, femoral neck)
    ε_c   = 1.04 %                                 (compressive limit; Schileo et al. 2008)

A factor 2 in modulus, a swapped ash/apparent conversion, another law's constants or a rim
counted into a rod each move the failure load by far more than the tolerance.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.calibration import rod_mean_hu
from bonefe.cli import main
from bonefe.materials import fit_calibration

COMM = MPI.COMM_WORLD
ROD_DENSITIES = (0.0, 0.1, 0.2, 0.4)
"""Nominal rod densities (g/cm³ K2HPO4-equivalent)."""
ROD_CORE_HU = (3.0, 128.0, 262.0, 519.0)
"""HU inside each rod (slightly off one line, as measured rods are)."""
BLOCK_HU = 1000.0
AREA_MM2, COMPRESSIVE_LIMIT = 10.0 * 10.0, 0.0104


def rods_ct() -> tuple[np.ndarray, np.ndarray]:
    """A 40 x 40 x 6 CT (HU) of four 8-voxel-wide rods in water (0 HU) and its raw label map (rods
    11–14); each rod's outer voxel ring is a partial-volume mixture of rod and water."""
    hu, labels = np.zeros((40, 40, 6)), np.zeros((40, 40, 6), np.uint8)
    for k, value in enumerate(ROD_CORE_HU):
        x0 = 2 + 10 * k
        labels[x0:x0 + 8, 16:24, :] = 11 + k
        hu[x0:x0 + 8, 16:24, :] = value / 2  # the rim: half rod, half water
        hu[x0 + 1:x0 + 7, 17:23, :] = value
    return hu, labels


def hand_failure_load(slope: float, intercept: float) -> float:
    rho_qct = slope * BLOCK_HU + intercept
    rho_app = (0.877 * rho_qct + 0.079) / 0.6
    return 6850.0 * rho_app ** 1.49 * AREA_MM2 * COMPRESSIVE_LIMIT


def test_rods_give_the_least_squares_line_of_their_cores():
    hu, labels = rods_ct()
    means = [rod_mean_hu(hu, labels, 11 + k) for k in range(4)]
    assert means == pytest.approx(ROD_CORE_HU, abs=1e-12)  # the rim is eroded away
    slope, intercept, _ = fit_calibration(means, ROD_DENSITIES)
    x, y = np.array(ROD_CORE_HU), np.array(ROD_DENSITIES)  # the normal equations, by hand
    by_hand = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert slope == pytest.approx(by_hand, rel=1e-12)
    assert intercept == pytest.approx(y.mean() - by_hand * x.mean(), abs=1e-12)


def test_block_fails_at_the_hand_computed_load_of_its_calibrated_density(tmp_path_factory):
    hu, labels = rods_ct()
    slope, intercept, _ = fit_calibration([rod_mean_hu(hu, labels, 11 + k) for k in range(4)], ROD_DENSITIES)
    folder = Path(COMM.bcast(str(tmp_path_factory.mktemp("chain")) if COMM.rank == 0 else None))
    case = folder / "block.yaml"
    if COMM.rank == 0:
        case.write_text(f"""site: specimen
name: block
output: {folder / 'out'}
image:
  phantom: {{size_mm: [10, 10, 20], voxel_mm: 1.0, grey: {BLOCK_HU}}}
specimen: box
material:
  density: {{law: morgan2003, slope: {slope!r}, intercept: {intercept!r}}}
  poisson: 0.0
rig:
  fixed: {{plane: {{point: [0, 0, 0], normal: [0, 0, 1]}}}}
  loaded: {{plane: {{point: [0, 0, 20], normal: [0, 0, -1]}}}}
  displacement_mm: [0, 0, -0.02]
mesh: {{size_mm: 2.5}}
failure: {{averaging_radius_mm: 2.0, exclusion_mm: 2.0}}
""", encoding="utf-8")
    COMM.barrier()
    assert main(["run", str(case)]) == 0
    report = json.loads((folder / "out" / "specimen-report.json").read_text(encoding="utf-8"))
    expected = hand_failure_load(slope, intercept)
    assert 9000 < expected < 11000  # the worked example: ρ_app 1.256 g/cm³, E 9.62 GPa, 10.0 kN
    assert report["failure_load_n"] == pytest.approx(expected, rel=1e-6)
