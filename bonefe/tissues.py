"""Reference tissues of an internal (phantomless) CT calibration: their equivalent densities and
the automatic regions in which they are sampled.

Equivalent density. A tissue's K2HPO4-equivalent density ρ_eq is the concentration (g/cm³) of a
K2HPO4-in-water rod, the material of the calibration phantoms whose rods `bonefe.calibration` fits
(ρ_QCT of `bonefe.materials`), that attenuates X-rays as the tissue does. At the effective energy
E of the beam, a rod of concentration c has μ = μ_w + c·((μ/ρ)_K − μ_w/ρ_K) (the salt displaces
water at its crystal density ρ_K = 2.44 g/cm³, CRC Handbook; ideal mixing), so

    ρ_eq = (μ_tissue − μ_w) / ((μ/ρ)_K − μ_w/ρ_K),       μ_tissue = ρ_tissue·(μ/ρ)_tissue.

Mass attenuation coefficients: the Elam–Ravel–Sieber tables (Radiat Phys Chem 63:121, 2002,
via xraydb 4.5.8, which agree with NIST XCOM: water 0.2059 cm²/g at 60 keV) for the tissue
compositions and densities of ICRU Report 44 (1989): adipose tissue 0.95 g/cm³, skeletal muscle
1.05, whole blood 1.06, cortical bone 1.92 (ICRU-44 compositions as tabulated by NIST), dry air
0.001205. E = 70 keV, the monoenergetic energy whose CT numbers match a 120 kVp scan (Yu, Leng,
McCollough 2012, AJR 199:S9–S15). The same model gives each tissue's CT number at 70 keV
(HU = 1000·(μ − μ_w)/μ_w): air −999, adipose −77, muscle 43, blood 56, cortical bone 1559, and a
rod line of 0.000867 g/cm³ per HU through water, within the 0.7–0.9 mg/cm³ per HU of real 120 kVp
phantom fits. `tests/test_tissues.py` recomputes every value from the compositions. The choice
of tissues follows the published phantomless methods: air with aortic blood or hip adipose (Lee
et al. 2017, Bone 103:325), air, adipose, muscle, blood and cortical bone (Michalski et al. 2020,
Med Eng Phys 78:55; 2021, Bone 142:115658 for FE).

Automatic regions (HU windows on the scan, distances by exact Euclidean distance transforms in mm):

- body: HU > BODY_HU, its largest 6-connected component, holes filled slice by slice (lungs and
  bowel gas count as body);
- air: outside the body, at least AIR_MARGIN_MM from any voxel above BODY_HU (skin, table,
  phantom), HU ≥ FOV_HU (voxels outside the reconstructed field of view hold −1024 to −3024),
  on a grid of about AIR_GRID_MM;
- adipose: body voxels in Yoshizumi et al.'s window −190…−30 HU (Radiology 211:283, 1999), at
  least MARGIN_MM from bone; the window mask is eroded by one voxel (partial volume at its edges);
- muscle: body voxels in Mitsiopoulos et al.'s skeletal-muscle window −29…150 HU (J Appl Physiol
  85:115, 1998), between MUSCLE_NEAR_MM and MUSCLE_FAR_MM from the bone (the muscles that wrap a
  long bone; organs lie farther) and at least SKIN_MARGIN_MM inside the skin, eroded by one voxel;
- blood and cortical bone: only by label values of the case's label map (an aorta or femoral
  vessel label; a cortex label) or spheres placed in them, as no HU window can tell them from
  other soft tissue or bone.
Labels or spheres given in the case replace the automatic region of that tissue
(`bonefe.internal_calibration`); `sphere_voxels` selects a sphere's voxels (also for rod ROIs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.volume import distance_to, grown_box, voxel_spacing


@dataclass(frozen=True)
class ReferenceTissue:
    """A calibration tissue: K2HPO4-equivalent density (g/cm³), CT number at 70 keV (HU), the
    plausible range of its mean HU on a clinical scan and the between-subject SD of that mean (HU)."""

    name: str
    density: float
    expected_hu: float
    plausible_hu: tuple[float, float]
    spread_hu: float
    source: str


REFERENCE_TISSUES: dict[str, ReferenceTissue] = {t.name: t for t in (
    ReferenceTissue("air", -0.8659, -998.9, (-1100.0, -900.0), 10.0,
                    "dry air 0.001205 g/cm³; scanners hold air at −1000 ± 10 HU (daily QA tolerance)"),
    ReferenceTissue("adipose", -0.0663, -76.5, (-150.0, -40.0), 15.0,
                    "ICRU 44 adipose tissue 0.95 g/cm³; clinical fat −120…−80 HU"),
    ReferenceTissue("muscle", 0.0373, 43.0, (0.0, 90.0), 10.0,
                    "ICRU 44 skeletal muscle 1.05 g/cm³; clinical muscle 30–60 HU"),
    ReferenceTissue("blood", 0.0487, 56.1, (20.0, 90.0), 8.0,
                    "ICRU 44 whole blood 1.06 g/cm³; unenhanced blood 40–60 HU (haematocrit)"),
    ReferenceTissue("cortical_bone", 1.3515, 1559.1, (1000.0, 2300.0), 150.0,
                    "ICRU 44 cortical bone 1.92 g/cm³; partial volume lowers it in clinical CT"),
)}
"""The reference tissues (see the module docstring for the derivation and sources)."""

EFFECTIVE_ENERGY_KEV = 70.0
"""Monoenergetic equivalent of a 120 kVp clinical scan (Yu, Leng, McCollough 2012)."""
NOMINAL_SLOPE = 0.000867
"""ρ_eq per HU of the 70 keV model (g/cm³ per HU): converts HU spreads into density spreads."""

BODY_HU = -500.0
"""Body (and table, phantom) above this HU; lung parenchyma (−900…−500) is filled as a hole."""
FOV_HU = -1100.0
"""Below this HU a voxel lies outside the reconstructed field of view (padding value), not in air."""
AIR_MARGIN_MM = 10.0
"""Air is sampled this far from the body, the table and any phantom (edge blur and streaks)."""
AIR_GRID_MM = 2.0
"""Air is sampled on every n-th voxel along each axis, n = floor(AIR_GRID_MM / spacing) ≥ 1: a
~2 mm grid holds ample air voxels and makes its distance transform up to 8× cheaper; distances on
it err by under one grid step, well inside AIR_MARGIN_MM."""
ADIPOSE_WINDOW = (-190.0, -30.0)
"""Adipose tissue HU window (Yoshizumi et al. 1999, Radiology 211:283)."""
MUSCLE_WINDOW = (-29.0, 150.0)
"""Skeletal muscle HU window (Mitsiopoulos et al. 1998, J Appl Physiol 85:115)."""
MARGIN_MM = 5.0
"""Adipose is sampled at least this far from bone (marrow fat and partial volume)."""
MUSCLE_NEAR_MM, MUSCLE_FAR_MM = 5.0, 30.0
"""Muscle is sampled in this shell around the bone (mm): the muscles wrapping a long bone."""
SKIN_MARGIN_MM = 5.0
"""Muscle is sampled at least this far inside the skin."""
AUTOMATIC = ("air", "adipose", "muscle")
"""Tissues with an automatic region; the others need label values."""


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The body: the largest 6-connected component above BODY_HU, holes filled slice by slice (axis 2)."""
    dense = hu > BODY_HU
    components, count = ndimage.label(dense)
    if count == 0:
        return dense
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    body = components == np.argmax(sizes)
    for k in range(body.shape[2]):
        body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    return body


def automatic_regions(hu: np.ndarray, bone: np.ndarray, affine: np.ndarray,
                      tissues=AUTOMATIC) -> dict[str, np.ndarray]:
    """Boolean masks of the automatic regions of `tissues` (see the module docstring) on the CT
    grid; `bone` is the case's bone mask (label map, any class)."""
    spacing = voxel_spacing(affine)
    body = body_mask(hu)
    regions = {}
    if "air" in tissues:
        step = np.maximum(np.floor(AIR_GRID_MM / spacing), 1).astype(int)
        grid = tuple(slice(None, None, k) for k in step)
        far = ndimage.distance_transform_edt(hu[grid] <= BODY_HU, sampling=spacing * step) >= AIR_MARGIN_MM
        regions["air"] = np.zeros(hu.shape, bool)
        regions["air"][grid] = far & ~body[grid] & (hu[grid] >= FOV_HU)
    if {"adipose", "muscle"} & set(tissues):
        from_bone = distance_to(bone, spacing, MUSCLE_FAR_MM)
    if "adipose" in tissues:
        fat = ndimage.binary_erosion(body & _window(hu, ADIPOSE_WINDOW))
        regions["adipose"] = fat & (from_bone >= MARGIN_MM)
    if "muscle" in tissues:
        inside = np.zeros(hu.shape, bool)  # ≥ SKIN_MARGIN_MM inside the skin, where muscle may lie
        box = grown_box(bone, spacing, MUSCLE_FAR_MM + SKIN_MARGIN_MM)
        if box is not None:
            inside[box] = body[box] if body[box].all() else \
                ndimage.distance_transform_edt(body[box], sampling=spacing) >= SKIN_MARGIN_MM
        soft = ndimage.binary_erosion(body & _window(hu, MUSCLE_WINDOW))
        regions["muscle"] = soft & inside & (from_bone >= MUSCLE_NEAR_MM) & (from_bone <= MUSCLE_FAR_MM)
    return regions


def _window(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return (hu >= window[0]) & (hu <= window[1])


def sphere_voxels(shape, affine: np.ndarray, centre, radius_mm: float, what: str) -> tuple[np.ndarray, ...]:
    """Indices of the voxels whose centre lies within a sphere (world LPS mm); BonefeError naming
    `what` when the sphere misses the CT or holds no voxel centre."""
    affine = np.asarray(affine, float)
    local = np.linalg.solve(affine[:3, :3], np.asarray(centre, float) - affine[:3, 3])
    reach = np.ceil(radius_mm / voxel_spacing(affine)).astype(int)
    lo = np.maximum(np.floor(local).astype(int) - reach, 0)
    hi = np.minimum(np.ceil(local).astype(int) + reach + 1, shape)
    if np.any(hi <= lo):
        raise BonefeError(f"{what} at {tuple(centre)} mm lies outside the CT; give its centre in world (LPS) millimetres")
    ijk = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
    inside = np.linalg.norm((ijk - local) @ affine[:3, :3].T, axis=-1) <= radius_mm
    if not inside.any():
        raise BonefeError(f"{what} at {tuple(centre)} mm holds no voxel centre; use a radius of at least one voxel")
    return tuple(ijk[inside].T)
