"""Metastatic lesions at named sites of a humerus, placed through its frame (phantom and real CT).

Each site is a ray from the shaft axis at a level below the head centre (mm, along the frame's
superior axis), towards a side of the bone; where the ray leaves the bone the lesion sphere is
placed as on the femur (`bonefe.sites.long_bone.lesions.lesion_on_ray`: cortical involvement c, the
sphere's closest approach to the periosteal surface t·(1 − c)):

  surgical_neck    LEVELS_MM["surgical_neck"] below the head centre, towards medial (the calcar
                   side, where the metaphysis meets the shaft)
  proximal_shaft   towards lateral (the deltoid tuberosity side of the proximal diaphysis)
  mid_shaft        towards lateral (mid-diaphysis)
  distal           towards anterior (distal diaphysis above the supracondylar flare)

Levels are for an adult humerus (head centre to elbow ≈ 290–320 mm, approximate): a level below
the distal end of a partial humerus is refused (the ray starts outside the bone).
"""

import numpy as np

from bonefe.errors import BonefeError
from bonefe.sites.humerus.anatomy import HumerusFrame
from bonefe.sites.long_bone.lesions import Lesion, VoxelBone, lesion_on_ray

SITES = ("surgical_neck", "proximal_shaft", "mid_shaft", "distal")
LEVELS_MM = {"surgical_neck": 40.0, "proximal_shaft": 90.0, "mid_shaft": 150.0, "distal": 215.0}
"""Distance below the head centre (mm): the surgical neck ≈ 1.5–2 head radii below it, the
proximal, middle and distal diaphysis at about 0.3, 0.5 and 0.7 of the humerus's length."""
TOWARDS = {"surgical_neck": 0, "proximal_shaft": 1, "mid_shaft": 1, "distal": 2}
"""Ray direction: 0 medial, 1 lateral (−medial), 2 anterior (columns of the frame's basis)."""


def site_ray(site: str, frame: HumerusFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start (world mm, on the shaft axis) and unit direction of the ray anchoring a lesion at `site`."""
    if site not in SITES:
        raise BonefeError(f"humerus lesion site must be one of {', '.join(SITES)} (got {site!r})")
    medial, anterior, superior = frame.basis().T
    shaft = np.asarray(frame.shaft_axis, float)
    level = (np.asarray(frame.head_centre, float) - LEVELS_MM[site] * superior) @ superior
    base = np.asarray(frame.distal_centre, float)
    start = base + (level - base @ superior) / (shaft @ superior) * shaft
    return start, (medial, -medial, anterior)[TOWARDS[site]]


def place_lesion(site: str, frame: HumerusFrame, bone: VoxelBone, diameter_mm: float, involvement: float,
                 lesion_type: str = "lytic") -> Lesion:
    """The lesion sphere at `site`: diameter (mm), cortical involvement c in [0, 1]."""
    start, _ = site_ray(site, frame)
    if (start - np.asarray(frame.distal_centre, float)) @ np.asarray(frame.shaft_axis, float) < 0:
        raise BonefeError(f"lesion site '{site}' lies {LEVELS_MM[site]:g} mm below the head centre, below the "
                          "distal end of this humerus; choose a more proximal site")
    return lesion_on_ray(site, site_ray(site, frame), bone, diameter_mm, involvement, lesion_type)
