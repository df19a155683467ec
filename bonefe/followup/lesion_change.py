"""Lesions of each scan, matched across scans, and how each changed.

A lesion is a 26-connected component of lesion voxels (lytic or blastic) of one scan, measured on
that scan's own grid (so volumes are voxel counts × voxel volume, free of resampling): volume
(mm³), mean HU, mean QCT density (g/cm³, the scan's calibration line), type (the majority label),
the depth of its shallowest voxel below the periosteal surface (mm; 0 when it reaches the surface,
i.e. a cortical breach) and its centroid (world mm).

Matching: a later lesion's centroid is brought into the baseline frame through the registration;
it matches the nearest unmatched baseline lesion whose centroid lies within the sum of the two
sphere-equivalent radii (greedy, nearest pairs first).

Healing fraction of a baseline lesion in a later scan: h = mean(HU_later − HU_base) /
mean(HU_twin − HU_base) over the baseline lesion's voxels, with the later scan resampled into the
baseline grid and HU_twin the baseline's lesion-free twin (`bonefe.materials.healthy_volume`):
0 unchanged, 1 as dense as the surrounding healthy bone — the fraction t of `bonefe.whatif`.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.materials import qct_density
from bonefe.volume import BACKGROUND, BLASTIC, LESION_LABELS, LYTIC, Volume


@dataclass(frozen=True)
class Lesion:
    """One lesion of one scan (module docstring); centroid in that scan's world frame (mm)."""

    volume_mm3: float
    mean_hu: float
    mean_density_g_cm3: float
    type: str
    periosteal_depth_mm: float
    centroid_mm: tuple[float, float, float]

    @property
    def cortical_breach(self) -> bool:
        return self.periosteal_depth_mm == 0.0

    @property
    def radius_mm(self) -> float:
        return float(np.cbrt(3.0 * self.volume_mm3 / (4.0 * np.pi)))

    def as_dict(self) -> dict:
        return {**vars(self), "centroid_mm": list(self.centroid_mm), "cortical_breach": self.cortical_breach}


def components(volume: Volume) -> tuple[np.ndarray, int]:
    """Connected lesion components (26-connectivity): label array and count."""
    return ndimage.label(np.isin(volume.labels, LESION_LABELS), structure=np.ones((3, 3, 3), bool))


def lesions(volume: Volume, slope: float, intercept: float) -> list[Lesion]:
    """The lesions of a scan, largest first; slope, intercept: its HU → QCT density line (g/cm³)."""
    label, count = components(volume)
    depth = ndimage.distance_transform_edt(volume.labels != BACKGROUND, sampling=volume.spacing)
    outside = ~ndimage.binary_erosion(volume.labels != BACKGROUND)  # the envelope's outer voxel layer
    found = []
    for index in range(1, count + 1):
        mask = label == index
        hu = volume.hu[mask]
        types = volume.labels[mask]
        surface = bool((mask & outside).any())
        found.append(Lesion(
            volume_mm3=float(mask.sum() * volume.voxel_volume), mean_hu=float(hu.mean()),
            mean_density_g_cm3=float(qct_density(hu, slope, intercept).mean()),
            type="blastic" if np.count_nonzero(types == BLASTIC) > np.count_nonzero(types == LYTIC) else "lytic",
            periosteal_depth_mm=0.0 if surface else float(depth[mask].min()),
            centroid_mm=tuple(float(x) for x in volume.to_world(np.argwhere(mask).mean(axis=0)[None])[0])))
    return sorted(found, key=lambda lesion: -lesion.volume_mm3)


def match(baseline: list[Lesion], later: list[Lesion], to_baseline) -> dict[int, int]:
    """{later index: baseline index} (module docstring); to_baseline maps later world points (n, 3)."""
    if not baseline or not later:
        return {}
    a = np.array([lesion.centroid_mm for lesion in baseline])
    b = to_baseline(np.array([lesion.centroid_mm for lesion in later]))
    distance = np.linalg.norm(b[:, None, :] - a[None, :, :], axis=2)
    reach = np.array([[lb.radius_mm + la.radius_mm for la in baseline] for lb in later])
    pairs, used_a, used_b = {}, set(), set()
    for j, i in zip(*np.unravel_index(np.argsort(distance, axis=None), distance.shape)):
        if j not in used_b and i not in used_a and distance[j, i] <= reach[j, i]:
            pairs[int(j)] = int(i)
            used_a.add(i)
            used_b.add(j)
    return pairs


def healing_fraction(baseline: Volume, twin: Volume, later_on_baseline: Volume, mask: np.ndarray) -> float:
    """h of the baseline lesion `mask` (module docstring); 0 when the twin is no denser than the lesion."""
    gap = float((twin.hu[mask] - baseline.hu[mask]).mean())
    if gap <= 0:
        return 0.0
    return float((later_on_baseline.hu[mask] - baseline.hu[mask]).mean()) / gap
