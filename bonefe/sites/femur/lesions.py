"""Metastatic lesions at named anatomical sites of a femur, placed through its femur frame.

One placement serves the procedural phantom (`bonefe.sites.femur.phantom`, analytic surface) and real bone
surfaces turned into CT-like volumes (`bonefe.sites.femur.surface_phantom`, voxel surface): each site names a
ray, given in the femur frame (`bonefe.sites.femur.anatomy.FemurFrame.basis`, columns medial, anterior,
superior), from inside the bone towards the cortex it erodes:

  neck_superolateral   from the neck axis NECK_POSITION_RADII head radii from the head centre
                       (mid-neck), towards superior (the superior direction made normal to the neck)
  neck_inferomedial    same start, towards inferior (the calcar side of the neck)
  intertrochanteric    from the shaft axis LEVELS_MM below the head centre, towards anterior
                       (the intertrochanteric line)
  subtrochanteric      from the shaft axis, towards medial (≈ 2 cm below the lesser trochanter)
  diaphysis            from the shaft axis, towards lateral (proximal diaphysis)

"neck" is the procedural phantom's name for neck_superolateral and stays valid. Levels along the
shaft are measured from the head centre along the frame's superior axis; the rays along the
shaft start on the shaft axis (through `distal_centre`, along `shaft_axis`).

Where the ray leaves the bone the lesion sphere is placed by the long-bone rule
(`bonefe.sites.long_bone.lesions`: cortical involvement c, closest approach t·(1 − c) to the
periosteal surface).
"""

import numpy as np

from bonefe.errors import BonefeError
from bonefe.sites.femur.anatomy import FemurFrame
from bonefe.sites.long_bone.lesions import BoneSurface, Lesion, lesion_on_ray

SITES = ("neck_superolateral", "neck_inferomedial", "intertrochanteric", "subtrochanteric", "diaphysis")
ALIASES = {"neck": "neck_superolateral"}
SITE_NAMES = tuple(ALIASES) + SITES
"""Every name a case, the CLI or a phantom spec may use."""

NECK_POSITION_RADII = 1.25
"""Mid-neck: the middle of the neck cross-sections used for the neck axis (1.0–1.5 head radii from
the head centre, `bonefe.sites.femur.anatomy.NECK_WINDOW`): past the head, short of the trochanters."""
LEVELS_MM = {"intertrochanteric": 45.0, "subtrochanteric": 80.0, "diaphysis": 120.0}
"""Distance below the head centre (mm) of the shaft sites: the lesser trochanter lies ≈ 55–65 mm
below the head centre in adults, so 45 mm is between the trochanters, 80 mm ≈ 2 cm below the
lesser trochanter (the subtrochanteric zone reaches 5 cm below it) and 120 mm in the diaphysis."""
def canonical_site(site: str) -> str:
    """The site's canonical name (aliases resolved); BonefeError for an unknown site."""
    if site not in SITE_NAMES:
        raise BonefeError(f"lesion site must be one of {', '.join(SITE_NAMES)} (got {site!r})")
    return ALIASES.get(site, site)


def site_ray(site: str, frame: FemurFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start (world mm, inside the bone) and unit direction of the ray anchoring a lesion at `site`."""
    site = canonical_site(site)
    medial, anterior, superior = frame.basis().T
    if site.startswith("neck"):
        neck = np.asarray(frame.neck_axis, float) / np.linalg.norm(frame.neck_axis)
        up = superior - (superior @ neck) * neck
        up /= np.linalg.norm(up)
        start = np.asarray(frame.head_centre, float) - NECK_POSITION_RADII * frame.head_radius * neck
        return start, up if site == "neck_superolateral" else -up
    shaft = np.asarray(frame.shaft_axis, float) / np.linalg.norm(frame.shaft_axis)
    level = (np.asarray(frame.head_centre, float) - LEVELS_MM[site] * superior) @ superior
    base = np.asarray(frame.distal_centre, float)
    start = base + (level - base @ superior) / (shaft @ superior) * shaft  # shaft axis ∩ that level
    direction = {"intertrochanteric": anterior, "subtrochanteric": medial, "diaphysis": -medial}[site]
    return start, direction


def place_lesion(site: str, frame: FemurFrame, bone: BoneSurface, diameter_mm: float, involvement: float,
                 lesion_type: str = "lytic") -> Lesion:
    """The lesion sphere at `site` of the bone: diameter (mm), cortical involvement c in [0, 1]."""
    site = canonical_site(site)
    return lesion_on_ray(site, site_ray(site, frame), bone, diameter_mm, involvement, lesion_type)
