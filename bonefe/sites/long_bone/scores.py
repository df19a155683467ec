"""Clinical fracture-risk scores of a metastasis in a long bone (femur, humerus) from the label map:
Mirels and axial cortical involvement. Pure numpy on the Volume and the long-bone frame
(`bonefe.sites.long_bone.frame.LongBoneFrame`), identical on every MPI rank.

Lesions: connected lesion voxels (labels 2 and 3, 26-connectivity) form one lesion; each lesion
is scored and the worst one is reported (highest Mirels total, longest axial involvement).

Local bone axis: the shaft axis (through the distal centre) or the neck axis (through the head
centre), whichever line lies nearer the lesion's centroid.

Mirels score (Mirels 1989, Clin Orthop Relat Res 249:256-264), 4-12 points:
- site: upper limb 1, lower limb 2, peritrochanteric 3, from the bone's site (`site_points`: the
  femur's `bonefe.sites.femur.scores.femur_site_points`, the humerus's upper limb).
- pain: mild 1, moderate 2, functional 3, from the clinician (`patient.pain`); unknown pain gives
  the range of totals over all three.
- type: blastic 1, mixed 2, lytic 3; mixed when lytic and blastic voxels each make at least
  MIXED_FRACTION of the lesion, otherwise the majority type.
- size: < 1/3 → 1, 1/3-2/3 → 2, > 2/3 → 3 of the bone's diameter. In slabs one voxel thick
  normal to the local axis, the lesion's width along each in-plane direction (every 5°) is divided
  by the bone's width along the same direction (bone voxels of the slab within
  SECTION_RADII head radii of the axis line: the neck or shaft cross-section, not other parts of
  the bone the plane also cuts); the size is the largest ratio. Widths are voxel-centre extents
  plus one voxel.
  Recommendation (Mirels 1989): total ≥ 9 prophylactic fixation; 8 borderline (clinical
  judgement); ≤ 7 radiotherapy and observation.

Axial cortical involvement (Van der Linden et al. 2004, J Bone Joint Surg Br 86-B:566-573:
> 30 mm predicted fracture): the length along the local axis over which lesion voxels replace
cortex. The cortex that would be there comes from the lesion-free twin
(`bonefe.materials.healthy_volume`): lesion voxels whose twin HU is at least CORTICAL_HU. The
length is the number of occupied slabs (one smallest voxel thick) along the axis times their
thickness, so separate stretches add up and gaps do not count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.materials import healthy_volume
from bonefe.sites.long_bone.frame import LongBoneFrame
from bonefe.volume import BACKGROUND, BLASTIC, LESION_LABELS, LYTIC, Volume

MIRELS_1989 = "Mirels H 1989, Clin Orthop Relat Res 249:256-264 (≥ 9 prophylactic fixation, ≤ 7 radiotherapy)"
VAN_DER_LINDEN_2004 = ("Van der Linden YM et al. 2004, J Bone Joint Surg Br 86-B:566-573 "
                       "(axial cortical involvement > 30 mm: high fracture risk)")
AXIAL_THRESHOLD_MM = 30.0
SECTION_RADII = 1.5
MIXED_FRACTION = 0.1
CORTICAL_HU = 800.0
"""HU from which twin bone counts as cortex: above trabecular bone (≈ 100-400 HU) and well below
compact cortex (≈ 1200-1800 HU), leaving room for partial volume in a thin cortex."""
PAIN_POINTS = {"mild": 1, "moderate": 2, "functional": 3}
DIRECTIONS = np.radians(np.arange(0.0, 180.0, 5.0))


@dataclass(frozen=True)
class MirelsScore:
    """Mirels components (points), the total (a range when pain is unknown) and the advice."""

    site: int
    pain: int | None
    lesion_type: int
    size: int
    size_fraction: float
    total_min: int
    total_max: int
    recommendation: str
    reference: str = MIRELS_1989


@dataclass(frozen=True)
class AxialInvolvement:
    """Length (mm) along the bone axis over which the lesion replaces cortex, and the 30 mm rule."""

    length_mm: float
    threshold_mm: float = AXIAL_THRESHOLD_MM
    reference: str = VAN_DER_LINDEN_2004

    @property
    def high_risk(self) -> bool:
        return self.length_mm > self.threshold_mm


def mirels_recommendation(total_min: int, total_max: int) -> str:
    """Mirels' advice for a total, or for a range of totals when pain is unknown."""
    if total_min >= 9:
        return "prophylactic fixation recommended"
    if total_max <= 7:
        return "radiotherapy and observation"
    if total_min == total_max == 8:
        return "borderline: clinical judgement"
    return (f"from '{mirels_recommendation(total_min, total_min)}' to "
            f"'{mirels_recommendation(total_max, total_max)}' depending on pain (give patient.pain)")


def lesions(volume: Volume) -> list[np.ndarray]:
    """Masks of the connected lesions (26-connectivity), largest first."""
    labelled, count = ndimage.label(np.isin(volume.labels, LESION_LABELS), structure=np.ones((3, 3, 3)))
    masks = [labelled == i for i in range(1, count + 1)]
    return sorted(masks, key=lambda m: -np.count_nonzero(m))


def _line_distance(points: np.ndarray, point, axis) -> np.ndarray:
    q = points - np.asarray(point, float)
    return np.linalg.norm(q - np.outer(q @ axis, axis), axis=1)


def local_axis(centroid: np.ndarray, frame: LongBoneFrame) -> tuple[np.ndarray, np.ndarray]:
    """A point and unit direction of the shaft or neck line, whichever is nearer the centroid."""
    shaft = (np.asarray(frame.distal_centre, float), np.asarray(frame.shaft_axis, float))
    neck = (np.asarray(frame.head_centre, float), np.asarray(frame.neck_axis, float))
    lines = [(p, a / np.linalg.norm(a)) for p, a in (shaft, neck)]
    return min(lines, key=lambda line: _line_distance(centroid[None], *line)[0])


def _slabs(values: np.ndarray, width: float) -> np.ndarray:
    return np.floor(values / width).astype(int)


def _in_plane(axis: np.ndarray) -> np.ndarray:
    """Unit directions (len(DIRECTIONS), 3) normal to axis, every 5° over a half turn."""
    e1 = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    return np.outer(np.cos(DIRECTIONS), e1) + np.outer(np.sin(DIRECTIONS), e2)


def size_fraction(volume: Volume, lesion: np.ndarray, frame: LongBoneFrame) -> float:
    """Largest lesion width / bone width over cross-sections normal to the local axis (module doc)."""
    points = volume.to_world(np.argwhere(lesion))
    point, axis = local_axis(points.mean(axis=0), frame)
    bone = volume.to_world(np.argwhere(volume.labels != BACKGROUND))
    bone = bone[_line_distance(bone, point, axis) <= SECTION_RADII * frame.head_radius]
    width, directions = float(volume.spacing.min()), _in_plane(axis)
    lesion_slab, bone_slab = _slabs(points @ axis, width), _slabs(bone @ axis, width)
    best = 0.0
    for slab in np.unique(lesion_slab):
        inside, section = points[lesion_slab == slab] @ directions.T, bone[bone_slab == slab] @ directions.T
        lesion_width = np.ptp(inside, axis=0) + width
        bone_width = np.ptp(section, axis=0) + width
        best = max(best, float(np.max(lesion_width / bone_width)))
    return min(best, 1.0)


def _type(volume: Volume, lesion: np.ndarray) -> int:
    values = volume.labels[lesion]
    lytic, blastic = np.mean(values == LYTIC), np.mean(values == BLASTIC)
    if min(lytic, blastic) >= MIXED_FRACTION:
        return 2
    return 3 if lytic >= blastic else 1


def _size_points(fraction: float) -> int:
    return 1 if fraction < 1.0 / 3.0 else (2 if fraction <= 2.0 / 3.0 else 3)


def mirels_score(volume: Volume, frame: LongBoneFrame, pain: str | None = None, *,
                 site_points: Callable[[np.ndarray, LongBoneFrame], int]) -> MirelsScore | None:
    """Mirels score of the worst lesion of the bone (module doc); None without lesion voxels.

    frame: the long-bone frame (the local axes of the size); site_points: the site component of a
    lesion centroid (world mm): the femur's peritrochanteric 3 or lower limb 2, the humerus's upper limb 1."""
    scores = []
    for lesion in lesions(volume):
        centroid = volume.to_world(np.argwhere(lesion)).mean(axis=0)
        fraction = size_fraction(volume, lesion, frame)
        site, kind, size = site_points(centroid, frame), _type(volume, lesion), _size_points(fraction)
        pain_points = PAIN_POINTS[pain] if pain is not None else None
        low = site + kind + size + (pain_points or 1)
        high = site + kind + size + (pain_points or 3)
        scores.append(MirelsScore(site, pain_points, kind, size, fraction, low, high,
                                  mirels_recommendation(low, high)))
    return max(scores, key=lambda s: (s.total_max, s.total_min), default=None)


def axial_involvement(volume: Volume, frame: LongBoneFrame, twin: Volume | None = None) -> AxialInvolvement | None:
    """Axial cortical involvement of the worst lesion (module doc); None without lesion voxels.

    twin: the lesion-free twin of `volume` when already computed (`healthy_volume`)."""
    twin = healthy_volume(volume) if twin is None else twin
    width, longest, found = float(volume.spacing.min()), 0.0, False
    for lesion in lesions(volume):
        found = True
        points = volume.to_world(np.argwhere(lesion))
        _, axis = local_axis(points.mean(axis=0), frame)
        cortical = twin.hu[lesion] >= CORTICAL_HU
        slabs = np.unique(_slabs(points[cortical] @ axis, width))
        longest = max(longest, len(slabs) * width)
    return AxialInvolvement(longest) if found else None
