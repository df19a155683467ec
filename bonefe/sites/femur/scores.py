"""The femur's part of its clinical scores (`bonefe.sites.long_bone.scores`: Mirels, axial cortical
involvement): the Mirels site component.

Mirels site (Mirels 1989, Clin Orthop Relat Res 249:256-264): lower limb 2, peritrochanteric 3. The
site is 3 when the lesion's centroid lies proximal to the plane normal to the shaft axis
PERITROCHANTERIC_RADII head radii below the head centre (neck, trochanters and the
intertrochanteric region: the lesser trochanter's distal edge lies ~2.5-3 head radii below the
head centre), else 2.
"""

import numpy as np

from bonefe.sites.femur.anatomy import FemurFrame

PERITROCHANTERIC_RADII = 3.0


def femur_site_points(centroid: np.ndarray, frame: FemurFrame) -> int:
    """Mirels site points of a lesion centroid (world mm): peritrochanteric 3, else lower limb 2."""
    axis = np.asarray(frame.shaft_axis, float) / np.linalg.norm(frame.shaft_axis)
    height = (centroid - np.asarray(frame.head_centre, float)) @ axis
    return 3 if height >= -PERITROCHANTERIC_RADII * frame.head_radius else 2
