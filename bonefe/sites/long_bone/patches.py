"""Support and load patches of a long bone on the mesh's exterior facets (`bonefe.boundary.ExteriorFacets`):
the distal cut and a cap of the head sphere."""

import numpy as np

from bonefe.boundary import ExteriorFacets
from bonefe.sites.long_bone.frame import LongBoneFrame, unit

SUPPORT_TOLERANCE_MM = 2.0
"""Facets within this distance of the distal plane count as the cut: covers an estimated shaft
axis off by ≈ 3° across a 40 mm wide cut, and is well below a mesh element."""
SUPPORT_NORMAL_DEG = 60.0
"""Support facets face distally: outward normal within this angle of −shaft axis (the surface
smoothing rounds the rim of the cut over about a voxel; the rim belongs to the support)."""
HEAD_SHELL = 0.15
"""Head patch facets lie within this fraction of the head radius of the sphere."""


def cut_facets(facets: ExteriorFacets, frame: LongBoneFrame) -> np.ndarray:
    """The distal cut: facets within SUPPORT_TOLERANCE_MM of the distal plane, facing distally."""
    axis = unit(frame.shaft_axis)
    height = (facets.midpoint - frame.distal_centre) @ axis
    return (height <= SUPPORT_TOLERANCE_MM) & (facets.normal @ axis <= -np.cos(np.radians(SUPPORT_NORMAL_DEG)))


def head_cap(facets: ExteriorFacets, frame: LongBoneFrame, cap_axis, half_angle_deg: float) -> np.ndarray:
    """Facets on the head sphere (within HEAD_SHELL radii of it) within half_angle_deg of cap_axis."""
    offset = facets.midpoint - frame.head_centre
    distance = np.linalg.norm(offset, axis=1)
    on_sphere = np.abs(distance - frame.head_radius) <= HEAD_SHELL * frame.head_radius
    return on_sphere & (offset @ unit(cap_axis) >= distance * np.cos(np.radians(half_angle_deg)))
