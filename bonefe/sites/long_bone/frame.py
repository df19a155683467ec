"""The frame of a long bone (femur, humerus) and the geometry its landmarks are found with:
least-squares spheres, voxel faces, landmark overrides and the side check."""

from dataclasses import dataclass

import numpy as np

from bonefe.errors import BonefeError


def unit(v) -> np.ndarray:
    """v scaled to unit length."""
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class LongBoneFrame:
    """Landmarks of a long bone (femur, humerus) in world (LPS) coordinates, mm.

    head_centre:   centre of the head sphere.
    head_radius:   its radius (mm).
    shaft_axis:    unit vector along the diaphysis, from distal to proximal.
    neck_axis:     unit vector along the neck, from the shaft towards the head centre.
    distal_centre: centre of the most distal cross-section of the model (where it is supported);
                   for a whole femur (knee in the scan) the point of the shaft axis at the level of
                   the most distal bone.
    side:          "left" or "right".
    knee_centre:   centre of a femur's knee (distal epiphysis), None when the scan stops above it
                   (always None for a humerus).
    """

    head_centre: np.ndarray
    head_radius: float
    shaft_axis: np.ndarray
    neck_axis: np.ndarray
    distal_centre: np.ndarray
    side: str = "left"
    knee_centre: np.ndarray | None = None

    def superior(self) -> np.ndarray:
        """The superior unit vector: the mechanical axis (knee centre → head centre) when the knee
        centre is known (ISB femur frame, Wu et al. 2002), else the shaft axis."""
        if self.knee_centre is None:
            return np.asarray(self.shaft_axis, float) / np.linalg.norm(self.shaft_axis)
        return unit(np.asarray(self.head_centre, float) - np.asarray(self.knee_centre, float))

    def basis(self) -> np.ndarray:
        """Columns (medial, anterior, superior) unit vectors in world coordinates.

        superior = `superior()` (mechanical axis with a knee, shaft axis without); medial = the neck
        axis projected on the plane normal to it (so the neck's anteversion is absorbed into the
        medial axis: condylar landmarks are not used); anterior completes the frame: a right-handed
        frame for a left bone, mirrored for a right one, so that load components (medial,
        anterior, superior) mean the same on both sides.
        """
        superior = self.superior()
        medial = np.asarray(self.neck_axis, float) - np.dot(self.neck_axis, superior) * superior
        medial /= np.linalg.norm(medial)
        anterior = np.cross(superior, medial) if self.side == "left" else np.cross(medial, superior)
        return np.column_stack([medial, anterior, superior])


def check_overrides(overrides: dict | None, allowed: tuple[str, ...]) -> dict:
    """Landmark overrides (names in `allowed`) as float arrays; BonefeError for unknown keys or degenerate values."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise BonefeError(f"landmarks: unknown landmark '{unknown[0]}' (allowed: {', '.join(allowed)})")
    checked = {}
    for key, value in overrides.items():
        array = np.asarray(value, float)
        if key == "head_radius":
            if array.shape != () or not array > 0:
                raise BonefeError(f"landmarks.head_radius must be a positive number of mm (got {value!r})")
            checked[key] = float(array)
            continue
        if array.shape != (3,) or not np.all(np.isfinite(array)):
            raise BonefeError(f"landmarks.{key} must be three numbers (x, y, z) in mm (got {value!r})")
        if key.endswith("_axis"):
            if np.linalg.norm(array) == 0:
                raise BonefeError(f"landmarks.{key} must be a non-zero direction (got {value!r})")
            array = unit(array)
        checked[key] = array
    return checked


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points (n, 3): |p|² = 2c·p + (R² − |c|²), linear in c (Kåsa 1976)."""
    design = np.column_stack([2.0 * points, np.ones(len(points))])
    solution, *_ = np.linalg.lstsq(design, np.einsum("ij,ij->i", points, points), rcond=None)
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def boundary_faces(mask: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (n, 3) of the centres of the faces between True and False voxels
    (the mask is taken as False beyond its edges)."""
    padded = np.pad(mask, 1)
    faces = []
    for a in range(3):
        change = np.diff(padded, axis=a)
        idx = np.argwhere(change).astype(float)
        idx[:, a] += 0.5
        faces.append(idx - 1.0)
    return np.concatenate(faces)


def check_side(frame, bone: str = "femur") -> None:
    """The head of a left femur (or humerus: `bone`) lies towards the patient's right (−x in LPS) of
    its shaft, and vice versa; frame: any frame with `side` and `basis()` (row 0 medial)."""
    medial_x = frame.basis()[0, 0]
    if abs(medial_x) > 0.5 and (medial_x < 0) != (frame.side == "left"):
        other = "right" if frame.side == "left" else "left"
        raise BonefeError(f"patient.side is '{frame.side}' but the head of the {bone} lies medially as in a "
                          f"{other} {bone}; check patient.side (or the image orientation)")
