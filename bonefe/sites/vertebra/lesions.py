"""Named lesion sites of a vertebra, placed from its frame (phantom and real CT alike).

Each site is a point in the vertebra frame (anterior, left, cranial) scaled by the body's depth D,
width W and middle height H, with the origin at the body centroid:

  central            (0, 0, 0)                   the body's centre (commonest metastatic site)
  anterior           (0.3 D, 0, 0)               anterior third of the body
  posterior-wall     (wall + 0.15 D, 0, 0)       just in front of the posterior wall (burst risk)
  lateral            (0, 0.3 W, 0)               left half of the body
  superior-endplate  (0, 0, 0.3 H)               under the cranial endplate
  pedicle            the centroid of the left posterior-element bone within 12 mm behind the wall

A lesion is a ball of the given diameter clipped to the vertebra's label; its HU becomes that of
the lesion type (`LESION_HU`). A site whose centre is not bone is refused (lesion outside the vertebra).
"""

from dataclasses import replace

import numpy as np

from bonefe.errors import BonefeError
from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.volume import BLASTIC, LYTIC, Volume

SITES = ("central", "anterior", "posterior-wall", "lateral", "superior-endplate", "pedicle")
LESION_HU = {"lytic": 40.0, "blastic": 1000.0}
"""HU given to lesion voxels: lytic ≈ soft tissue, blastic ≈ dense sclerotic bone (as the femur phantom)."""
PEDICLE_REACH_MM = 12.0


def site_centre(frame: VertebraFrame, site: str, bone_points: np.ndarray) -> np.ndarray:
    """World centre (mm) of a named site; bone_points: the vertebra's voxel centres (world mm)."""
    D, W, H = frame.depth_mm, frame.width_mm, frame.height_mm
    local = {"central": (0.0, 0.0, 0.0), "anterior": (0.3 * D, 0.0, 0.0),
             "posterior-wall": (frame.posterior_wall + 0.15 * D, 0.0, 0.0), "lateral": (0.0, 0.3 * W, 0.0),
             "superior-endplate": (0.0, 0.0, 0.3 * H)}
    if site == "pedicle":
        p = frame.local(bone_points)
        near = (p[:, 0] < frame.posterior_wall) & (p[:, 0] > frame.posterior_wall - PEDICLE_REACH_MM) & (p[:, 1] > 2.0)
        if not near.any():
            raise BonefeError("lesion site 'pedicle': no posterior element found behind the body on the left; "
                              "the label may hold the body alone")
        return bone_points[near].mean(axis=0)
    if site not in local:
        raise BonefeError(f"unknown vertebra lesion site '{site}': choose from {', '.join(SITES)}")
    return frame.origin + frame.basis() @ np.asarray(local[site])


def insert_lesion(volume: Volume, frame: VertebraFrame, site: str, diameter_mm: float,
                  kind: str = "lytic") -> tuple[Volume, np.ndarray]:
    """The volume with a lesion ball at a named site (labels and HU), and the ball's centre (world mm)."""
    if kind not in LESION_HU:
        raise BonefeError(f"lesion type must be lytic or blastic (got {kind!r})")
    if not diameter_mm > 0:
        raise BonefeError(f"lesion diameter must be positive, mm (got {diameter_mm})")
    bone = volume.labels > 0
    ijk = np.argwhere(bone)
    points = volume.to_world(ijk)
    centre = site_centre(frame, site, points)
    nearest = np.min(np.linalg.norm(points - centre, axis=1))
    if nearest > max(volume.spacing):
        raise BonefeError(f"lesion site '{site}' lies outside the vertebra ({nearest:.1f} mm from its bone); "
                          "choose another site or check the vertebra frame")
    inside = np.linalg.norm(points - centre, axis=1) <= diameter_mm / 2
    labels, hu = volume.labels.copy(), volume.hu.copy()
    idx = tuple(ijk[inside].T)
    labels[idx] = LYTIC if kind == "lytic" else BLASTIC
    hu[idx] = LESION_HU[kind]
    return replace(volume, hu=hu, labels=labels), centre
