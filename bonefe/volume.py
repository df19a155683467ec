"""The CT volume every stage works on: HU, canonical labels and the voxel→world map."""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BACKGROUND, BONE, LYTIC, BLASTIC = 0, 1, 2, 3
"""Canonical label values inside bonefe; case files map their own label values onto these."""

LESION_LABELS = (LYTIC, BLASTIC)


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along i, j, k of a 4×4 voxel→world affine: its column norms."""
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


@dataclass(frozen=True)
class Volume:
    """A CT scan and its label map on one voxel grid.

    hu:     float32 array (ni, nj, nk), Hounsfield units, indexed [i, j, k].
    labels: uint8 array of the same shape holding the canonical labels above.
    affine: 4×4 map from voxel index (i, j, k, 1) to world (x, y, z, 1) in mm, in the
            ITK/DICOM LPS patient frame; voxel centres sit at integer indices.
    """

    hu: np.ndarray
    labels: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k (mm)."""
        return voxel_spacing(self.affine)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel (mm³)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def to_world(self, ijk: np.ndarray) -> np.ndarray:
        """World coordinates (n, 3) in mm of continuous voxel indices (n, 3)."""
        return np.asarray(ijk, float) @ self.affine[:3, :3].T + self.affine[:3, 3]

    def to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (n, 3) of world points (n, 3) in mm."""
        return np.linalg.solve(self.affine[:3, :3], (np.asarray(xyz, float) - self.affine[:3, 3]).T).T


def distance_to(mask: np.ndarray, spacing: np.ndarray, reach_mm: float) -> np.ndarray:
    """Distance (mm) to the nearest voxel of `mask`, exact up to `reach_mm` and +inf beyond the
    mask's bounding box grown by `reach_mm` (the transform runs on that box only)."""
    distance = np.full(mask.shape, np.inf)
    box = grown_box(mask, spacing, reach_mm)
    if box is not None:
        distance[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
    return distance


def grown_box(mask: np.ndarray, spacing: np.ndarray, reach_mm: float) -> tuple[slice, ...] | None:
    """The bounding box of `mask` grown by `reach_mm` on every side (clipped); None for an empty mask."""
    if not mask.any():
        return None
    grow = np.ceil(reach_mm / spacing).astype(int) + 1
    return tuple(slice(max(int(w.min()) - g, 0), int(w.max()) + g + 1) for w, g in zip(np.nonzero(mask), grow))
