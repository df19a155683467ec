"""A body and a calibration phantom around a synthetic bone CT: reference tissues, a vessel, rods,
and a scanner that is not ideal — for testing internal against phantom calibration.

Geometry (world LPS mm, slices along z unchanged; the grid grows in x and y):

- muscle: an elliptic cylinder around the bone's x–y bounding box, MUSCLE_MARGIN_MM beyond it;
- subcutaneous fat: a FAT_MM layer around the muscle; skin is the fat's outer surface;
- a vessel (blood, femoral-artery size, VESSEL_RADIUS_MM) in the muscle, anterior to the bone,
  labelled VESSEL_LABEL;
- a rod phantom below the patient (posterior, +y): a water-equivalent block (0 HU ideal) holding
  ROD_DENSITIES K2HPO4 rods of ROD_RADIUS_MM, labelled ROD_LABELS (as a segmented Mindways-type
  phantom would be);
- air elsewhere, AIR_MM at least around body and block.

CT numbers. The ideal scanner is the 70 keV model of `bonefe.tissues`: each tissue at its
expected HU, rods at c/NOMINAL_SLOPE, the bone's own HU kept (so its true K2HPO4-equivalent
density is NOMINAL_SLOPE·HU). The simulated scanner then distorts the ideal HU as real ones do:

    HU = gain·HU_ideal + offset_hu − cupping_hu·(1 − r²) (inside the skin) + noise,

r the elliptical radius (0 at the body centre, 1 at the skin): a gain and offset of the HU scale
(tube voltage and calibration drift) and a beam-hardening cupping that darkens the body's centre,
with white Gaussian noise of SD noise_hu. Both calibrations see the same distortion; the cupping
is what they see differently (rods outside the body, tissues inside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bonefe.errors import BonefeError
from bonefe.tissues import NOMINAL_SLOPE, REFERENCE_TISSUES
from bonefe.volume import Volume, voxel_spacing

MUSCLE_MARGIN_MM = 25.0
FAT_MM = 15.0
AIR_MM = 25.0
VESSEL_RADIUS_MM = 5.0
VESSEL_GAP_MM = 12.0
"""Distance from the bone's bounding box to the vessel's centre (mm)."""
VESSEL_LABEL = 20
ROD_DENSITIES = (0.0, 0.05, 0.1, 0.2)
"""K2HPO4 concentrations of the rods (g/cm³), the span of a Mindways-type phantom's low rods."""
ROD_LABELS = (11, 12, 13, 14)
ROD_RADIUS_MM = 6.0
BLOCK_GAP_MM, BLOCK_DEPTH_MM = 10.0, 30.0
"""The phantom block lies this far below the skin (mm) and is this deep (mm)."""


@dataclass(frozen=True)
class BodySpec:
    """The body, phantom and scanner of `add_body`: gain (HU/HU), offset_hu, cupping_hu and
    noise_hu (HU) of the simulated scanner, its noise seed, and whether the rod phantom is present."""

    rods: bool = True
    gain: float = 1.04
    offset_hu: float = 12.0
    cupping_hu: float = 15.0
    noise_hu: float = 15.0
    seed: int = 0

    def __post_init__(self):
        if not 0.8 <= self.gain <= 1.2:
            raise BonefeError(f"phantom body: gain must be between 0.8 and 1.2 (got {self.gain})")
        if not 0 <= self.noise_hu <= 100:
            raise BonefeError(f"phantom body: noise_hu must be between 0 and 100 HU (got {self.noise_hu})")


def add_body(volume: Volume, spec: BodySpec) -> tuple[Volume, np.ndarray, dict]:
    """The bone CT of `volume` (axis-aligned affine) inside a body and beside a rod phantom: the new
    Volume (canonical labels), the raw label map (bone labels, rods, vessel) and a description."""
    spacing = voxel_spacing(volume.affine)
    if not np.allclose(volume.affine[:3, :3], np.diag(spacing)):
        raise BonefeError("phantom body: needs an axis-aligned CT grid")
    bone = volume.labels > 0
    i, j = (np.nonzero(bone.any(axis=tuple(b for b in range(3) if b != a)))[0] for a in (0, 1))
    world = [volume.affine[a, 3] + spacing[a] * np.array([idx[0], idx[-1]]) for a, idx in ((0, i), (1, j))]
    centre = np.array([w.mean() for w in world])
    half = np.array([np.ptp(w) / 2 for w in world])
    muscle = half + MUSCLE_MARGIN_MM
    skin = muscle + FAT_MM
    block = (centre[1] + skin[1] + BLOCK_GAP_MM, centre[1] + skin[1] + BLOCK_GAP_MM + BLOCK_DEPTH_MM)
    low = np.minimum(centre - skin - AIR_MM, volume.affine[:2, 3])
    high = np.maximum([centre[0] + skin[0] + AIR_MM, block[1] + AIR_MM],
                      volume.affine[:2, 3] + spacing[:2] * (np.array(volume.hu.shape[:2]) - 1))
    start = np.floor((low - volume.affine[:2, 3]) / spacing[:2]).astype(int)
    shape = (*(np.ceil((high - volume.affine[:2, 3]) / spacing[:2]).astype(int) - start + 1), volume.hu.shape[2])
    affine = volume.affine.copy()
    affine[:2, 3] += start * spacing[:2]
    x = affine[0, 3] + spacing[0] * np.arange(shape[0])[:, None]
    y = affine[1, 3] + spacing[1] * np.arange(shape[1])[None, :]

    def radius(semi):
        return np.hypot((x - centre[0]) / semi[0], (y - centre[1]) / semi[1])

    ideal = np.full(shape[:2], REFERENCE_TISSUES["air"].expected_hu)
    raw = np.zeros(shape[:2], np.int16)
    ideal[radius(skin) <= 1] = REFERENCE_TISSUES["adipose"].expected_hu
    ideal[radius(muscle) <= 1] = REFERENCE_TISSUES["muscle"].expected_hu
    vessel = np.hypot(x - centre[0], y - (centre[1] - half[1] - VESSEL_GAP_MM)) <= VESSEL_RADIUS_MM
    ideal[vessel], raw[vessel] = REFERENCE_TISSUES["blood"].expected_hu, VESSEL_LABEL
    rods = {}
    if spec.rods:
        in_block = (np.abs(x - centre[0]) <= skin[0]) & (y >= block[0]) & (y <= block[1])
        ideal[in_block] = 0.0
        for n, (density, label) in enumerate(zip(ROD_DENSITIES, ROD_LABELS)):
            rod_x = centre[0] + skin[0] * (2 * n + 1 - len(ROD_DENSITIES)) / len(ROD_DENSITIES)
            rod = np.hypot(x - rod_x, y - np.mean(block)) <= ROD_RADIUS_MM
            ideal[rod], raw[rod] = density / NOMINAL_SLOPE, label
            rods[label] = density
    cupping = np.where(radius(skin) <= 1, -spec.cupping_hu * (1 - radius(skin) ** 2), 0.0)
    ideal = np.repeat(ideal[:, :, None], shape[2], axis=2)
    raw = np.repeat(raw[:, :, None], shape[2], axis=2)
    labels = np.zeros(shape, np.uint8)
    inner = tuple(slice(-s, -s + n) for s, n in zip(start, volume.hu.shape[:2]))
    labels[inner] = volume.labels
    ideal[inner] = np.where(bone, volume.hu, ideal[inner])
    raw[labels > 0] = labels[labels > 0]
    noise = np.random.default_rng(spec.seed).normal(0.0, spec.noise_hu, shape) if spec.noise_hu else 0.0
    hu = (spec.gain * ideal + spec.offset_hu + cupping[:, :, None] + noise).astype(np.float32)
    description = {
        "scanner": {"gain": spec.gain, "offset_hu": spec.offset_hu, "cupping_hu": spec.cupping_hu,
                    "noise_hu": spec.noise_hu},
        "true_calibration": {"slope_g_cm3_per_hu": NOMINAL_SLOPE / spec.gain,
                             "intercept_g_cm3": -NOMINAL_SLOPE * spec.offset_hu / spec.gain,
                             "note": "K2HPO4-equivalent density of the ideal HU; cupping not included"},
        "rods": {str(label): density for label, density in rods.items()},
        "vessel_label": VESSEL_LABEL,
    }
    return Volume(hu=hu, labels=labels, affine=affine), raw, description
