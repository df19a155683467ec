"""The vertebra's read stage (`bonefe.sites.base.Site.anatomy`): the whole-bone check, the
neighbours' centroids and heights, the crop to the vertebra, its frame and the inserted lesion."""

import numpy as np

from bonefe.calibration import raw_labels_on_ct
from bonefe.errors import BonefeError
from bonefe.meshing import bounding_box
from bonefe.sites.base import Anatomy
from bonefe.sites.vertebra.anatomy import label_centroid, vertebra_frame
from bonefe.sites.vertebra.lesions import insert_lesion
from bonefe.sites.vertebra.levels import neighbours, totalsegmentator_value
from bonefe.volume import Volume

CROP_MARGIN_VOXELS = 4
VERTEBRA_MIN_LENGTH_MM = 10.0
"""The scan's field-of-view check (`bonefe.suitability`) asks the femur for 120 mm of bone; a
vertebra needs only itself: 10 mm is below the smallest (cervical) body height, so it never binds."""


def check_whole(volume: Volume, allow_cut: bool) -> None:
    """Refuse a vertebra touching any face of the image (the femur check lets the inferior face pass)."""
    bone = volume.labels > 0
    cut = any(np.take(bone, end, axis=axis).any() for axis in range(3) for end in (0, -1))
    if cut and not allow_cut:
        raise BonefeError("the vertebra touches the edge of the image: it is cut by the scan; use a scan "
                          "that holds the whole vertebra (or set suitability.allow_cut_bone: true)")


def crop(volume: Volume, mask: np.ndarray, margin: int = CROP_MARGIN_VOXELS) -> Volume:
    """The volume cut to the bounding box of `mask` plus `margin` voxels (affine shifted)."""
    lo, hi = bounding_box(mask)
    lo = np.maximum(np.asarray(lo) - margin, 0)
    hi = np.minimum(np.asarray(hi) + margin, np.array(mask.shape))
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = volume.affine.copy()
    affine[:3, 3] = volume.to_world(lo[None, :])[0]
    return Volume(hu=volume.hu[window].copy(), labels=volume.labels[window].copy(), affine=affine)


def neighbour_values(case) -> tuple[int | None, int | None]:
    """Label values of the (cranial, caudal) neighbours: the case's, or TotalSegmentator's when the
    bone's value is the level's TotalSegmentator value."""
    if case.spine.neighbour_values is not None:
        return tuple(case.spine.neighbour_values)
    bone = case.label_values.bone
    if bone is not None and totalsegmentator_value(case.level) in np.atleast_1d(bone).tolist():
        return tuple(None if n is None else totalsegmentator_value(n) for n in neighbours(case.level))
    return (None, None)


def _neighbour_heights(raw: np.ndarray, affine: np.ndarray, value: int | None):
    """Body heights (anterior, middle, posterior, mm) of a neighbour wholly inside the image, else None."""
    if value is None:
        return None
    mask = raw == value
    if not mask.any():
        return None
    lo, hi = bounding_box(mask)
    if min(lo) == 0 or np.any(np.asarray(hi) >= np.array(mask.shape)):
        return None  # cut by the image edge: its height would be wrong
    labels = mask.astype(np.uint8)
    return vertebra_frame(crop(Volume(np.zeros(mask.shape, np.float32), labels, affine), mask)).heights_mm


def vertebra_anatomy(case, volume: Volume, raw: np.ndarray | None) -> Anatomy:
    """The cropped vertebra (lesion inserted when the case asks) and its frame; extras: the
    neighbours' mean body heights ("reference_heights", None without a whole neighbour) and the
    inserted lesion's centre ("lesion_centre", world mm, or None)."""
    check_whole(volume, case.suitability.allow_cut_bone)
    if raw is None:
        raw = raw_labels_on_ct(case.ct, case.labels, case.ct_series)
    values = neighbour_values(case)
    centroids = tuple(label_centroid(raw, volume.affine, v) for v in values)
    heights = [h for h in (_neighbour_heights(raw, volume.affine, v) for v in values) if h is not None]
    reference = tuple(np.mean(heights, axis=0)) if heights else None
    volume = crop(volume, volume.labels > 0)
    frame = vertebra_frame(volume, centroids, case.spine.landmarks())
    centre = None
    if case.spine.insert_lesion is not None:
        lesion = case.spine.insert_lesion
        volume, centre = insert_lesion(volume, frame, lesion.site, lesion.diameter_mm, lesion.type)
    return Anatomy(volume, frame, {"reference_heights": reference, "lesion_centre": centre})
