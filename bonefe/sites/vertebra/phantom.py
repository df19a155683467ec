"""A synthetic vertebra CT and label map (`bonefe phantom --site vertebra`), with a named lesion.

Built in the LPS world with the body centroid near the origin (cranial +z, anterior −y, left +x):
an elliptic-cylinder body (width W, depth D, height H of the level, `DIMENSIONS`) with rounded
edges; behind it the vertebral canal, two pedicles, the laminar arch, a spinous process and two
transverse processes (facets are not modelled separately). A cortical shell of SHELL_MM (depth
below the surface by the Euclidean distance transform), also forming the endplates, surrounds
trabecular bone of TRABECULAR_HU (body) and POSTERIOR_HU (posterior elements). The lesion is placed
by `bonefe.sites.vertebra.lesions` from the frame found on the phantom itself.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.imaging import write_image
from bonefe.outputs import atomic_write_json
from bonefe.sites.vertebra.anatomy import vertebra_frame
from bonefe.sites.vertebra.lesions import SITES, insert_lesion
from bonefe.sites.vertebra.levels import LEVELS, check_level
from bonefe.volume import BACKGROUND, BONE, LYTIC, Volume

ANCHORS = {"T1": (28.0, 16.0, 15.0), "T8": (32.0, 26.0, 19.0), "L1": (40.0, 30.0, 24.0), "L5": (48.0, 34.0, 26.0)}
"""Body width, depth, height (mm) at anchor levels; approximate adult means after Panjabi et al. 1991
(Spine 16:888, thoracic) and 1992 (Spine 17:299, lumbar); levels between are interpolated. A phantom
is a test object, not a patient: these set a realistic scale only."""
SHELL_MM = 1.0
"""Cortical shell and endplate thickness as it appears on clinical CT (true shell ≈ 0.4 mm, blurred)."""
HU_SHELL = 700.0
TRABECULAR_HU = 180.0
"""Vertebral trabecular bone ≈ 150–200 HU in adults (vBMD ≈ 120–180 mg/cm³)."""
POSTERIOR_HU = 300.0
HU_SOFT_TISSUE = 40.0
MARGIN_MM = 6.0


def dimensions(level: str) -> tuple[float, float, float]:
    """Body (width, depth, height) in mm of a level, interpolated between ANCHORS (C levels: T1's)."""
    i = LEVELS.index(check_level(level))
    keys = [LEVELS.index(k) for k in ANCHORS]
    values = np.array(list(ANCHORS.values()))
    return tuple(float(np.interp(i, keys, values[:, c])) for c in range(3))


@dataclass(frozen=True)
class VertebraPhantomSpec:
    """level: spinal level; lesion_site: a `lesions.SITES` name or None; voxel_mm: isotropic voxel."""

    level: str = "L1"
    lesion_site: str | None = "central"
    lesion_type: Literal["lytic", "blastic"] = "lytic"
    lesion_diameter_mm: float = 15.0
    voxel_mm: float = 0.6
    noise_hu: float = 0.0
    seed: int = 0

    def __post_init__(self):
        check_level(self.level)
        if self.lesion_site is not None and self.lesion_site not in SITES:
            raise BonefeError(f"unknown vertebra lesion site '{self.lesion_site}': choose from {', '.join(SITES)}")
        if not 0.2 <= self.voxel_mm <= 2.0:
            raise BonefeError(f"voxel_mm must lie in [0.2, 2] mm (got {self.voxel_mm})")


def _shape(p, W: float, D: float, H: float) -> np.ndarray:
    """The vertebra's envelope (bool) on the open grid p = (x left, y posterior, z cranial), body centre at 0."""
    x, y, z = p
    edge = 2.0  # rounded body rim (mm)
    radial = np.sqrt((x / (W / 2)) ** 2 + (y / (D / 2)) ** 2)
    body = (radial <= 1.0) & (np.abs(z) <= H / 2 - edge * np.clip(radial - 0.9, 0, None) * 10)
    canal_w, canal_d = 0.5 * W, 0.55 * D
    canal_y = D / 2 + canal_d / 2
    canal = ((x / (canal_w / 2)) ** 2 + ((y - canal_y) / (canal_d / 2)) ** 2) <= 1.0
    ped_x, ped_w = canal_w / 2 + 4.0, 8.0
    arch_z = (z > -H / 2 + 2.0) & (z < H / 2 - 1.0)
    pedicles = (np.abs(np.abs(x) - ped_x) <= ped_w / 2) & (y > 0) & (y <= canal_y) & (np.abs(z - H / 6) <= 0.3 * H)
    back = D / 2 + canal_d
    lamina = (np.abs(x) <= ped_x + ped_w / 2) & (y >= canal_y) & (y <= back + 5.0) & arch_z
    spinous = (np.abs(x) <= 3.0) & (y > back) & (y <= back + 0.9 * D) & (np.abs(z + 0.1 * H) <= 0.35 * H)
    transverse = (np.abs(x) <= ped_x + 0.45 * W) & (np.abs(y - canal_y) <= 3.5) & (np.abs(z - H / 6) <= 3.5)
    return (body | pedicles | lamina | spinous | transverse) & ~canal


def _build(spec: VertebraPhantomSpec) -> tuple[Volume, dict]:
    W, D, H = dimensions(spec.level)
    h = spec.voxel_mm
    lo = np.array([-(W / 2 + 0.45 * W + 8.0), -D / 2, -H / 2]) - MARGIN_MM
    hi = np.array([W / 2 + 0.45 * W + 8.0, D / 2 + 0.55 * D + 0.9 * D + 5.0, H / 2]) + MARGIN_MM
    axes = [np.arange(a, b + h / 2, h) for a, b in zip(lo, hi)]
    p = np.meshgrid(*axes, indexing="ij", sparse=True)
    envelope = _shape(p, W, D, H)
    depth = ndimage.distance_transform_edt(envelope, sampling=h) - 0.5 * h
    body = (np.sqrt((p[0] / (W / 2)) ** 2 + (p[1] / (D / 2)) ** 2) <= 1.0) & np.ones_like(envelope)
    interior = np.where(body, TRABECULAR_HU, POSTERIOR_HU)
    hu = np.where(envelope, np.where(depth < SHELL_MM, HU_SHELL, interior), HU_SOFT_TISSUE).astype(np.float32)
    labels = np.where(envelope, BONE, BACKGROUND).astype(np.uint8)
    affine = np.eye(4)
    affine[:3, :3] = np.diag([h, h, h])  # canonical axes are LPS: +x left, +y posterior, +z cranial
    affine[:3, 3] = lo
    volume = Volume(hu=hu, labels=labels, affine=affine)
    truth = {"body_centre": [0.0, 0.0, 0.0], "cranial": [0.0, 0.0, 1.0], "anterior": [0.0, -1.0, 0.0],
             "posterior_wall_y": D / 2, "width_mm": W, "depth_mm": D, "height_mm": H}
    lesion = {}
    if spec.lesion_site is not None:
        volume, centre = insert_lesion(volume, vertebra_frame(volume), spec.lesion_site, spec.lesion_diameter_mm,
                                       spec.lesion_type)
        lesion = {"site": spec.lesion_site, "centre": centre.tolist(), "diameter_mm": spec.lesion_diameter_mm,
                  "type": spec.lesion_type}
    if spec.noise_hu > 0:
        noise = np.random.default_rng(spec.seed).normal(0.0, spec.noise_hu, hu.shape).astype(np.float32)
        volume = dataclasses.replace(volume, hu=volume.hu + noise)
    return volume, {"truth": truth, "lesion": lesion}


def make_vertebra_phantom(spec: VertebraPhantomSpec) -> Volume:
    """The synthetic vertebra of `spec` (HU, canonical labels, LPS affine)."""
    return _build(spec)[0]


def write_vertebra_phantom(spec: VertebraPhantomSpec, out_dir: str | Path, fmt: str = "nii.gz") -> dict[str, Path]:
    """Write ct.<fmt>, labels.<fmt> and phantom.json (spec, true geometry, lesion) into out_dir."""
    out_dir = Path(out_dir)
    volume, description = _build(spec)
    paths = {"ct": out_dir / f"ct.{fmt}", "labels": out_dir / f"labels.{fmt}", "json": out_dir / "phantom.json"}
    write_image(paths["ct"], volume.hu, volume.affine)
    write_image(paths["labels"], volume.labels, volume.affine)
    atomic_write_json(paths["json"], {"site": "vertebra", "spec": dataclasses.asdict(spec), **description,
                                      "shape": list(volume.hu.shape),
                                      "voxel_counts": {"bone": int(np.count_nonzero(volume.labels == BONE)),
                                                       "lesion": int(np.count_nonzero(volume.labels >= LYTIC))}})
    return paths
