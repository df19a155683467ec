"""Clinical scores of a humeral metastasis from the label map: Mirels with the upper-limb site, the
humerus-specific Mirels cut-off, and whether the lesion breaches the cortex.

- Mirels (Mirels 1989, Clin Orthop Relat Res 249:256): the long bones' implementation
  (`bonefe.sites.long_bone.scores.mirels_score`: type, size across the shaft or head-neck section, pain
  from the clinician) with the site component of the upper limb, 1 point; Mirels' own advice
  (≥ 9 fixation, ≤ 7 radiotherapy) is kept.
- Humerus cut-off: in 188 patients with humeral metastases (61 fractures) Mirels ≥ 8 was the best
  cut-off (sensitivity 83.6 %, specificity 79.5 %, AUC 0.82) and a cortical breach the strongest
  predictor (odds ratio 21.0, 95 % CI 5.7–77.2) (PubMed Central PMC10132712, abstract; authors and
  journal unconfirmed in this session).
- Cortical breach: a lesion voxel face-adjacent to background (the lesion reaches the periosteal
  surface of the segmentation).
"""

import numpy as np
from scipy import ndimage

from bonefe.schema import as_plain
from bonefe.sites.long_bone.scores import mirels_score
from bonefe.volume import BACKGROUND, LESION_LABELS, Volume

UPPER_LIMB = 1
"""Mirels site points of the upper limb (Mirels 1989)."""
HUMERUS_CUTOFF = 8
HUMERUS_STUDY = ("PubMed Central PMC10132712 (188 patients with humeral metastases: Mirels >= 8 sensitivity "
                 "83.6 %, specificity 79.5 %; cortical breach OR 21.0; authors and journal unconfirmed)")


def cortical_breach(volume: Volume) -> bool | None:
    """Whether a lesion voxel touches background across a face; None without lesion voxels."""
    lesion = np.isin(volume.labels, LESION_LABELS)
    if not lesion.any():
        return None
    return bool((ndimage.binary_dilation(lesion) & (volume.labels == BACKGROUND)).any())


def humerus_scores(volume: Volume, frame, pain: str | None) -> dict:
    """Results keys: mirels (None without a lesion), cortical_breach, mirels_humerus_cutoff."""
    mirels = mirels_score(volume, frame, pain, site_points=lambda centroid, frame: UPPER_LIMB)
    cutoff = None if mirels is None else {
        "cutoff": HUMERUS_CUTOFF, "reference": HUMERUS_STUDY,
        "at_or_above": (True if mirels.total_min >= HUMERUS_CUTOFF else
                        False if mirels.total_max < HUMERUS_CUTOFF else None)}
    return {"mirels": as_plain(mirels) if mirels else None, "cortical_breach": cortical_breach(volume),
            "mirels_humerus_cutoff": cutoff}
