"""SINS — the Spinal Instability Neoplastic Score (Fisher et al. 2010, Spine 35:E1221) from the CT.

Components and points (Fisher 2010, table 1): location 0–3 (from the level, `levels`); pain 0–3
(from the case: mechanical 3, occasional non-mechanical 1, pain-free 0; unknown → 0–3); bone
lesion lytic 2 / mixed 1 / blastic 0; alignment subluxation 4 / de novo deformity 2 / normal 0
(from the case; unknown → 0–4: it needs neighbours and a prior scan); vertebral body collapse
> 50 % 3 / < 50 % 2 / none with > 50 % of the body involved 1 / none 0; posterolateral
involvement (pedicle, facet or costovertebral joint replaced by tumour) bilateral 3 /
unilateral 1 / none 0. Totals: 0–6 stable, 7–12 indeterminate, 13–18 unstable.

From the labels (bonefe's choices, documented, thresholds not standardised by SINS):
- lesion quality: mixed when the minority type holds ≥ MIXED_FRACTION of the lesion volume;
- collapse: 1 − the body's height / reference height, at the smallest of its anterior, middle and
  posterior heights against the same height of the neighbours (their mean); no reference → not
  scored from the CT (0–3 range unless the body involvement alone sets 1);
- body involvement: lesion voxels in the body / body voxels;
- posterolateral: lesion voxels behind the body's posterior wall, per side (left/right of the
  mid-sagittal plane), each side involved when ≥ POSTEROLATERAL_MIN_MM3.
"""

from dataclasses import dataclass

import numpy as np

from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.sites.vertebra.levels import sins_location_points
from bonefe.volume import BLASTIC, LYTIC, Volume

MIXED_FRACTION = 0.2
POSTEROLATERAL_MIN_MM3 = 20.0
"""About 3 × 3 × 2 mm of tumour in a pedicle/facet region; smaller overlaps are segmentation noise."""
PAIN_POINTS = {"mechanical": 3, "occasional": 1, "none": 0}
ALIGNMENT_POINTS = {"subluxation": 4, "deformity": 2, "normal": 0}
CATEGORIES = ((6, "stable"), (12, "indeterminate"), (18, "unstable"))


def category(total: int) -> str:
    """stable (0–6), indeterminate (7–12), unstable (13–18)."""
    return next(name for upper, name in CATEGORIES if total <= upper)


@dataclass(frozen=True)
class Sins:
    """Per-component points as (low, high) ranges (equal when known) and the measurements behind them."""

    components: dict
    collapse_fraction: float | None
    body_involvement: float
    posterolateral_sides: tuple[str, ...]

    @property
    def total(self) -> tuple[int, int]:
        return (sum(lo for lo, _ in self.components.values()), sum(hi for _, hi in self.components.values()))

    @property
    def categories(self) -> tuple[str, str]:
        lo, hi = self.total
        return category(lo), category(hi)


def _quality(volume: Volume) -> tuple[int, int]:
    lytic, blastic = np.count_nonzero(volume.labels == LYTIC), np.count_nonzero(volume.labels == BLASTIC)
    if lytic + blastic == 0:
        return (0, 0)
    minority = min(lytic, blastic) / (lytic + blastic)
    points = 1 if minority >= MIXED_FRACTION else (2 if lytic > blastic else 0)
    return (points, points)


def _collapse(frame: VertebraFrame, reference_heights, involvement: float) -> tuple[tuple[int, int], float | None]:
    involved = 1 if involvement > 0.5 else 0
    if reference_heights is None:
        return ((involved, 3), None)
    loss = max(0.0, max(1.0 - h / r for h, r in zip(frame.heights_mm, reference_heights) if r > 0))
    if loss > 0.5:
        return ((3, 3), loss)
    if loss > 0.0 and loss >= COLLAPSE_MIN:
        return ((2, 2), loss)
    return ((involved, involved), loss)


COLLAPSE_MIN = 0.2
"""Height loss below 20 % is not counted as collapse: the lower bound of a grade-1 (mild) fracture
in Genant's semi-quantitative method (Genant et al. 1993, J Bone Miner Res 8:1137: 20–25 %). It is
also above the scatter of voxel heights (one 2.5 mm slice is 12 % of a 20 mm body); SINS itself
counts any collapse."""


def sins_score(volume: Volume, frame: VertebraFrame, level: str, pain: str | None = None,
               alignment: str | None = None, reference_heights=None) -> Sins:
    """SINS of the vertebra in `volume` (labels: bone and lesions of this vertebra only)."""
    ijk = np.argwhere(volume.labels > 0)
    local = frame.local(volume.to_world(ijk))
    lesion = np.isin(volume.labels[tuple(ijk.T)], (LYTIC, BLASTIC))
    body = local[:, 0] >= frame.posterior_wall
    involvement = float(np.count_nonzero(lesion & body) / max(np.count_nonzero(body), 1))
    posterior = lesion & ~body
    voxel = volume.voxel_volume
    sides = tuple(side for side, mask in (("left", local[:, 1] > 0), ("right", local[:, 1] <= 0))
                  if np.count_nonzero(posterior & mask) * voxel >= POSTEROLATERAL_MIN_MM3)
    posterolateral = {0: 0, 1: 1, 2: 3}[len(sides)]
    collapse, loss = _collapse(frame, reference_heights, involvement)
    pain_points = (0, 3) if pain is None else (PAIN_POINTS[pain],) * 2
    alignment_points = (0, 4) if alignment is None else (ALIGNMENT_POINTS[alignment],) * 2
    components = {"location": (sins_location_points(level),) * 2, "pain": pain_points,
                  "bone_lesion": _quality(volume), "alignment": alignment_points,
                  "collapse": collapse, "posterolateral": (posterolateral, posterolateral)}
    return Sins(components, loss, involvement, sides)
