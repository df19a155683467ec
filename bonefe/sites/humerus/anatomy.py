"""Anatomical frame of a humerus from its label map, and its support and head patches on the mesh.

The humerus frame is the long-bone frame (`bonefe.sites.long_bone.frame.LongBoneFrame`:
head centre and radius, shaft axis distal → proximal, a neck axis through the head centre,
distal centre of the cut, side; columns (medial, anterior, superior) of `basis()`, mirrored for a
right bone) with the humerus's own landmarks:

1. Head: the deepest bone point (Euclidean distance transform) within HEAD_SEARCH_MM of the most
   proximal bone is a first centre and radius; the sphere is then fitted by least squares (Kåsa
   1976, `bonefe.sites.long_bone.frame.fit_sphere`) to the voxel faces between bone and background
   within 30 % of that radius, leaving out the faces distal to the centre by more than half a
   radius (the anatomical neck and tuberosities) and the faces on the image's edge (a head cut by
   the field of view, as in chest CTs); three more rounds keep the faces within max(one voxel,
   3 robust standard deviations).
2. Shaft axis: the centroids of slabs normal to the axis, from DISTAL_SKIP_MM above the most distal
   bone to SHAFT_BELOW_HEAD_RADII head radii below the head centre (below the surgical neck), fitted
   with a line (principal direction), three rounds, starting from the principal axis of the bone
   (the image's superior axis for a bone shorter than LONG_BONE_MM; the head's search uses it too).
   A partial humerus with less than MIN_SHAFT_MM of shaft (a chest CT shows the head and the
   surgical neck) takes the image's superior axis (+z of LPS: the arm hangs along the body in a
   chest CT), recorded in `shaft_from`; give landmarks.shaft_axis to do better.
3. Neck (articular) axis: from the head centre towards the middle of the articular surface. Its
   azimuth about the shaft is that of the head centre's offset from the shaft axis (the head sits
   medially and posteriorly on the shaft: retroversion is absorbed into "medial", as the femur
   frame absorbs anteversion); its inclination is INCLINATION_DEG from the shaft axis. Offsets
   shorter than MIN_OFFSET_MM (a partial humerus whose "shaft" is the surgical neck) take the
   direction towards the body's midline (−x of LPS for a left humerus), recorded in `medial_from`.
4. Distal centre: where the model is cut and fixed, as the femur's (the plane normal to the shaft
   axis through the outer faces of the most distal voxels, at the centroid of the most distal
   two-voxel slab).

Landmarks: head_centre, head_radius, shaft_axis, neck_axis (the articular axis), distal_centre
override what is found (world LPS mm). Epicondyles are not used (no elbow in the images bonefe
meets so far); the model is always cut and fixed at its distal end.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.boundary import ExteriorFacets
from bonefe.sites.long_bone.frame import LongBoneFrame, boundary_faces, check_overrides, check_side, fit_sphere
from bonefe.sites.long_bone.patches import cut_facets, head_cap

HEAD_SEARCH_MM = 45.0
"""The head centre lies within this distance of the most proximal bone (humeral head radius ≈ 22–26 mm)."""
DISTAL_SKIP_MM = 5.0
SHAFT_BELOW_HEAD_RADII = 2.5
"""Shaft slabs start this many head radii below the head centre: past the surgical neck and the
metaphyseal flare (the surgical neck lies ≈ 1.5 head radii below the head centre)."""
MIN_SHAFT_MM = 20.0
INCLINATION_DEG = 45.0
"""Angle of the articular axis from the shaft axis: a neck-shaft (inclination) angle of 135°.
Typical adult values are 130–140° (value unconfirmed against a primary source in this session)."""
MIN_OFFSET_MM = 3.0
"""Head-centre offsets from the shaft axis below this are too short to give a direction (mm)."""
OVERRIDES = ("head_centre", "head_radius", "shaft_axis", "neck_axis", "distal_centre")
IMAGE_SUPERIOR = np.array([0.0, 0.0, 1.0])
LONG_BONE_MM = 120.0
"""Below this length along its principal axis the bone's principal axis is no shaft axis (mm)."""


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class HumerusFrame(LongBoneFrame):
    """The long-bone frame (`LongBoneFrame`, no knee) of a humerus; neck_axis is the articular axis.
    shaft_from / medial_from: how the shaft axis and the medial direction were found ("diaphysis",
    "image superior", "given"; "head offset", "body midline", "given")."""

    shaft_from: str = "diaphysis"
    medial_from: str = "head offset"


def _bone_points(volume) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(volume.labels) > 0
    if not mask.any():
        raise BonefeError("The label map has no bone voxels (all 0): check the label file and label_values.")
    return mask, volume.to_world(np.argwhere(mask))


def _principal(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
    return axis if axis[2] >= 0 else -axis


def _first_axis(points: np.ndarray) -> np.ndarray:
    """The bone's principal axis when it is a long bone in the image (at least LONG_BONE_MM along
    it), else the image's superior axis (a head and surgical neck only: notes 1 and 2)."""
    axis = _principal(points)
    return axis if np.ptp(points @ axis) >= LONG_BONE_MM else IMAGE_SUPERIOR.copy()


def _slab_centroids(points: np.ndarray, axis: np.ndarray, step: float, lo: float, hi: float) -> np.ndarray:
    """Centroids of the slabs `step` thick normal to axis whose mid-height t lies in (lo, hi)."""
    t = points @ axis
    keep = (t > lo) & (t < hi)
    if not keep.any():
        return np.empty((0, 3))
    bins = np.rint((t[keep] - lo) / step).astype(int)
    counts = np.bincount(bins)
    sums = np.stack([np.bincount(bins, weights=points[keep, a]) for a in range(3)], axis=1)
    full = np.flatnonzero(counts)
    return sums[full] / counts[full, None]


def head_sphere(volume, mask: np.ndarray, points: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, float]:
    """Humeral head centre (world mm) and radius (mm): note 1 of the module docstring."""
    t = points @ axis
    near_top = t >= t.max() - HEAD_SEARCH_MM
    ijk = np.argwhere(mask)[near_top]
    lo, hi = ijk.min(axis=0), ijk.max(axis=0) + 1
    crop = np.pad(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], 1)
    depth = ndimage.distance_transform_edt(crop, sampling=volume.spacing)[1:-1, 1:-1, 1:-1]
    inside = depth[tuple((ijk - lo).T)]
    centre, radius = points[near_top][np.argmax(inside)], float(inside.max())
    faces_ijk = boundary_faces(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]) + lo
    on_edge = np.any((faces_ijk < 0) | (faces_ijk > np.array(mask.shape) - 1), axis=1)
    faces = volume.to_world(faces_ijk[~on_edge])
    tolerance = 0.3 * radius
    for _ in range(4):
        offset = faces - centre
        distance = np.linalg.norm(offset, axis=1)
        keep = (np.abs(distance - radius) <= tolerance) & (offset @ axis >= -0.5 * radius)
        if np.count_nonzero(keep) < 10:
            raise BonefeError("humerus frame: could not find the humeral head surface; give landmarks.head_centre "
                              "and landmarks.head_radius in the case file")
        centre, radius = fit_sphere(faces[keep])
        residual = np.linalg.norm(faces[keep] - centre, axis=1) - radius
        tolerance = max(float(volume.spacing.max()), 3.0 * 1.4826 * float(np.median(np.abs(residual))))
    return centre, radius


def shaft_line(points: np.ndarray, step: float, head_centre, head_radius: float, axis: np.ndarray,
               given: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """A point on the shaft axis, its unit direction (distal → proximal) and how it was found (note 2);
    given: the axis is the case's and only the point is found (the same slabs, or the lowest one)."""
    for _ in range(1 if given else 3):
        t = points @ axis
        top = float(np.asarray(head_centre) @ axis) - SHAFT_BELOW_HEAD_RADII * head_radius
        centroids = _slab_centroids(points, axis, step, t.min() + DISTAL_SKIP_MM, top)
        if len(centroids) < 3 or np.ptp(centroids @ axis) < MIN_SHAFT_MM:
            axis = axis if given else IMAGE_SUPERIOR.copy()
            t = points @ axis
            return points[t <= t.min() + 2.0 * step].mean(axis=0), axis, "given" if given else "image superior"
        if not given:
            axis = _principal(centroids)
    return centroids.mean(axis=0), axis, "given" if given else "diaphysis"


def neck_axis(head_centre, point, axis, side: str) -> tuple[np.ndarray, str]:
    """The articular axis (note 3) and where its azimuth came from."""
    q = np.asarray(head_centre, float) - point
    offset = q - (q @ axis) * axis
    if np.linalg.norm(offset) >= MIN_OFFSET_MM:
        medial, source = _unit(offset), "head offset"
    else:
        midline = np.array([-1.0 if side == "left" else 1.0, 0.0, 0.0])
        medial, source = _unit(midline - (midline @ axis) * axis), "body midline"
    angle = np.radians(INCLINATION_DEG)
    return np.sin(angle) * medial + np.cos(angle) * axis, source


def distal_centre(volume, points: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The distal cut's centre: note 4 (the femur's rule for a femur without the knee)."""
    t = points @ axis
    half_voxel = 0.5 * np.abs(axis @ volume.affine[:3, :3]).max()
    centroid = points[t <= t.min() + 2.0 * float(volume.spacing.max())].mean(axis=0)
    return centroid - (centroid @ axis - (t.min() - half_voxel)) * axis


def humerus_frame(volume, side: str = "left", overrides: dict | None = None) -> HumerusFrame:
    """The humerus frame from the label map (bone and lesions), landmarks overridable (module doc).
    Deterministic and identical on every MPI rank."""
    if side not in ("left", "right"):
        raise BonefeError(f"side must be 'left' or 'right' (got {side!r})")
    given = check_overrides(overrides, OVERRIDES)
    mask, points = _bone_points(volume)
    axis = given.get("shaft_axis", _first_axis(points))
    centre, radius = given.get("head_centre"), given.get("head_radius")
    if centre is None or radius is None:
        found_centre, found_radius = head_sphere(volume, mask, points, axis)
        centre = found_centre if centre is None else centre
        radius = found_radius if radius is None else radius
    step = float(volume.spacing.max())
    point, axis, shaft_from = shaft_line(points, step, centre, radius, axis, given="shaft_axis" in given)
    if "neck_axis" in given:
        neck, medial_from = given["neck_axis"], "given"
    else:
        neck, medial_from = neck_axis(centre, point, axis, side)
    distal = given["distal_centre"] if "distal_centre" in given else distal_centre(volume, points, axis)
    frame = HumerusFrame(head_centre=np.asarray(centre, float), head_radius=float(radius), shaft_axis=axis,
                         neck_axis=neck, distal_centre=distal, side=side, shaft_from=shaft_from,
                         medial_from=medial_from)
    check_side(frame, "humerus")
    return frame


# ---------------------------------------------------------------------------------------------
# Boundary patches on the mesh
# ---------------------------------------------------------------------------------------------

SUPPORT, HEAD = 1, 2
"""Facet tags: distal support (the cut, fixed), humeral head contact patch."""
CAP_HALF_ANGLE_DEG = 45.0
"""Half-angle of the head contact cap about the articular axis: it reaches the top of the head
(the articular axis lies INCLINATION_DEG from the shaft axis), so the loads along the shaft
(walking aids) and those along the articular axis (arm elevation) both enter through it;
2πR²(1 − cos 45°) ≈ 9.7 cm² for R = 23 mm."""


def boundary_tags(mesh, frame: HumerusFrame, cap_half_angle_deg: float = CAP_HALF_ANGLE_DEG):
    """Facet MeshTags (dim 2) on the local owned exterior facets: SUPPORT (the distal cut) and HEAD
    (cap about the articular axis). Raises BonefeError (on every rank) when a patch is empty."""
    from dolfinx.mesh import meshtags
    from mpi4py import MPI

    facets = ExteriorFacets.of(mesh)
    values = np.zeros(len(facets.index), np.int32)
    values[head_cap(facets, frame, frame.neck_axis, cap_half_angle_deg)] = HEAD
    values[cut_facets(facets, frame)] = SUPPORT
    areas = mesh.comm.allreduce(np.bincount(values, weights=facets.area, minlength=3), op=MPI.SUM)
    hints = {SUPPORT: ("distal support", "distal_centre and shaft_axis"),
             HEAD: ("humeral head contact", "head_centre, head_radius and neck_axis")}
    for tag, (name, landmarks) in hints.items():
        if areas[tag] == 0:
            raise BonefeError(f"the {name} patch is empty: check landmarks {landmarks} in the case file")
    tagged = np.flatnonzero(values)
    tags = meshtags(mesh, 2, facets.index[tagged].astype(np.int32), values[tagged])
    tags.name = "facet_tags"
    return tags
