"""A metastatic lesion sphere anchored on a ray through a long bone (femur, humerus), and the
voxel bone (`VoxelBone`) the phantoms and real surfaces place it on.

Each site of a bone names a ray from inside the bone towards the cortex it erodes.
Where the ray meets the periosteal surface (point P, inward unit normal n, local cortical
thickness t measured along n) a lesion sphere of radius r is centred at

    C = P + n·(t·(1 − c) + r),

so its closest approach to the periosteal surface is t·(1 − c): cortical involvement c = 0 just
touches the endosteal surface (cortex intact), c = 1 reaches the periosteal surface (full-thickness
breach). The sphere is clipped to the bone envelope.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.volume import BLASTIC, LYTIC, voxel_spacing

MAX_RAY_MM = 150.0
"""Longest ray searched for the periosteal surface (mm)."""


class BoneSurface(Protocol):
    """What placement needs of a bone: its periosteal surface along a ray and its cortex there."""

    def hit(self, start: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First periosteal surface point along the ray (world mm) and the inward unit normal there."""

    def cortical_thickness(self, point: np.ndarray, inward: np.ndarray) -> float:
        """Cortical thickness (mm) at a surface point, along the inward normal."""


@dataclass(frozen=True)
class Lesion:
    """A placed lesion sphere (world mm): the site, centre, radius, type (LYTIC or BLASTIC label),
    and the surface point and local cortical thickness it was placed from."""

    site: str
    centre: np.ndarray
    radius_mm: float
    label: int
    surface_point: np.ndarray
    cortical_thickness_mm: float

    def as_dict(self) -> dict:
        """Plain numbers for JSON."""
        return {"site": self.site, "centre": self.centre.tolist(), "radius_mm": self.radius_mm,
                "type": "lytic" if self.label == LYTIC else "blastic",
                "surface_point": self.surface_point.tolist(),
                "cortical_thickness_mm": self.cortical_thickness_mm}


def sphere_centre(point, inward, thickness: float, radius: float, involvement: float) -> np.ndarray:
    """C = P + n·(t·(1 − c) + r): see the module docstring."""
    return np.asarray(point, float) + np.asarray(inward, float) * (thickness * (1.0 - involvement) + radius)


def lesion_on_ray(site: str, ray: tuple[np.ndarray, np.ndarray], bone: BoneSurface, diameter_mm: float,
                  involvement: float, lesion_type: str = "lytic") -> Lesion:
    """The lesion sphere anchored where the ray (start inside the bone, direction) leaves the bone
    (module docstring), for any long bone: diameter (mm), cortical involvement c in [0, 1]."""
    if not 0.0 <= involvement <= 1.0:
        raise BonefeError(f"cortical_involvement must be between 0 and 1 (got {involvement})")
    if not diameter_mm > 0:
        raise BonefeError(f"lesion diameter must be positive (got {diameter_mm} mm)")
    if lesion_type not in ("lytic", "blastic"):
        raise BonefeError(f"lesion type must be lytic or blastic (got {lesion_type!r})")
    point, inward = bone.hit(*ray)
    thickness = float(bone.cortical_thickness(point, inward))
    radius = diameter_mm / 2.0
    return Lesion(site, sphere_centre(point, inward, thickness, radius, involvement), radius,
                  LYTIC if lesion_type == "lytic" else BLASTIC, point, thickness)


def in_ball(points: tuple, centre, radius: float) -> np.ndarray:
    """Boolean field: points (x, y, z arrays, broadcastable) within `radius` of `centre`."""
    return sum((points[a] - centre[a]) ** 2 for a in range(3)) <= radius ** 2


@dataclass(frozen=True)
class VoxelBone:
    """A bone on a voxel grid (the BoneSurface of a label map): envelope and cortex masks [i, j, k]
    and the grid's voxel→world affine. The periosteal surface is the zero level of the signed
    distance (mm, negative inside) from the exact Euclidean distance transforms of the envelope and
    its complement, each less half a voxel (the surface lies midway between voxel centres),
    interpolated trilinearly; the inward normal is minus its gradient."""

    envelope: np.ndarray
    cortex: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        return voxel_spacing(self.affine)

    def _index(self, xyz: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.affine[:3, :3], (np.atleast_2d(xyz) - self.affine[:3, 3]).T)

    def signed_distance(self) -> np.ndarray:
        """Signed distance to the periosteal surface at the voxel centres (mm, negative inside)."""
        h = self.spacing
        inside = ndimage.distance_transform_edt(self.envelope, sampling=h)
        outside = ndimage.distance_transform_edt(~self.envelope, sampling=h)
        return np.where(self.envelope, -(inside - 0.5 * h.min()), outside - 0.5 * h.min())

    def _sample(self, field: np.ndarray, xyz: np.ndarray, outside: float) -> np.ndarray:
        return ndimage.map_coordinates(field, self._index(xyz), order=1, mode="constant", cval=outside)

    def hit(self, start, direction):
        field = self.signed_distance()
        direction = np.asarray(direction, float) / np.linalg.norm(direction)
        step = 0.25 * self.spacing.min()
        steps = np.arange(0.0, MAX_RAY_MM, step)
        values = self._sample(field, np.asarray(start) + steps[:, None] * direction, outside=np.inf)
        if values[0] >= 0 or not (values > 0).any():
            raise BonefeError("lesion placement: the site's ray does not start inside the bone or never leaves "
                              "it; check the bone's frame (landmarks in the case file)")
        first = int(np.argmax(values > 0))
        lo, hi = steps[first - 1], steps[first]
        while hi - lo > 1e-3:
            mid = 0.5 * (lo + hi)
            inside = self._sample(field, np.asarray(start) + mid * direction, np.inf)[0] < 0
            lo, hi = (mid, hi) if inside else (lo, mid)
        point = np.asarray(start, float) + lo * direction
        offsets = 0.5 * self.spacing.min() * np.eye(3)
        gradient = self._sample(field, point + offsets, np.inf) - self._sample(field, point - offsets, np.inf)
        return point, -gradient / np.linalg.norm(gradient)

    def cortical_thickness(self, point, inward):
        """Length (mm) of the first run of cortex along the inward normal from the surface point,
        the cortex mask interpolated trilinearly and thresholded at ½."""
        step = 0.1 * self.spacing.min()
        steps = np.arange(0.0, 40.0, step)
        cortex = self._sample(self.cortex.astype(np.float32), np.asarray(point) + steps[:, None] * inward, 0.0) > 0.5
        if not cortex.any():
            return 0.0
        begin = int(np.argmax(cortex))
        run = np.argmin(cortex[begin:]) if not cortex[begin:].all() else len(cortex) - begin
        return float(run * step)
