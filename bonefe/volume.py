"""The CT volume every stage works on: HU, canonical labels and the voxel→world map."""

from dataclasses import dataclass

import numpy as np

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
