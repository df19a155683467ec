"""Anatomical frame of a femur: landmarks in world mm and the axis convention used for loads."""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.boundary import ExteriorFacets
from bonefe.errors import BonefeError
from bonefe.sites.long_bone.frame import LongBoneFrame, boundary_faces, check_overrides, check_side, fit_sphere, unit
from bonefe.sites.long_bone.patches import cut_facets, head_cap


@dataclass(frozen=True)
class FemurFrame(LongBoneFrame):
    """The long-bone frame (`bonefe.sites.long_bone.frame.LongBoneFrame`) of a femur: neck_axis
    along the femoral neck, knee_centre when the scan holds the knee."""


# ---------------------------------------------------------------------------------------------
# Landmarks from the label map
# ---------------------------------------------------------------------------------------------
#
# All of this is plain numpy on the Volume, so every MPI rank finds the same frame.
#
# 1. Shaft axis: the principal axis of all bone voxels is a first guess; the bone is then cut into
#    slabs normal to it, and the centroids of the diaphyseal slabs are fitted with a line (their
#    principal direction), three times. Oblique sections of a straight tube keep their centroid
#    on its axis, so the fit converges to the diaphysis axis. Diaphyseal slabs: from
#    DISTAL_SKIP_MM above the most distal bone to PROXIMAL_SKIP_MM below the most proximal bone
#    (below the lesser trochanter), keeping slabs with at most SLAB_AREA_RATIO × the median slab
#    area (drops the condylar flare when the knee is in the image). The axis points superiorly:
#    +z of the LPS patient frame, which CT images record.
# 2. Head: the bone voxel farthest from the shaft axis in the proximal part lies on the head; the
#    deepest bone point (Euclidean distance transform) within HEAD_SEARCH_MM of it is a first
#    centre and radius. The sphere is then fitted by least squares (algebraic fit, Kåsa 1976) to
#    the voxel faces between bone and background within 30 % of that radius, leaving out the side
#    facing the neck; then three more rounds keep the faces whose distance residual is within
#    max(one voxel, 3 robust standard deviations). Face centres lie on the segmented boundary,
#    voxel centres half a voxel inside it. (Kåsa 1976, IEEE Trans Instrum Meas 25:8.)
# 3. Neck axis: the line through the head centre and the centroids of neck cross-sections at
#    distances NECK_WINDOW (× head radius) from the head centre, within one head radius of the
#    current axis; starting from the perpendicular from the shaft axis, five rounds.
# 4. Knee centre, when the scan includes the distal femur: the knee is taken as present when a
#    slab within KNEE_SEARCH_MM of the most distal bone has at least KNEE_AREA_RATIO × the median
#    diaphyseal slab area (the condylar flare: the distal epiphysis is ≈ 75–90 mm wide against a
#    ≈ 25–30 mm shaft). Its centre is the centre of the bounding box of the bone within
#    CONDYLE_DEPTH_MM of the most distal bone, in the (medial, anterior) directions of the frame
#    built on the shaft axis, at CONDYLE_DEPTH_MM / 2 above the most distal bone: medio-laterally
#    the midpoint of the condyles' medial and lateral extremes (the epicondyles), the knee centre
#    of the ISB femur frame (midpoint of the epicondyles; Wu et al. 2002, J Biomech 35:543) as a
#    box centre, antero-posteriorly the middle of the condyles. The mechanical axis (knee centre →
#    head centre) is then the frame's superior axis (FemurFrame.superior); the shaft axis stays
#    the diaphysis axis (neck–shaft angle). The mechanical axis lies ≈ 5–7° from the anatomical
#    one in adults (Moreland et al. 1987, J Bone Joint Surg Am 69:745).
# 5. Distal centre: centroid of the most distal slab of bone (two voxels thick), projected on
#    the plane normal to the shaft axis through the outer faces of the most distal voxels — where
#    the segmentation, and so the mesh, is cut and supported. With the knee in the scan the most
#    distal slab is one condyle, so the distal centre is the shaft axis at that plane instead.
# Condyles give no anterior axis here (it comes from the neck, see FemurFrame.basis).

DISTAL_SKIP_MM = 5.0
PROXIMAL_SKIP_MM = 110.0
"""Head top to below the lesser trochanter (≈ 60–80 mm in adults) with a margin, mm."""
SLAB_AREA_RATIO = 1.5
MIN_SHAFT_MM = 20.0
"""Length of diaphysis needed to fit the shaft axis, mm."""
HEAD_SEARCH_MM = 40.0
"""The head centre lies within this distance of the bone point farthest from the shaft (mm);
head radii reach ≈ 30 mm."""
NECK_WINDOW = (1.0, 1.5)
"""Neck cross-sections from 1.0 to 1.5 head radii from the head centre: past the head, short of
the trochanters (neck lengths, head centre to shaft axis, are ≈ 2–2.5 head radii)."""

KNEE_SEARCH_MM = 60.0
"""The condylar flare is looked for within this distance of the most distal bone (mm)."""
KNEE_AREA_RATIO = 2.0
"""A distal slab this many times the median diaphyseal slab area means the knee is in the scan
(condyles ≈ 3× the shaft's section; a shaft cut, even oblique by 30°, stays below 1.2×)."""
CONDYLE_DEPTH_MM = 30.0
"""Bone within this distance of the most distal point: the condyles up to the epicondyles
(≈ 25–30 mm above the distal condylar surface in adults)."""

OVERRIDES = ("head_centre", "head_radius", "shaft_axis", "neck_axis", "distal_centre", "knee_centre")


def _principal_direction(points: np.ndarray) -> np.ndarray:
    """Unit direction of largest spread of points (n, 3) about their mean."""
    centred = points - points.mean(axis=0)
    return np.linalg.eigh(centred.T @ centred)[1][:, -1]


@dataclass(frozen=True)
class _Bone:
    """Bone voxels of a Volume: mask (labels > 0), world centres of its voxels, voxel size."""

    mask: np.ndarray
    ijk: np.ndarray
    points: np.ndarray
    step: float

    @classmethod
    def from_volume(cls, volume) -> "_Bone":
        mask = np.asarray(volume.labels) > 0
        if not mask.any():
            raise BonefeError("The label map has no bone voxels (all 0): check the label file and label_values.")
        ijk = np.argwhere(mask)
        return cls(mask, ijk, volume.to_world(ijk), float(volume.spacing.max()))


def _slabs(points: np.ndarray, t: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points binned by t into slabs `step` thick centred on t.min() + k·step: centroids (m, 3),
    mid-slab t (m,) and voxel counts (m,) of the non-empty slabs. Centring the slabs on the voxel
    layers (rounding, not flooring) keeps one layer per slab when the axis is a grid axis: with
    floor, t = 3·0.7 gives 2.999… and two layers fall into one slab, doubling its count."""
    if len(points) == 0:
        return np.empty((0, 3)), np.empty(0), np.empty(0, int)
    bins = np.rint((t - t.min()) / step).astype(int)
    counts = np.bincount(bins)
    sums = np.stack([np.bincount(bins, weights=points[:, a]) for a in range(3)], axis=1)
    full = np.flatnonzero(counts)
    return sums[full] / counts[full, None], t.min() + full * step, counts[full]


def _diaphysis_window(t: np.ndarray, centres: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Which slabs (mid-slab t, voxel counts) are diaphyseal (see the notes above)."""
    window = (centres > t.min() + DISTAL_SKIP_MM) & (centres < t.max() - PROXIMAL_SKIP_MM)
    if window.any():
        window &= counts <= SLAB_AREA_RATIO * np.median(counts[window])
    return window


def _diaphysis_centroids(points: np.ndarray, axis: np.ndarray, step: float) -> np.ndarray:
    """Centroids (m, 3) of the diaphyseal slabs normal to `axis` (see the notes above)."""
    t = points @ axis
    centroids, centres, counts = _slabs(points, t, step)
    window = _diaphysis_window(t, centres, counts)
    if np.count_nonzero(window) < 3 or np.ptp(centres[window]) < MIN_SHAFT_MM:
        raise BonefeError("femur frame: the image holds too little femoral shaft below the lesser trochanter "
                          f"(need ≥ {PROXIMAL_SKIP_MM + MIN_SHAFT_MM:.0f} mm of bone) to find the shaft axis; "
                          "give landmarks.shaft_axis in the case file")
    return centroids[window]


def shaft_line(bone: _Bone, direction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A point on the shaft axis and its unit direction (distal → proximal, world mm)."""
    fixed = direction is not None
    axis = unit(direction) if fixed else _principal_direction(bone.points)
    for _ in range(1 if fixed else 3):
        axis = axis if axis[2] >= 0 or fixed else -axis
        centroids = _diaphysis_centroids(bone.points, axis, bone.step)
        if not fixed:
            axis = _principal_direction(centroids)
    axis = axis if axis[2] >= 0 or fixed else -axis
    return centroids.mean(axis=0), axis


def _off_axis(points: np.ndarray, point: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Components of points (n, 3) perpendicular to the line (point, axis)."""
    q = points - point
    return q - np.outer(q @ axis, axis)


def _head_guess(volume, bone: _Bone, point, axis) -> tuple[np.ndarray, float]:
    """Deepest bone point (and its depth, mm) near the bone point farthest from the shaft axis."""
    t = (bone.points - point) @ axis
    proximal = np.flatnonzero(t > t.max() - PROXIMAL_SKIP_MM)
    radial = np.linalg.norm(_off_axis(bone.points[proximal], point, axis), axis=1)
    seed = bone.ijk[proximal[np.argmax(radial)]]
    reach = np.ceil((HEAD_SEARCH_MM + 35.0) / volume.spacing).astype(int)
    lo, hi = np.maximum(seed - reach, 0), np.minimum(seed + reach + 1, bone.mask.shape)
    crop = np.pad(bone.mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], 1)
    depth = ndimage.distance_transform_edt(crop, sampling=volume.spacing)[1:-1, 1:-1, 1:-1]
    ijk = np.argwhere(depth > 0) + lo
    near = np.linalg.norm(volume.to_world(ijk) - volume.to_world(seed[None])[0], axis=1) <= HEAD_SEARCH_MM
    ijk = ijk[near]
    deepest = np.argmax(depth[tuple((ijk - lo).T)])
    return volume.to_world(ijk[deepest][None])[0], float(depth[tuple(ijk[deepest] - lo)])


def head_sphere(volume, bone: _Bone, point, axis) -> tuple[np.ndarray, float]:
    """Femoral head centre (world mm) and radius (mm): see the notes above."""
    centre, radius = _head_guess(volume, bone, point, axis)
    lo = np.maximum(np.floor(volume.to_index(centre[None])[0] - 2 * radius / volume.spacing).astype(int), 0)
    hi = np.minimum(lo + np.ceil(4 * radius / volume.spacing).astype(int) + 2, bone.mask.shape)
    faces = volume.to_world(boundary_faces(bone.mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]) + lo)
    tolerance = 0.3 * radius
    for _ in range(4):
        outward = unit(_off_axis(centre[None], point, axis)[0])
        offset = faces - centre
        distance = np.linalg.norm(offset, axis=1)
        keep = (np.abs(distance - radius) <= tolerance) & (offset @ outward >= -0.2 * distance)
        if np.count_nonzero(keep) < 10:
            raise BonefeError("femur frame: could not find the femoral head surface; give landmarks.head_centre "
                              "and landmarks.head_radius in the case file")
        centre, radius = fit_sphere(faces[keep])
        residual = np.linalg.norm(faces[keep] - centre, axis=1) - radius
        tolerance = max(bone.step, 3.0 * 1.4826 * np.median(np.abs(residual)))
    return centre, radius


def neck_axis(bone: _Bone, centre, radius, point, axis) -> np.ndarray:
    """Unit neck axis from the shaft towards the head centre: see the notes above."""
    neck = unit(_off_axis(centre[None], point, axis)[0])
    for _ in range(5):
        behind = (centre - bone.points) @ neck
        section = np.linalg.norm(_off_axis(bone.points, centre, neck), axis=1)
        keep = (behind >= NECK_WINDOW[0] * radius) & (behind <= NECK_WINDOW[1] * radius) & (section <= radius)
        centroids = _slabs(bone.points[keep], behind[keep], bone.step)[0]
        if len(centroids) < 3:
            raise BonefeError("femur frame: could not follow the femoral neck; "
                              "give landmarks.neck_axis in the case file")
        offsets = centroids - centre
        direction = np.linalg.eigh(offsets.T @ offsets)[1][:, -1]
        neck = -direction if direction @ offsets.mean(axis=0) > 0 else direction
    return neck


def knee_centre(bone: _Bone, axis: np.ndarray, basis: np.ndarray) -> np.ndarray | None:
    """Knee centre (world mm) when the condylar flare is in the scan, else None: see the notes above.

    basis: columns (medial, anterior, superior = axis) of the frame built on the shaft axis."""
    t = bone.points @ axis
    _, centres, counts = _slabs(bone.points, t, bone.step)
    window = _diaphysis_window(t, centres, counts)
    distal = centres < t.min() + KNEE_SEARCH_MM
    if not window.any() or counts[distal].max() < KNEE_AREA_RATIO * np.median(counts[window]):
        return None
    q = bone.points[t <= t.min() + CONDYLE_DEPTH_MM] @ basis
    box_centre = 0.5 * (q.min(axis=0) + q.max(axis=0))
    return basis @ np.array([box_centre[0], box_centre[1], t.min() + 0.5 * CONDYLE_DEPTH_MM])


def distal_centre(volume, bone: _Bone, point: np.ndarray, axis: np.ndarray, whole: bool = False) -> np.ndarray:
    """The distal plane (normal to the shaft axis through the outer faces of the most distal voxels,
    where the segmentation, and so the mesh, ends) at the centroid of the most distal two-voxel slab
    of bone; for a whole femur (`whole`, knee in the scan) at the shaft axis (point, axis)."""
    t = bone.points @ axis
    half_voxel = 0.5 * np.abs(axis @ volume.affine[:3, :3]).max()  # along the grid axis nearest the shaft
    centroid = point if whole else bone.points[t <= t.min() + 2.0 * bone.step].mean(axis=0)
    return centroid - (centroid @ axis - (t.min() - half_voxel)) * axis


def femur_frame(volume, side: str = "left", overrides: dict | None = None) -> FemurFrame:
    """The femur frame found from the label map (bone and lesions), landmarks overridable.

    overrides: any of head_centre, head_radius, shaft_axis, neck_axis, distal_centre, knee_centre
    (world LPS mm; axes are normalised). Deterministic and identical on every MPI rank.
    """
    if side not in ("left", "right"):
        raise BonefeError(f"side must be 'left' or 'right' (got {side!r})")
    given = check_overrides(overrides, OVERRIDES)
    bone = _Bone.from_volume(volume)
    point, axis = shaft_line(bone, given.get("shaft_axis"))
    centre, radius = given.get("head_centre"), given.get("head_radius")
    if centre is None or radius is None:
        found_centre, found_radius = head_sphere(volume, bone, point, axis)
        centre = found_centre if centre is None else centre
        radius = found_radius if radius is None else radius
    neck = given["neck_axis"] if "neck_axis" in given else neck_axis(bone, centre, radius, point, axis)
    anatomical = FemurFrame(head_centre=centre, head_radius=radius, shaft_axis=axis, neck_axis=neck,
                            distal_centre=point, side=side)
    knee = given["knee_centre"] if "knee_centre" in given else knee_centre(bone, axis, anatomical.basis())
    distal = (given["distal_centre"] if "distal_centre" in given
              else distal_centre(volume, bone, point, axis, whole=knee is not None))
    frame = FemurFrame(head_centre=centre, head_radius=radius, shaft_axis=axis, neck_axis=neck,
                       distal_centre=distal, side=side, knee_centre=knee)
    check_side(frame)
    return frame


def neck_shaft_angle(frame: FemurFrame) -> float:
    """Angle between the neck axis and the shaft axis pointing distally (degrees; ≈ 125° in adults)."""
    cosine = float(np.dot(unit(frame.neck_axis), -unit(frame.shaft_axis)))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


# ---------------------------------------------------------------------------------------------
# Boundary patches on the mesh
# ---------------------------------------------------------------------------------------------

SUPPORT, HEAD, TROCHANTER = 1, 2, 3
"""Facet tags: distal support, femoral-head contact patch, greater-trochanter patch."""

CAP_HALF_ANGLE_DEG = 30.0
"""Half-angle of the head contact cap: 2πR²(1 − cos 30°) ≈ 4.3 cm² for R = 22.5 mm, the order of
the loaded area of the hip joint in stance; a smaller cap concentrates the contact pressure."""
TROCHANTER_RADIUS_MM = 15.0
"""Radius of the greater-trochanter patch (≈ 7 cm²): the impact of a sideways fall reaches the
bone through the trochanteric soft tissue over a few square centimetres, not at a point."""
POTTED_BELOW_HEAD_MM = 200.0
"""With the knee in the model (FemurFrame.knee_centre), the femur is held like a proximal-femur test
specimen potted distally: every exterior facet more than this distance below the head centre,
along the shaft axis, is fixed. 200 mm is the free length of the procedural phantom (head centre
to distal cut), so whole and proximal femurs are loaded alike. Fixing the condyles instead puts the
whole shaft under the bending of an unbalanced hip force (no muscles or iliotibial band in the
model): on the real femur of docs/real-femur.md the distal metaphysis then failed first, at a load
that does not depend on the hip lesion."""
TROCHANTER_LEVEL = 3.0
"""The greater trochanter is searched above (head centre − this × head radius) along the shaft."""


def support_facets(facets: ExteriorFacets, frame: FemurFrame) -> np.ndarray:
    """The distal cut (no knee in the model), or the shaft potted below POTTED_BELOW_HEAD_MM."""
    if frame.knee_centre is not None:
        return (facets.midpoint - frame.head_centre) @ unit(frame.shaft_axis) <= -POTTED_BELOW_HEAD_MM
    return cut_facets(facets, frame)


def _trochanter(facets: ExteriorFacets, frame: FemurFrame, radius_mm: float, comm, towards=None) -> np.ndarray:
    """Facets within radius_mm of the exterior point above the trochanter level farthest along
    `towards` (world unit vector; default lateral), facing that way."""
    medial, _, superior = frame.basis().T
    towards = -medial if towards is None else unit(np.asarray(towards, float))
    offset = facets.midpoint - frame.head_centre
    candidates = np.flatnonzero(offset @ superior >= -TROCHANTER_LEVEL * frame.head_radius)
    reach = offset[candidates] @ towards
    best = (reach.max(), *facets.midpoint[candidates[np.argmax(reach)]]) if len(candidates) else (-np.inf, 0, 0, 0)
    tip = np.array(max(comm.allgather(tuple(map(float, best))))[1:])
    near = np.linalg.norm(facets.midpoint - tip, axis=1) <= radius_mm
    return near & (facets.normal @ towards > 0)


def boundary_tags(mesh, frame: FemurFrame, cap_axis=None, cap_half_angle_deg: float = CAP_HALF_ANGLE_DEG,
                  trochanter_radius_mm: float = TROCHANTER_RADIUS_MM):
    """Facet MeshTags (dim 2) on the local owned exterior facets: SUPPORT (distal cut, or the potted
    shaft when the frame has a knee centre: POTTED_BELOW_HEAD_MM), HEAD (contact
    cap about cap_axis from the head centre), TROCHANTER (lateral greater trochanter).

    cap_axis: world direction from the head centre to the middle of the contact cap; by default
    opposite to the walking hip-contact force (bonefe.sites.femur.loads.WALKING_DIRECTION), i.e. superior and
    a little medial and anterior. A facet in both the head and trochanter patches goes to the head.
    Raises BonefeError (on every rank) when a patch is empty.
    """
    from dolfinx.mesh import meshtags
    from mpi4py import MPI

    from bonefe.sites.femur.loads import WALKING_DIRECTION

    cap_axis = -(frame.basis() @ WALKING_DIRECTION) if cap_axis is None else np.asarray(cap_axis, float)
    facets = ExteriorFacets.of(mesh)
    values = np.zeros(len(facets.index), np.int32)
    values[_trochanter(facets, frame, trochanter_radius_mm, mesh.comm)] = TROCHANTER
    values[head_cap(facets, frame, cap_axis, cap_half_angle_deg)] = HEAD
    values[support_facets(facets, frame)] = SUPPORT
    areas = mesh.comm.allreduce(np.bincount(values, weights=facets.area, minlength=4), op=MPI.SUM)
    hints = {SUPPORT: ("distal support", "distal_centre and shaft_axis"),
             HEAD: ("femoral head contact", "head_centre and head_radius"),
             TROCHANTER: ("greater trochanter", "shaft_axis and neck_axis")}
    for tag, (name, landmarks) in hints.items():
        if areas[tag] == 0:
            raise BonefeError(f"the {name} patch is empty: check landmarks {landmarks} in the case file")
    tagged = np.flatnonzero(values)
    tags = meshtags(mesh, 2, facets.index[tagged].astype(np.int32), values[tagged])
    tags.name = "facet_tags"
    return tags


def fall_patches(mesh, frame: FemurFrame, direction) -> tuple[np.ndarray, np.ndarray]:
    """Local facet indices of the sideways-fall contacts for a force on the head along the world
    unit vector `direction`: the head cap facing the acetabulum (CAP_HALF_ANGLE_DEG about
    −direction) and the greater-trochanter patch (TROCHANTER_RADIUS_MM) on the side the ground is,
    found along the part of `direction` normal to the superior axis (the trochanter stays the
    support whatever the shaft's tilt). Raises BonefeError when either is empty (`bonefe.sites.femur.fall`)."""
    from mpi4py import MPI

    direction = unit(np.asarray(direction, float))
    superior = frame.basis()[:, 2]
    facets = ExteriorFacets.of(mesh)
    head = head_cap(facets, frame, -direction, CAP_HALF_ANGLE_DEG)
    trochanter = _trochanter(facets, frame, TROCHANTER_RADIUS_MM, mesh.comm,
                             direction - (direction @ superior) * superior) & ~head
    for name, chosen in (("head contact", head), ("greater trochanter support", trochanter)):
        if mesh.comm.allreduce(float(facets.area[chosen].sum()), op=MPI.SUM) == 0:
            raise BonefeError(f"the sideways-fall {name} patch is empty: check landmarks head_centre, "
                              "head_radius and neck_axis in the case file")
    return facets.index[head].astype(np.int32), facets.index[trochanter].astype(np.int32)
