"""The vertebra's anatomical frame from its label: body axis, endplates, body vs posterior elements.

Axes (world LPS, unit vectors): `cranial` — the body axis, from the caudal to the cranial neighbour's
centroid when the neighbours are segmented (from one neighbour to the vertebra's own centroid when
one is), else the scanner's superior direction (+z of LPS, axial
scans); `anterior` — the scanner's anterior direction (−y of LPS) made orthogonal to `cranial`;
`left` = cranial × anterior. Both axes may be overridden in the case file (`landmarks`).

Body vs posterior elements (pedicles, laminae, facets, processes) are separated geometrically by a
plane normal to `anterior`: the body's posterior wall. On the mid-sagittal strip (|left| < 4 mm) the
label is solid from the anterior cortex back to the vertebral canal, which is empty; the wall is where
that first solid run ends (the first gap ≥ 2 mm). When no canal shows (a filled or coarse mask),
the body is the anterior BODY_DEPTH_FRACTION of the vertebra's antero-posterior extent. The wall
may be overridden by a point on it (`landmarks.posterior_wall_point`).

Endplates: the cranial and caudal 0.5 % quantiles of the body's voxels along `cranial` (their centres:
the centroid of the 2 mm slab there, on that level); heights
(anterior, middle, posterior thirds of the body's depth) are the 2–98 % quantile ranges there
(the Genant-style heights SINS collapse compares against the neighbours').
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.volume import Volume

STRIP_HALF_WIDTH_MM = 4.0
"""Half width of the mid-sagittal strip searched for the canal (mm)."""
CANAL_GAP_MM = 2.0
"""Smallest empty run along the strip that counts as the canal (mm)."""
BODY_DEPTH_FRACTION = 0.45
"""Fallback body depth / antero-posterior extent of the vertebra (lumbar body ≈ 30–35 mm of ≈ 70–80 mm)."""
MAX_BODY_HEIGHT_MM = 45.0
"""A vertebral body taller than this is two vertebrae in one label (adult lumbar bodies ≈ 25–30 mm)."""
SECOND_PART_FRACTION = 0.2
"""A second connected part holding this fraction of the largest one's voxels is another bone."""
OVERRIDES = ("cranial", "anterior", "posterior_wall_point")

SUPERIOR = np.array([0.0, 0.0, 1.0])
ANTERIOR = np.array([0.0, -1.0, 0.0])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class VertebraFrame:
    """The vertebra's frame (world mm, LPS). origin: body centroid; posterior_wall: signed distance
    (mm, along `anterior`, negative) of the body's posterior wall from the origin; superior_centre /
    inferior_centre: endplate centres; heights_mm: body height at its anterior, middle and posterior
    third; width_mm, depth_mm: body extent left–right and antero-posterior."""

    origin: np.ndarray
    cranial: np.ndarray
    anterior: np.ndarray
    posterior_wall: float
    superior_centre: np.ndarray
    inferior_centre: np.ndarray
    heights_mm: tuple[float, float, float]
    width_mm: float
    depth_mm: float

    @property
    def left(self) -> np.ndarray:
        return np.cross(self.cranial, self.anterior)

    def basis(self) -> np.ndarray:
        """Columns (anterior, left, cranial): frame components → world."""
        return np.column_stack([self.anterior, self.left, self.cranial])

    def local(self, points) -> np.ndarray:
        """Frame coordinates (anterior, left, cranial) of world points (n, 3), mm from the origin."""
        return (np.asarray(points, float) - self.origin) @ self.basis()

    def in_body(self, points) -> np.ndarray:
        """True for points in front of the body's posterior wall."""
        return self.local(points)[:, 0] >= self.posterior_wall

    @property
    def height_mm(self) -> float:
        return float(self.heights_mm[1])


def _check_single(mask: np.ndarray) -> None:
    parts, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count > 1:
        sizes = np.sort(np.bincount(parts.ravel())[1:])[::-1]
        if sizes[1] >= SECOND_PART_FRACTION * sizes[0]:
            raise BonefeError("the vertebra label holds two separate bones; give one vertebra per label value "
                              "(e.g. a TotalSegmentator vertebra value)")


def _posterior_wall(local: np.ndarray) -> float:
    """Signed antero-posterior position of the body's posterior wall (mm), see the module docstring."""
    strip = local[np.abs(local[:, 1]) < STRIP_HALF_WIDTH_MM, 0]
    front, back = local[:, 0].max(), local[:, 0].min()
    if strip.size:
        occupied = np.zeros(int(np.ceil(front - back)) + 2, bool)
        occupied[np.floor(front - strip).astype(int)] = True  # 1 mm bins from the front
        solid = np.flatnonzero(occupied)
        if solid.size and solid[0] <= CANAL_GAP_MM:
            gaps = np.flatnonzero(np.diff(solid) > CANAL_GAP_MM)
            if gaps.size:
                return float(front - solid[gaps[0]] - 1.0)
    return float(front - BODY_DEPTH_FRACTION * (front - back))


def _heights(body: np.ndarray, wall: float) -> tuple[float, float, float]:
    front = body[:, 0].max()
    thirds = np.linspace(front, wall, 4)
    heights = []
    for hi, lo in zip(thirds[:-1], thirds[1:]):
        z = body[(body[:, 0] <= hi) & (body[:, 0] >= lo), 2]
        heights.append(float(np.quantile(z, 0.98) - np.quantile(z, 0.02)) if z.size else 0.0)
    return tuple(heights)


def vertebra_frame(volume: Volume, neighbour_centroids: tuple | None = None,
                   overrides: dict | None = None) -> VertebraFrame:
    """The frame of the vertebra labelled > 0 in `volume`. neighbour_centroids: (cranial, caudal)
    centroids (world mm) of the segmented neighbours, either may be None; overrides: OVERRIDES."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise BonefeError(f"landmarks: unknown vertebra landmark(s) {sorted(unknown)}; allowed: {', '.join(OVERRIDES)}")
    mask = volume.labels > 0
    _check_single(mask)
    points = volume.to_world(np.argwhere(mask))
    centre = points.mean(axis=0)
    cranial = SUPERIOR
    cranial_n, caudal_n = neighbour_centroids or (None, None)
    if cranial_n is not None or caudal_n is not None:
        above = centre if cranial_n is None else np.asarray(cranial_n, float)
        below = centre if caudal_n is None else np.asarray(caudal_n, float)
        cranial = _unit(above - below)
    cranial = _unit(overrides.get("cranial", cranial))
    anterior = np.asarray(overrides.get("anterior", ANTERIOR), float)
    anterior = _unit(anterior - (anterior @ cranial) * cranial)
    draft = VertebraFrame(centre, cranial, anterior, 0.0, centre, centre, (0, 0, 0), 0.0, 0.0)
    local = draft.local(points)
    if "posterior_wall_point" in overrides:
        wall = float(draft.local(np.atleast_2d(overrides["posterior_wall_point"]))[0, 0])
    else:
        wall = _posterior_wall(local)
    body = points[local[:, 0] >= wall]
    if len(body) < 10:
        raise BonefeError("the vertebra label has no vertebral body in front of the canal; check the label "
                          "value, or give landmarks.posterior_wall_point")
    origin = body.mean(axis=0)
    frame = VertebraFrame(origin, cranial, anterior, 0.0, origin, origin, (0, 0, 0), 0.0, 0.0)
    b = frame.local(body)
    wall -= float((origin - centre) @ anterior)
    z = b[:, 2]
    top, bottom = np.quantile(z, 0.995), np.quantile(z, 0.005)
    heights = _heights(b, wall)
    if max(heights) > MAX_BODY_HEIGHT_MM:
        raise BonefeError(f"the vertebral body is {max(heights):.0f} mm tall: the label seems to hold two "
                          "vertebrae; give one vertebra per label value")
    return VertebraFrame(
        origin=origin, cranial=cranial, anterior=anterior, posterior_wall=wall,
        superior_centre=_on_plane(body[z >= top - 2.0].mean(axis=0), frame, top),
        inferior_centre=_on_plane(body[z <= bottom + 2.0].mean(axis=0), frame, bottom),
        heights_mm=heights,
        width_mm=float(np.quantile(b[:, 1], 0.99) - np.quantile(b[:, 1], 0.01)),
        depth_mm=float(b[:, 0].max() - wall))


def _on_plane(point: np.ndarray, frame: VertebraFrame, height: float) -> np.ndarray:
    """`point` moved along the frame's cranial axis to `height` (mm from the origin)."""
    return point + (height - frame.local(point[None])[0, 2]) * frame.cranial


def label_centroid(values: np.ndarray, affine: np.ndarray, value: int | None) -> np.ndarray | None:
    """World centroid (mm) of the voxels equal to `value` in a raw label array; None when absent."""
    if value is None:
        return None
    ijk = np.argwhere(values == value)
    if not len(ijk):
        return None
    return ijk.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]
